// ICMPv6 (RFC 4443). Unlike ICMPv4's, the ICMPv6 checksum covers the IPv6
// pseudo-header (ipv6checksum.go), so like TCP's and UDP's it is checked on
// request: IsChecksumValid(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))).

package header

import (
	"encoding/binary"

	"github.com/mkstack/mkstack/stack/checksum"
)

// ICMPv6Type is the ICMPv6 Type field (RFC 4443 2.1, RFC 4861 4).
type ICMPv6Type uint8

// ICMPv6 message types.
const (
	ICMPv6DestinationUnreachable ICMPv6Type = 1
	ICMPv6PacketTooBig           ICMPv6Type = 2
	ICMPv6TimeExceeded           ICMPv6Type = 3
	ICMPv6ParameterProblem       ICMPv6Type = 4
	ICMPv6EchoRequest            ICMPv6Type = 128
	ICMPv6EchoReply              ICMPv6Type = 129
	ICMPv6RouterSolicitation     ICMPv6Type = 133
	ICMPv6RouterAdvertisement    ICMPv6Type = 134
	ICMPv6NeighborSolicitation   ICMPv6Type = 135
	ICMPv6NeighborAdvertisement  ICMPv6Type = 136
	ICMPv6Redirect               ICMPv6Type = 137
)

// IsError reports whether messages of type t are error messages: types 0 to
// 127 (RFC 4443 2.1). They quote the invoking packet and are matched to the
// flow that sent it.
func (t ICMPv6Type) IsError() bool { return t < 128 }

// ICMPv6Code is the ICMPv6 Code field; its meaning depends on the type.
type ICMPv6Code uint8

// Codes of ICMPv6DestinationUnreachable (RFC 4443 3.1).
const (
	ICMPv6NoRoute                ICMPv6Code = 0
	ICMPv6AdministrativelyDenied ICMPv6Code = 1
	ICMPv6BeyondScope            ICMPv6Code = 2
	ICMPv6AddressUnreachable     ICMPv6Code = 3
	ICMPv6PortUnreachable        ICMPv6Code = 4
	ICMPv6SourcePolicyFailed     ICMPv6Code = 5
	ICMPv6RejectRoute            ICMPv6Code = 6
)

// Codes of ICMPv6TimeExceeded (RFC 4443 3.3).
const (
	ICMPv6HopLimitExceeded   ICMPv6Code = 0
	ICMPv6ReassemblyExceeded ICMPv6Code = 1
)

// Codes of ICMPv6ParameterProblem (RFC 4443 3.4, RFC 7112).
const (
	ICMPv6ErroneousHeaderField    ICMPv6Code = 0
	ICMPv6UnrecognizedNextHeader  ICMPv6Code = 1
	ICMPv6UnrecognizedOption      ICMPv6Code = 2
	ICMPv6IncompleteFirstFragment ICMPv6Code = 3
)

const (
	// ICMPv6MinimumSize is the size of the ICMPv6 header: type, code,
	// checksum and the 4 bytes whose meaning depends on the type.
	ICMPv6MinimumSize = 8
	// IPv6MinimumMTU is the MTU every IPv6 link has at least (RFC 8200 5).
	IPv6MinimumMTU = 1280
	// ICMPv6ErrorQuoteMax is the most of the invoking packet an error
	// message quotes: as much as fits, header and all, in the minimum MTU
	// (RFC 4443 2.4 (c)), for a reply with no extension headers.
	ICMPv6ErrorQuoteMax = IPv6MinimumMTU - IPv6FixedHeaderSize - ICMPv6MinimumSize

	icmpv6Type         = 0
	icmpv6Code         = 1
	icmpv6Checksum     = 2
	icmpv6RestOfHeader = 4
	icmpv6Identifier   = 4 // echo
	icmpv6Sequence     = 6 // echo
)

// ICMPv6 is an ICMPv6 message (RFC 4443) starting at its Type field.
type ICMPv6 []byte

// ICMPv6Fields is the content of an ICMPv6 header. RestOfHeader is the
// second word, whose meaning depends on the type: identifier and sequence
// number of an echo (EchoRestOfHeader), the MTU of a packet too big, the
// pointer of a parameter problem, zero (unused) for the other errors.
type ICMPv6Fields struct {
	Type         ICMPv6Type
	Code         ICMPv6Code
	RestOfHeader uint32
}

// ParseICMPv6 checks that b (an upper-layer packet of IPv6) holds the
// ICMPv6 header. The checksum is checked on request (IsChecksumValid), and
// NDP messages by ValidateNDP.
func ParseICMPv6(b []byte) (ICMPv6, DropReason) {
	if len(b) < ICMPv6MinimumSize {
		return nil, DropTruncated
	}
	return ICMPv6(b), DropNone
}

