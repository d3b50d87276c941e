//go:build linux

package afxdp

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
)

// fakeRing is a ring in Go memory: its producer, consumer and flags words
// first, then the entries, as the kernel lays one out.
func fakeRing(entries uint32, descSize uintptr) *ring {
	mem := make([]byte, 64+int(entries)*int(descSize))
	return &ring{
		mem:      mem,
		producer: (*uint32)(unsafe.Pointer(&mem[0])),
		consumer: (*uint32)(unsafe.Pointer(&mem[8])),
		flags:    (*uint32)(unsafe.Pointer(&mem[16])),
		descs:    unsafe.Pointer(&mem[64]),
		mask:     entries - 1,
		size:     entries,
	}
}

// fakeKernel plays the kernel's side of a queue whose rings are in Go
// memory: it takes frames off the fill ring and produces receive
// descriptors into them.
type fakeKernel struct {
	q *Queue
}

// newFakeQueue is a Queue with no socket: frames UMEM frames of frameSize
// bytes, rings of 64 entries (fill: 128), and MTU mtu.
func newFakeQueue(t testing.TB, frames, frameSize, mtu int) (*Queue, *fakeKernel) {
	t.Helper()
	umem := make([]byte, frames*frameSize)
	pool, err := nicq.NewPool(nicq.PoolConfig{Name: "fake", Buffers: frames, FrameSize: frameSize, Headroom: unix.XDP_PACKET_HEADROOM, Region: umem})
	if err != nil {
		t.Fatal(err)
	}
	q := &Queue{
		nic: &NIC{}, fd: -1, umem: umem, pool: pool, frameSize: uint64(frameSize), maxFrame: nicq.MaxFrameLen(mtu),
		fill: fakeRing(128, 8), comp: fakeRing(64, 8), rx: fakeRing(64, unsafe.Sizeof(unix.XDPDesc{})), tx: fakeRing(64, unsafe.Sizeof(unix.XDPDesc{})),
	}
	room := frameSize - unix.XDP_PACKET_HEADROOM
	q.maxPieces = uint32((q.maxFrame + room - 1) / room)
	q.refill()
	return q, &fakeKernel{q: q}
}

// posted reports how many frames the fill ring offers the kernel.
func (k *fakeKernel) posted() uint32 { return *k.q.fill.producer - *k.q.fill.consumer }

// unread reports how many receive descriptors the queue has not taken.
func (k *fakeKernel) unread() uint32 { return *k.q.rx.producer - *k.q.rx.consumer }

// receive takes the next frame off the fill ring and produces a receive
// descriptor into it: at offset (from the frame's start; the kernel's is
// the headroom), of length n, marked XDP_PKT_CONTD if more. It reports
// false when the fill ring is empty or the receive ring full.
func (k *fakeKernel) receive(offset uint64, n uint32, more bool, fill byte) bool {
	q := k.q
	if k.posted() == 0 || k.unread() == q.rx.size {
		return false
	}
	addr := *q.fill.addr(*q.fill.consumer)
	*q.fill.consumer++
	if offset+uint64(n) <= q.frameSize {
		for i := range n {
			q.umem[addr+offset+uint64(i)] = fill + byte(i)
		}
	}
	d := q.rx.desc(*q.rx.producer)
	d.Addr, d.Len, d.Options = addr+offset, n, 0
	if more {
		d.Options = unix.XDP_PKT_CONTD
	}
	*q.rx.producer++
	return true
}

// drain calls Recv until it returns nothing and gives back what it
// returned, checking each frame's length against the queue's MTU.
func drainFake(t testing.TB, q *Queue) (frames int, lens []int) {
	bufs := make([]*nicq.Buf, 4)
	for range 1000 {
		n := q.Recv(bufs)
		if n == 0 {
			return
		}
		for _, b := range bufs[:n] {
			if b.Len() < nicq.EthernetHeaderLen || b.Len() > q.maxFrame {
				t.Fatalf("Recv returned a frame of %d bytes; the MTU's frames are %d at most", b.Len(), q.maxFrame)
			}
			lens = append(lens, b.Len())
			b.Free()
		}
		frames += n
	}
	t.Fatal("Recv never ran dry")
	return
}

