// The IPv6 pseudo-header (RFC 8200 8.1) that the TCP, UDP and ICMPv6
// checksums cover over IPv6, from the checksum package as the IPv4 code
// uses checksum.PseudoHeaderIPv4, and the one rule that differs from IPv4:
// a UDP checksum is not optional.

package header

import "github.com/mkstack/mkstack/stack/checksum"

// PseudoHeaderSum returns the sum over the IPv6 pseudo-header of the packet
// b for an upper-layer packet of the given protocol and length: the initial
// value for the TCP, UDP and ICMPv6 checksums (IsChecksumValid,
// ComputeChecksum). The length is the upper-layer packet's alone, without
// the extension headers before it. With a Routing header the destination
// in the pseudo-header is the final one, which is not b's Destination: use
// checksum.PseudoHeaderIPv6 with it.
func (b IPv6) PseudoHeaderSum(nextHeader uint8, upperLayerLength int) uint16 {
	return checksum.PseudoHeaderIPv6(b.Source(), b.Destination(), nextHeader, uint32(upperLayerLength))
}

// IsChecksumValidIPv6 reports whether the checksum of a UDP datagram carried
// by IPv6 verifies against the pseudo-header sum. Over IPv6 a zero Checksum
// field does not mean "no checksum": the datagram is discarded (RFC 8200
// 8.1; the tunnel exception of RFC 6935 is not made here).
func (b UDP) IsChecksumValidIPv6(pseudoHeaderSum uint16) bool {
	return b.Checksum() != 0 && b.IsChecksumValid(pseudoHeaderSum)
}
