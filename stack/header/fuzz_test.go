package header

import (
	"bytes"
	"testing"

	"github.com/mkstack/mkstack/stack/checksum"
)

// Every parser's fuzz target checks the same contract: no panic; a reason
// that is a valid index, with a nil view exactly when the bytes are dropped;
// an accepted view whose lengths agree with each other and with the input;
// and the fields read back from it, encoded again, give the same bytes.

var capturedFrames = [][]byte{
	capturedARPRequest, capturedARPReply, capturedSYN, capturedSYNACK, capturedACK,
	capturedData, capturedUDP, capturedICMPPortUnreachable, capturedIPv6NS,
}

// payloadOf peels Ethernet, then IPv4, off a captured frame.
func ipv4PayloadOf(b []byte) []byte {
	e, _ := ParseEthernet(b)
	h, _ := ParseIPv4(e.Payload())
	return h.Payload()
}

func checkReason[V ~[]byte](t *testing.T, v V, r DropReason) {
	t.Helper()
	if r >= NumDropReasons {
		t.Fatalf("reason %d out of range", r)
	}
	if (v == nil) != (r != DropNone) {
		t.Fatalf("view nil=%v with reason %v", v == nil, r)
	}
}

// sameChecksum reports whether two checksum fields are equal, counting 0x0000
// and 0xffff as one: both verify when the rest sums to 0xffff.
func sameChecksum(a, b uint16) bool {
	return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

func FuzzParseEthernet(f *testing.F) {
	for _, b := range capturedFrames {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(capturedSYN[:13])
	tagged := append(bytes.Clone(capturedSYN[:12]), 0x81, 0x00, 0x20, 0x05, 0x08, 0x00)
	f.Add(tagged)
	f.Add(tagged[:15])
	f.Add(append(bytes.Clone(capturedSYN[:12]), 0x88, 0xa8, 0x00, 0x01, 0x81, 0x00))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, r := ParseEthernet(b)
		checkReason(t, e, r)
		if r != DropNone {
			return
		}
		hl := e.HeaderLength()
		if (hl == EthernetTaggedSize) != e.Tagged() || hl > len(b) || len(e.Payload()) != len(b)-hl {
			t.Fatalf("header %d, tagged %v, payload %d of %d", hl, e.Tagged(), len(e.Payload()), len(b))
		}
		fields := e.Fields()
		out := make([]byte, fields.EncodedLength())
		Ethernet(out).Encode(&fields)
		if !bytes.Equal(out, b[:hl]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:hl])
		}
	})
}

func FuzzParseARP(f *testing.F) {
	f.Add(mustPayload(capturedARPRequest))
	f.Add(mustPayload(capturedARPReply))
	f.Add(mustPayload(capturedARPReply)[:27])
	f.Add(append(mustPayload(capturedARPReply), 0, 0, 0))
	f.Add(mutated(mustPayload(capturedARPReply), func(b []byte) { b[7] = 9 }))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, r := ParseARP(b)
		checkReason(t, a, r)
		if r != DropNone {
			return
		}
		if len(a) != ARPSize || (a.Op() != ARPRequest && a.Op() != ARPReply) {
			t.Fatalf("accepted %d bytes, op %d", len(a), a.Op())
		}
		fields := a.Fields()
		out := make([]byte, ARPSize)
		ARP(out).Encode(&fields)
		if !bytes.Equal(out, b[:ARPSize]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:ARPSize])
		}
	})
}

func mustPayload(frame []byte) []byte {
	e, _ := ParseEthernet(frame)
	return bytes.Clone(e.Payload())
}

