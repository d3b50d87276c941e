package header

import (
	"encoding/binary"
	"fmt"
)

// A MAC is an IEEE 802 MAC-48 address.
type MAC [6]byte

// BroadcastMAC is the Ethernet broadcast address.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == BroadcastMAC }

// IsMulticast reports whether m is a group address (the I/G bit, the least
// significant bit of the first octet, is set); broadcast is one.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// String formats m as six colon-separated hexadecimal octets.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// EtherType values (IEEE 802 numbers).
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeIPv6 uint16 = 0x86dd
	// EtherTypeVLAN is the TPID of an IEEE 802.1Q tag.
	EtherTypeVLAN uint16 = 0x8100
	// EtherTypeQinQ is the TPID of an IEEE 802.1ad service tag.
	EtherTypeQinQ uint16 = 0x88a8
)

const (
	// EthernetMinimumSize is the size of an untagged Ethernet header.
	EthernetMinimumSize = 14
	// VLANTagSize is the size of an 802.1Q tag: TPID and TCI.
	VLANTagSize = 4
	// EthernetTaggedSize is the size of an Ethernet header with one tag.
	EthernetTaggedSize = EthernetMinimumSize + VLANTagSize

	ethDestination = 0
	ethSource      = 6
	ethType        = 12
	ethTCI         = 14 // tag control information, when tagged
	ethInnerType   = 16 // the payload's EtherType, when tagged
)

// Ethernet is an Ethernet II frame, optionally with one 802.1Q or 802.1ad
// tag, starting at the destination address. It holds no FCS.
type Ethernet []byte

// EthernetFields is the content of an Ethernet header.
type EthernetFields struct {
	Destination MAC
	Source      MAC
	// Type is the payload's EtherType.
	Type uint16
	// TPID, when not zero, adds a tag with this tag protocol identifier
	// (EtherTypeVLAN or EtherTypeQinQ) holding TCI.
	TPID uint16
	// TCI is the tag control information: PCP (3 bits), DEI (1 bit) and
	// VLAN ID (12 bits).
	TCI uint16
}

// ParseEthernet checks that b holds an Ethernet header, including the tag
// if the frame is tagged, and returns the view of b.
func ParseEthernet(b []byte) (Ethernet, DropReason) {
	if len(b) < EthernetMinimumSize {
		return nil, DropTruncated
	}
	e := Ethernet(b)
	if e.Tagged() && len(b) < EthernetTaggedSize {
		return nil, DropTruncated
	}
	return e, DropNone
}

// Destination returns the destination address.
func (b Ethernet) Destination() MAC { return MAC(b[ethDestination : ethDestination+6]) }

// Source returns the source address.
func (b Ethernet) Source() MAC { return MAC(b[ethSource : ethSource+6]) }

// Type returns the EtherType field that follows the addresses: the TPID
// when the frame is tagged. PayloadType gives the payload's type either way.
func (b Ethernet) Type() uint16 { return binary.BigEndian.Uint16(b[ethType:]) }

// Tagged reports whether the frame carries an 802.1Q (or 802.1ad) tag.
func (b Ethernet) Tagged() bool {
	t := b.Type()
	return t == EtherTypeVLAN || t == EtherTypeQinQ
}

// TCI returns the tag control information of a tagged frame.
func (b Ethernet) TCI() uint16 { return binary.BigEndian.Uint16(b[ethTCI:]) }

// VLANID returns the 12-bit VLAN identifier of a tagged frame.
func (b Ethernet) VLANID() uint16 { return b.TCI() & 0x0fff }

// PCP returns the 3-bit priority code point of a tagged frame.
func (b Ethernet) PCP() uint8 { return uint8(b.TCI() >> 13) }

// PayloadType returns the EtherType of the payload: after the tag when the
// frame is tagged. With 802.1ad stacking this is the inner tag's TPID.
func (b Ethernet) PayloadType() uint16 {
	if b.Tagged() {
		return binary.BigEndian.Uint16(b[ethInnerType:])
	}
	return b.Type()
}

// HeaderLength returns the header's size: 14, or 18 when tagged.
func (b Ethernet) HeaderLength() int {
	if b.Tagged() {
		return EthernetTaggedSize
	}
	return EthernetMinimumSize
}

// Payload returns the bytes after the header.
func (b Ethernet) Payload() []byte { return b[b.HeaderLength():] }

// SetDestination sets the destination address.
func (b Ethernet) SetDestination(m MAC) { copy(b[ethDestination:], m[:]) }

// SetSource sets the source address.
func (b Ethernet) SetSource(m MAC) { copy(b[ethSource:], m[:]) }

// Fields returns the header's content.
func (b Ethernet) Fields() EthernetFields {
	f := EthernetFields{Destination: b.Destination(), Source: b.Source(), Type: b.PayloadType()}
	if b.Tagged() {
		f.TPID = b.Type()
		f.TCI = b.TCI()
	}
	return f
}

// EncodedLength returns the size of the header Encode writes for f.
func (f *EthernetFields) EncodedLength() int {
	if f.TPID != 0 {
		return EthernetTaggedSize
	}
	return EthernetMinimumSize
}

// Encode writes the header described by f at the start of b, which must
// hold f.EncodedLength() bytes.
func (b Ethernet) Encode(f *EthernetFields) {
	_ = b[f.EncodedLength()-1]
	copy(b[ethDestination:], f.Destination[:])
	copy(b[ethSource:], f.Source[:])
	if f.TPID != 0 {
		binary.BigEndian.PutUint16(b[ethType:], f.TPID)
		binary.BigEndian.PutUint16(b[ethTCI:], f.TCI)
		binary.BigEndian.PutUint16(b[ethInnerType:], f.Type)
		return
	}
	binary.BigEndian.PutUint16(b[ethType:], f.Type)
}
