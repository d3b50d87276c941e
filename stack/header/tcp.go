package header

import (
	"encoding/binary"

	"github.com/mkstack/mkstack/stack/checksum"
)

// TCPFlags are the control bits of a TCP header (RFC 9293, RFC 3168 for ECE
// and CWR).
type TCPFlags uint8

// TCP control bits.
const (
	TCPFlagFIN TCPFlags = 1 << iota
	TCPFlagSYN
	TCPFlagRST
	TCPFlagPSH
	TCPFlagACK
	TCPFlagURG
	TCPFlagECE
	TCPFlagCWR
)

var tcpFlagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// String names the bits set, as "SYN|ACK", or "0" when none is.
func (f TCPFlags) String() string {
	if f == 0 {
		return "0"
	}
	var buf [8 * 4]byte
	s := buf[:0]
	for i, n := range tcpFlagNames {
		if f&(1<<i) != 0 {
			if len(s) > 0 {
				s = append(s, '|')
			}
			s = append(s, n...)
		}
	}
	return string(s)
}

// Has reports whether every bit of g is set in f.
func (f TCPFlags) Has(g TCPFlags) bool { return f&g == g }

const (
	// TCPMinimumSize is the size of a TCP header without options.
	TCPMinimumSize = 20
	// TCPMaximumHeaderSize is the largest TCP header: Data Offset 15.
	TCPMaximumHeaderSize = 60
	// TCPMaximumOptionsSize is the most option bytes a header can carry.
	TCPMaximumOptionsSize = TCPMaximumHeaderSize - TCPMinimumSize

	tcpSourcePort      = 0
	tcpDestinationPort = 2
	tcpSequenceNumber  = 4
	tcpAckNumber       = 8
	tcpDataOffset      = 12 // high 4 bits; the low 4 are reserved
	tcpFlags           = 13
	tcpWindow          = 14
	tcpChecksum        = 16
	tcpUrgentPointer   = 18
	tcpOptions         = 20
)

// TCP is a TCP segment (RFC 9293) starting at its header.
type TCP []byte

// TCPFields is the content of a TCP header's fixed part.
type TCPFields struct {
	SourcePort      uint16
	DestinationPort uint16
	SequenceNumber  uint32
	AckNumber       uint32
	// DataOffset is the header length in bytes, options included: a
	// multiple of 4 from 20 to 60. Encode writes the fixed part only; the
	// caller writes the options after it (EncodeTCPOptions).
	DataOffset    int
	Flags         TCPFlags
	Window        uint16
	Checksum      uint16
	UrgentPointer uint16
}

// ParseTCP checks the segment b (an IP payload): it must hold the fixed
// header, and the Data Offset must cover it and fit in b. It does not look
// at the options (ParseTCPOptions) or the checksum (IsChecksumValid).
func ParseTCP(b []byte) (TCP, DropReason) {
	if len(b) < TCPMinimumSize {
		return nil, DropTruncated
	}
	t := TCP(b)
	if off := t.DataOffset(); off < TCPMinimumSize || off > len(b) {
		return nil, DropBadDataOffset
	}
	return t, DropNone
}

// SourcePort returns the Source Port.
func (b TCP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[tcpSourcePort:]) }

// DestinationPort returns the Destination Port.
func (b TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[tcpDestinationPort:]) }

// SequenceNumber returns the Sequence Number.
func (b TCP) SequenceNumber() uint32 { return binary.BigEndian.Uint32(b[tcpSequenceNumber:]) }

// AckNumber returns the Acknowledgment Number.
func (b TCP) AckNumber() uint32 { return binary.BigEndian.Uint32(b[tcpAckNumber:]) }

// DataOffset returns the header length in bytes, options included (the
// field counts 32-bit words).
func (b TCP) DataOffset() int { return int(b[tcpDataOffset]>>4) * 4 }

// Flags returns the control bits.
func (b TCP) Flags() TCPFlags { return TCPFlags(b[tcpFlags]) }

// Window returns the Window field, unscaled.
func (b TCP) Window() uint16 { return binary.BigEndian.Uint16(b[tcpWindow:]) }