func FuzzParseIPv4(f *testing.F) {
	for _, fr := range capturedFrames {
		if e, _ := ParseEthernet(fr); e.PayloadType() == EtherTypeIPv4 {
			f.Add(bytes.Clone(e.Payload()))
		}
	}
	ip := mustPayload(capturedSYN)
	f.Add(ip[:19])
	f.Add(mutated(ip, func(b []byte) { b[0] = 0x46 }))
	f.Add(mutated(ip, func(b []byte) { b[0] = 0x4f }))
	f.Add(mutated(ip, func(b []byte) { b[0] = 0x44 }))
	f.Add(mutated(ip, func(b []byte) { b[3] = 0xff }))
	f.Add(mutated(ip, func(b []byte) { b[10] ^= 0xff }))
	f.Add(mutated(ip, func(b []byte) { b[6] = 0x3f; b[7] = 0xff; fixIPv4Checksum(b) }))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, r := ParseIPv4(b)
		checkReason(t, h, r)
		if r != DropNone {
			return
		}
		hl, tl := h.HeaderLength(), int(h.TotalLength())
		if h.Version() != 4 || hl < IPv4MinimumSize || hl > tl || tl != len(h) || tl > len(b) {
			t.Fatalf("version %d, header %d, total %d, view %d, input %d", h.Version(), hl, tl, len(h), len(b))
		}
		if len(h.Options()) != hl-IPv4MinimumSize || len(h.Payload()) != tl-hl || h.PayloadLength() != tl-hl {
			t.Fatalf("options %d, payload %d, header %d, total %d", len(h.Options()), len(h.Payload()), hl, tl)
		}
		if !h.IsChecksumValid() || !sameChecksum(h.ComputeChecksum(), h.Checksum()) {
			t.Fatalf("accepted with checksum %#04x, computed %#04x", h.Checksum(), h.ComputeChecksum())
		}
		if int(h.FragmentOffset())+len(h.Payload()) > IPv4MaximumTotalLength {
			t.Fatalf("fragment at %d of %d bytes accepted", h.FragmentOffset(), len(h.Payload()))
		}
		fields := h.Fields()
		out := make([]byte, tl)
		IPv4(out).Encode(&fields)
		copy(out[hl:], h.Payload())
		if !bytes.Equal(out[:10], b[:10]) || !bytes.Equal(out[12:tl], b[12:tl]) ||
			!sameChecksum(IPv4(out).Checksum(), h.Checksum()) {
			t.Fatalf("re-encoded %x, want %x", out, b[:tl])
		}
		back, r := ParseIPv4(out)
		if r != DropNone {
			t.Fatalf("re-encoded header dropped: %v", r)
		}
		if bf := back.Fields(); !ipv4FieldsEqual(bf, fields) {
			t.Fatalf("fields %+v, want %+v", bf, fields)
		}
	})
}

func ipv4FieldsEqual(a, b IPv4Fields) bool {
	return a.TOS == b.TOS && a.TotalLength == b.TotalLength && a.ID == b.ID &&
		a.Flags == b.Flags && a.FragmentOffset == b.FragmentOffset && a.TTL == b.TTL &&
		a.Protocol == b.Protocol && a.Source == b.Source && a.Destination == b.Destination &&
		bytes.Equal(a.Options, b.Options)
}

func FuzzParseIPv6(f *testing.F) {
	f.Add(mustPayload(capturedIPv6NS))
	f.Add(mustPayload(capturedIPv6NS)[:39])
	f.Add(mutated(mustPayload(capturedIPv6NS), func(b []byte) { b[5] = 0xff }))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, r := ParseIPv6(b)
		checkReason(t, h, r)
		if r != DropNone {
			return
		}
		if h.Version() != 6 || len(h) != IPv6FixedHeaderSize+int(h.PayloadLength()) || len(h) > len(b) ||
			len(h.Payload()) != int(h.PayloadLength()) {
			t.Fatalf("view %d, payload length %d, input %d", len(h), h.PayloadLength(), len(b))
		}
		fields := h.Fields()
		out := make([]byte, IPv6FixedHeaderSize)
		IPv6(out).Encode(&fields)
		if !bytes.Equal(out, b[:IPv6FixedHeaderSize]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:IPv6FixedHeaderSize])
		}
	})
}

func FuzzParseICMPv4(f *testing.F) {
	f.Add(ipv4PayloadOf(capturedICMPPortUnreachable))
	echo := make([]byte, 16)
	ICMPv4(echo).Encode(&ICMPv4Fields{Type: ICMPv4Echo, RestOfHeader: EchoRestOfHeader(1, 2)})
	copy(echo[8:], "abcdefgh")
	ICMPv4(echo).SetChecksum(ICMPv4(echo).ComputeChecksum())
	f.Add(echo)
	f.Add(echo[:7])
	f.Add(echo[:15])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, r := ParseICMPv4(b)
		checkReason(t, m, r)
		if r != DropNone {
			return
		}
		if len(m) != len(b) || len(m.Payload()) != len(b)-ICMPv4MinimumSize || checksum.Sum(m, 0) != 0xffff {
			t.Fatalf("view %d of %d, payload %d", len(m), len(b), len(m.Payload()))
		}
		fields := m.Fields()
		out := make([]byte, len(b))
		ICMPv4(out).Encode(&fields)
		copy(out[ICMPv4MinimumSize:], m.Payload())
		ICMPv4(out).SetChecksum(ICMPv4(out).ComputeChecksum())
		if !bytes.Equal(out[:2], b[:2]) || !bytes.Equal(out[4:], b[4:]) ||
			!sameChecksum(ICMPv4(out).Checksum(), m.Checksum()) {
			t.Fatalf("re-encoded %x, want %x", out, b)
		}
	})
}

