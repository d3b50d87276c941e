package header

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mkstack/mkstack/stack/checksum"
)

// mustParse runs the parsers down one frame, failing the test at the first
// that drops it.
func mustEthernet(t *testing.T, b []byte) Ethernet {
	t.Helper()
	e, r := ParseEthernet(b)
	if r != DropNone {
		t.Fatalf("ParseEthernet: %v", r)
	}
	return e
}

func mustIPv4(t *testing.T, b []byte) IPv4 {
	t.Helper()
	h, r := ParseIPv4(b)
	if r != DropNone {
		t.Fatalf("ParseIPv4: %v", r)
	}
	return h
}

func mustTCP(t *testing.T, ip IPv4) TCP {
	t.Helper()
	s, r := ParseTCP(ip.Payload())
	if r != DropNone {
		t.Fatalf("ParseTCP: %v", r)
	}
	if !s.IsChecksumValid(checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), ProtocolTCP, uint16(len(s)))) {
		t.Fatalf("TCP checksum %#04x does not verify", s.Checksum())
	}
	return s
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestCapturedSYNReadsAsLinuxSentIt(t *testing.T) {
	e := mustEthernet(t, capturedSYN)
	check(t, "destination", e.Destination(), macB)
	check(t, "source", e.Source(), macA)
	check(t, "tagged", e.Tagged(), false)
	check(t, "EtherType", e.PayloadType(), EtherTypeIPv4)

	ip := mustIPv4(t, e.Payload())
	check(t, "version", ip.Version(), 4)
	check(t, "ihl", ip.IHL(), 5)
	check(t, "total length", ip.TotalLength(), 60)
	check(t, "id", ip.ID(), 0x0455)
	check(t, "DF", ip.DontFragment(), true)
	check(t, "MF", ip.MoreFragments(), false)
	check(t, "fragment offset", ip.FragmentOffset(), 0)
	check(t, "is fragment", ip.IsFragment(), false)
	check(t, "ttl", ip.TTL(), 64)
	check(t, "protocol", ip.Protocol(), ProtocolTCP)
	check(t, "header checksum", ip.Checksum(), 0xb263)
	check(t, "source", ip.SourceAddr(), netip.MustParseAddr("192.0.2.1"))
	check(t, "destination", ip.DestinationAddr(), netip.MustParseAddr("192.0.2.2"))

	s := mustTCP(t, ip)
	check(t, "source port", s.SourcePort(), 40468)
	check(t, "destination port", s.DestinationPort(), 8080)
	check(t, "sequence number", s.SequenceNumber(), 0x7231fcdb)
	check(t, "ack number", s.AckNumber(), 0)
	check(t, "data offset", s.DataOffset(), 40)
	check(t, "flags", s.Flags(), TCPFlagSYN)
	check(t, "window", s.Window(), 64240)
	check(t, "checksum", s.Checksum(), 0xeb67)
	check(t, "urgent pointer", s.UrgentPointer(), 0)
	check(t, "payload length", len(s.Payload()), 0)

	var o TCPOptions
	if r := ParseTCPOptions(s.Options(), &o); r != DropNone {
		t.Fatalf("ParseTCPOptions: %v", r)
	}
	want := TCPOptions{
		HasMSS: true, MSS: 1460,
		SACKPermitted: true,
		HasTimestamps: true, TSVal: 0xe0f1cffc, TSEcr: 0,
		HasWindowScale: true, WindowScale: 10,
	}
	check(t, "options", o, want)
}

// TestCapturedSYNReencodesByteForByte builds the SYN from its fields with
// the encoders and checksum helpers and expects Linux's exact bytes.
func TestCapturedSYNReencodesByteForByte(t *testing.T) {
	opts := TCPOptions{
		HasMSS: true, MSS: 1460, SACKPermitted: true,
		HasTimestamps: true, TSVal: 0xe0f1cffc,
		HasWindowScale: true, WindowScale: 10,
	}
	b := make([]byte, len(capturedSYN))
	Ethernet(b).Encode(&EthernetFields{Destination: macB, Source: macA, Type: EtherTypeIPv4})
	seg := TCP(b[14+20:])
	optLen := EncodeTCPOptions(seg[TCPMinimumSize:], &opts)
	check(t, "options length", optLen, 20)
	seg.Encode(&TCPFields{
		SourcePort: 40468, DestinationPort: 8080, SequenceNumber: 0x7231fcdb,
		DataOffset: TCPMinimumSize + optLen, Flags: TCPFlagSYN, Window: 64240,
	})
	seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(addrA, addrB, ProtocolTCP, uint16(len(seg)))))
	IPv4(b[14:]).Encode(&IPv4Fields{
		TotalLength: uint16(20 + len(seg)), ID: 0x0455, Flags: IPv4FlagDontFragment,
		TTL: 64, Protocol: ProtocolTCP, Source: addrA, Destination: addrB,
	})
	if !bytes.Equal(b, capturedSYN) {
		t.Fatalf("encoded\n%x\nwant\n%x", b, capturedSYN)
	}
}