// Checksum returns the Checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// UrgentPointer returns the Urgent Pointer.
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[tcpUrgentPointer:]) }

// Options returns the option bytes between the fixed header and the data.
func (b TCP) Options() []byte { return b[tcpOptions:b.DataOffset()] }

// Payload returns the data after the header.
func (b TCP) Payload() []byte { return b[b.DataOffset():] }

// SetSourcePort sets the Source Port.
func (b TCP) SetSourcePort(v uint16) { binary.BigEndian.PutUint16(b[tcpSourcePort:], v) }

// SetDestinationPort sets the Destination Port.
func (b TCP) SetDestinationPort(v uint16) {
	binary.BigEndian.PutUint16(b[tcpDestinationPort:], v)
}

// SetSequenceNumber sets the Sequence Number.
func (b TCP) SetSequenceNumber(v uint32) {
	binary.BigEndian.PutUint32(b[tcpSequenceNumber:], v)
}

// SetAckNumber sets the Acknowledgment Number.
func (b TCP) SetAckNumber(v uint32) { binary.BigEndian.PutUint32(b[tcpAckNumber:], v) }

// SetDataOffset sets the header length, in bytes (a multiple of 4).
func (b TCP) SetDataOffset(n int) { b[tcpDataOffset] = uint8(n/4) << 4 }

// SetFlags sets the control bits.
func (b TCP) SetFlags(f TCPFlags) { b[tcpFlags] = uint8(f) }

// SetWindow sets the Window field.
func (b TCP) SetWindow(v uint16) { binary.BigEndian.PutUint16(b[tcpWindow:], v) }

// SetChecksum sets the Checksum field.
func (b TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], v) }

// SetUrgentPointer sets the Urgent Pointer.
func (b TCP) SetUrgentPointer(v uint16) { binary.BigEndian.PutUint16(b[tcpUrgentPointer:], v) }

// ComputeChecksum returns the checksum the segment (all of b) should carry,
// given the pseudo-header sum (checksum.PseudoHeaderIPv4 with ProtocolTCP
// and len(b)), whatever its Checksum field holds now.
func (b TCP) ComputeChecksum(pseudoHeaderSum uint16) uint16 {
	s := checksum.Sum(b[:tcpChecksum], pseudoHeaderSum)
	return ^checksum.Sum(b[tcpChecksum+2:], s)
}

// IsChecksumValid reports whether the checksum of the segment (all of b)
// verifies against the pseudo-header sum.
func (b TCP) IsChecksumValid(pseudoHeaderSum uint16) bool {
	return checksum.Sum(b, pseudoHeaderSum) == 0xffff
}

// Fields returns the fixed header's content.
func (b TCP) Fields() TCPFields {
	return TCPFields{
		SourcePort:      b.SourcePort(),
		DestinationPort: b.DestinationPort(),
		SequenceNumber:  b.SequenceNumber(),
		AckNumber:       b.AckNumber(),
		DataOffset:      b.DataOffset(),
		Flags:           b.Flags(),
		Window:          b.Window(),
		Checksum:        b.Checksum(),
		UrgentPointer:   b.UrgentPointer(),
	}
}

// Encode writes the fixed header described by f at the start of b, which
// must hold f.DataOffset bytes; the options, if any, follow at b[20:]. The
// reserved bits are zero.
func (b TCP) Encode(f *TCPFields) {
	_ = b[f.DataOffset-1]
	binary.BigEndian.PutUint16(b[tcpSourcePort:], f.SourcePort)
	binary.BigEndian.PutUint16(b[tcpDestinationPort:], f.DestinationPort)
	binary.BigEndian.PutUint32(b[tcpSequenceNumber:], f.SequenceNumber)
	binary.BigEndian.PutUint32(b[tcpAckNumber:], f.AckNumber)
	b[tcpDataOffset] = uint8(f.DataOffset/4) << 4
	b[tcpFlags] = uint8(f.Flags)
	binary.BigEndian.PutUint16(b[tcpWindow:], f.Window)
	binary.BigEndian.PutUint16(b[tcpChecksum:], f.Checksum)
	binary.BigEndian.PutUint16(b[tcpUrgentPointer:], f.UrgentPointer)
}
