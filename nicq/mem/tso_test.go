package mem_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
)

// sendTSO sends frame from q in a buffer of p, a pool of large buffers,
// with SegmentSize set, as a stack with TSO does, and returns what Send
// took. The caller keeps p: a buffer is valid only while its pool is
// reachable, and the wire's rings are not where the collector looks.
func sendTSO(t *testing.T, q nicq.Queue, p *nicq.Pool, frame []byte) int {
	t.Helper()
	b := p.Get()
	copy(b.Append(len(frame)), frame)
	b.SegmentSize = 1448
	n := q.Send([]*nicq.Buf{b})
	if n == 0 {
		b.Free()
	}
	return n
}

// A NIC with TSO carries a frame of a TSO segment (longer than its MTU) to
// a NIC with TSO whole, marked partial unless a fault flipped a bit of it;
// a NIC without TSO, or a frame without SegmentSize, drops it as
// oversize.
func TestTSOFramesCrossWhole(t *testing.T) {
	big := udpSized(7, 42, 30000)
	for _, c := range []struct {
		name       string
		tsoA, tsoB bool
		faults     mem.Faults
		arrives    bool
		partial    bool
	}{
		{"both", true, true, mem.Faults{}, true, true},
		{"corrupted", true, true, mem.Faults{Corrupt: 1}, true, false},
		{"receiver without TSO", true, false, mem.Faults{}, false, false},
		{"sender without TSO", false, true, mem.Faults{}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWire(t, mem.WireConfig{NICs: []mem.NICConfig{
				{Name: "a", MAC: frametest.MACA, Queues: 1, PoolBuffers: 64, TSO: c.tsoA, Faults: &c.faults},
				{Name: "b", MAC: frametest.MACB, Queues: 1, PoolBuffers: 64, TSO: c.tsoB},
			}})
			if got := w.NIC(0).Features()&nicq.FeatureTSO != 0; got != c.tsoA {
				t.Fatalf("NIC a offers TSO: %v, configured %v", got, c.tsoA)
			}
			tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
			tsoPool, err := nicq.NewPool(nicq.PoolConfig{Name: "tso", Buffers: 1, FrameSize: 70 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer runtime.KeepAlive(tsoPool)
			sendTSO(t, tx, tsoPool, big)
			got := recvAll(rx)
			if !c.arrives {
				if len(got) != 0 || tx.Counters().Drops[nicq.DropOversize] != 1 {
					t.Fatalf("%d frames arrived, %d dropped as oversize; want none and 1", len(got), tx.Counters().Drops[nicq.DropOversize])
				}
				return
			}
			if len(got) != 1 || len(got[0].frame) != len(big) {
				t.Fatalf("%d frames arrived (want 1 of %d bytes)", len(got), len(big))
			}
			if corrupted := !bytes.Equal(got[0].frame, big); corrupted == c.partial {
				t.Errorf("corrupted %v", corrupted)
			}
			if partial := got[0].flags&nicq.FlagL4ChecksumPartial != 0; partial != c.partial {
				t.Errorf("flags %b: partial %v, want %v", got[0].flags, partial, c.partial)
			}
			// Without SegmentSize the same frame is just too long.
			send(t, tx, big[:1514])
			recvAll(rx)
			if d := tx.Counters().Drops[nicq.DropOversize]; d != 0 {
				t.Errorf("%d frames dropped as oversize", d)
			}
		})
	}
}
