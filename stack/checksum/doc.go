// Package checksum owns the Internet checksum (RFC 1071) used by IPv4, ICMP,
// UDP and TCP: the fast one's complement sum over a byte slice, the IPv4
// and IPv6 pseudo-header sums that TCP and UDP cover, and the incremental
// update of a checksum when one field changes (RFC 1624), which is how a
// header rewrite (TTL, a port, an address) avoids re-reading the packet.
//
// # Conventions
//
// Sum returns the one's complement sum, not its complement: sums chain, so
// the pseudo-header sum is the initial value of the sum over the segment,
// and the value written into a header is ^Sum(...). A received header is
// correct when the sum over it, its checksum field included (plus the
// pseudo-header for TCP and UDP), is 0xffff.
//
// All values are in the wire's byte order read as a big-endian number:
// Sum([]byte{0x12, 0x34}, 0) == 0x1234, whatever the machine.
//
// # How it is fast
//
// One's complement addition is commutative and associative, and the end-
// around carry makes the sum independent of the word size used to compute
// it and of byte order (RFC 1071 section 2): a sum of 64-bit words, folded
// down to 16 bits at the end, equals the sum of 16-bit words, and a sum of
// byte-swapped words is the byte-swapped sum. So Sum loads 8 bytes at a time
// as a little-endian word (one plain load on amd64 and arm64), adds them with
// a carry chain into a 64-bit accumulator, folds once, and swaps the 16-bit
// result once.
//
// Nothing here allocates. This package must not know about packets beyond
// bytes: it has no notion of headers or buffers.
package checksum
