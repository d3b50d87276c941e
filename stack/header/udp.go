package header

import (
	"encoding/binary"

	"github.com/mkstack/mkstack/stack/checksum"
)

const (
	// UDPSize is the size of the UDP header.
	UDPSize = 8

	udpSourcePort      = 0
	udpDestinationPort = 2
	udpLength          = 4
	udpChecksum        = 6
)

// UDP is a UDP datagram (RFC 768) starting at its header.
type UDP []byte

// UDPFields is the content of a UDP header.
type UDPFields struct {
	SourcePort      uint16
	DestinationPort uint16
	Length          uint16 // header and data, in bytes
	Checksum        uint16
}

// ParseUDP checks the datagram b (an IP payload): its Length field must
// cover the header and fit in b. It returns the view trimmed to Length. The
// checksum is checked on request (IsChecksumValid).
func ParseUDP(b []byte) (UDP, DropReason) {
	if len(b) < UDPSize {
		return nil, DropTruncated
	}
	u := UDP(b)
	n := int(u.Length())
	if n < UDPSize || n > len(b) {
		return nil, DropBadUDPLength
	}
	return u[:n], DropNone
}

// SourcePort returns the Source Port.
func (b UDP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[udpSourcePort:]) }

// DestinationPort returns the Destination Port.
func (b UDP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[udpDestinationPort:]) }

// Length returns the Length field: header and data, in bytes.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[udpLength:]) }

// Checksum returns the Checksum field. Zero means the sender computed none,
// which IPv4 allows (RFC 768).
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[udpChecksum:]) }

// Payload returns the data after the header, up to Length.
func (b UDP) Payload() []byte { return b[UDPSize:b.Length()] }

// SetSourcePort sets the Source Port.
func (b UDP) SetSourcePort(v uint16) { binary.BigEndian.PutUint16(b[udpSourcePort:], v) }

// SetDestinationPort sets the Destination Port.
func (b UDP) SetDestinationPort(v uint16) {
	binary.BigEndian.PutUint16(b[udpDestinationPort:], v)
}

// SetLength sets the Length field.
func (b UDP) SetLength(v uint16) { binary.BigEndian.PutUint16(b[udpLength:], v) }

// SetChecksum sets the Checksum field.
func (b UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[udpChecksum:], v) }

// ComputeChecksum returns the checksum the datagram should carry, given the
// pseudo-header sum (checksum.PseudoHeaderIPv4 with ProtocolUDP and the
// Length), whatever its Checksum field holds now. A computed zero is sent as
// 0xffff, since zero on the wire means "no checksum" (RFC 768).
func (b UDP) ComputeChecksum(pseudoHeaderSum uint16) uint16 {
	s := checksum.Sum(b[:udpChecksum], pseudoHeaderSum)
	c := ^checksum.Sum(b[udpChecksum+2:], s)
	if c == 0 {
		return 0xffff
	}
	return c
}

// IsChecksumValid reports whether the checksum verifies against the
// pseudo-header sum. It does not treat a zero field specially: on IPv4 the
// caller accepts Checksum() == 0 first.
func (b UDP) IsChecksumValid(pseudoHeaderSum uint16) bool {
	return checksum.Sum(b, pseudoHeaderSum) == 0xffff
}

// Fields returns the header's content.
func (b UDP) Fields() UDPFields {
	return UDPFields{
		SourcePort:      b.SourcePort(),
		DestinationPort: b.DestinationPort(),
		Length:          b.Length(),
		Checksum:        b.Checksum(),
	}
}

// Encode writes the header described by f at the start of b, which must
// hold UDPSize bytes.
func (b UDP) Encode(f *UDPFields) {
	_ = b[UDPSize-1]
	binary.BigEndian.PutUint16(b[udpSourcePort:], f.SourcePort)
	binary.BigEndian.PutUint16(b[udpDestinationPort:], f.DestinationPort)
	binary.BigEndian.PutUint16(b[udpLength:], f.Length)
	binary.BigEndian.PutUint16(b[udpChecksum:], f.Checksum)
}
