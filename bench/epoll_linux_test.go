//go:build linux

package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq/netlab"
	"github.com/mkstack/mkstack/nicq/netlab/nsthread"
)

// TestLinuxEpollRunsEveryWorkload runs linux-epoll through Run on every
// workload at 1 core, and tcp-rr at 2 cores too unless -short, and then
// checks that no goroutine of the points is left.
func TestLinuxEpollRunsEveryWorkload(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, w := range Workloads {
		if w == Memcached {
			continue // veth only: TestMemcachedRunsOnItsSystemsOnly
		}
		t.Run(string(w), func(t *testing.T) {
			cores := []int{1}
			if w == TCPRR && !testing.Short() {
				cores = []int{1, 2}
			}
			spec := Spec{Workload: w, Cores: cores, Systems: []string{SysLinuxEpoll}, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Conns: 4}
			r, err := Run(context.Background(), spec, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			CheckResult(t, r, SysLinuxEpoll, len(cores))
			for _, p := range r.Points {
				if p.API != "epoll" || p.Client != "epoll" || p.Driver != "loopback" {
					t.Errorf("point says API %q, client %q, driver %q", p.API, p.Client, p.Driver)
				}
				if w != UDPEcho && !w.Stream() && p.Errors != 0 {
					t.Errorf("%d cores: %d failed transactions over loopback", p.Cores, p.Errors)
				}
				t.Logf("%d cores: %s %s, %d errors", p.Cores, FormatRate(p.Rate), p.Unit, p.Errors)
			}
		})
	}
}

func TestLinuxEpollTCPCRRWithTheServerClosingFirst(t *testing.T) {
	CRRServerClosesFirst = true
	defer func() { CRRServerClosesFirst = false }()
	spec := Spec{Workload: TCPCRR, Cores: []int{1}, Systems: []string{SysLinuxEpoll}, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Conns: 4}
	r, err := Run(context.Background(), spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	CheckResult(t, r, SysLinuxEpoll, 1)
	if p := r.Points[0]; p.Errors*100 > p.Count {
		t.Errorf("%d failed of %d transactions", p.Errors, p.Count)
	}
}

// offeredWithin reports, as an error, a point whose measured rate is not
// within frac of the rate it was offered.
func offeredWithin(p Point, frac float64) error {
	if p.OfferedRate <= 0 {
		return fmt.Errorf("no offered rate (rate %.0f/s)", p.Rate)
	}
	if p.Rate < p.OfferedRate*(1-frac) || p.Rate > p.OfferedRate*(1+frac) {
		return fmt.Errorf("measured %.0f/s, offered %.0f/s: off by more than %.0f%%", p.Rate, p.OfferedRate, frac*100)
	}
	return nil
}

// TestLinuxEpollFixedRate: a paced point delivers the rate it is offered,
// and the same check fails when the rate is beyond what the machine can
// serve.
func TestLinuxEpollFixedRate(t *testing.T) {
	run := func(rate float64) Point {
		t.Helper()
		spec := Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{SysLinuxEpoll}, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Conns: 4, Rate: rate}
		r, err := Run(context.Background(), spec, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		CheckResult(t, r, SysLinuxEpoll, 1)
		p := r.Points[0]
		t.Logf("offered %.0f/s: measured %.0f/s, p50 %.0f µs, p99 %.0f µs", rate, p.Rate, p.Latency.P50, p.Latency.P99)
		return p
	}
	if err := offeredWithin(run(2000), 0.2); err != nil {
		t.Error(err)
	}
	// Far beyond loopback's peak on any machine: the flows fall behind
	// their schedule, and the check must say so.
	if err := offeredWithin(run(1e9), 0.2); err == nil {
		t.Error("a rate of 1e9/s was met: the check cannot fail")
	}
}

// TestEpollServerAnswersPipelinedHTTP sends three requests in one write
// and a fourth in two parts: the server answers each complete request
// once, in order.
func TestEpollServerAnswersPipelinedHTTP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := Params{Workload: HTTP, Cores: 1, Flows: 1}
	// The meter without slots, as the http clients of the veth systems
	// give it.
	stop, port, err := epollServe(context.Background(), p, "127.0.0.1", func(fn func() error) error { return fn() })(newMeter(p, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	burst := append(append(append([]byte(nil), httpRequest...), httpRequest...), httpRequest...)
	if _, err := c.Write(burst); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 3 {
		if err := readHTTPResponse(br); err != nil {
			t.Fatalf("response %d of the burst: %v", i+1, err)
		}
	}
	half := len(httpRequest) / 2
	c.Write(httpRequest[:half])
	time.Sleep(20 * time.Millisecond) // the server reads the first part alone
	c.Write(httpRequest[half:])
	if err := readHTTPResponse(br); err != nil {
		t.Fatalf("response to the split request: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := br.ReadByte(); err == nil {
		t.Fatalf("a byte %q after the fourth response", n)
	}
}

// TestLinuxEpollAllocatesNothingPerTransaction: the allocations of a
// whole point (meter, buffers, threads) are a small fixed cost, not one
// per transaction.
func TestLinuxEpollAllocatesNothingPerTransaction(t *testing.T) {
	for _, w := range []Workload{TCPRR, TCPCRR, UDPEcho, HTTP} {
		p := Params{Workload: w, Cores: 1, Flows: 4, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		pt, err := LinuxEpoll().Run(context.Background(), p)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		mallocs := after.Mallocs - before.Mallocs
		t.Logf("%s: %d allocations in a point of %d transactions", w, mallocs, pt.Count)
		// tcp-crr makes a few thousand connections a second here, fewer
		// on a loaded CI machine: 200 transactions already tell a fixed
		// cost from one per transaction.
		if pt.Count < 200 || mallocs > 500+pt.Count/1000 {
			t.Errorf("%s: %d allocations in a point of %d transactions", w, mallocs, pt.Count)
		}
	}
}

// TestLinuxEpollPacedStreamAllocatesNothingPerChunk: a paced stream's
// client (waits, partial writes) allocates nothing per chunk.
func TestLinuxEpollPacedStreamAllocatesNothingPerChunk(t *testing.T) {
	p := Params{Workload: TCPStreamMany, Cores: 1, Flows: StreamFlows, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Rate: 500e6}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pt, err := LinuxEpoll().Run(context.Background(), p)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	mallocs, chunks := after.Mallocs-before.Mallocs, pt.Count/StreamChunk
	t.Logf("%d allocations in a point of %d chunks", mallocs, chunks)
	if chunks < 300 || mallocs > 300+chunks/10 {
		t.Errorf("%d allocations in a point of %d chunks", mallocs, chunks)
	}
}

// TestSteerByCPUServesEachCPUsOwnListener: connections opened from a
// thread pinned to the CPU of core i are accepted by core i's listener.
func TestSteerByCPUServesEachCPUsOwnListener(t *testing.T) {
	set, err := affinity.AllowedCPUs()
	if err != nil || set.Count() < 2 {
		t.Skipf("needs 2 allowed CPUs (%v)", err)
	}
	cpus := affinity.ListCPUs(set)[:2]
	var fds []int
	port := 0
	for range cpus {
		var fd int
		if fd, port, err = epollListen(TCPRR, netip.MustParseAddr("127.0.0.1"), port); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		fds = append(fds, fd)
	}
	if err := steerByCPU(fds[0], cpus); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const n = 8
	for i, cpu := range cpus {
		done := make(chan error, 1)
		var conns []net.Conn
		go func() {
			// The pinned thread ends with this goroutine.
			if err := affinity.Pin(cpu); err != nil {
				done <- err
				return
			}
			for range n {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					done <- err
					return
				}
				conns = append(conns, c)
			}
			done <- nil
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := make([]int, len(fds))
		for deadline := time.Now().Add(2 * time.Second); got[0]+got[1] < n && time.Now().Before(deadline); {
			for j, fd := range fds {
				if c, err := accept4(fd); err == nil {
					unix.Close(c)
					got[j]++
				}
			}
		}
		closeAll(conns)
		if got[i] != n {
			t.Errorf("from CPU %d: listeners accepted %v, want all %d on listener %d", cpu, got, n, i)
		}
	}
}

// TestEpollServeInANamespace serves from sockets made in another network
// namespace on a non-loopback address: clients in that namespace are
// answered, the host's cannot reach it.
func TestEpollServeInANamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace")
	}
	h, err := nsthread.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const ip = "10.77.99.1"
	if err := netlab.KernelAddr(h, "lo", ip+"/24", false); err != nil {
		t.Fatal(err)
	}
	in := func(fn func() error) error { return nsthread.Do(h, fn) }
	for _, w := range []Workload{TCPRR, UDPEcho} {
		p := Params{Workload: w, Cores: 2, Flows: 1}
		stop, port, err := epollServe(context.Background(), p, ip, in)(newMeter(p, p.Flows*p.Cores))
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		network := map[Workload]string{TCPRR: "tcp", UDPEcho: "udp"}[w]
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		var c net.Conn
		if err := in(func() (err error) { c, err = net.Dial(network, addr); return err }); err != nil {
			stop()
			t.Fatalf("%s: dial in the namespace: %v", w, err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		msg := make([]byte, MsgSize)
		msg[0] = 'x'
		got := make([]byte, MsgSize)
		if _, err := c.Write(msg); err != nil {
			t.Errorf("%s: %v", w, err)
		} else if _, err := io.ReadFull(c, got); err != nil || got[0] != 'x' {
			t.Errorf("%s: echo %q, %v", w, got[:1], err)
		}
		c.Close()
		if w == TCPRR {
			d := net.Dialer{Timeout: 200 * time.Millisecond}
			if hc, err := d.Dial("tcp", addr); err == nil {
				hc.Close()
				t.Errorf("reached %s from the host's namespace", addr)
			}
		}
		stop()
	}
}

func TestLinuxEpollTransactionsModeRunsToTheCount(t *testing.T) {
	spec := Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{SysLinuxEpoll}, Transactions: 3000, Conns: 4}
	r, err := Run(context.Background(), spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Points[0]; p.Err != "" || p.Count < 3000 || p.Count > 3000+4 {
		t.Errorf("%d transactions (%s), want 3000 (up to one per flow more)", p.Count, p.Err)
	}
}

// TestEpollServerBuffersWhatTheSocketWillNotTake: a client that sends
// much more than it reads for a while fills the server's socket, so the
// server holds output, stops reading, and sends the rest on EPOLLOUT;
// every byte (every response) arrives, in order.
func TestEpollServerBuffersWhatTheSocketWillNotTake(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// More than loopback's socket buffers hold at their largest.
	const total = 32 << 20
	for _, w := range []Workload{TCPRR, HTTP} {
		p := Params{Workload: w, Cores: 1, Flows: 1}
		stop, port, err := epollServe(context.Background(), p, "127.0.0.1", func(fn func() error) error { return fn() })(newMeter(p, 1))
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			stop()
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		// The echo's bytes count 0..250 over and over; http sends
		// batches of pipelined requests.
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = byte(i % 251)
		}
		requests := 0
		if w == HTTP {
			chunk = chunk[:0]
			for len(chunk)+len(httpRequest) <= 64<<10 {
				chunk = append(chunk, httpRequest...)
				requests++
			}
		}
		batches := total / len(chunk)
		wrote := make(chan error, 1)
		go func() {
			for range batches {
				if _, err := c.Write(chunk); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		}()
		time.Sleep(200 * time.Millisecond) // the reader is late: the server's socket fills
		br := bufio.NewReaderSize(c, 64<<10)
		if w == HTTP {
			for i := range batches * requests {
				if err := readHTTPResponse(br); err != nil {
					t.Errorf("http: response %d of %d: %v", i, batches*requests, err)
					break
				}
			}
		} else {
			for i := range batches * len(chunk) {
				b, err := br.ReadByte()
				if err == nil && b != byte(i%len(chunk)%251) {
					err = fmt.Errorf("%d, want %d", b, i%len(chunk)%251)
				}
				if err != nil {
					t.Errorf("echo: byte %d of %d: %v", i, batches*len(chunk), err)
					break
				}
			}
		}
		if err := <-wrote; err != nil {
			t.Errorf("%s: write: %v", w, err)
		}
		c.Close()
		stop()
	}
}
