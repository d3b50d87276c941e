package vnet

import (
	"bytes"
	"testing"

	"github.com/mkstack/mkstack/nicq"
)

func TestWholeTakesLargeTCPFramesAndFallsBackWhenDry(t *testing.T) {
	var w Whole
	var c nicq.Counters
	const n = HdrLen + 30000
	tcp := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 54, GSOSize: 1448}

	// A TCP frame goes whole, with its header stripped and its facts kept.
	room := w.Room("q0")
	tcp.Put(room)
	room[n-1] = 0x5a
	b := w.Take(n, 3, &c)
	if b == nil {
		t.Fatal("a large TCPv4 frame with a partial checksum was not taken whole")
	}
	if b.Len() != n-HdrLen || b.Bytes()[b.Len()-1] != 0x5a || b.RxQueue != 3 || b.Flags != nicq.FlagL4ChecksumPartial {
		t.Errorf("taken: %d bytes (want %d), last byte %#x, queue %d, flags %b", b.Len(), n-HdrLen, b.Bytes()[b.Len()-1], b.RxQueue, b.Flags)
	}
	if w.Taken() != 1 || c.RxPackets != 1 || c.RxBytes != uint64(n-HdrLen) {
		t.Errorf("counted %d taken, %d packets, %d bytes", w.Taken(), c.RxPackets, c.RxBytes)
	}
	b.Free()

	// UDP segments, and frames whose checksum nobody vouches for, are cut.
	for _, h := range []Hdr{
		{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1000},
		{GSOType: GSOTCPv6, GSOSize: 1428},
	} {
		h.Put(w.Room("q0"))
		if b := w.Take(n, 0, &c); b != nil {
			t.Errorf("header %+v: taken whole", h)
			b.Free()
		}
	}

	// With every large buffer held, the room is scratch memory and
	// nothing is taken.
	w.DropSpare()
	var held []*nicq.Buf
	for b := w.Pool().Get(); b != nil; b = w.Pool().Get() {
		held = append(held, b)
	}
	room = w.Room("q0")
	tcp.Put(room)
	if b := w.Take(n, 0, &c); b != nil {
		t.Error("taken whole with the large pool dry")
	}
	if len(room) != HdrLen+MaxLargeFrame {
		t.Errorf("scratch room of %d bytes, want %d", len(room), HdrLen+MaxLargeFrame)
	}
	nicq.FreeAll(held)
	tcp.Put(w.Room("q0"))
	if b := w.Take(n, 0, &c); b == nil {
		t.Error("not taken whole once the large pool had buffers again")
	} else {
		b.Free()
	}

	if raceEnabled || debugBuild {
		return
	}
	allocs := testing.AllocsPerRun(100, func() {
		tcp.Put(w.Room("q0"))
		if b := w.Take(n, 0, &c); b != nil {
			b.Free()
		}
	})
	if allocs != 0 {
		t.Errorf("taking a frame whole allocates %.1f times; want 0", allocs)
	}
}

// FuzzWholeTake feeds arbitrary bytes, a virtio-net header and a frame as
// a TAP or packet socket reads them, to Whole: Take never panics, hands
// over exactly the frame behind the header when the header asks for a
// whole TCP frame the kernel vouches for, and nothing otherwise.
func FuzzWholeTake(f *testing.F) {
	f.Add(append(hdrBytes(Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1448}), tcpFrame(5000, 0x19)...))
	f.Add(append(hdrBytes(Hdr{Flags: FlagDataValid, GSOType: GSOTCPv6 | GSOECN, GSOSize: 1428}), tcpFrame(3000, 0x10)...))
	f.Add(append(hdrBytes(Hdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1400}), tcpFrame(3000, 0x10)...))
	f.Add(hdrBytes(Hdr{GSOType: GSOTCPv4}))
	f.Add([]byte{})
	var w Whole
	var c nicq.Counters
	f.Fuzz(func(t *testing.T, data []byte) {
		if p := w.Pool(); p != nil {
			p.Claim() // each input runs on a goroutine of its own
		}
		room := w.Room("fuzz")
		n := copy(room, data)
		b := w.Take(n, 1, &c)
		h, ok := Parse(data)
		want := ok && TakesWhole(h) && n >= HdrLen+nicq.EthernetHeaderLen
		if (b != nil) != want {
			t.Fatalf("taken %v, want %v (header %+v, %d bytes)", b != nil, want, h, n)
		}
		if b == nil {
			return
		}
		if !bytes.Equal(b.Bytes(), data[HdrLen:n]) || b.RxQueue != 1 || b.Flags != h.BufFlags() {
			t.Fatalf("taken %d bytes (want %d), queue %d, flags %b", b.Len(), n-HdrLen, b.RxQueue, b.Flags)
		}
		b.Free()
	})
}

func hdrBytes(h Hdr) []byte {
	b := make([]byte, HdrLen)
	h.Put(b)
	return b
}
