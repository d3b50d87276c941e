package header

import (
	"encoding/binary"
	"net/netip"

	"github.com/mkstack/mkstack/stack/checksum"
)

// IP protocol numbers (the IPv4 Protocol and IPv6 Next Header fields).
const (
	ProtocolICMPv4 uint8 = 1
	ProtocolTCP    uint8 = 6
	ProtocolUDP    uint8 = 17
	ProtocolICMPv6 uint8 = 58
)

const (
	// IPv4MinimumSize is the size of an IPv4 header without options.
	IPv4MinimumSize = 20
	// IPv4MaximumHeaderSize is the largest IPv4 header: IHL 15 words.
	IPv4MaximumHeaderSize = 60
	// IPv4MaximumOptionsSize is the most option bytes a header can carry.
	IPv4MaximumOptionsSize = IPv4MaximumHeaderSize - IPv4MinimumSize
	// IPv4MaximumTotalLength is the largest datagram, fragments
	// reassembled.
	IPv4MaximumTotalLength = 65535
	// IPv4Version is the value of the Version field.
	IPv4Version = 4

	// IPv4FlagDontFragment and IPv4FlagMoreFragments are the DF and MF
	// bits of Flags (the third flag bit is reserved and must be zero).
	IPv4FlagDontFragment  uint8 = 1 << 1
	IPv4FlagMoreFragments uint8 = 1 << 0

	ipv4VersionIHL          = 0
	ipv4TOS                 = 1
	ipv4TotalLength         = 2
	ipv4Identification      = 4
	ipv4FlagsFragmentOffset = 6
	ipv4TTL                 = 8
	ipv4Protocol            = 9
	ipv4Checksum            = 10
	ipv4Source              = 12
	ipv4Destination         = 16
	ipv4Options             = 20

	ipv4FragmentOffsetMask = 0x1fff // in 8-octet units, below the 3 flag bits
)

// IPv4 is an IPv4 datagram (RFC 791) starting at its header.
type IPv4 []byte

// IPv4Fields is the content of an IPv4 header. The checksum is not a field:
// Encode computes it.
type IPv4Fields struct {
	TOS         uint8
	TotalLength uint16 // header and data, in bytes
	ID          uint16 // Identification
	Flags       uint8  // IPv4FlagDontFragment, IPv4FlagMoreFragments
	// FragmentOffset is in bytes; it must be a multiple of 8.
	FragmentOffset uint16
	TTL            uint8
	Protocol       uint8
	Source         [4]byte
	Destination    [4]byte
	// Options are copied after the fixed header; their length must be a
	// multiple of 4 and at most IPv4MaximumOptionsSize.
	Options []byte
}

// ParseIPv4 checks the IPv4 header at the start of b: version, header
// length, total length, header checksum, and that a fragment ends within the
// largest datagram. It returns the view of the datagram: b trimmed to Total
// Length, so the link layer's padding is gone. Options are not interpreted;
// Options returns them for a caller that wants to.
func ParseIPv4(b []byte) (IPv4, DropReason) {
	if len(b) < IPv4MinimumSize {
		return nil, DropTruncated
	}
	h := IPv4(b)
	if h.Version() != IPv4Version {
		return nil, DropBadVersion
	}
	hl := h.HeaderLength()
	if hl < IPv4MinimumSize || hl > len(b) {
		return nil, DropBadIHL
	}
	tl := int(h.TotalLength())
	if tl < hl || tl > len(b) {
		return nil, DropBadTotalLength
	}
	if checksum.Sum(b[:hl], 0) != 0xffff {
		return nil, DropBadChecksum
	}
	if int(h.FragmentOffset())+tl-hl > IPv4MaximumTotalLength {
		return nil, DropBadFragment
	}
	return h[:tl], DropNone
}

// Version returns the Version field.
func (b IPv4) Version() uint8 { return b[ipv4VersionIHL] >> 4 }

// IHL returns the Internet Header Length field, in 32-bit words.
func (b IPv4) IHL() uint8 { return b[ipv4VersionIHL] & 0x0f }

// HeaderLength returns the header length in bytes (IHL * 4).
func (b IPv4) HeaderLength() int { return int(b.IHL()) * 4 }

// TOS returns the Type of Service octet (DSCP and ECN).
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLength returns the Total Length field: header and data, in bytes.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLength:]) }

// ID returns the Identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4Identification:]) }

// Flags returns the 3-bit Flags field.
func (b IPv4) Flags() uint8 { return b[ipv4FlagsFragmentOffset] >> 5 }

// DontFragment reports whether the DF flag is set.
func (b IPv4) DontFragment() bool { return b.Flags()&IPv4FlagDontFragment != 0 }

// MoreFragments reports whether the MF flag is set.
func (b IPv4) MoreFragments() bool { return b.Flags()&IPv4FlagMoreFragments != 0 }

// FragmentOffset returns the fragment's offset in the original datagram, in
// bytes (the field counts 8-octet units).
func (b IPv4) FragmentOffset() uint16 {
	return (binary.BigEndian.Uint16(b[ipv4FlagsFragmentOffset:]) & ipv4FragmentOffsetMask) * 8
}