func TestCapturedHandshakeOptionsAndData(t *testing.T) {
	synack := mustTCP(t, mustIPv4(t, mustEthernet(t, capturedSYNACK).Payload()))
	check(t, "SYN-ACK flags", synack.Flags(), TCPFlagSYN|TCPFlagACK)
	check(t, "SYN-ACK ack", synack.AckNumber(), 0x7231fcdc)
	var o TCPOptions
	check(t, "parse", ParseTCPOptions(synack.Options(), &o), DropNone)
	check(t, "SYN-ACK options", o, TCPOptions{
		HasMSS: true, MSS: 1460, SACKPermitted: true,
		HasTimestamps: true, TSVal: 0x99293684, TSEcr: 0xe0f1cffc,
		HasWindowScale: true, WindowScale: 10,
	})
	// Encoding the parsed options reproduces Linux's layout.
	var enc [TCPMaximumOptionsSize]byte
	n := EncodeTCPOptions(enc[:], &o)
	if !bytes.Equal(enc[:n], synack.Options()) {
		t.Errorf("SYN-ACK options re-encoded %x, want %x", enc[:n], synack.Options())
	}

	ack := mustTCP(t, mustIPv4(t, mustEthernet(t, capturedACK).Payload()))
	check(t, "ACK flags", ack.Flags(), TCPFlagACK)
	check(t, "ACK window", ack.Window(), 63)
	check(t, "parse", ParseTCPOptions(ack.Options(), &o), DropNone)
	check(t, "ACK options", o, TCPOptions{HasTimestamps: true, TSVal: 0xe0f1cffc, TSEcr: 0x99293684})
	n = EncodeTCPOptions(enc[:], &o)
	if !bytes.Equal(enc[:n], ack.Options()) {
		t.Errorf("ACK options re-encoded %x, want %x", enc[:n], ack.Options())
	}

	data := mustTCP(t, mustIPv4(t, mustEthernet(t, capturedData).Payload()))
	check(t, "data flags", data.Flags(), TCPFlagPSH|TCPFlagACK)
	check(t, "data", string(data.Payload()), "hello\n")
	// One flipped payload bit must break the checksum.
	data.Payload()[0] ^= 0x20
	defer func() { data.Payload()[0] ^= 0x20 }()
	ip, _ := ParseIPv4(mustEthernet(t, capturedData).Payload())
	if data.IsChecksumValid(checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), ProtocolTCP, uint16(len(data)))) {
		t.Error("checksum verifies after a payload bit flipped")
	}
}

func TestCapturedARPRequestAndReply(t *testing.T) {
	e := mustEthernet(t, capturedARPRequest)
	check(t, "request destination", e.Destination(), BroadcastMAC)
	check(t, "broadcast", e.Destination().IsBroadcast(), true)
	check(t, "EtherType", e.PayloadType(), EtherTypeARP)
	a, r := ParseARP(e.Payload())
	check(t, "ParseARP", r, DropNone)
	check(t, "op", a.Op(), ARPRequest)
	check(t, "sha", a.SenderHardwareAddress(), macA)
	check(t, "spa", a.SenderAddr(), netip.MustParseAddr("192.0.2.1"))
	check(t, "tha", a.TargetHardwareAddress(), MAC{})
	check(t, "tpa", a.TargetProtocolAddress(), addrB)
	check(t, "gratuitous", a.IsGratuitous(), false)

	e = mustEthernet(t, capturedARPReply)
	a, r = ParseARP(e.Payload())
	check(t, "ParseARP", r, DropNone)
	check(t, "op", a.Op(), ARPReply)
	check(t, "sha", a.SenderHardwareAddress(), macB)
	check(t, "spa", a.SenderProtocolAddress(), addrB)
	check(t, "tha", a.TargetHardwareAddress(), macA)
	check(t, "tpa", a.TargetProtocolAddress(), addrA)

	// The reply, built from scratch.
	b := make([]byte, 14+ARPSize)
	Ethernet(b).Encode(&EthernetFields{Destination: macA, Source: macB, Type: EtherTypeARP})
	ARP(b[14:]).Encode(&ARPFields{
		Op: ARPReply, SenderHardwareAddress: macB, SenderProtocolAddress: addrB,
		TargetHardwareAddress: macA, TargetProtocolAddress: addrA,
	})
	if !bytes.Equal(b, capturedARPReply) {
		t.Fatalf("encoded\n%x\nwant\n%x", b, capturedARPReply)
	}
}