func FuzzParseUDP(f *testing.F) {
	f.Add(ipv4PayloadOf(capturedUDP))
	f.Add(ipv4PayloadOf(capturedUDP)[:7])
	f.Add(mutated(ipv4PayloadOf(capturedUDP), func(b []byte) { b[5] = 7 }))
	f.Add(mutated(ipv4PayloadOf(capturedUDP), func(b []byte) { b[4] = 0xff }))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, r := ParseUDP(b)
		checkReason(t, u, r)
		if r != DropNone {
			return
		}
		n := int(u.Length())
		if n < UDPSize || n != len(u) || n > len(b) || len(u.Payload()) != n-UDPSize {
			t.Fatalf("length %d, view %d, input %d", n, len(u), len(b))
		}
		fields := u.Fields()
		out := make([]byte, UDPSize)
		UDP(out).Encode(&fields)
		if !bytes.Equal(out, b[:UDPSize]) {
			t.Fatalf("re-encoded %x, want %x", out, b[:UDPSize])
		}
		// A checksum computed for any pseudo-header verifies against it.
		pseudo := checksum.PseudoHeaderIPv4(addrA, addrB, ProtocolUDP, u.Length())
		c := bytes.Clone(u)
		UDP(c).SetChecksum(UDP(c).ComputeChecksum(pseudo))
		if UDP(c).Checksum() == 0 || !UDP(c).IsChecksumValid(pseudo) {
			t.Fatalf("computed checksum %#04x does not verify", UDP(c).Checksum())
		}
	})
}

func FuzzParseTCP(f *testing.F) {
	for _, fr := range [][]byte{capturedSYN, capturedSYNACK, capturedACK, capturedData} {
		f.Add(ipv4PayloadOf(fr))
	}
	seg := ipv4PayloadOf(capturedSYN)
	f.Add(seg[:19])
	f.Add(seg[:39])
	f.Add(mutated(seg, func(b []byte) { b[12] = 0x40 }))
	f.Add(mutated(seg, func(b []byte) { b[12] = 0xf0 }))
	f.Add(mutated(seg, func(b []byte) { b[21] = 0 })) // zero-length MSS
	f.Fuzz(func(t *testing.T, b []byte) {
		s, r := ParseTCP(b)
		checkReason(t, s, r)
		if r != DropNone {
			return
		}
		off := s.DataOffset()
		if off < TCPMinimumSize || off > len(b) || len(s.Options()) != off-TCPMinimumSize ||
			len(s.Payload()) != len(b)-off {
			t.Fatalf("data offset %d, options %d, payload %d, input %d", off, len(s.Options()), len(s.Payload()), len(b))
		}
		// Walking the options ends, whatever they hold.
		it := IterateTCPOptions(s.Options())
		steps := 0
		for _, ok := it.Next(); ok; _, ok = it.Next() {
			if steps++; steps > len(s.Options()) {
				t.Fatal("option walk does not end")
			}
		}
		fields := s.Fields()
		out := make([]byte, len(b))
		TCP(out).Encode(&fields)
		copy(out[TCPMinimumSize:], b[TCPMinimumSize:])
		want := mutated(b, func(c []byte) { c[12] &= 0xf0 }) // reserved bits are sent as zero
		if !bytes.Equal(out, want) {
			t.Fatalf("re-encoded %x, want %x", out, want)
		}
		pseudo := checksum.PseudoHeaderIPv4(addrA, addrB, ProtocolTCP, uint16(len(out)))
		TCP(out).SetChecksum(TCP(out).ComputeChecksum(pseudo))
		if !TCP(out).IsChecksumValid(pseudo) {
			t.Fatal("computed checksum does not verify")
		}
	})
}

