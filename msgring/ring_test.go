package msgring_test

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/msgring"
)

// nearWrap starts indices just below 2^64 so every test crosses the wrap.
const nearWrap = ^uint64(0) - 37

// requireTwoCPUs skips a cross-core test on a machine where this process may
// use fewer than two CPUs, saying so.
func requireTwoCPUs(t testing.TB) {
	t.Helper()
	set, err := affinity.AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if set.Count() < 2 {
		t.Skipf("cross-core test needs 2 allowed CPUs, this process has %d", set.Count())
	}
}

// crossRun runs goroutines pinned to CPUs and collects the first failure.
// After a failure every loop must stop (they check aborted), so a broken
// ring makes the test fail instead of hang.
type crossRun struct {
	wg    sync.WaitGroup
	abort atomic.Bool
	errc  chan string
}

func newCrossRun() *crossRun { return &crossRun{errc: make(chan string, 1)} }

// pinned runs fn in a new goroutine pinned to cpu (pinning is permanent for
// that goroutine's thread, so it never runs on the test's goroutine).
func (c *crossRun) pinned(cpu int, fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := affinity.Pin(cpu); err != nil {
			c.fail(err.Error())
			return
		}
		fn()
	}()
}

func (c *crossRun) fail(msg string) {
	c.abort.Store(true)
	select {
	case c.errc <- msg:
	default:
	}
}

func (c *crossRun) aborted() bool { return c.abort.Load() }

// wait waits for every goroutine and fails t with the first failure.
func (c *crossRun) wait(t *testing.T) {
	t.Helper()
	c.wg.Wait()
	select {
	case e := <-c.errc:
		t.Fatal(e)
	default:
	}
}

func TestRingCapacityRoundsUpToPowerOfTwo(t *testing.T) {
	for _, c := range []struct{ ask, want int }{{0, 2}, {1, 2}, {2, 2}, {3, 4}, {1000, 1024}, {1024, 1024}} {
		if got := msgring.NewRing[int](c.ask).Cap(); got != c.want {
			t.Errorf("NewRing(%d).Cap() = %d, want %d", c.ask, got, c.want)
		}
	}
}

func TestRingFullAndEmptyEdges(t *testing.T) {
	for _, start := range []uint64{0, nearWrap} {
		r := msgring.NewRingAt[int](8, start)
		if _, ok := r.Dequeue(); ok {
			t.Fatal("Dequeue on empty ring succeeded")
		}
		if n := r.DequeueBatch(make([]int, 4)); n != 0 {
			t.Fatalf("DequeueBatch on empty ring = %d", n)
		}
		for i := 0; i < 8; i++ {
			if !r.Enqueue(i) {
				t.Fatalf("start %d: Enqueue %d of 8 failed", start, i)
			}
		}
		if r.Enqueue(99) {
			t.Fatal("Enqueue on full ring succeeded")
		}
		if n := r.EnqueueBatch([]int{1, 2}); n != 0 {
			t.Fatalf("EnqueueBatch on full ring = %d", n)
		}
		if r.Len() != 8 {
			t.Fatalf("Len = %d, want 8", r.Len())
		}
		v, ok := r.Dequeue()
		if !ok || v != 0 {
			t.Fatalf("Dequeue = %d,%v want 0,true", v, ok)
		}
		// One slot free: a batch of three gets one in.
		if n := r.EnqueueBatch([]int{8, 9, 10}); n != 1 {
			t.Fatalf("EnqueueBatch into 1 free slot = %d", n)
		}
		out := make([]int, 16)
		n := r.DequeueBatch(out)
		if n != 8 {
			t.Fatalf("DequeueBatch = %d, want 8", n)
		}
		for i := 0; i < 8; i++ {
			if out[i] != i+1 {
				t.Fatalf("out[%d] = %d, want %d (got %v)", i, out[i], i+1, out[:n])
			}
		}
	}
}

