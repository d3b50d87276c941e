package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestEverySystemRunsEveryWorkload runs each in-process system on each
// workload for a fraction of a second and checks that the figures are
// figures: transactions counted, latencies recorded, no failures. (gVisor
// is tested in its own module, bench/gvisorpeer.)
func TestEverySystemRunsEveryWorkload(t *testing.T) {
	dur := 300 * time.Millisecond
	cores := []int{1, 2}
	if testing.Short() {
		dur, cores = 150*time.Millisecond, []int{1}
	}
	for _, sys := range []string{SysMkstack, SysMkstackConn, SysLinux, SysLinuxEpoll} {
		for _, w := range Workloads {
			if w == Memcached {
				continue // veth only: TestMemcachedRunsOnItsSystemsOnly
			}
			t.Run(fmt.Sprintf("%s/%s", sys, w), func(t *testing.T) {
				c := cores
				if w != TCPRR {
					c = []int{1}
				}
				spec := Spec{Workload: w, Cores: c, Systems: []string{sys}, Duration: dur, Warmup: 50 * time.Millisecond, Conns: 4}
				r, err := Run(context.Background(), spec, RunOptions{})
				if err != nil {
					t.Fatal(err)
				}
				CheckResult(t, r, sys, len(c))
			})
		}
	}
}

// CheckResult fails t unless r has n sound points of sys.
func CheckResult(t testing.TB, r *Result, sys string, n int) {
	t.Helper()
	if len(r.Points) != n {
		t.Fatalf("%d points, want %d", len(r.Points), n)
	}
	for _, p := range r.Points {
		if p.Err != "" {
			t.Fatalf("%s at %d cores: %s", p.System, p.Cores, p.Err)
		}
		if p.System != sys || p.Count == 0 || p.Rate <= 0 || p.Seconds <= 0 || p.PerCore != p.Rate/float64(p.Cores) {
			t.Errorf("point %+v", p)
		}
		if p.Workload.Stream() != (p.Latency == nil) {
			t.Errorf("%s: latency %+v", p.Workload, p.Latency)
		}
		if l := p.Latency; l != nil && (l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max || l.Samples == 0) {
			t.Errorf("latency %+v", l)
		}
		// A lost datagram or a refused connection may happen; most
		// transactions must not fail.
		if !p.Workload.Stream() && p.Errors*10 > p.Count {
			t.Errorf("%d errors in %d transactions", p.Errors, p.Count)
		}
		if p.Cores == 1 && p.Efficiency != 1 {
			t.Errorf("efficiency at 1 core = %v", p.Efficiency)
		}
	}
}

