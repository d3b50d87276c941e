// IPv6 extension headers (RFC 8200 section 4). The fixed header is in
// ipv6.go; this file walks the chain of extension headers after it to the
// upper-layer header, bounded and without allocating, and reads and writes
// the Fragment header. ICMPv6 and NDP are in icmpv6.go and ndp.go, the IPv6
// address helpers (solicited-node, EUI-64) in ipv6addr.go.

package header

import "encoding/binary"

// Next Header values of the IPv6 extension headers (IANA "Assigned Internet
// Protocol Numbers"), and No Next Header.
const (
	ProtocolIPv6HopByHop           uint8 = 0  // Hop-by-Hop Options, RFC 8200 4.3
	ProtocolIPv6Routing            uint8 = 43 // Routing, RFC 8200 4.4
	ProtocolIPv6Fragment           uint8 = 44 // Fragment, RFC 8200 4.5
	ProtocolESP                    uint8 = 50 // Encapsulating Security Payload, RFC 4303
	ProtocolAH                     uint8 = 51 // Authentication Header, RFC 4302
	ProtocolIPv6NoNextHeader       uint8 = 59 // nothing follows, RFC 8200 4.7
	ProtocolIPv6DestinationOptions uint8 = 60 // Destination Options, RFC 8200 4.6
)

const (
	// IPv6MaxExtensionHeaders bounds a walk of the extension header chain:
	// a packet with more is dropped (IPv6ExtTooMany). RFC 8200 4.1 lists
	// at most 7 kinds, each once, Destination Options twice.
	IPv6MaxExtensionHeaders = 8
	// IPv6MaximumPayloadLength is the largest Payload Length (no jumbograms).
	IPv6MaximumPayloadLength = 65535

	// IPv6FragmentSize is the size of the Fragment header.
	IPv6FragmentSize = 8

	ipv6FragmentNextHeader     = 0
	ipv6FragmentOffsetFlags    = 2
	ipv6FragmentIdentification = 4
	ipv6FragmentMoreFragments  = 1
	ipv6FragmentOffsetMask     = 0xfff8 // 13 bits of 8-octet units, above Res and M

	// Option types of Hop-by-Hop and Destination Options (RFC 8200 4.2).
	IPv6OptionPad1 uint8 = 0
	IPv6OptionPadN uint8 = 1
)

// An IPv6ExtError says why a walk of the extension header chain stopped
// short of the upper-layer header. IPv6ExtOK, the zero value, means it did
// not. Like DropReason it is a small dense integer (NumIPv6ExtErrors), so a
// stack can count each in an array, and a walk returns it in a struct
// rather than as an error interface, so that nothing allocates.
type IPv6ExtError uint8

const (
	// IPv6ExtOK: the walk reached an upper-layer header (or a fragment
	// to reassemble, or No Next Header).
	IPv6ExtOK IPv6ExtError = iota
	// IPv6ExtTruncated: a header runs past the end of the packet.
	IPv6ExtTruncated
	// IPv6ExtTooMany: more than IPv6MaxExtensionHeaders headers.
	IPv6ExtTooMany
	// IPv6ExtHopByHopNotFirst: a Hop-by-Hop Options header other than
	// right after the fixed header (RFC 8200 4.1: answered as an
	// unrecognized Next Header, ICMPv6 Parameter Problem code 1).
	IPv6ExtHopByHopNotFirst
	// IPv6ExtUnknownNextHeader: a Next Header value that is neither an
	// extension header nor an upper layer this package parses (RFC 8200
	// 4: Parameter Problem code 1 pointing at that Next Header field).
	IPv6ExtUnknownNextHeader
	// IPv6ExtOptionDiscard: an option of unknown type whose two high
	// bits are 01, "discard the packet" silently (RFC 8200 4.2).
	IPv6ExtOptionDiscard
	// IPv6ExtOptionDiscardSendICMP: unknown option type, high bits 10:
	// discard and send Parameter Problem code 2 pointing at the option
	// type, even to a multicast destination.
	IPv6ExtOptionDiscardSendICMP
	// IPv6ExtOptionDiscardSendICMPUnlessMulticast: unknown option type,
	// high bits 11: as 10, but only if the destination is not multicast.
	IPv6ExtOptionDiscardSendICMPUnlessMulticast
	// IPv6ExtBadOption: an option whose length runs past its header.
	IPv6ExtBadOption
	// IPv6ExtBadAHLength: an Authentication Header whose length is not a
	// multiple of 8 octets (RFC 4302 2.2).
	IPv6ExtBadAHLength
	// IPv6ExtRoutingSegmentsLeft: a Routing header with Segments Left
	// nonzero, which a host that routes no Routing type must answer with
	// Parameter Problem code 0 pointing at the Routing Type (RFC 8200 4.4).
	IPv6ExtRoutingSegmentsLeft
	// IPv6ExtFragmentNotMultipleOf8: a fragment with M set whose data is
	// not a multiple of 8 octets (RFC 8200 4.5: Parameter Problem code 0
	// pointing at the Payload Length).
	IPv6ExtFragmentNotMultipleOf8
	// IPv6ExtFragmentTooLong: a fragment that would end past the largest
	// Payload Length (RFC 8200 4.5: Parameter Problem code 0 pointing at
	// the Fragment Offset).
	IPv6ExtFragmentTooLong

	// NumIPv6ExtErrors is the number of IPv6ExtError values.
	NumIPv6ExtErrors
)