// TestRingBatchesAcrossWrap checks batches that split at the end of the
// buffer and at the 2^64 index wrap against a simple FIFO model.
func TestRingBatchesAcrossWrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := msgring.NewRingAt[uint64](16, nearWrap)
	var model []uint64
	next := uint64(0)
	buf := make([]uint64, 40)
	for step := 0; step < 20000; step++ {
		k := rng.IntN(20)
		if rng.IntN(2) == 0 {
			in := buf[:k]
			for i := range in {
				in[i] = next + uint64(i)
			}
			n := r.EnqueueBatch(in)
			want := min(k, 16-len(model))
			if n != want {
				t.Fatalf("step %d: EnqueueBatch(%d) with %d queued = %d, want %d", step, k, len(model), n, want)
			}
			model = append(model, in[:n]...)
			next += uint64(n)
		} else {
			n := r.DequeueBatch(buf[:k])
			want := min(k, len(model))
			if n != want {
				t.Fatalf("step %d: DequeueBatch(%d) with %d queued = %d", step, k, len(model), n)
			}
			for i := 0; i < n; i++ {
				if buf[i] != model[i] {
					t.Fatalf("step %d: got %d at %d, want %d", step, buf[i], i, model[i])
				}
			}
			model = model[n:]
		}
		if r.Len() != len(model) {
			t.Fatalf("step %d: Len = %d, model %d", step, r.Len(), len(model))
		}
	}
}

type seqMsg struct {
	producer uint32
	seq      uint64
}

// TestRingCrossCoreStressIsFIFOWithoutLossOrDuplication runs a producer and a
// consumer pinned to different CPUs, mixing single and batched operations of
// random sizes, and checks that the consumer sees 0, 1, 2, ... exactly.
func TestRingCrossCoreStressIsFIFOWithoutLossOrDuplication(t *testing.T) {
	total := uint64(2_000_000)
	if testing.Short() || raceEnabled {
		total = 200_000
	}
	for _, start := range []uint64{0, nearWrap} {
		requireTwoCPUs(t)
		r := msgring.NewRingAt[seqMsg](64, start)
		run := newCrossRun()
		run.pinned(1, func() {
			rng := rand.New(rand.NewPCG(3, 4))
			batch := make([]seqMsg, 32)
			seq := uint64(0)
			for seq < total && !run.aborted() {
				if rng.IntN(2) == 0 {
					if r.Enqueue(seqMsg{seq: seq}) {
						seq++
					} else {
						runtime.Gosched()
					}
					continue
				}
				k := min(uint64(1+rng.IntN(len(batch))), total-seq)
				for i := range batch[:k] {
					batch[i] = seqMsg{seq: seq + uint64(i)}
				}
				seq += uint64(r.EnqueueBatch(batch[:k]))
			}
		})
		run.pinned(0, func() {
			rng := rand.New(rand.NewPCG(5, 6))
			batch := make([]seqMsg, 32)
			want := uint64(0)
			check := func(m seqMsg) bool {
				if m.seq != want {
					run.fail("got seq " + itoa(m.seq) + ", want " + itoa(want))
					return false
				}
				want++
				return true
			}
			for want < total && !run.aborted() {
				if rng.IntN(2) == 0 {
					if m, ok := r.Dequeue(); ok {
						if !check(m) {
							return
						}
					}
					continue
				}
				n := r.DequeueBatch(batch[:1+rng.IntN(len(batch))])
				for _, m := range batch[:n] {
					if !check(m) {
						return
					}
				}
			}
			if _, ok := r.Dequeue(); ok {
				run.fail("extra message after the last one")
			}
		})
		run.wait(t)
	}
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

func TestRingOperationsDoNotAllocate(t *testing.T) {
	skipAllocsUnderRace(t)
	r := msgring.NewRing[seqMsg](64)
	batch := make([]seqMsg, 32)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Enqueue(seqMsg{seq: 1})
		r.Dequeue()
		r.EnqueueBatch(batch)
		r.DequeueBatch(batch)
	})
	if allocs != 0 {
		t.Fatalf("ring operations allocate %.1f times per run", allocs)
	}
}

// skipAllocsUnderRace skips allocation counts under the race detector, whose
// instrumentation allocates on its own.
func skipAllocsUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
}
