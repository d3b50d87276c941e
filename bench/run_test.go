package bench

import (
	"context"
	"errors"
	"fmt"
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
	for _, sys := range []string{SysMkstack, SysMkstackConn, SysLinux} {
		for _, w := range Workloads {
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

func TestVethSystemsAreNotAvailableYet(t *testing.T) {
	for _, sys := range []string{SysMkstackAFXDP, SysMkstackTap, SysGVisor} {
		_, err := DefaultSystems()[sys].Run(context.Background(), Params{Workload: TCPRR, Cores: 1, Flows: 1, Duration: time.Millisecond})
		if !errors.Is(err, ErrNotAvailable) {
			t.Errorf("%s: %v, want ErrNotAvailable", sys, err)
		}
	}
	spec := Spec{Workload: UDPEcho, Cores: []int{1}, Systems: []string{SysMkstackAFXDP}, Duration: time.Millisecond}
	r, err := Run(context.Background(), spec, RunOptions{})
	if err != nil || r.Points[0].Err == "" {
		t.Fatalf("Run = %v, point %+v", err, r.Points)
	}
}
