package mem_test

import (
	"encoding/binary"
	"testing"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
)

// newWire builds a wire for a test and closes it when the test ends.
func newWire(t testing.TB, c mem.WireConfig) *mem.Wire {
	t.Helper()
	w, err := mem.NewWire(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	return w
}

// twoNICs is the usual wire: NIC A (MACA) with qa queues, NIC B (MACB)
// with qb queues, small pools.
func twoNICs(qa, qb int) mem.WireConfig {
	return mem.WireConfig{NICs: []mem.NICConfig{
		{Name: "a", MAC: frametest.MACA, Queues: qa, PoolBuffers: 256},
		{Name: "b", MAC: frametest.MACB, Queues: qb, PoolBuffers: 256},
	}}
}

// udp returns a 64-byte UDP frame from A to B whose payload starts with
// seq, on the flow of srcPort.
func udp(srcPort uint16, seq uint32) []byte {
	payload := make([]byte, 22)
	binary.BigEndian.PutUint32(payload, seq)
	return frametest.UDP4{
		DstMAC: frametest.MACB, SrcMAC: frametest.MACA,
		Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{10, 0, 0, 2},
		SrcPort: srcPort, DstPort: 9,
		Payload: payload,
	}.Frame()
}

// seqOf reads the sequence number udp put in frame.
func seqOf(frame []byte) uint32 { return binary.BigEndian.Uint32(frame[42:]) }

// send copies frames into buffers of q's pool and sends them; it frees what
// Send did not take and returns how many it took.
func send(t testing.TB, q nicq.Queue, frames ...[]byte) int {
	t.Helper()
	bufs := make([]*nicq.Buf, len(frames))
	for i, f := range frames {
		b := q.Pool().Get()
		if b == nil {
			t.Fatalf("pool of queue %d is empty", q.Index())
		}
		copy(b.Append(len(f)), f)
		bufs[i] = b
	}
	n := q.Send(bufs)
	nicq.FreeAll(bufs[n:])
	return n
}

// received is a frame as a test keeps it: a copy of the bytes and the
// metadata.
type received struct {
	frame   []byte
	queue   int
	hash    uint32
	flags   nicq.Flags
	rxQueue uint16
	rxTime  int64
}

// recvAll receives from q until Recv returns nothing, copying the frames out
// and freeing the buffers.
func recvAll(q nicq.Queue) []received {
	var out []received
	bufs := make([]*nicq.Buf, 16)
	for {
		n := q.Recv(bufs)
		if n == 0 {
			return out
		}
		for _, b := range bufs[:n] {
			out = append(out, received{append([]byte(nil), b.Bytes()...), q.Index(), b.Hash, b.Flags, b.RxQueue, b.RxTime})
		}
		nicq.FreeAll(bufs[:n])
	}
}

// recvNIC receives everything waiting on every queue of n.
func recvNIC(n nicq.NIC) []received {
	var out []received
	for i := range n.NumQueues() {
		out = append(out, recvAll(n.Queue(i))...)
	}
	return out
}

// udpSized is udp padded with payload to a frame of size bytes (at least 46).
func udpSized(srcPort uint16, seq uint32, size int) []byte {
	payload := make([]byte, size-42)
	binary.BigEndian.PutUint32(payload, seq)
	return frametest.UDP4{
		DstMAC: frametest.MACB, SrcMAC: frametest.MACA,
		Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{10, 0, 0, 2},
		SrcPort: srcPort, DstPort: 9,
		Payload: payload,
	}.Frame()
}