// TestGatherFramesInPieces, on a queue whose kernel is the test: a frame
// in three pieces arrives whole and in order; a chain longer than a frame
// of the MTU, or one whose last piece is late, is not returned (the late
// one once its last piece comes); a piece at a foreign offset drops its
// frame; and no UMEM frame is lost along the way.
func TestGatherFramesInPieces(t *testing.T) {
	const frameSize, mtu = 2048, 4000 // a frame of the MTU: 3 pieces
	room := uint32(frameSize - unix.XDP_PACKET_HEADROOM)
	q, k := newFakeQueue(t, 256, frameSize, mtu)
	head := uint64(unix.XDP_PACKET_HEADROOM)
	check := func(step string) {
		t.Helper()
		if inUse, kernel := q.pool.InUse(), int(k.posted()+k.unread()); inUse != kernel {
			t.Fatalf("%s: %d UMEM frames out of the pool, %d with the kernel", step, inUse, kernel)
		}
		if q.large != nil && q.large.InUse() != 0 {
			t.Fatalf("%s: %d large buffers held", step, q.large.InUse())
		}
	}

	k.receive(head, room, true, 0)
	k.receive(head, room, true, byte(room))
	k.receive(head, 100, false, byte(2*room))
	bufs := make([]*nicq.Buf, 4)
	if n := q.Recv(bufs); n != 1 || bufs[0].Len() != int(2*room+100) {
		t.Fatalf("a frame of three pieces: %d frames, first %v", n, bufs[0])
	}
	for i, c := range bufs[0].Bytes() {
		if c != byte(i) {
			t.Fatalf("byte %d of the gathered frame is %d, want %d", i, c, byte(i))
		}
	}
	bufs[0].Free()
	check("three pieces")

	// The last piece late: nothing until it comes.
	k.receive(head, room, true, 0)
	if n := q.Recv(bufs); n != 0 {
		t.Fatalf("a frame without its last piece: Recv returned %d frames", n)
	}
	k.receive(head, 50, false, 0)
	if n := q.Recv(bufs); n != 1 || bufs[0].Len() != int(room+50) {
		t.Fatalf("the late frame: %d frames", n)
	}
	bufs[0].Free()
	check("late last piece")

	// Longer than the MTU allows: dropped as oversize.
	drops := q.counters.Drops[nicq.DropOversize]
	for range 4 {
		k.receive(head, room, true, 0)
	}
	k.receive(head, room, false, 0)
	if frames, _ := drainFake(t, q); frames != 0 || q.counters.Drops[nicq.DropOversize] == drops {
		t.Fatalf("a chain of 5 pieces at MTU %d: %d frames returned, oversize drops %d → %d", mtu, frames, drops, q.counters.Drops[nicq.DropOversize])
	}
	check("oversize")

	// A piece at a foreign offset drops its frame.
	runts := q.counters.Drops[nicq.DropRunt]
	k.receive(head, room, true, 0)
	k.receive(head+8, 100, false, 0)
	if frames, _ := drainFake(t, q); frames != 0 || q.counters.Drops[nicq.DropRunt] == runts {
		t.Fatalf("a piece at a foreign offset: %d frames returned", frames)
	}
	check("foreign offset")
	if q.Gathered() != 2 {
		t.Errorf("Gathered = %d, want 2", q.Gathered())
	}
}

// FuzzRecvDescriptors: whatever lengths, offsets and chaining the kernel's
// receive descriptors carry (for frames it was given), Recv neither panics
// nor returns a frame outside the MTU's bounds, and every UMEM frame is
// either with the kernel or back in the pool.
func FuzzRecvDescriptors(f *testing.F) {
	f.Add([]byte{1, 0x07, 0x00, 1, 0x07, 0x00, 0, 0x00, 0x64})
	f.Add([]byte{0, 0x00, 0x0e, 2, 0x00, 0x10, 1, 0x07, 0x00, 0, 0x00, 0x00})
	f.Add([]byte{1, 0x07, 0x00, 1, 0x07, 0x00, 1, 0x07, 0x00, 1, 0x07, 0x00, 1, 0x07, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		const frameSize, mtu = 2048, 4000
		q, k := newFakeQueue(t, 64, frameSize, mtu)
		head := uint64(unix.XDP_PACKET_HEADROOM)
		// Each 3 bytes: flags (bit 0: more pieces follow; bit 1: a
		// foreign offset) and a 16-bit length.
		for len(data) >= 3 {
			flags, n := data[0], uint32(binary.BigEndian.Uint16(data[1:3]))
			data = data[3:]
			off := head
			if flags&2 != 0 {
				off += 64
			}
			if !k.receive(off, n, flags&1 != 0, byte(n)) {
				drainFake(t, q)
				if !k.receive(off, n, flags&1 != 0, byte(n)) {
					break
				}
			}
			if flags&4 != 0 {
				drainFake(t, q)
			}
		}
		drainFake(t, q)
		if inUse, kernel := q.pool.InUse(), int(k.posted()+k.unread()); inUse != kernel {
			t.Fatalf("%d UMEM frames out of the pool, %d with the kernel", inUse, kernel)
		}
	})
}