// Type returns the Type field.
func (b ICMPv6) Type() ICMPv6Type { return ICMPv6Type(b[icmpv6Type]) }

// Code returns the Code field.
func (b ICMPv6) Code() ICMPv6Code { return ICMPv6Code(b[icmpv6Code]) }

// Checksum returns the Checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpv6Checksum:]) }

// RestOfHeader returns the second 32-bit word.
func (b ICMPv6) RestOfHeader() uint32 { return binary.BigEndian.Uint32(b[icmpv6RestOfHeader:]) }

// Identifier returns the Identifier of an echo request or reply.
func (b ICMPv6) Identifier() uint16 { return binary.BigEndian.Uint16(b[icmpv6Identifier:]) }

// Sequence returns the Sequence Number of an echo request or reply.
func (b ICMPv6) Sequence() uint16 { return binary.BigEndian.Uint16(b[icmpv6Sequence:]) }

// MTU returns the MTU of a packet too big.
func (b ICMPv6) MTU() uint32 { return b.RestOfHeader() }

// Pointer returns the Pointer of a parameter problem: the offset in the
// invoking packet of the octet at fault.
func (b ICMPv6) Pointer() uint32 { return b.RestOfHeader() }

// Payload returns the bytes after the header: an echo's data, an error's
// quote of the invoking packet, or the rest of an NDP message's body.
func (b ICMPv6) Payload() []byte { return b[ICMPv6MinimumSize:] }

// SetType sets the Type field.
func (b ICMPv6) SetType(t ICMPv6Type) { b[icmpv6Type] = uint8(t) }

// SetCode sets the Code field.
func (b ICMPv6) SetCode(c ICMPv6Code) { b[icmpv6Code] = uint8(c) }

// SetChecksum sets the Checksum field.
func (b ICMPv6) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpv6Checksum:], v) }

// ComputeChecksum returns the checksum the message should carry, over the
// pseudo-header sum (IPv6.PseudoHeaderSum with ProtocolICMPv6 and len(b))
// and all of b, whatever its Checksum field holds now.
func (b ICMPv6) ComputeChecksum(pseudoHeaderSum uint16) uint16 {
	s := checksum.Sum(b[:icmpv6Checksum], pseudoHeaderSum)
	return ^checksum.Sum(b[icmpv6Checksum+2:], s)
}

// IsChecksumValid reports whether the checksum verifies against the
// pseudo-header sum.
func (b ICMPv6) IsChecksumValid(pseudoHeaderSum uint16) bool {
	return checksum.Sum(b, pseudoHeaderSum) == 0xffff
}

// Fields returns the header's content.
func (b ICMPv6) Fields() ICMPv6Fields {
	return ICMPv6Fields{Type: b.Type(), Code: b.Code(), RestOfHeader: b.RestOfHeader()}
}

// Encode writes the header described by f at the start of b, which must
// hold ICMPv6MinimumSize bytes, with a zero checksum: once the payload is in
// place, SetChecksum(ComputeChecksum(pseudoHeaderSum)).
func (b ICMPv6) Encode(f *ICMPv6Fields) {
	_ = b[ICMPv6MinimumSize-1]
	b[icmpv6Type] = uint8(f.Type)
	b[icmpv6Code] = uint8(f.Code)
	binary.BigEndian.PutUint16(b[icmpv6Checksum:], 0)
	binary.BigEndian.PutUint32(b[icmpv6RestOfHeader:], f.RestOfHeader)
}

// EncodeICMPv6Echo writes an echo request or reply (RFC 4443 4) with the
// given data at the start of b, which must hold ICMPv6MinimumSize bytes,
// and returns its length: all of data that fits in b. The checksum is zero.
func EncodeICMPv6Echo(b []byte, t ICMPv6Type, identifier, sequence uint16, data []byte) int {
	ICMPv6(b).Encode(&ICMPv6Fields{Type: t, RestOfHeader: EchoRestOfHeader(identifier, sequence)})
	return ICMPv6MinimumSize + copy(b[ICMPv6MinimumSize:], data)
}

// EncodeICMPv6Error writes an error message at the start of b, which must
// hold ICMPv6MinimumSize bytes, quoting as much of the invoking packet (from
// its IPv6 header) as fits in b and in ICMPv6ErrorQuoteMax, and returns its
// length. The checksum is zero.
func EncodeICMPv6Error(b []byte, t ICMPv6Type, c ICMPv6Code, restOfHeader uint32, invoking []byte) int {
	ICMPv6(b).Encode(&ICMPv6Fields{Type: t, Code: c, RestOfHeader: restOfHeader})
	q := b[ICMPv6MinimumSize:]
	if len(q) > ICMPv6ErrorQuoteMax {
		q = q[:ICMPv6ErrorQuoteMax]
	}
	return ICMPv6MinimumSize + copy(q, invoking)
}

