package msgring_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/msgring"
)

// benchMsg is the size of a typical core-to-core message: a sender and a
// payload word (16 bytes with padding).
type benchMsg struct {
	from uint32
	arg  uint64
}

// onCPUs runs producer on CPU 1 and consumer on CPU 0, each pinned, and
// times only the transfer.
func onCPUs(b *testing.B, producer, consumer func()) {
	b.Helper()
	requireTwoCPUs(b)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	start := make(chan struct{})
	side := func(cpu int, fn func()) {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			if err := affinity.Pin(cpu); err != nil {
				panic(err)
			}
			ready.Done()
			<-start
			fn()
		}()
	}
	side(1, producer)
	side(0, consumer)
	ready.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mmsg/s")
}

func BenchmarkSPSCCrossCore(b *testing.B) {
	r := msgring.NewRing[benchMsg](1024)
	onCPUs(b, func() {
		for i := 0; i < b.N; {
			if r.Enqueue(benchMsg{arg: uint64(i)}) {
				i++
			}
		}
	}, func() {
		for i := 0; i < b.N; {
			if _, ok := r.Dequeue(); ok {
				i++
			}
		}
	})
}

func BenchmarkSPSCBatch32CrossCore(b *testing.B) {
	r := msgring.NewRing[benchMsg](1024)
	onCPUs(b, func() {
		batch := make([]benchMsg, 32)
		for i := 0; i < b.N; {
			n := min(len(batch), b.N-i)
			i += r.EnqueueBatch(batch[:n])
		}
	}, func() {
		batch := make([]benchMsg, 32)
		for i := 0; i < b.N; {
			i += r.DequeueBatch(batch)
		}
	})
}

func BenchmarkChanCrossCore(b *testing.B) {
	c := make(chan benchMsg, 1024)
	onCPUs(b, func() {
		for i := 0; i < b.N; i++ {
			c <- benchMsg{arg: uint64(i)}
		}
	}, func() {
		for i := 0; i < b.N; i++ {
			<-c
		}
	})
}

// Ping-pong: one op is a round trip, CPU 1 → CPU 0 → CPU 1.

func BenchmarkPingPongRing(b *testing.B) {
	ping := msgring.NewRing[benchMsg](16)
	pong := msgring.NewRing[benchMsg](16)
	onCPUs(b, func() {
		for i := 0; i < b.N; i++ {
			ping.Enqueue(benchMsg{arg: uint64(i)})
			for {
				if _, ok := pong.Dequeue(); ok {
					break
				}
			}
		}
	}, func() {
		for i := 0; i < b.N; i++ {
			var m benchMsg
			for {
				var ok bool
				if m, ok = ping.Dequeue(); ok {
					break
				}
			}
			pong.Enqueue(m)
		}
	})
}

func BenchmarkPingPongChan(b *testing.B) {
	ping := make(chan benchMsg, 16)
	pong := make(chan benchMsg, 16)
	onCPUs(b, func() {
		for i := 0; i < b.N; i++ {
			ping <- benchMsg{arg: uint64(i)}
			<-pong
		}
	}, func() {
		for i := 0; i < b.N; i++ {
			pong <- <-ping
		}
	})
}

// BenchmarkPingPongSpin is the hardware floor: two cores passing a counter
// through two atomics, with nothing else.
func BenchmarkPingPongSpin(b *testing.B) {
	var ping, pong struct {
		v atomic.Uint64
		_ [120]byte
	}
	onCPUs(b, func() {
		for i := uint64(1); i <= uint64(b.N); i++ {
			ping.v.Store(i)
			for pong.v.Load() != i {
			}
		}
	}, func() {
		for i := uint64(1); i <= uint64(b.N); i++ {
			for ping.v.Load() != i {
			}
			pong.v.Store(i)
		}
	})
}

// BenchmarkMPSC has N producers (alternating between the two CPUs) and one
// consumer on CPU 0; b.N is the total number of messages.
func BenchmarkMPSC(b *testing.B) {
	for _, producers := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			requireTwoCPUs(b)
			q := msgring.NewMPSC[benchMsg](1024)
			var wg sync.WaitGroup
			var ready sync.WaitGroup
			start := make(chan struct{})
			per := b.N / producers
			for p := 0; p < producers; p++ {
				n := per
				if p == 0 {
					n += b.N - per*producers
				}
				wg.Add(1)
				ready.Add(1)
				go func(cpu int) {
					defer wg.Done()
					if err := affinity.Pin(cpu); err != nil {
						panic(err)
					}
					ready.Done()
					<-start
					for i := 0; i < n; {
						if q.Enqueue(benchMsg{from: uint32(cpu), arg: uint64(i)}) {
							i++
						} else {
							runtime.Gosched()
						}
					}
				}((p + 1) % 2)
			}
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				if err := affinity.Pin(0); err != nil {
					panic(err)
				}
				ready.Done()
				<-start
				batch := make([]benchMsg, 32)
				for got := 0; got < b.N; {
					n := q.DequeueBatch(batch)
					if n == 0 && producers > 1 {
						// Producers share this CPU: let them run.
						runtime.Gosched()
					}
					got += n
				}
			}()
			ready.Wait()
			b.ReportAllocs()
			b.ResetTimer()
			close(start)
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mmsg/s")
		})
	}
}
