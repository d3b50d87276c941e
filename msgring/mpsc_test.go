package msgring_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/mkstack/mkstack/msgring"
)

func TestMPSCFullAndEmptyEdges(t *testing.T) {
	for _, start := range []uint64{0, nearWrap} {
		q := msgring.NewMPSCAt[int](4, start)
		if _, ok := q.Dequeue(); ok {
			t.Fatal("Dequeue on empty MPSC succeeded")
		}
		for i := 0; i < 4; i++ {
			if !q.Enqueue(i) {
				t.Fatalf("Enqueue %d of 4 failed", i)
			}
		}
		if q.Enqueue(4) {
			t.Fatal("Enqueue on full MPSC succeeded")
		}
		out := make([]int, 3)
		if n := q.DequeueBatch(out); n != 3 || out[0] != 0 || out[2] != 2 {
			t.Fatalf("DequeueBatch = %d %v", n, out)
		}
		for i := 4; i < 7; i++ {
			if !q.Enqueue(i) {
				t.Fatalf("Enqueue %d after drain failed", i)
			}
		}
		for want := 3; want < 7; want++ {
			v, ok := q.Dequeue()
			if !ok || v != want {
				t.Fatalf("Dequeue = %d,%v want %d", v, ok, want)
			}
		}
		if q.Len() != 0 {
			t.Fatalf("Len = %d after draining", q.Len())
		}
	}
}

// TestMPSCManyProducersFIFOPerProducer has producers on both CPUs and more
// producers than CPUs; the consumer checks that each producer's sequence
// arrives complete, without duplicates, and in order.
func TestMPSCManyProducersFIFOPerProducer(t *testing.T) {
	requireTwoCPUs(t)
	perProducer := uint64(200_000)
	if testing.Short() || raceEnabled {
		perProducer = 20_000
	}
	for _, producers := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprintf("producers=%d", producers), func(t *testing.T) {
			q := msgring.NewMPSCAt[seqMsg](128, nearWrap)
			run := newCrossRun()
			for p := 0; p < producers; p++ {
				run.pinned(1-p%2, func() {
					for seq := uint64(0); seq < perProducer && !run.aborted(); {
						if q.Enqueue(seqMsg{producer: uint32(p), seq: seq}) {
							seq++
						} else {
							runtime.Gosched()
						}
					}
				})
			}
			run.pinned(0, func() {
				next := make([]uint64, producers)
				batch := make([]seqMsg, 32)
				left := uint64(producers) * perProducer
				for left > 0 && !run.aborted() {
					n := q.DequeueBatch(batch)
					if n == 0 {
						runtime.Gosched()
					}
					for _, m := range batch[:n] {
						if m.seq != next[m.producer] {
							run.fail(fmt.Sprintf("producer %d: got seq %d, want %d", m.producer, m.seq, next[m.producer]))
							return
						}
						next[m.producer]++
					}
					left -= uint64(n)
				}
				if _, ok := q.Dequeue(); ok {
					run.fail("extra message after the last one")
				}
			})
			run.wait(t)
		})
	}
}

func TestMPSCOperationsDoNotAllocate(t *testing.T) {
	skipAllocsUnderRace(t)
	q := msgring.NewMPSC[seqMsg](64)
	batch := make([]seqMsg, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		for i := 0; i < 8; i++ {
			q.Enqueue(seqMsg{seq: uint64(i)})
		}
		q.Dequeue()
		q.DequeueBatch(batch)
	})
	if allocs != 0 {
		t.Fatalf("MPSC operations allocate %.1f times per run", allocs)
	}
}