// EncodeICMPv6DestinationUnreachable writes a destination unreachable (RFC
// 4443 3.1) as EncodeICMPv6Error does.
func EncodeICMPv6DestinationUnreachable(b []byte, c ICMPv6Code, invoking []byte) int {
	return EncodeICMPv6Error(b, ICMPv6DestinationUnreachable, c, 0, invoking)
}

// EncodeICMPv6PacketTooBig writes a packet too big with the next-hop MTU
// (RFC 4443 3.2) as EncodeICMPv6Error does.
func EncodeICMPv6PacketTooBig(b []byte, mtu uint32, invoking []byte) int {
	return EncodeICMPv6Error(b, ICMPv6PacketTooBig, 0, mtu, invoking)
}

// EncodeICMPv6TimeExceeded writes a time exceeded (RFC 4443 3.3) as
// EncodeICMPv6Error does.
func EncodeICMPv6TimeExceeded(b []byte, c ICMPv6Code, invoking []byte) int {
	return EncodeICMPv6Error(b, ICMPv6TimeExceeded, c, 0, invoking)
}

// EncodeICMPv6ParameterProblem writes a parameter problem whose pointer is
// the offset of the octet at fault in the invoking packet (RFC 4443 3.4) as
// EncodeICMPv6Error does.
func EncodeICMPv6ParameterProblem(b []byte, c ICMPv6Code, pointer uint32, invoking []byte) int {
	return EncodeICMPv6Error(b, ICMPv6ParameterProblem, c, pointer, invoking)
}

// ICMPv6ErrorAllowed reports whether RFC 4443 2.4 (e) lets a node send an
// error of type t and code c about the packet invoking (its IPv6 header
// first, as received): not about an ICMPv6 error or redirect, nor about a
// packet sent to a multicast address (except packet too big, and parameter
// problem code 2, which RFC 8200 4.2 lets the option type decide) or as a
// link-layer multicast or broadcast, nor about one whose source does not
// name a single node (unspecified or multicast). The rate limit of 2.4 (f)
// is the caller's.
func ICMPv6ErrorAllowed(t ICMPv6Type, c ICMPv6Code, invoking IPv6, linkMulticast bool) bool {
	if len(invoking) < IPv6FixedHeaderSize {
		return false
	}
	src := invoking.Source()
	if src == ([16]byte{}) || IsIPv6Multicast(src) {
		return false
	}
	exempt := t == ICMPv6PacketTooBig || (t == ICMPv6ParameterProblem && c == ICMPv6UnrecognizedOption)
	if !exempt && (linkMulticast || IsIPv6Multicast(invoking.Destination())) {
		return false
	}
	w := invoking.WalkExtensions()
	if w.Err == IPv6ExtOK && w.Protocol == ProtocolICMPv6 && w.Offset < len(invoking) {
		if it := ICMPv6Type(invoking[w.Offset]); it.IsError() || it == ICMPv6Redirect {
			return false
		}
	}
	return true
}

// ParameterProblem returns the ICMPv6 Parameter Problem that RFC 8200 asks
// for about a packet whose walk stopped with w.Err, and whether to send one
// at all: not for a malformed or too long chain, an option whose type says
// discard silently, or (except for an option type whose high bits are 10)
// a packet sent to a multicast destination. The pointer is w.Pointer.
// ICMPv6ErrorAllowed has the last word.
func (w *IPv6ExtensionWalk) ParameterProblem(dstMulticast bool) (code ICMPv6Code, pointer uint32, send bool) {
	switch w.Err {
	case IPv6ExtUnknownNextHeader, IPv6ExtHopByHopNotFirst:
		code = ICMPv6UnrecognizedNextHeader
	case IPv6ExtOptionDiscardSendICMP:
		return ICMPv6UnrecognizedOption, uint32(w.Pointer), true
	case IPv6ExtOptionDiscardSendICMPUnlessMulticast:
		code = ICMPv6UnrecognizedOption
	case IPv6ExtRoutingSegmentsLeft, IPv6ExtFragmentNotMultipleOf8, IPv6ExtFragmentTooLong:
		code = ICMPv6ErroneousHeaderField
	default:
		return 0, 0, false
	}
	if dstMulticast {
		return 0, 0, false
	}
	return code, uint32(w.Pointer), true
}
