package mem_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
)

// FuzzMemSteer sends arbitrary bytes as a frame from NIC A onto a wire with
// NICs B (4 queues, default RSS key) and C (2 queues, symmetric key) and
// checks that the driver never panics and delivers it exactly as an
// Ethernet switch with RSS NICs would: unchanged, once per destination NIC,
// on the queue that NIC's RSS configuration names; or drops it and counts
// why. The frame bytes reach the steering code (the rss package's header
// walk) before anything else looks at them.
func FuzzMemSteer(f *testing.F) {
	ip4 := frametest.UDP4{DstMAC: frametest.MACB, SrcMAC: frametest.MACA, Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{10, 0, 0, 2}, SrcPort: 1234, DstPort: 80, Payload: []byte("x")}.Frame()
	ip6 := frametest.UDP6{DstMAC: frametest.MACC, SrcMAC: frametest.MACA, Src: [16]byte{0x20, 0x01, 0xd, 0xb8, 15: 1}, Dst: [16]byte{0x20, 0x01, 0xd, 0xb8, 15: 2}, SrcPort: 5353, DstPort: 53}.Frame()
	arp := frametest.ARPRequest(frametest.MACA, [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2})
	vlan := append(append(append([]byte{}, ip4[:12]...), 0x81, 0x00, 0x00, 0x05), ip4[12:]...)
	withOptions := append([]byte{}, ip4...)
	withOptions[14] = 0x46 // IHL 6: an option word the rss walk must skip
	withOptions = append(withOptions[:34], append([]byte{1, 1, 1, 0}, withOptions[34:]...)...)
	fragment := append([]byte{}, ip4...)
	binary.BigEndian.PutUint16(fragment[20:], 0x2000) // more fragments
	tcp := append([]byte{}, ip4...)
	tcp[23] = 6
	ext6 := append([]byte{}, ip6...)
	ext6[20] = 0 // next header: hop-by-hop, a walk through extension headers
	for _, seed := range [][]byte{
		ip4, ip6, arp, vlan, withOptions, fragment, tcp, ext6,
		ip4[:13], ip4[:14], ip4[:20], ip4[:34], ip4[:36], ip6[:54], ip6[:56],
		{}, make([]byte, 1600), bytes.Repeat([]byte{0xff}, 64),
	} {
		f.Add(seed)
	}
	// One wire for all inputs (building one per input would dominate the
	// fuzzing time): each input leaves it drained, and drops are compared
	// as differences.
	c := threeNICs()
	c.RingSize = 4
	c.NICs[0].PoolBuffers = 8
	w := newWire(f, c)
	a, b, cNIC := w.NIC(0), w.NIC(1), w.NIC(2)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > a.Queue(0).Pool().FrameSize()-a.Queue(0).Pool().Headroom() {
			frame = frame[:a.Queue(0).Pool().FrameSize()-a.Queue(0).Pool().Headroom()]
		}
		tx := a.Queue(0)
		before := tx.Counters()
		buf := tx.Pool().Get()
		copy(buf.Append(len(frame)), frame)
		if n := tx.Send([]*nicq.Buf{buf}); n != 1 {
			t.Fatalf("Send took %d of 1 frame", n)
		}

		var wantNICs []*mem.NIC
		drop := nicq.NumDropReasons
		switch {
		case len(frame) < nicq.EthernetHeaderLen:
			drop = nicq.DropRunt
		case len(frame) > nicq.MaxFrameLen(a.MTU()):
			drop = nicq.DropOversize
		case frame[0]&1 != 0:
			wantNICs = []*mem.NIC{b, cNIC}
		case [6]byte(frame[:6]) == b.MAC():
			wantNICs = []*mem.NIC{b}
		case [6]byte(frame[:6]) == cNIC.MAC():
			wantNICs = []*mem.NIC{cNIC}
		default:
			drop = nicq.DropNoDestination
		}
		if drop != nicq.NumDropReasons {
			if got := tx.Counters().Drops[drop] - before.Drops[drop]; got != 1 {
				t.Fatalf("%d-byte frame: %v drops = %d, want 1 (counters %+v)", len(frame), drop, got, tx.Counters())
			}
		}
		for _, n := range []*mem.NIC{b, cNIC} {
			wantQueue := -1
			for _, wn := range wantNICs {
				if wn == n {
					wantQueue = n.RSS().QueueFrame(frame)
				}
			}
			for qi := range n.NumQueues() {
				got := recvAll(n.Queue(qi))
				want := 0
				if qi == wantQueue {
					want = 1
				}
				if len(got) != want {
					t.Fatalf("NIC %s queue %d received %d copies, want %d (RSS names queue %d)", n.Name(), qi, len(got), want, wantQueue)
				}
				if want == 1 {
					r := got[0]
					if !bytes.Equal(r.frame, frame) {
						t.Fatalf("NIC %s received % x, sent % x", n.Name(), r.frame, frame)
					}
					h, ok := n.RSS().HashFrame(frame)
					if ok != (r.flags&nicq.FlagHashValid != 0) || ok && r.hash != h {
						t.Fatalf("NIC %s: hash %#x flags %b; RSS says %#x, %v", n.Name(), r.hash, r.flags, h, ok)
					}
				}
			}
		}
		tx.Send(nil)
		if inUse := tx.Pool().InUse(); inUse != 0 {
			t.Fatalf("%d sender buffers not returned", inUse)
		}
	})
}
