package core

import (
	"fmt"
	"testing"
)

// BenchmarkRuntimeUDPEcho is one 64-byte UDP echo through a running
// runtime (A) from a client runtime (B) that sends each reply straight
// back, 32 flows in flight, over the mem wire (two NICs of two queues): per
// echo, A receives a frame, runs its stack and echo handler and transmits a
// frame, and B does the same for the client. cores=N gives each runtime N
// cores: with 2, four polling threads share the machine's CPUs (two on the
// reference VM), so the figure measures the scheduler as much as the loop;
// with 1, each runtime's one core polls both its queues. The allocations
// reported are the whole process's, every core included.
func BenchmarkRuntimeUDPEcho(b *testing.B) {
	for _, cores := range []int{2, 1} {
		b.Run(fmt.Sprintf("cores=%d", cores), func(b *testing.B) {
			w := newWire(b, 2)
			n := func(c *Config) { c.Cores = cores }
			a := start(b, w.NIC(0), addrA, n)
			c := start(b, w.NIC(1), addrB, n)
			cl := pingPong(b, a, c, 32)
			cl.waitCount(b, 2000)
			b.ReportAllocs()
			b.ResetTimer()
			r0 := cl.replies.Load()
			cl.waitCount(b, r0+int64(b.N))
			b.StopTimer()
			cl.budget.Store(0)
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/secs, "echoes/s")
			b.ReportMetric(2*float64(b.N)/secs, "pkts/s")
		})
	}
}