// IsFragment reports whether the datagram is a fragment: MF set or a
// non-zero offset.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsFragmentOffset:])&(ipv4FragmentOffsetMask|1<<13) != 0
}

// TTL returns the Time to Live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the Protocol field.
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the Header Checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Source returns the Source Address.
func (b IPv4) Source() [4]byte { return [4]byte(b[ipv4Source : ipv4Source+4]) }

// Destination returns the Destination Address.
func (b IPv4) Destination() [4]byte {
	return [4]byte(b[ipv4Destination : ipv4Destination+4])
}

// SourceAddr returns the Source Address as a netip.Addr.
func (b IPv4) SourceAddr() netip.Addr { return netip.AddrFrom4(b.Source()) }

// DestinationAddr returns the Destination Address as a netip.Addr.
func (b IPv4) DestinationAddr() netip.Addr { return netip.AddrFrom4(b.Destination()) }

// Options returns the option bytes between the fixed header and the data.
func (b IPv4) Options() []byte { return b[ipv4Options:b.HeaderLength()] }

// Payload returns the data after the header, up to Total Length.
func (b IPv4) Payload() []byte { return b[b.HeaderLength():b.TotalLength()] }

// PayloadLength returns Total Length less the header length.
func (b IPv4) PayloadLength() int { return int(b.TotalLength()) - b.HeaderLength() }

// ComputeChecksum returns the header checksum the header should carry,
// whatever its Checksum field holds now.
func (b IPv4) ComputeChecksum() uint16 {
	s := checksum.Sum(b[:ipv4Checksum], 0)
	return ^checksum.Sum(b[ipv4Checksum+2:b.HeaderLength()], s)
}

// IsChecksumValid reports whether the header checksum verifies.
func (b IPv4) IsChecksumValid() bool {
	return checksum.Sum(b[:b.HeaderLength()], 0) == 0xffff
}

// SetTOS sets the Type of Service octet.
func (b IPv4) SetTOS(v uint8) { b[ipv4TOS] = v }

// SetTotalLength sets the Total Length field.
func (b IPv4) SetTotalLength(v uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLength:], v) }

// SetID sets the Identification field.
func (b IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(b[ipv4Identification:], v) }

// SetFlagsFragmentOffset sets the Flags and the fragment offset, given in
// bytes (a multiple of 8).
func (b IPv4) SetFlagsFragmentOffset(flags uint8, offset uint16) {
	v := uint16(flags)<<13 | (offset/8)&ipv4FragmentOffsetMask
	binary.BigEndian.PutUint16(b[ipv4FlagsFragmentOffset:], v)
}

// SetTTL sets the Time to Live.
func (b IPv4) SetTTL(v uint8) { b[ipv4TTL] = v }

// SetProtocol sets the Protocol field.
func (b IPv4) SetProtocol(v uint8) { b[ipv4Protocol] = v }

// SetChecksum sets the Header Checksum field.
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }

// SetSource sets the Source Address.
func (b IPv4) SetSource(a [4]byte) { copy(b[ipv4Source:], a[:]) }

// SetDestination sets the Destination Address.
func (b IPv4) SetDestination(a [4]byte) { copy(b[ipv4Destination:], a[:]) }

// Fields returns the header's content; Options refers to b.
func (b IPv4) Fields() IPv4Fields {
	return IPv4Fields{
		TOS:            b.TOS(),
		TotalLength:    b.TotalLength(),
		ID:             b.ID(),
		Flags:          b.Flags(),
		FragmentOffset: b.FragmentOffset(),
		TTL:            b.TTL(),
		Protocol:       b.Protocol(),
		Source:         b.Source(),
		Destination:    b.Destination(),
		Options:        b.Options(),
	}
}

// EncodedLength returns the size of the header Encode writes for f.
func (f *IPv4Fields) EncodedLength() int { return IPv4MinimumSize + len(f.Options) }

// Encode writes the header described by f, options and header checksum
// included, at the start of b, which must hold f.EncodedLength() bytes.
// It panics if the options are not a whole number of words or too long: a
// programming error, not a condition of the wire.
func (b IPv4) Encode(f *IPv4Fields) {
	if len(f.Options)%4 != 0 || len(f.Options) > IPv4MaximumOptionsSize {
		panic("header: IPv4 options must be a multiple of 4 bytes, at most 40")
	}
	hl := f.EncodedLength()
	_ = b[hl-1]
	b[ipv4VersionIHL] = IPv4Version<<4 | uint8(hl/4)
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLength:], f.TotalLength)
	binary.BigEndian.PutUint16(b[ipv4Identification:], f.ID)
	b.SetFlagsFragmentOffset(f.Flags, f.FragmentOffset)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	binary.BigEndian.PutUint16(b[ipv4Checksum:], 0)
	copy(b[ipv4Source:], f.Source[:])
	copy(b[ipv4Destination:], f.Destination[:])
	copy(b[ipv4Options:hl], f.Options)
	binary.BigEndian.PutUint16(b[ipv4Checksum:], checksum.Checksum(b[:hl], 0))
}
