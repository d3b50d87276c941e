package header

import (
	"encoding/binary"

	"github.com/mkstack/mkstack/stack/checksum"
)

// ICMPv4Type is the ICMP Type field (RFC 792).
type ICMPv4Type uint8

// ICMPv4 message types.
const (
	ICMPv4EchoReply              ICMPv4Type = 0
	ICMPv4DestinationUnreachable ICMPv4Type = 3
	ICMPv4SourceQuench           ICMPv4Type = 4
	ICMPv4Redirect               ICMPv4Type = 5
	ICMPv4Echo                   ICMPv4Type = 8
	ICMPv4TimeExceeded           ICMPv4Type = 11
	ICMPv4ParameterProblem       ICMPv4Type = 12
	ICMPv4Timestamp              ICMPv4Type = 13
	ICMPv4TimestampReply         ICMPv4Type = 14
)

// IsError reports whether messages of type t report an error about a
// datagram, which they quote (RFC 1122 3.2.2): these are matched to the flow
// that sent the quoted datagram.
func (t ICMPv4Type) IsError() bool {
	switch t {
	case ICMPv4DestinationUnreachable, ICMPv4SourceQuench, ICMPv4Redirect,
		ICMPv4TimeExceeded, ICMPv4ParameterProblem:
		return true
	}
	return false
}

// ICMPv4Code is the ICMP Code field; its meaning depends on the type.
type ICMPv4Code uint8

// Codes of ICMPv4DestinationUnreachable (RFC 792, RFC 1191).
const (
	ICMPv4NetUnreachable      ICMPv4Code = 0
	ICMPv4HostUnreachable     ICMPv4Code = 1
	ICMPv4ProtocolUnreachable ICMPv4Code = 2
	ICMPv4PortUnreachable     ICMPv4Code = 3
	// ICMPv4FragmentationNeeded ("fragmentation needed and DF set")
	// carries the next-hop MTU (RFC 1191).
	ICMPv4FragmentationNeeded ICMPv4Code = 4
)

// Codes of ICMPv4TimeExceeded.
const (
	ICMPv4TTLExceeded        ICMPv4Code = 0
	ICMPv4ReassemblyExceeded ICMPv4Code = 1
)

const (
	// ICMPv4MinimumSize is the size of the ICMP header: type, code,
	// checksum and the 4 bytes whose meaning depends on the type.
	ICMPv4MinimumSize = 8

	icmpv4Type         = 0
	icmpv4Code         = 1
	icmpv4Checksum     = 2
	icmpv4RestOfHeader = 4
	icmpv4Identifier   = 4 // echo
	icmpv4Sequence     = 6 // echo
	icmpv4Pointer      = 4 // parameter problem
	icmpv4NextHopMTU   = 6 // fragmentation needed
)

// ICMPv4 is an ICMP message (RFC 792) starting at its Type field.
type ICMPv4 []byte

// ICMPv4Fields is the content of an ICMP header. RestOfHeader is the second
// word, whose meaning depends on the type: identifier and sequence number
// of an echo, the pointer of a parameter problem, the next-hop MTU in its low
// 16 bits for fragmentation needed, zero otherwise.
type ICMPv4Fields struct {
	Type         ICMPv4Type
	Code         ICMPv4Code
	RestOfHeader uint32
}

// ParseICMPv4 checks the ICMP message b (an IPv4 payload): its length and
// its checksum, which covers the whole message.
func ParseICMPv4(b []byte) (ICMPv4, DropReason) {
	if len(b) < ICMPv4MinimumSize {
		return nil, DropTruncated
	}
	if checksum.Sum(b, 0) != 0xffff {
		return nil, DropBadChecksum
	}
	return ICMPv4(b), DropNone
}

// Type returns the Type field.
func (b ICMPv4) Type() ICMPv4Type { return ICMPv4Type(b[icmpv4Type]) }

// Code returns the Code field.
func (b ICMPv4) Code() ICMPv4Code { return ICMPv4Code(b[icmpv4Code]) }

// Checksum returns the Checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpv4Checksum:]) }

// RestOfHeader returns the second 32-bit word.
func (b ICMPv4) RestOfHeader() uint32 { return binary.BigEndian.Uint32(b[icmpv4RestOfHeader:]) }

// Identifier returns the Identifier of an echo or echo reply.
func (b ICMPv4) Identifier() uint16 { return binary.BigEndian.Uint16(b[icmpv4Identifier:]) }

// Sequence returns the Sequence Number of an echo or echo reply.
func (b ICMPv4) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpv4Sequence:]) }

// Pointer returns the octet the Pointer of a parameter problem names.
func (b ICMPv4) Pointer() uint8 { return b[icmpv4Pointer] }

// NextHopMTU returns the Next-Hop MTU of fragmentation needed (RFC 1191);
// zero from a router that predates it.
func (b ICMPv4) NextHopMTU() uint16 { return binary.BigEndian.Uint16(b[icmpv4NextHopMTU:]) }

// Payload returns the bytes after the header: an echo's data, or an error's
// quote of the offending datagram (its IP header and at least 8 bytes).
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinimumSize:] }

// SetType sets the Type field.
func (b ICMPv4) SetType(t ICMPv4Type) { b[icmpv4Type] = uint8(t) }

// SetCode sets the Code field.
func (b ICMPv4) SetCode(c ICMPv4Code) { b[icmpv4Code] = uint8(c) }

// SetChecksum sets the Checksum field.
func (b ICMPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpv4Checksum:], v) }

// ComputeChecksum returns the checksum the message should carry, over all
// of b, whatever its Checksum field holds now.
func (b ICMPv4) ComputeChecksum() uint16 {
	s := checksum.Sum(b[:icmpv4Checksum], 0)
	return ^checksum.Sum(b[icmpv4Checksum+2:], s)
}

// Fields returns the header's content.
func (b ICMPv4) Fields() ICMPv4Fields {
	return ICMPv4Fields{Type: b.Type(), Code: b.Code(), RestOfHeader: b.RestOfHeader()}
}

// EchoRestOfHeader returns the RestOfHeader word of an echo or echo reply.
func EchoRestOfHeader(identifier, sequence uint16) uint32 {
	return uint32(identifier)<<16 | uint32(sequence)
}

// Encode writes the header described by f at the start of b, which must
// hold ICMPv4MinimumSize bytes, with a zero checksum: once the payload is in
// place, SetChecksum(ComputeChecksum()).
func (b ICMPv4) Encode(f *ICMPv4Fields) {
	_ = b[ICMPv4MinimumSize-1]
	b[icmpv4Type] = uint8(f.Type)
	b[icmpv4Code] = uint8(f.Code)
	binary.BigEndian.PutUint16(b[icmpv4Checksum:], 0)
	binary.BigEndian.PutUint32(b[icmpv4RestOfHeader:], f.RestOfHeader)
}