var ipv6ExtErrorNames = [NumIPv6ExtErrors]string{
	IPv6ExtOK:                                   "ok",
	IPv6ExtTruncated:                            "truncated",
	IPv6ExtTooMany:                              "too_many_extension_headers",
	IPv6ExtHopByHopNotFirst:                     "hop_by_hop_not_first",
	IPv6ExtUnknownNextHeader:                    "unknown_next_header",
	IPv6ExtOptionDiscard:                        "option_discard",
	IPv6ExtOptionDiscardSendICMP:                "option_discard_send_icmp",
	IPv6ExtBadOption:                            "bad_option",
	IPv6ExtBadAHLength:                          "bad_ah_length",
	IPv6ExtRoutingSegmentsLeft:                  "routing_segments_left",
	IPv6ExtFragmentNotMultipleOf8:               "fragment_not_multiple_of_8",
	IPv6ExtFragmentTooLong:                      "fragment_too_long",
	IPv6ExtOptionDiscardSendICMPUnlessMulticast: "option_discard_send_icmp_unless_multicast",
}

// String returns the error in snake case, fit for a metric label value.
func (e IPv6ExtError) String() string {
	if e < NumIPv6ExtErrors {
		return ipv6ExtErrorNames[e]
	}
	return "unknown"
}

// IsIPv6UpperLayer reports whether a Next Header value names an upper layer
// this package parses, where a walk of the extension headers ends: TCP, UDP
// and ICMPv6. (No Next Header ends it too.)
func IsIPv6UpperLayer(nextHeader uint8) bool {
	switch nextHeader {
	case ProtocolTCP, ProtocolUDP, ProtocolICMPv6:
		return true
	}
	return false
}

// IPv6ExtensionWalk is the result of walking an IPv6 packet's extension
// headers. All offsets count from the start of the packet, so Pointer is
// the Pointer of an ICMPv6 Parameter Problem as is.
type IPv6ExtensionWalk struct {
	// Protocol is the Next Header value where the walk ended: an upper
	// layer (IsIPv6UpperLayer), ProtocolIPv6NoNextHeader,
	// ProtocolIPv6Fragment for a fragment to reassemble (one that is
	// not atomic), or the value that stopped it with Err.
	Protocol uint8
	// Offset is where the header Protocol names starts: packet[Offset:]
	// is the upper-layer packet, or the Fragment header.
	Offset int
	// NextHeaderField is the offset of the Next Header field that holds
	// Protocol: 6 if there are no extension headers.
	NextHeaderField int
	// Headers is the number of extension headers read, counting a
	// Fragment header the walk stopped at.
	Headers int
	// Fragment is the offset of the last Fragment header seen, zero if
	// none: an atomic fragment (RFC 6946) is walked over, any other
	// ends the walk with Protocol ProtocolIPv6Fragment.
	Fragment int
	// AuthenticationHeader is the offset of the last Authentication
	// Header walked over (its length rule only: nothing is verified),
	// zero if none.
	AuthenticationHeader int
	// Err says why the walk stopped short, IPv6ExtOK if it did not.
	Err IPv6ExtError
	// Pointer is the offset of the octet at fault when Err is not
	// IPv6ExtOK: the Next Header field, option type, Routing Type, ...
	Pointer int
}

// WalkExtensions walks the extension headers of the packet b, from the
// fixed header's Next Header.
func (b IPv6) WalkExtensions() IPv6ExtensionWalk {
	return WalkIPv6Extensions(b, ipv6NextHeader, IPv6FixedHeaderSize)
}

