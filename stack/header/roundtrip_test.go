package header

import (
	"math/rand/v2"
	"testing"

	"github.com/mkstack/mkstack/stack/checksum"
)

// TestEncodeThenParseGivesBackTheFields builds whole frames from random
// fields with the encoders and expects every parser to accept them and read
// back exactly those fields.
func TestEncodeThenParseGivesBackTheFields(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 0))
	u16 := func() uint16 { return uint16(r.Uint32()) }
	mac := func() (m MAC) {
		for i := range m {
			m[i] = byte(r.Uint32())
		}
		return m
	}
	addr := func() [4]byte { return [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())} }
	for i := 0; i < 2000; i++ {
		// Ethernet, sometimes tagged.
		ef := EthernetFields{Destination: mac(), Source: mac(), Type: EtherTypeIPv4}
		if r.IntN(4) == 0 {
			ef.TPID, ef.TCI = EtherTypeVLAN, u16()
		}
		// TCP options and payload.
		var o TCPOptions
		o.HasMSS, o.MSS = r.IntN(2) == 0, u16()
		o.HasTimestamps, o.TSVal, o.TSEcr = r.IntN(2) == 0, r.Uint32(), r.Uint32()
		o.NumSACKBlocks = r.IntN(3)
		for j := range o.NumSACKBlocks {
			o.SACKBlocks[j] = SACKBlock{r.Uint32(), r.Uint32()}
		}
		if !o.HasMSS {
			o.MSS = 0
		}
		if !o.HasTimestamps {
			o.TSVal, o.TSEcr = 0, 0
		}
		optLen := o.EncodedLength()
		payload := make([]byte, r.IntN(100))
		for j := range payload {
			payload[j] = byte(r.Uint32())
		}
		tf := TCPFields{
			SourcePort: u16(), DestinationPort: u16(), SequenceNumber: r.Uint32(), AckNumber: r.Uint32(),
			DataOffset: TCPMinimumSize + optLen, Flags: TCPFlags(r.Uint32()), Window: u16(), UrgentPointer: u16(),
		}
		ipOpts := make([]byte, 4*r.IntN(11))
		ipf := IPv4Fields{
			TOS: byte(r.Uint32()), ID: u16(), Flags: uint8(r.IntN(4)), FragmentOffset: uint16(8 * r.IntN(100)),
			TTL: byte(r.Uint32()), Protocol: ProtocolTCP, Source: addr(), Destination: addr(), Options: ipOpts,
		}
		segLen := tf.DataOffset + len(payload)
		ipf.TotalLength = uint16(ipf.EncodedLength() + segLen)

		b := make([]byte, ef.EncodedLength()+int(ipf.TotalLength)+r.IntN(8)) // maybe link padding
		Ethernet(b).Encode(&ef)
		ipb := b[ef.EncodedLength():]
		seg := TCP(ipb[ipf.EncodedLength() : ipf.EncodedLength()+segLen])
		seg.Encode(&tf)
		EncodeTCPOptions(seg[TCPMinimumSize:], &o)
		copy(seg[tf.DataOffset:], payload)
		pseudo := checksum.PseudoHeaderIPv4(ipf.Source, ipf.Destination, ProtocolTCP, uint16(segLen))
		seg.SetChecksum(seg.ComputeChecksum(pseudo))
		tf.Checksum = seg.Checksum()
		IPv4(ipb).Encode(&ipf)

		e, dr := ParseEthernet(b)
		if dr != DropNone || e.Fields() != ef {
			t.Fatalf("case %d: Ethernet %v %+v, want %+v", i, dr, e.Fields(), ef)
		}
		h, dr := ParseIPv4(e.Payload())
		if dr != DropNone || !ipv4FieldsEqual(h.Fields(), ipf) {
			t.Fatalf("case %d: IPv4 %v %+v, want %+v", i, dr, h.Fields(), ipf)
		}
		s, dr := ParseTCP(h.Payload())
		if dr != DropNone || s.Fields() != tf || !s.IsChecksumValid(pseudo) || string(s.Payload()) != string(payload) {
			t.Fatalf("case %d: TCP %v %+v, want %+v", i, dr, s.Fields(), tf)
		}
		var back TCPOptions
		if dr := ParseTCPOptions(s.Options(), &back); dr != DropNone || back != o {
			t.Fatalf("case %d: options %v %+v, want %+v", i, dr, back, o)
		}

		// UDP and ICMP, and ARP, on their own.
		uf := UDPFields{SourcePort: u16(), DestinationPort: u16(), Length: uint16(UDPSize + len(payload))}
		ub := make([]byte, uf.Length)
		UDP(ub).Encode(&uf)
		copy(ub[UDPSize:], payload)
		UDP(ub).SetChecksum(UDP(ub).ComputeChecksum(pseudo))
		uf.Checksum = UDP(ub).Checksum()
		if u, dr := ParseUDP(ub); dr != DropNone || u.Fields() != uf || !u.IsChecksumValid(pseudo) {
			t.Fatalf("case %d: UDP %v %+v, want %+v", i, dr, u.Fields(), uf)
		}
		mf := ICMPv4Fields{Type: ICMPv4Type(r.Uint32()), Code: ICMPv4Code(r.Uint32()), RestOfHeader: r.Uint32()}
		mb := make([]byte, ICMPv4MinimumSize+len(payload))
		ICMPv4(mb).Encode(&mf)
		copy(mb[ICMPv4MinimumSize:], payload)
		ICMPv4(mb).SetChecksum(ICMPv4(mb).ComputeChecksum())
		if m, dr := ParseICMPv4(mb); dr != DropNone || m.Fields() != mf {
			t.Fatalf("case %d: ICMPv4 %v %+v, want %+v", i, dr, m.Fields(), mf)
		}
		af := ARPFields{Op: ARPOp(1 + r.IntN(2)), SenderHardwareAddress: mac(), SenderProtocolAddress: addr(),
			TargetHardwareAddress: mac(), TargetProtocolAddress: addr()}
		ab := make([]byte, ARPSize)
		ARP(ab).Encode(&af)
		if a, dr := ParseARP(ab); dr != DropNone || a.Fields() != af {
			t.Fatalf("case %d: ARP %v %+v, want %+v", i, dr, a.Fields(), af)
		}
	}
}

