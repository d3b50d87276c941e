package header

import (
	"encoding/binary"
	"net/netip"
)

// ARPOp is the ARP operation code (ar$op, RFC 826).
type ARPOp uint16

// ARP operations.
const (
	ARPRequest ARPOp = 1
	ARPReply   ARPOp = 2
)

const (
	// ARPSize is the size of an ARP packet for Ethernet and IPv4.
	ARPSize = 28
	// ARPHardwareEthernet is ar$hrd for Ethernet.
	ARPHardwareEthernet = 1

	arpHardwareType          = 0  // ar$hrd
	arpProtocolType          = 2  // ar$pro
	arpHardwareAddressLength = 4  // ar$hln
	arpProtocolAddressLength = 5  // ar$pln
	arpOp                    = 6  // ar$op
	arpSenderHardwareAddress = 8  // ar$sha
	arpSenderProtocolAddress = 14 // ar$spa
	arpTargetHardwareAddress = 18 // ar$tha
	arpTargetProtocolAddress = 24 // ar$tpa
)

// ARP is an ARP packet (RFC 826) resolving IPv4 addresses to Ethernet
// addresses, the only kind the stack speaks.
type ARP []byte

// ARPFields is the content of an ARP packet for Ethernet and IPv4; Encode
// fills in the hardware and protocol types and lengths.
type ARPFields struct {
	Op                    ARPOp
	SenderHardwareAddress MAC
	SenderProtocolAddress [4]byte
	TargetHardwareAddress MAC
	TargetProtocolAddress [4]byte
}

// ParseARP checks that b holds an ARP request or reply for Ethernet and
// IPv4 and returns the view of its first ARPSize bytes (the rest is link
// padding).
func ParseARP(b []byte) (ARP, DropReason) {
	if len(b) < ARPSize {
		return nil, DropTruncated
	}
	a := ARP(b[:ARPSize])
	if a.HardwareType() != ARPHardwareEthernet || a.ProtocolType() != EtherTypeIPv4 ||
		a.HardwareAddressLength() != 6 || a.ProtocolAddressLength() != 4 {
		return nil, DropBadARP
	}
	if op := a.Op(); op != ARPRequest && op != ARPReply {
		return nil, DropBadARP
	}
	return a, DropNone
}

// HardwareType returns ar$hrd.
func (b ARP) HardwareType() uint16 { return binary.BigEndian.Uint16(b[arpHardwareType:]) }

// ProtocolType returns ar$pro, an EtherType.
func (b ARP) ProtocolType() uint16 { return binary.BigEndian.Uint16(b[arpProtocolType:]) }

// HardwareAddressLength returns ar$hln.
func (b ARP) HardwareAddressLength() uint8 { return b[arpHardwareAddressLength] }

// ProtocolAddressLength returns ar$pln.
func (b ARP) ProtocolAddressLength() uint8 { return b[arpProtocolAddressLength] }

// Op returns ar$op.
func (b ARP) Op() ARPOp { return ARPOp(binary.BigEndian.Uint16(b[arpOp:])) }

// SenderHardwareAddress returns ar$sha.
func (b ARP) SenderHardwareAddress() MAC {
	return MAC(b[arpSenderHardwareAddress : arpSenderHardwareAddress+6])
}

// SenderProtocolAddress returns ar$spa.
func (b ARP) SenderProtocolAddress() [4]byte {
	return [4]byte(b[arpSenderProtocolAddress : arpSenderProtocolAddress+4])
}

// TargetHardwareAddress returns ar$tha.
func (b ARP) TargetHardwareAddress() MAC {
	return MAC(b[arpTargetHardwareAddress : arpTargetHardwareAddress+6])
}

// TargetProtocolAddress returns ar$tpa.
func (b ARP) TargetProtocolAddress() [4]byte {
	return [4]byte(b[arpTargetProtocolAddress : arpTargetProtocolAddress+4])
}

// SenderAddr returns ar$spa as a netip.Addr.
func (b ARP) SenderAddr() netip.Addr { return netip.AddrFrom4(b.SenderProtocolAddress()) }

// TargetAddr returns ar$tpa as a netip.Addr.
func (b ARP) TargetAddr() netip.Addr { return netip.AddrFrom4(b.TargetProtocolAddress()) }

// IsGratuitous reports whether the packet announces its sender's own
// address (ar$spa equals ar$tpa), as a host does at start (RFC 5227).
func (b ARP) IsGratuitous() bool {
	return b.SenderProtocolAddress() == b.TargetProtocolAddress()
}

// Fields returns the packet's content.
func (b ARP) Fields() ARPFields {
	return ARPFields{
		Op:                    b.Op(),
		SenderHardwareAddress: b.SenderHardwareAddress(),
		SenderProtocolAddress: b.SenderProtocolAddress(),
		TargetHardwareAddress: b.TargetHardwareAddress(),
		TargetProtocolAddress: b.TargetProtocolAddress(),
	}
}

// Encode writes an Ethernet/IPv4 ARP packet described by f at the start of
// b, which must hold ARPSize bytes.
func (b ARP) Encode(f *ARPFields) {
	_ = b[ARPSize-1]
	binary.BigEndian.PutUint16(b[arpHardwareType:], ARPHardwareEthernet)
	binary.BigEndian.PutUint16(b[arpProtocolType:], EtherTypeIPv4)
	b[arpHardwareAddressLength] = 6
	b[arpProtocolAddressLength] = 4
	binary.BigEndian.PutUint16(b[arpOp:], uint16(f.Op))
	copy(b[arpSenderHardwareAddress:], f.SenderHardwareAddress[:])
	copy(b[arpSenderProtocolAddress:], f.SenderProtocolAddress[:])
	copy(b[arpTargetHardwareAddress:], f.TargetHardwareAddress[:])
	copy(b[arpTargetProtocolAddress:], f.TargetProtocolAddress[:])
}