// WalkIPv6Extensions walks the extension headers of the IPv6 packet pkt,
// starting with the header that the Next Header field at offset
// nextHeaderField names and that starts at offset: (6, 40) from the fixed
// header, (f, f+8) to go on after a Fragment header at f, as after
// reassembly. It walks Hop-by-Hop Options (only at offset 40), Routing
// (only with Segments Left 0: a host routes nothing), atomic Fragment,
// Destination Options and Authentication headers, processing the options
// of the Options headers by the two high bits of their types (RFC 8200
// 4.2), and stops at the first other header, after at most
// IPv6MaxExtensionHeaders. It never reads outside pkt, and never allocates.
// pkt must end where its Payload Length says (as ParseIPv6 trims it), since
// a fragment's length is what follows its Fragment header.
//
// To check that a first fragment holds the whole header chain (RFC 7112),
// walk it from its Fragment header: IPv6ExtTruncated means it does not
// (Parameter Problem code 3).
func WalkIPv6Extensions(pkt []byte, nextHeaderField, offset int) IPv6ExtensionWalk {
	var w IPv6ExtensionWalk
	field, off := nextHeaderField, offset
	for {
		if field < 0 || field >= len(pkt) || off < 0 || off > len(pkt) {
			return w.fail(IPv6ExtTruncated, field)
		}
		nh := pkt[field]
		w.Protocol, w.Offset, w.NextHeaderField = nh, off, field
		switch nh {
		case ProtocolIPv6HopByHop, ProtocolIPv6Routing, ProtocolIPv6Fragment,
			ProtocolIPv6DestinationOptions, ProtocolAH:
		case ProtocolIPv6NoNextHeader:
			return w
		default:
			if IsIPv6UpperLayer(nh) {
				return w
			}
			return w.fail(IPv6ExtUnknownNextHeader, field)
		}
		if nh == ProtocolIPv6HopByHop && off != IPv6FixedHeaderSize {
			return w.fail(IPv6ExtHopByHopNotFirst, field)
		}
		if w.Headers == IPv6MaxExtensionHeaders {
			return w.fail(IPv6ExtTooMany, field)
		}
		w.Headers++
		if off+8 > len(pkt) { // every extension header is 8 octets or more
			return w.fail(IPv6ExtTruncated, off)
		}
		n := (int(pkt[off+1]) + 1) * 8
		switch nh {
		case ProtocolIPv6Fragment:
			n = IPv6FragmentSize
		case ProtocolAH:
			n = (int(pkt[off+1]) + 2) * 4 // 32-bit words, minus 2
			if n%8 != 0 {
				return w.fail(IPv6ExtBadAHLength, off+1)
			}
		}
		if off+n > len(pkt) {
			return w.fail(IPv6ExtTruncated, off+1)
		}
		if nh == ProtocolAH {
			w.AuthenticationHeader = off
		}
		switch nh {
		case ProtocolIPv6HopByHop, ProtocolIPv6DestinationOptions:
			if e, at := walkIPv6Options(pkt[:off+n], off+2); e != IPv6ExtOK {
				return w.fail(e, at)
			}
		case ProtocolIPv6Routing:
			if pkt[off+3] != 0 { // Segments Left
				return w.fail(IPv6ExtRoutingSegmentsLeft, off+2)
			}
		case ProtocolIPv6Fragment:
			w.Fragment = off
			f := IPv6Fragment(pkt[off : off+IPv6FragmentSize])
			if !f.IsAtomic() {
				data := len(pkt) - off - IPv6FragmentSize
				if f.MoreFragments() && data%8 != 0 {
					return w.fail(IPv6ExtFragmentNotMultipleOf8, ipv6PayloadLength)
				}
				// The reassembled Payload Length: the unfragmentable
				// extension headers, then the fragmentable part.
				if off-IPv6FixedHeaderSize+int(f.FragmentOffset())+data > IPv6MaximumPayloadLength {
					return w.fail(IPv6ExtFragmentTooLong, off+ipv6FragmentOffsetFlags)
				}
				return w
			}
		}
		field, off = off, off+n
	}
}

func (w IPv6ExtensionWalk) fail(e IPv6ExtError, pointer int) IPv6ExtensionWalk {
	w.Err, w.Pointer = e, pointer
	return w
}

// walkIPv6Options processes the options of a Hop-by-Hop or Destination
// Options header, hdr[start:] (RFC 8200 4.2), and returns the error and the
// offset of the octet at fault.
func walkIPv6Options(hdr []byte, start int) (IPv6ExtError, int) {
	it := IPv6OptionIterator{opts: hdr, off: start}
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		switch o.Type >> 6 {
		case 0: // skip over this option
		case 1:
			return IPv6ExtOptionDiscard, it.at
		case 2:
			return IPv6ExtOptionDiscardSendICMP, it.at
		default:
			return IPv6ExtOptionDiscardSendICMPUnlessMulticast, it.at
		}
	}
	if it.err {
		return IPv6ExtBadOption, it.at
	}
	return IPv6ExtOK, 0
}

// An IPv6Option is one option of a Hop-by-Hop or Destination Options
// header, other than Pad1 and PadN: its type, and its data, a view into the
// header.
type IPv6Option struct {
	Type uint8
	Data []byte
}

