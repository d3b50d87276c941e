package mem_test

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
)

// stressFrames is how many frames a stress test pushes: fewer under the
// race detector, which makes every memory access costly, in debug builds,
// and with -short.
func stressFrames() int {
	switch {
	case raceEnabled, debugBuild:
		return 100_000
	case testing.Short():
		return 50_000
	}
	return 300_000
}

// pin pins the calling goroutine to cpu if the machine has it; the stress
// tests still run (less faithfully) when it cannot.
func pin(t *testing.T, cpu int) {
	if runtime.NumCPU() <= cpu {
		runtime.LockOSThread()
		return
	}
	if err := affinity.Pin(cpu); err != nil {
		t.Logf("running unpinned: %v", err)
		runtime.LockOSThread()
	}
}

// stressFrame is frame seq of the stress tests: one of 16 flows, so the
// frames spread over the receiver's queues, and a payload that says which.
func stressFrame(seq uint32) []byte {
	return udp(uint16(3000+seq%16), seq)
}

// stressRun sends frames 0..total-1 from NIC A's one queue on a goroutine
// pinned to CPU 0 and receives them on every queue of NIC B on a goroutine
// pinned to CPU 1. If window > 0 the sender keeps at most window frames
// ahead of the receiver, so no ring can fill. The receiver sleeps on its
// queues' doorbells when idle. It returns the sequence numbers received per
// flow, and the counters of both sides.
func stressRun(t *testing.T, a, b nicq.NIC, total, window int, pauseReceiver bool) (perFlow [16][]uint32, tx nicq.Counters, rx nicq.Counters) {
	var receivedCount atomic.Int64
	var senderDone atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 2)

	wg.Go(func() { // the sending core
		pin(t, 0)
		q := a.Queue(0)
		q.Pool().Claim()
		bufs := make([]*nicq.Buf, 32)
		for seq := 0; seq < total; {
			n := min(32, total-seq)
			if window > 0 {
				for seq+n-int(receivedCount.Load()) > window {
					q.Send(nil) // reclaim while waiting
					runtime.Gosched()
				}
			}
			got := q.Pool().GetBatch(bufs[:n])
			for i, buf := range bufs[:got] {
				f := stressFrame(uint32(seq + i))
				copy(buf.Append(len(f)), f)
			}
			sent := 0
			for sent < got {
				sent += q.Send(bufs[sent:got])
				if sent < got {
					runtime.Gosched()
				}
			}
			seq += got
			if got == 0 {
				runtime.Gosched() // all buffers in flight; they come back at the next Send
			}
		}
		tx = q.Counters()
		senderDone.Store(true)
	})

	wg.Go(func() { // the receiving core, owning every queue of B
		pin(t, 1)
		for i := range b.NumQueues() {
			b.Queue(i).Pool().Claim()
		}
		bufs := make([]*nicq.Buf, 32)
		idle := 0
		for batches := 0; ; batches++ {
			n := 0
			for i := range b.NumQueues() {
				k := b.Queue(i).Recv(bufs)
				for _, buf := range bufs[:k] {
					f := buf.Bytes()
					seq := seqOf(f)
					if !bytes.Equal(f, stressFrame(seq)) {
						errs <- "a frame arrived damaged"
					}
					perFlow[seq%16] = append(perFlow[seq%16], seq)
					buf.Free()
				}
				n += k
			}
			receivedCount.Add(int64(n))
			if pauseReceiver && batches%64 == 0 {
				time.Sleep(50 * time.Microsecond) // fall behind, so the rings fill
			}
			if n > 0 {
				idle = 0
				continue
			}
			if senderDone.Load() {
				// Everything was enqueued before senderDone: one more empty
				// pass over every queue means all has been received.
				empty := true
				for i := range b.NumQueues() {
					if b.Queue(i).Pending() {
						empty = false
					}
				}
				if empty {
					break
				}
				continue
			}
			if idle++; idle > 100 {
				// Sleep on queue 0's doorbell, as a core would; a frame on
				// another queue wakes us by the timeout.
				if _, err := nicq.Wait(b.Queue(0), time.Millisecond); err != nil {
					errs <- err.Error()
					return
				}
				idle = 0
			}
		}
		for i := range b.NumQueues() {
			c := b.Queue(i).Counters()
			rx.RxPackets += c.RxPackets
			rx.RxBytes += c.RxBytes
			for r := range c.Drops {
				rx.Drops[r] += c.Drops[r]
			}
		}
	})
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	return perFlow, tx, rx
}