func TestParsersAndEncodersDoNotAllocate(t *testing.T) {
	frames := [][]byte{capturedSYN, capturedUDP, capturedICMPPortUnreachable, capturedARPReply, capturedIPv6NS}
	out := make([]byte, 128)
	var o TCPOptions
	n := testing.AllocsPerRun(200, func() {
		for _, fr := range frames {
			e, _ := ParseEthernet(fr)
			_ = e.Destination().IsBroadcast()
			switch e.PayloadType() {
			case EtherTypeARP:
				a, _ := ParseARP(e.Payload())
				_ = a.SenderAddr()
				f := a.Fields()
				ARP(out).Encode(&f)
			case EtherTypeIPv6:
				h, _ := ParseIPv6(e.Payload())
				_ = h.DestinationAddr()
			case EtherTypeIPv4:
				h, _ := ParseIPv4(e.Payload())
				_ = h.SourceAddr()
				f := h.Fields()
				IPv4(out).Encode(&f)
				pseudo := checksum.PseudoHeaderIPv4(h.Source(), h.Destination(), h.Protocol(), uint16(h.PayloadLength()))
				switch h.Protocol() {
				case ProtocolTCP:
					s, _ := ParseTCP(h.Payload())
					_ = s.IsChecksumValid(pseudo)
					_ = ParseTCPOptions(s.Options(), &o)
					it := IterateTCPOptions(s.Options())
					for _, ok := it.Next(); ok; _, ok = it.Next() {
					}
					EncodeTCPOptions(out[20:], &o)
					tf := s.Fields()
					TCP(out).Encode(&tf)
				case ProtocolUDP:
					u, _ := ParseUDP(h.Payload())
					_ = u.IsChecksumValid(pseudo)
				case ProtocolICMPv4:
					m, _ := ParseICMPv4(h.Payload())
					_ = m.NextHopMTU()
				}
			}
		}
	})
	if n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}