// An IPv6OptionIterator walks the options of a Hop-by-Hop or Destination
// Options header without allocating, skipping Pad1 and PadN. The walker
// acts on unknown types itself; the iterator is for a caller that
// implements some option (Router Alert, say).
type IPv6OptionIterator struct {
	opts []byte
	off  int
	at   int // offset of the last option returned, or of the fault
	err  bool
}

// IterateIPv6Options returns an iterator over the options of hdr, a whole
// Hop-by-Hop or Destination Options header (its Next Header and Hdr Ext
// Len octets included).
func IterateIPv6Options(hdr []byte) IPv6OptionIterator {
	return IPv6OptionIterator{opts: hdr, off: 2}
}

// Next returns the next option, or false at the end of the header or at a
// malformed option, one whose length runs past the header (then Err says
// so). Every call consumes at least one octet.
func (it *IPv6OptionIterator) Next() (IPv6Option, bool) {
	for it.off < len(it.opts) {
		t := it.opts[it.off]
		it.at = it.off
		if t == IPv6OptionPad1 {
			it.off++
			continue
		}
		if it.off+2 > len(it.opts) {
			return it.fail(it.off)
		}
		end := it.off + 2 + int(it.opts[it.off+1])
		if end > len(it.opts) {
			return it.fail(it.off + 1)
		}
		o := IPv6Option{Type: t, Data: it.opts[it.off+2 : end]}
		it.off = end
		if t == IPv6OptionPadN {
			continue
		}
		return o, true
	}
	return IPv6Option{}, false
}

func (it *IPv6OptionIterator) fail(at int) (IPv6Option, bool) {
	it.err, it.at, it.off = true, at, len(it.opts)
	return IPv6Option{}, false
}

// Err reports whether the walk stopped at a malformed option.
func (it *IPv6OptionIterator) Err() bool { return it.err }

// IPv6Fragment is an IPv6 Fragment header (RFC 8200 4.5).
type IPv6Fragment []byte

// IPv6FragmentFields is the content of a Fragment header.
type IPv6FragmentFields struct {
	NextHeader uint8
	// FragmentOffset is in bytes; it must be a multiple of 8.
	FragmentOffset uint16
	MoreFragments  bool
	Identification uint32
}

// ParseIPv6Fragment checks that b holds a Fragment header and returns its
// view.
func ParseIPv6Fragment(b []byte) (IPv6Fragment, DropReason) {
	if len(b) < IPv6FragmentSize {
		return nil, DropTruncated
	}
	return IPv6Fragment(b[:IPv6FragmentSize]), DropNone
}

// NextHeader returns the Next Header: the first header of the fragmentable
// part.
func (b IPv6Fragment) NextHeader() uint8 { return b[ipv6FragmentNextHeader] }

// FragmentOffset returns the offset of the fragment's data in the
// fragmentable part of the original packet, in bytes.
func (b IPv6Fragment) FragmentOffset() uint16 {
	return binary.BigEndian.Uint16(b[ipv6FragmentOffsetFlags:]) & ipv6FragmentOffsetMask
}

// MoreFragments returns the M flag.
func (b IPv6Fragment) MoreFragments() bool {
	return b[ipv6FragmentOffsetFlags+1]&ipv6FragmentMoreFragments != 0
}

// Identification returns the Identification.
func (b IPv6Fragment) Identification() uint32 {
	return binary.BigEndian.Uint32(b[ipv6FragmentIdentification:])
}

// IsAtomic reports whether this is an atomic fragment, offset 0 and M
// clear: the whole packet, which RFC 6946 says to process as if it had no
// Fragment header, apart from any reassembly under way with the same
// Identification.
func (b IPv6Fragment) IsAtomic() bool {
	return binary.BigEndian.Uint16(b[ipv6FragmentOffsetFlags:])&(ipv6FragmentOffsetMask|ipv6FragmentMoreFragments) == 0
}

// Fields returns the header's content.
func (b IPv6Fragment) Fields() IPv6FragmentFields {
	return IPv6FragmentFields{
		NextHeader:     b.NextHeader(),
		FragmentOffset: b.FragmentOffset(),
		MoreFragments:  b.MoreFragments(),
		Identification: b.Identification(),
	}
}

// Encode writes the header described by f at the start of b, which must
// hold IPv6FragmentSize bytes, with the reserved fields zero.
func (b IPv6Fragment) Encode(f *IPv6FragmentFields) {
	_ = b[IPv6FragmentSize-1]
	b[ipv6FragmentNextHeader] = f.NextHeader
	b[ipv6FragmentNextHeader+1] = 0
	v := f.FragmentOffset & ipv6FragmentOffsetMask
	if f.MoreFragments {
		v |= ipv6FragmentMoreFragments
	}
	binary.BigEndian.PutUint16(b[ipv6FragmentOffsetFlags:], v)
	binary.BigEndian.PutUint32(b[ipv6FragmentIdentification:], f.Identification)
}
