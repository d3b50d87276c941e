package header

import (
	"encoding/binary"
	"net/netip"
)

const (
	// IPv6FixedHeaderSize is the size of the IPv6 fixed header.
	IPv6FixedHeaderSize = 40
	// IPv6Version is the value of the Version field.
	IPv6Version = 6

	ipv6VersionTCFlowLabel = 0
	ipv6PayloadLength      = 4
	ipv6NextHeader         = 6
	ipv6HopLimit           = 7
	ipv6Source             = 8
	ipv6Destination        = 24
)

// IPv6 is an IPv6 packet (RFC 8200) starting at its fixed header. Extension
// headers are part of the payload.
type IPv6 []byte

// IPv6Fields is the content of an IPv6 fixed header.
type IPv6Fields struct {
	TrafficClass  uint8
	FlowLabel     uint32 // 20 bits
	PayloadLength uint16 // everything after the fixed header
	NextHeader    uint8
	HopLimit      uint8
	Source        [16]byte
	Destination   [16]byte
}

// ParseIPv6 checks the fixed header at the start of b and returns the view
// of the packet, trimmed to the length the header claims.
func ParseIPv6(b []byte) (IPv6, DropReason) {
	if len(b) < IPv6FixedHeaderSize {
		return nil, DropTruncated
	}
	h := IPv6(b)
	if h.Version() != IPv6Version {
		return nil, DropBadVersion
	}
	n := IPv6FixedHeaderSize + int(h.PayloadLength())
	if n > len(b) {
		return nil, DropBadPayloadLength
	}
	return h[:n], DropNone
}

// Version returns the Version field.
func (b IPv6) Version() uint8 { return b[ipv6VersionTCFlowLabel] >> 4 }

// TrafficClass returns the Traffic Class (DSCP and ECN).
func (b IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(b[ipv6VersionTCFlowLabel:]) >> 4)
}

// FlowLabel returns the 20-bit Flow Label.
func (b IPv6) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(b[ipv6VersionTCFlowLabel:]) & 0xfffff
}

// PayloadLength returns the Payload Length: the bytes after the fixed
// header, extension headers included.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLength:]) }

// NextHeader returns the Next Header field.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the Hop Limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// Source returns the Source Address.
func (b IPv6) Source() [16]byte { return [16]byte(b[ipv6Source : ipv6Source+16]) }

// Destination returns the Destination Address.
func (b IPv6) Destination() [16]byte {
	return [16]byte(b[ipv6Destination : ipv6Destination+16])
}

// SourceAddr returns the Source Address as a netip.Addr.
func (b IPv6) SourceAddr() netip.Addr { return netip.AddrFrom16(b.Source()) }

// DestinationAddr returns the Destination Address as a netip.Addr.
func (b IPv6) DestinationAddr() netip.Addr { return netip.AddrFrom16(b.Destination()) }

// Payload returns the bytes after the fixed header, up to Payload Length.
func (b IPv6) Payload() []byte {
	return b[IPv6FixedHeaderSize : IPv6FixedHeaderSize+int(b.PayloadLength())]
}

// SetPayloadLength sets the Payload Length.
func (b IPv6) SetPayloadLength(v uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLength:], v) }

// SetHopLimit sets the Hop Limit.
func (b IPv6) SetHopLimit(v uint8) { b[ipv6HopLimit] = v }

// Fields returns the fixed header's content.
func (b IPv6) Fields() IPv6Fields {
	return IPv6Fields{
		TrafficClass:  b.TrafficClass(),
		FlowLabel:     b.FlowLabel(),
		PayloadLength: b.PayloadLength(),
		NextHeader:    b.NextHeader(),
		HopLimit:      b.HopLimit(),
		Source:        b.Source(),
		Destination:   b.Destination(),
	}
}

// Encode writes the fixed header described by f at the start of b, which
// must hold IPv6FixedHeaderSize bytes.
func (b IPv6) Encode(f *IPv6Fields) {
	_ = b[IPv6FixedHeaderSize-1]
	v := uint32(IPv6Version)<<28 | uint32(f.TrafficClass)<<20 | f.FlowLabel&0xfffff
	binary.BigEndian.PutUint32(b[ipv6VersionTCFlowLabel:], v)
	binary.BigEndian.PutUint16(b[ipv6PayloadLength:], f.PayloadLength)
	b[ipv6NextHeader] = f.NextHeader
	b[ipv6HopLimit] = f.HopLimit
	copy(b[ipv6Source:], f.Source[:])
	copy(b[ipv6Destination:], f.Destination[:])
}
