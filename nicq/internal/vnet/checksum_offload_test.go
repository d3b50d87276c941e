package vnet

import (
	"encoding/binary"
	"testing"

	"github.com/mkstack/mkstack/nicq/frametest"
)

// onesSum adds b as big-endian 16-bit words to acc, folded.
func onesSum(acc uint64, b []byte) uint16 {
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// partialFrames are frames whose checksum a device is to complete: UDP
// over IPv4 (odd and even lengths), UDP over IPv6, and TCP over IPv4 (a
// UDP frame made TCP: a 20-byte header and payload), each with its field
// holding the pseudo-header sum as a sender leaves it.
func partialFrames() [][]byte {
	pay := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*13 + 1)
		}
		return p
	}
	src, dst := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	var frames [][]byte
	for _, n := range []int{0, 1, 1447, 1448} {
		frames = append(frames, frametest.UDP4{DstMAC: frametest.MACA, SrcMAC: frametest.MACB, Src: src, Dst: dst, SrcPort: 1, DstPort: 2, Payload: pay(n)}.Frame())
	}
	src6, dst6 := [16]byte{0: 0xfd, 15: 1}, [16]byte{0: 0xfd, 15: 2}
	frames = append(frames, frametest.UDP6{DstMAC: frametest.MACA, SrcMAC: frametest.MACB, Src: src6, Dst: dst6, SrcPort: 1, DstPort: 2, Payload: pay(999)}.Frame())
	tcp := frametest.UDP4{DstMAC: frametest.MACA, SrcMAC: frametest.MACB, Src: src, Dst: dst, SrcPort: 1, DstPort: 2, Payload: pay(1000)}.Frame()
	tcp[14+9] = 6
	tcp[14+20+12] = 5 << 4
	frames = append(frames, tcp)
	// The pseudo-header sums in the fields.
	for _, f := range frames {
		start, field, ok := PartialChecksum(f)
		if !ok {
			panic("test frame not located")
		}
		var pseudo uint64
		l4 := uint64(len(f) - start)
		if f[12] == 0x08 {
			pseudo = uint64(onesSum(0, f[14+12:14+20])) + uint64(f[14+9]) + l4
		} else {
			pseudo = uint64(onesSum(0, f[14+8:14+40])) + uint64(f[14+6]) + l4
		}
		binary.BigEndian.PutUint16(f[start+field:], onesSum(pseudo, nil))
	}
	return frames
}

// TestCompleteChecksum: a partial checksum completed as a device would
// completes to one a receiver accepts: the sum of the pseudo-header and
// the segment, checksum included, is all ones.
func TestCompleteChecksum(t *testing.T) {
	for i, f := range partialFrames() {
		start, field, _ := PartialChecksum(f)
		pseudo := binary.BigEndian.Uint16(f[start+field:])
		CompleteChecksum(f, start, field)
		if got := onesSum(uint64(pseudo), f[start:]); got != 0xffff {
			t.Errorf("frame %d: pseudo-header plus segment sums to %#x after completion, want 0xffff", i, got)
		}
		if i < 4 && !frametest.ChecksumsValid(f) {
			t.Errorf("frame %d: the completed UDP frame's checksums are not valid", i)
		}
	}
	// Not TCP or UDP, or too short: not located.
	icmp := partialFrames()[0]
	icmp[14+9] = 1
	for _, f := range [][]byte{icmp, icmp[:30], make([]byte, 60)} {
		if _, _, ok := PartialChecksum(f); ok {
			t.Errorf("PartialChecksum located a checksum in %x", f[:min(len(f), 40)])
		}
	}
}

// FuzzPartialChecksum: any bytes at all: PartialChecksum does not panic,
// and where it locates a checksum, CompleteChecksum completes it to one
// that sums to all ones with what the field held.
func FuzzPartialChecksum(f *testing.F) {
	for _, fr := range partialFrames() {
		f.Add(fr)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		start, field, ok := PartialChecksum(frame)
		if !ok {
			return
		}
		if start < 14 || start+field+2 > len(frame) {
			t.Fatalf("located start %d field %d in a frame of %d bytes", start, field, len(frame))
		}
		held := binary.BigEndian.Uint16(frame[start+field:])
		CompleteChecksum(frame, start, field)
		if got := onesSum(uint64(held), frame[start:]); got != 0xffff && got != 0 {
			t.Fatalf("completed checksum sums to %#x with the field's %#x", got, held)
		}
	})
}