// TestTCPCRRWithTheServerClosingFirst: the server holds the TIME-WAITs
// and the client reuses its ports at once, so SYNs reopen tuples in
// TIME-WAIT; with TSval offsets per address pair (RFC 7323 5.4) and
// RFC 6191 they are accepted, not refused.
func TestTCPCRRWithTheServerClosingFirst(t *testing.T) {
	CRRServerClosesFirst = true
	defer func() { CRRServerClosesFirst = false }()
	for _, sys := range []string{SysMkstack, SysMkstackConn, SysLinux} {
		// A second and more: on a loaded machine a flow now and then
		// waits out a one-second SYN timeout (seen once in CI with the
		// handler system at 300 ms: no transaction in the window; the
		// cause is not yet found), which must not empty the window.
		spec := Spec{Workload: TCPCRR, Cores: []int{1}, Systems: []string{sys}, Duration: 1200 * time.Millisecond, Warmup: 50 * time.Millisecond, Conns: 4}
		r, err := Run(context.Background(), spec, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		CheckResult(t, r, sys, 1)
		if p := r.Points[0]; p.Errors*100 > p.Count {
			t.Errorf("%s: %d failed of %d transactions", sys, p.Errors, p.Count)
		}
		t.Logf("%s: %.0f transactions/s, %d errors", sys, r.Points[0].Rate, r.Points[0].Errors)
	}
}

func TestTransactionsModeRunsToTheCount(t *testing.T) {
	for _, sys := range []string{SysMkstack, SysLinux} {
		spec := Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{sys}, Transactions: 3000, Conns: 4}
		r, err := Run(context.Background(), spec, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := r.Points[0]
		if p.Err != "" || p.Count < 3000 || p.Count > 3000+4 {
			t.Errorf("%s: %d transactions (%s), want 3000 (up to one per flow more)", sys, p.Count, p.Err)
		}
	}
}

func TestGVisorIsNotAvailableInThisModule(t *testing.T) {
	_, err := DefaultSystems()[SysGVisor].Run(context.Background(), Params{Workload: TCPRR, Cores: 1, Flows: 1, Duration: time.Millisecond})
	if !errors.Is(err, ErrNotAvailable) {
		t.Errorf("gvisor: %v, want ErrNotAvailable", err)
	}
}

func TestVethSystemsNeedRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root: the veth systems are available (TestVethSystemsRunTCPRR)")
	}
	for _, sys := range []string{SysMkstackAFXDP, SysMkstackTap, SysLinuxVeth, SysLinuxVethOffloadsOff, SysLinuxEpollVeth, SysMkstackConnAFXDP, SysMkstackConnTap} {
		_, err := DefaultSystems()[sys].Run(context.Background(), Params{Workload: TCPRR, Cores: 1, Flows: 1, Duration: time.Millisecond})
		if !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), "needs root") {
			t.Errorf("%s: %v, want ErrNotAvailable: needs root", sys, err)
		}
	}
	spec := Spec{Workload: UDPEcho, Cores: []int{1}, Systems: []string{SysMkstackAFXDP}, Duration: time.Millisecond}
	r, err := Run(context.Background(), spec, RunOptions{})
	if err != nil || r.Points[0].Err == "" {
		t.Fatalf("Run = %v, point %+v", err, r.Points)
	}
}

// TestVethSystemsRunTCPRR runs mkstack over AF_XDP on a veth and the
// kernel on the same veth, tcp-rr at 1 and 2 cores, with the load from
// the kernel in the peer namespace: each point makes its lab and removes
// it.
func TestVethSystemsRunTCPRR(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth, XDP")
	}
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	before := benchNamespaces(t)
	for _, sys := range []string{SysMkstackAFXDP, SysLinuxVeth, SysLinuxEpollVeth, SysMkstackConnAFXDP, SysMkstackConnTap, SysLinuxVethOffloadsOff} {
		t.Run(sys, func(t *testing.T) {
			spec := Spec{Workload: TCPRR, Cores: []int{1, 2}, Systems: []string{sys}, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Conns: 4}
			r, err := Run(context.Background(), spec, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			CheckResult(t, r, sys, 2)
			// Each point says what ran: the kernel's devices at their
			// defaults, mkstack's peer too, unless the system says
			// otherwise.
			wantOffloads := "defaults"
			if sys == SysLinuxVethOffloadsOff {
				wantOffloads = "off"
			}
			for _, p := range r.Points {
				if p.PeerOffloads != wantOffloads || p.Driver == "" || p.API != ModelOf(sys, TCPRR) || p.Client != "go" || p.GOMAXPROCS == 0 {
					t.Errorf("%s at %d cores: offloads %q driver %q API %q client %q GOMAXPROCS %d", sys, p.Cores, p.PeerOffloads, p.Driver, p.API, p.Client, p.GOMAXPROCS)
				}
			}
		})
	}
	if after := benchNamespaces(t); len(after) != len(before) {
		t.Errorf("network namespaces left behind: %v (before: %v)", after, before)
	}
}

// TestVethPointRemovesItsLabWhenCancelled cancels a point mid-window: the
// point ends with the context's error and its namespaces are gone.
func TestVethPointRemovesItsLabWhenCancelled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth, XDP")
	}
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	before := benchNamespaces(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(400*time.Millisecond, cancel)
	start := time.Now()
	_, err := Veth(SysMkstackAFXDP).Run(ctx, Params{Workload: TCPRR, Cores: 1, Flows: 2, Duration: 10 * time.Second})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled point: %v after %v, want context.Canceled at once", err, time.Since(start))
	}
	if after := benchNamespaces(t); len(after) != len(before) {
		t.Errorf("network namespaces left behind: %v (before: %v)", after, before)
	}
}