func FuzzTCPOptions(f *testing.F) {
	for _, fr := range [][]byte{capturedSYN, capturedSYNACK, capturedACK} {
		s, _ := ParseTCP(ipv4PayloadOf(fr))
		f.Add(bytes.Clone(s.Options()))
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0})                    // zero length
	f.Add([]byte{0x99, 1, 1, 1})           // length 1
	f.Add([]byte{8, 10, 1, 2})             // past the end
	f.Add([]byte{1, 1, 5, 18, 0, 0, 0, 1}) // SACK past the end
	f.Add([]byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0xff, 0xff})
	f.Add([]byte{3, 3, 200, 0})
	f.Add(bytes.Repeat([]byte{1}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > TCPMaximumOptionsSize {
			b = b[:TCPMaximumOptionsSize]
		}
		it := IterateTCPOptions(b)
		steps := 0
		for opt, ok := it.Next(); ok; opt, ok = it.Next() {
			if steps++; steps > len(b) {
				t.Fatal("option walk does not end")
			}
			if len(opt.Data)+2 > len(b) {
				t.Fatalf("option of %d bytes in %d", len(opt.Data)+2, len(b))
			}
		}
		var o TCPOptions
		r := ParseTCPOptions(b, &o)
		if r != it.Err() || (r != DropNone && r != DropBadTCPOption) {
			t.Fatalf("ParseTCPOptions %v, iterator %v", r, it.Err())
		}
		if r != DropNone {
			return
		}
		if o.WindowScale > MaxWindowScale || o.NumSACKBlocks > MaxSACKBlocks {
			t.Fatalf("parsed %+v", o)
		}
		checkTCPOptionsRoundTrip(t, &o)
	})
}

// checkTCPOptionsRoundTrip encodes o, parses it back, and expects o with the
// SACK blocks that did not fit left out.
func checkTCPOptionsRoundTrip(t *testing.T, o *TCPOptions) {
	t.Helper()
	var out [TCPMaximumOptionsSize]byte
	n := EncodeTCPOptions(out[:], o)
	if n != o.EncodedLength() || n%4 != 0 || n > TCPMaximumOptionsSize {
		t.Fatalf("encoded %d bytes, EncodedLength %d", n, o.EncodedLength())
	}
	var back TCPOptions
	if r := ParseTCPOptions(out[:n], &back); r != DropNone {
		t.Fatalf("own encoding %x dropped: %v", out[:n], r)
	}
	want := *o
	_, fit := o.layout()
	want.NumSACKBlocks = fit
	for i := fit; i < MaxSACKBlocks; i++ {
		want.SACKBlocks[i] = SACKBlock{}
	}
	if back != want {
		t.Fatalf("round trip %+v, want %+v", back, want)
	}
}

// FuzzTCPOptionsRoundTrip starts from the fields rather than the bytes.
func FuzzTCPOptionsRoundTrip(f *testing.F) {
	f.Add(uint16(1460), uint8(7), uint8(0x0f), uint32(1), uint32(2), uint8(0), uint64(0))
	f.Add(uint16(0), uint8(0), uint8(0x04), uint32(5), uint32(6), uint8(4), uint64(99))
	f.Add(uint16(536), uint8(14), uint8(0x1f), uint32(0xffffffff), uint32(0), uint8(3), uint64(7))
	f.Fuzz(func(t *testing.T, mss uint16, ws, has uint8, tsVal, tsEcr uint32, nBlocks uint8, seed uint64) {
		o := TCPOptions{
			HasMSS: has&1 != 0, HasWindowScale: has&2 != 0, SACKPermitted: has&4 != 0,
			HasTimestamps: has&8 != 0, NumSACKBlocks: int(nBlocks % (MaxSACKBlocks + 1)),
		}
		if o.HasMSS {
			o.MSS = mss
		}
		if o.HasWindowScale {
			o.WindowScale = ws % (MaxWindowScale + 1)
		}
		if o.HasTimestamps {
			o.TSVal, o.TSEcr = tsVal, tsEcr
		}
		for i := range o.NumSACKBlocks {
			seed = seed*6364136223846793005 + 1442695040888963407
			o.SACKBlocks[i] = SACKBlock{Left: uint32(seed >> 32), Right: uint32(seed)}
		}
		checkTCPOptionsRoundTrip(t, &o)
	})
}
