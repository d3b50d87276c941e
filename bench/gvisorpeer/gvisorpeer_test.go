package gvisorpeer

import (
	"context"
	"testing"
	"time"

	"github.com/mkstack/mkstack/bench"
)

// TestGVisorRunsEveryWorkload runs each workload on gVisor's netstack for a
// fraction of a second, through bench.Run as mkstack bench does.
func TestGVisorRunsEveryWorkload(t *testing.T) {
	for _, w := range bench.Workloads {
		if bench.Supports(bench.SysGVisor, w) != nil {
			continue // memcached: stock memcached against mkstack's application only
		}
		t.Run(string(w), func(t *testing.T) {
			spec := bench.Spec{Workload: w, Cores: []int{1}, Systems: []string{bench.SysGVisor},
				Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Conns: 4}
			r, err := bench.Run(context.Background(), spec, bench.RunOptions{Systems: map[string]bench.System{bench.SysGVisor: System()}})
			if err != nil {
				t.Fatal(err)
			}
			p := r.Points[0]
			if p.Err != "" {
				t.Fatal(p.Err)
			}
			if p.System != bench.SysGVisor || p.Count == 0 || p.Rate <= 0 || w.Stream() != (p.Latency == nil) {
				t.Errorf("point %+v", p)
			}
			if !w.Stream() && p.Errors*10 > p.Count {
				t.Errorf("%d errors in %d transactions", p.Errors, p.Count)
			}
		})
	}
}

func TestGVisorTransactionsMode(t *testing.T) {
	p := bench.Params{Workload: bench.TCPRR, Cores: 1, Flows: 2, Transactions: 1000}
	pt, err := System().Run(context.Background(), p)
	if err != nil || pt.Count < 1000 || pt.Count > 1001 {
		t.Fatalf("%d transactions, %v; want 1000", pt.Count, err)
	}
}