// benchNamespaces lists the named network namespaces this process's veth
// points make.
func benchNamespaces(t *testing.T) []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	prefix := fmt.Sprintf("b%d", os.Getpid()%100000)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestVethHTTPWithWrk: the http workload on veth is driven by wrk from the
// peer namespace, against mkstack on AF_XDP and the kernel.
func TestVethHTTPWithWrk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth, XDP")
	}
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	if !wrkAvailable() {
		t.Skip("needs wrk (.ci/run installs it)")
	}
	for _, sys := range []string{SysMkstackAFXDP, SysMkstackTap, SysLinuxVeth, SysLinuxEpollVeth, SysMkstackConnAFXDP} {
		pt, err := DefaultSystems()[sys].Run(context.Background(), Params{Workload: HTTP, Cores: 1, Flows: 4, Duration: time.Second})
		if err != nil {
			t.Fatalf("%s: %v", sys, err)
		}
		if pt.Rate <= 0 || pt.Errors != 0 || pt.Latency == nil || !strings.Contains(pt.Note, "wrk") {
			t.Errorf("%s: %+v", sys, pt)
		} else {
			t.Logf("%s: %.0f req/s by wrk, p50 %.0f µs, p99 %.0f µs", sys, pt.Rate, pt.Latency.P50, pt.Latency.P99)
		}
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 1s test @ http://10.77.0.1:7/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   210.33us  100.10us   2.10ms   90.00%
  Latency Distribution
     50%  190.00us
     75%  220.00us
     90%  300.00us
     99%    1.50ms
  12345 requests in 1.00s, 1.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  12345.00
`
	pt, err := parseWrk(out, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if pt.Count != 12345 || pt.Seconds != 1 || pt.Errors != 3 || pt.Latency == nil || pt.Latency.P50 != 190 || pt.Latency.P99 != 1500 {
		t.Fatalf("%+v %+v", pt, pt.Latency)
	}
	if _, err := parseWrk("unable to connect", Params{}); err == nil {
		t.Error("a wrk failure parsed")
	}
}

// TestVethHTTPWithH2loadAtAFixedRate: a fixed-rate http point on veth is
// driven by h2load --rps from the peer namespace, reaches about the
// offered rate, and reports latency percentiles from h2load's request log
// and the whole machine's CPU per request.
func TestVethHTTPWithH2loadAtAFixedRate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth, XDP")
	}
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	if httpClient(Params{Rate: 1}) != "h2load" {
		t.Skip("needs h2load (.ci/run installs nghttp2-client)")
	}
	const offered = 2000.0
	for _, sys := range []string{SysMkstackConnAFXDP, SysLinuxVeth} {
		pt, err := DefaultSystems()[sys].Run(context.Background(), Params{Workload: HTTP, Cores: 1, Flows: 4, Duration: time.Second, Warmup: 200 * time.Millisecond, Rate: offered})
		if err != nil {
			t.Fatalf("%s: %v", sys, err)
		}
		if pt.Client != "h2load" || pt.Errors != 0 || pt.Latency == nil || pt.Latency.P50 <= 0 || pt.MachineCPUSeconds <= 0 {
			t.Errorf("%s: %+v", sys, pt)
		}
		// Unpaced, h2load drives either at 10 times this rate.
		if pt.Rate > 1.1*offered || pt.Rate < 0.5*offered {
			t.Errorf("%s: %.0f req/s, offered %.0f", sys, pt.Rate, offered)
		}
		t.Logf("%s: %.0f req/s by h2load at %.0f offered, p50 %.0f µs, p99 %.0f µs, %.1f µs of machine CPU per request",
			sys, pt.Rate, offered, pt.Latency.P50, pt.Latency.P99, pt.CPUPerTxn()*1e6)
	}
}
