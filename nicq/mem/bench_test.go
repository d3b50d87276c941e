package mem_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq"
)

// BenchmarkMemWireBurst32 measures the wire between two pinned cores: a
// producer on CPU 0 sends bursts of 32 64-byte UDP frames on NIC A's queue,
// a consumer on CPU 1 receives them from NIC B's queue and frees them. One
// op is one burst delivered. Flow control is on so that the producer runs
// at the consumer's pace instead of dropping; the figure is delivered
// frames per second.
func BenchmarkMemWireBurst32(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs 2 CPUs for a producer and a consumer core")
	}
	c := twoNICs(1, 1)
	c.FlowControl = true
	c.RingSize = 1024
	c.NICs[0].PoolBuffers = 4096
	c.NICs[1].PoolBuffers = 4096
	w := newWire(b, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	frame := udp(1000, 0)
	total := int64(b.N) * 32

	var ready sync.WaitGroup
	ready.Add(1)
	var pinErr atomic.Value
	done := make(chan int64)
	go func() {
		if err := affinity.Pin(1); err != nil {
			pinErr.Store(err)
		}
		rx.Pool().Claim()
		ready.Done()
		bufs := make([]*nicq.Buf, 32)
		var got int64
		for got < total {
			n := rx.Recv(bufs)
			for _, buf := range bufs[:n] {
				buf.Free()
			}
			got += int64(n)
		}
		done <- got
	}()
	ready.Wait()
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := affinity.Pin(0); err != nil {
		b.Logf("not pinned: %v", err)
	}
	if err, ok := pinErr.Load().(error); ok {
		b.Logf("consumer not pinned: %v", err)
	}
	tx.Pool().Claim()
	bufs := make([]*nicq.Buf, 32)
	b.ResetTimer()
	for sent := int64(0); sent < total; {
		n := tx.Pool().GetBatch(bufs[:min(32, total-sent)])
		for _, buf := range bufs[:n] {
			copy(buf.Append(len(frame)), frame)
		}
		for k := 0; k < n; {
			k += tx.Send(bufs[k:n]) // flow control: retry what the full ring refused
		}
		sent += int64(n) // n < 32 when the pool ran dry; the next Send reclaims
	}
	got := <-done
	b.StopTimer()
	b.ReportMetric(float64(got)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// BenchmarkMemWireSendRecv32OneCore is the CPU cost of the wire without the
// cross-core traffic: one goroutine sends a burst of 32 64-byte frames and
// receives it. One op is one burst.
func BenchmarkMemWireSendRecv32OneCore(b *testing.B) {
	w := newWire(b, twoNICs(1, 1))
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	frame := udp(1000, 0)
	bufs := make([]*nicq.Buf, 32)
	b.ReportAllocs()
	for b.Loop() {
		n := tx.Pool().GetBatch(bufs)
		for _, buf := range bufs[:n] {
			copy(buf.Append(len(frame)), frame)
		}
		tx.Send(bufs[:n])
		n = rx.Recv(bufs)
		for _, buf := range bufs[:n] {
			buf.Free()
		}
	}
	b.ReportMetric(float64(32*b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}