// stressWire is NIC A with one queue and NIC B with two.
func stressWire(t *testing.T, ring int, flowControl bool, faults ...mem.Faults) (a, b nicq.NIC) {
	c := twoNICs(1, 2)
	c.RingSize = ring
	c.FlowControl = flowControl
	if len(faults) > 0 {
		c.Faults = faults[0]
	}
	c.NICs[0].PoolBuffers = 1024
	c.NICs[1].PoolBuffers = 1024
	w := newWire(t, c)
	return w.NIC(0), w.NIC(1)
}

// checkFlows checks that each flow's frames arrived in the order sent,
// without repeats (but for duplicates one after the other, if allowed), and
// returns how many arrived.
func checkFlows(t *testing.T, perFlow [16][]uint32, allowDuplicates ...bool) int {
	t.Helper()
	n := 0
	for f, seqs := range perFlow {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] || seqs[i] == seqs[i-1] && len(allowDuplicates) == 0 {
				t.Fatalf("flow %d: frame %d after %d: a link reordered or repeated frames", f, seqs[i], seqs[i-1])
			}
		}
		n += len(seqs)
	}
	return n
}

func TestStressPinnedCoresLoseNothingWhileRingsHaveRoom(t *testing.T) {
	total := stressFrames()
	const ring = 256
	a, b := stressWire(t, ring, false)
	perFlow, tx, rx := stressRun(t, a, b, total, ring, false)
	got := checkFlows(t, perFlow)
	for f, seqs := range perFlow {
		if len(seqs) != total/16 {
			t.Fatalf("flow %d: %d of %d frames arrived", f, len(seqs), total/16)
		}
	}
	if got != total || tx.TxPackets != uint64(total) || rx.RxPackets != uint64(total) || tx.TotalDrops()+rx.TotalDrops() != 0 {
		t.Fatalf("sent %d, received %d; counters tx %+v rx %+v", total, got, tx, rx)
	}
}

func TestStressDropCountersAreExactWhenRingsOverflow(t *testing.T) {
	total := stressFrames()
	a, b := stressWire(t, 64, false)
	perFlow, tx, rx := stressRun(t, a, b, total, 0, true)
	got := checkFlows(t, perFlow)
	drops := rx.Drops[nicq.DropRxRingFull]
	if drops == 0 {
		t.Fatalf("no ring overflowed with a pausing receiver and rings of 64: the test proves nothing")
	}
	if uint64(got)+drops != uint64(total) || rx.RxPackets != uint64(got) || tx.TxPackets != uint64(total) {
		t.Fatalf("sent %d: received %d + dropped %d = %d; counters tx %+v rx %+v", total, got, drops, uint64(got)+drops, tx, rx)
	}
	if other := rx.TotalDrops() - drops + tx.TotalDrops(); other != 0 {
		t.Fatalf("%d drops for other reasons: tx %+v rx %+v", other, tx, rx)
	}
	t.Logf("%d frames: %d received, %d tail-dropped", total, got, drops)
}

func TestStressFlowControlLosesNothingWhenRingsFill(t *testing.T) {
	total := stressFrames()
	a, b := stressWire(t, 64, true)
	perFlow, tx, rx := stressRun(t, a, b, total, 0, true)
	if got := checkFlows(t, perFlow); got != total || rx.TotalDrops()+tx.TotalDrops() != 0 {
		t.Fatalf("sent %d, received %d with flow control; drops tx %+v rx %+v", total, got, tx.Drops, rx.Drops)
	}
}

// TestStressFaultsAcrossCores runs the faulty path (the fault plan travels
// in the sender's buffer) between racing cores: every frame is accounted
// for as received, lost or duplicated.
func TestStressFaultsAcrossCores(t *testing.T) {
	total := stressFrames()
	a, b := stressWire(t, 64, true, mem.Faults{Loss: 0.1, Duplicate: 0.1})
	perFlow, tx, rx := stressRun(t, a, b, total, 0, false)
	got := checkFlows(t, perFlow, true)
	f := a.Queue(0).(*mem.Queue).FaultStats()
	if f.Lost == 0 || f.Duplicated == 0 || uint64(got) != uint64(total)-f.Lost+f.Duplicated {
		t.Fatalf("sent %d, received %d; %d lost, %d duplicated", total, got, f.Lost, f.Duplicated)
	}
	if tx.Drops[nicq.DropInjectedLoss] != f.Lost || tx.TotalDrops() != f.Lost || rx.TotalDrops() != 0 {
		t.Fatalf("drop counters tx %+v rx %+v, want only the %d injected losses", tx.Drops, rx.Drops, f.Lost)
	}
}
