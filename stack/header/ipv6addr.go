// IPv6 addresses as NDP and duplicate address detection need them: the
// solicited-node multicast group of an address (RFC 4291 2.7.1), the
// Ethernet address a multicast group maps to (RFC 2464 7), and the
// link-local address formed from a MAC's modified EUI-64 (RFC 4291
// appendix A, RFC 4862 5.3). Addresses are [16]byte, as in IPv6Fields.

package header

// IsIPv6Multicast reports whether a is a multicast address, ff00::/8.
func IsIPv6Multicast(a [16]byte) bool { return a[0] == 0xff }

// IsIPv6LinkLocalUnicast reports whether a is a link-local unicast
// address, fe80::/10.
func IsIPv6LinkLocalUnicast(a [16]byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }

// IsIPv6Unspecified reports whether a is the unspecified address, ::.
func IsIPv6Unspecified(a [16]byte) bool { return a == [16]byte{} }

// IPv6AllNodesMulticast is ff02::1, the link-local all-nodes group.
var IPv6AllNodesMulticast = [16]byte{0: 0xff, 1: 0x02, 15: 0x01}

// IPv6AllRoutersMulticast is ff02::2, the link-local all-routers group.
var IPv6AllRoutersMulticast = [16]byte{0: 0xff, 1: 0x02, 15: 0x02}

// SolicitedNodeMulticast returns the solicited-node multicast address of
// the unicast or anycast address a: ff02::1:ff00:0/104 and the low 24 bits
// of a (RFC 4291 2.7.1). Neighbor solicitations for a are sent to it.
func SolicitedNodeMulticast(a [16]byte) [16]byte {
	return [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
}

// IsSolicitedNodeMulticast reports whether a is a solicited-node multicast
// address, in ff02::1:ff00:0/104.
func IsSolicitedNodeMulticast(a [16]byte) bool {
	return [13]byte(a[:13]) == [13]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff}
}

// IPv6MulticastMAC returns the Ethernet address that packets to the
// multicast address a are sent to: 33:33 and the low 32 bits of a (RFC 2464
// 7).
func IPv6MulticastMAC(a [16]byte) MAC {
	return MAC{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

// InterfaceIDFromMAC returns the modified EUI-64 interface identifier of an
// Ethernet address: ff:fe inserted in the middle and the universal/local
// bit inverted (RFC 4291 appendix A, RFC 2464 4).
func InterfaceIDFromMAC(m MAC) [8]byte {
	return [8]byte{m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]}
}

// LinkLocalFromMAC returns the link-local address fe80::/64 with the
// modified EUI-64 interface identifier of m (RFC 4862 5.3): the tentative
// address duplicate address detection starts from.
func LinkLocalFromMAC(m MAC) [16]byte {
	a := [16]byte{0: 0xfe, 1: 0x80}
	id := InterfaceIDFromMAC(m)
	copy(a[8:], id[:])
	return a
}