func TestCapturedUDPDatagram(t *testing.T) {
	ip := mustIPv4(t, mustEthernet(t, capturedUDP).Payload())
	check(t, "protocol", ip.Protocol(), ProtocolUDP)
	u, r := ParseUDP(ip.Payload())
	check(t, "ParseUDP", r, DropNone)
	check(t, "source port", u.SourcePort(), 0x9192)
	check(t, "destination port", u.DestinationPort(), 9)
	check(t, "length", u.Length(), 12)
	check(t, "payload", string(u.Payload()), "ping")
	pseudo := checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), ProtocolUDP, u.Length())
	check(t, "checksum valid", u.IsChecksumValid(pseudo), true)
	check(t, "computed checksum", u.ComputeChecksum(pseudo), 0x0b66)
}

func TestCapturedICMPPortUnreachableQuotesTheUDPDatagram(t *testing.T) {
	ip := mustIPv4(t, mustEthernet(t, capturedICMPPortUnreachable).Payload())
	check(t, "protocol", ip.Protocol(), ProtocolICMPv4)
	check(t, "tos", ip.TOS(), 0xc0) // Linux sends ICMP errors as CS6
	m, r := ParseICMPv4(ip.Payload())
	check(t, "ParseICMPv4", r, DropNone)
	check(t, "type", m.Type(), ICMPv4DestinationUnreachable)
	check(t, "is error", m.Type().IsError(), true)
	check(t, "code", m.Code(), ICMPv4PortUnreachable)
	check(t, "checksum", m.Checksum(), 0x811e)
	check(t, "computed checksum", m.ComputeChecksum(), 0x811e)

	// The quote is the whole offending datagram here (32 bytes).
	q := mustIPv4(t, m.Payload())
	check(t, "quoted protocol", q.Protocol(), ProtocolUDP)
	check(t, "quoted source", q.Source(), addrA)
	qu, r := ParseUDP(q.Payload())
	check(t, "quoted ParseUDP", r, DropNone)
	check(t, "quoted source port", qu.SourcePort(), 0x9192)
	check(t, "quoted destination port", qu.DestinationPort(), 9)

	// Corrupt one byte of the quote: the ICMP checksum covers it.
	b := bytes.Clone(ip.Payload())
	b[len(b)-1] ^= 1
	_, r = ParseICMPv4(b)
	check(t, "corrupted ParseICMPv4", r, DropBadChecksum)
}

func TestCapturedIPv6NeighbourSolicitation(t *testing.T) {
	e := mustEthernet(t, capturedIPv6NS)
	check(t, "EtherType", e.PayloadType(), EtherTypeIPv6)
	check(t, "multicast", e.Destination().IsMulticast(), true)
	h, r := ParseIPv6(e.Payload())
	check(t, "ParseIPv6", r, DropNone)
	check(t, "version", h.Version(), 6)
	check(t, "traffic class", h.TrafficClass(), 0)
	check(t, "flow label", h.FlowLabel(), 0)
	check(t, "payload length", h.PayloadLength(), 32)
	check(t, "next header", h.NextHeader(), ProtocolICMPv6)
	check(t, "hop limit", h.HopLimit(), 255)
	check(t, "source", h.SourceAddr(), netip.IPv6Unspecified())
	check(t, "destination", h.DestinationAddr(), netip.MustParseAddr("ff02::1:ff00:1"))
	check(t, "ICMPv6 type", h.Payload()[0], 135)

	b := make([]byte, IPv6FixedHeaderSize)
	f := h.Fields()
	IPv6(b).Encode(&f)
	if !bytes.Equal(b, h[:IPv6FixedHeaderSize]) {
		t.Fatalf("encoded %x, want %x", b, h[:IPv6FixedHeaderSize])
	}
}
