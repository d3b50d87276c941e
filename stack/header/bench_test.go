package header

import (
	"testing"

	"github.com/mkstack/mkstack/stack/checksum"
)

// BenchmarkParseTCPSegment is the receive path's header work for one
// captured data segment: Ethernet, IPv4 with its checksum, TCP with its
// checksum, and the options.
func BenchmarkParseTCPSegment(b *testing.B) {
	b.ReportAllocs()
	var o TCPOptions
	for b.Loop() {
		e, _ := ParseEthernet(capturedData)
		h, _ := ParseIPv4(e.Payload())
		s, _ := ParseTCP(h.Payload())
		if !s.IsChecksumValid(checksum.PseudoHeaderIPv4(h.Source(), h.Destination(), ProtocolTCP, uint16(len(s)))) {
			b.Fatal("bad checksum")
		}
		if ParseTCPOptions(s.Options(), &o) != DropNone {
			b.Fatal("bad options")
		}
	}
}

// BenchmarkEncodeTCPSegment is the send path's header work for a data
// segment with a timestamp: Ethernet, IPv4 (checksum included), TCP with
// options and checksum over 6 bytes of data.
func BenchmarkEncodeTCPSegment(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, len(capturedData))
	copy(buf, capturedData)
	o := TCPOptions{HasTimestamps: true, TSVal: 1, TSEcr: 2}
	for b.Loop() {
		Ethernet(buf).Encode(&EthernetFields{Destination: macB, Source: macA, Type: EtherTypeIPv4})
		seg := TCP(buf[34:])
		n := EncodeTCPOptions(seg[TCPMinimumSize:], &o)
		seg.Encode(&TCPFields{SourcePort: 1, DestinationPort: 2, SequenceNumber: 3, AckNumber: 4,
			DataOffset: TCPMinimumSize + n, Flags: TCPFlagACK | TCPFlagPSH, Window: 512})
		seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(addrA, addrB, ProtocolTCP, uint16(len(seg)))))
		IPv4(buf[14:]).Encode(&IPv4Fields{TotalLength: uint16(20 + len(seg)), TTL: 64, Protocol: ProtocolTCP,
			Source: addrA, Destination: addrB})
	}
}

// BenchmarkParseTCPOptionsSYN parses a Linux SYN's 20 option bytes.
func BenchmarkParseTCPOptionsSYN(b *testing.B) {
	s, _ := ParseTCP(ipv4PayloadOf(capturedSYN))
	opts := s.Options()
	b.ReportAllocs()
	var o TCPOptions
	for b.Loop() {
		ParseTCPOptions(opts, &o)
	}
}
