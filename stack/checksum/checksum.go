package checksum

import (
	"encoding/binary"
	"math/bits"
)

// Sum returns the 16-bit one's complement sum of b, read as big-endian 16-bit
// words, added to initial. An odd final byte is the high byte of a word whose
// low byte is zero (RFC 1071 section 4.1), so a sum chained over several
// slices is right only if every slice but the last has an even length; use
// Accumulator for slices of any length.
func Sum(b []byte, initial uint16) uint16 {
	// Work on byte-swapped words: loading little-endian swaps every 16-bit
	// word, and the swapped sum swapped back is the sum (RFC 1071 2(B)).
	acc := sumLE(b, uint64(bits.ReverseBytes16(initial)))
	return bits.ReverseBytes16(fold(acc))
}

// Checksum returns the value for a checksum field covering b: the
// complement of Sum(b, initial).
func Checksum(b []byte, initial uint16) uint16 {
	return ^Sum(b, initial)
}

// sumLE adds b, as little-endian 64-bit words, to acc with end-around carry
// deferred: carries out of bit 63 are counted and added back once at the end.
func sumLE(b []byte, acc uint64) uint64 {
	var carries, c uint64
	// 64 bytes per iteration: one carry chain of eight additions. The
	// carry flag cannot live across loop iterations (the loop test
	// clobbers it), so it is collected once per chain.
	for len(b) >= 64 {
		_ = b[63] // one bounds check for the eight loads
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), c)
		carries += c
		b = b[64:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		carries += c
		b = b[8:]
	}
	// The last 0-7 bytes, placed where a little-endian load of a zero-
	// padded 8-byte word would put them.
	var tail uint64
	switch n := len(b); {
	case n >= 4:
		tail = uint64(binary.LittleEndian.Uint32(b))
		if n >= 6 {
			tail |= uint64(binary.LittleEndian.Uint16(b[4:])) << 32
		}
		if n&1 != 0 {
			tail |= uint64(b[n-1]) << (8 * (n - 1))
		}
	case n >= 2:
		tail = uint64(binary.LittleEndian.Uint16(b))
		if n == 3 {
			tail |= uint64(b[2]) << 16
		}
	case n == 1:
		tail = uint64(b[0])
	}
	acc, c = bits.Add64(acc, tail, 0)
	carries += c
	acc, c = bits.Add64(acc, carries, 0)
	// If that carried, acc is now below carries, so adding 1 cannot.
	return acc + c
}

// fold reduces a 64-bit one's complement accumulator to 16 bits.
func fold(x uint64) uint16 {
	x = x>>32 + x&0xffffffff // < 2^33
	x = x>>32 + x&0xffffffff // < 2^32
	x = x>>16 + x&0xffff     // <= 0x1fffe
	x = x>>16 + x&0xffff     // <= 0xffff
	return uint16(x)
}

// Combine returns the one's complement sum of a and b: the sum over two
// even-length pieces of data is Combine of their sums.
func Combine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderIPv4 returns the sum over the IPv4 pseudo-header that the TCP
// and UDP checksums cover (RFC 793 section 3.1, RFC 768): source and
// destination address, zero, protocol, and the TCP or UDP length (header and
// data). It is the initial value for Sum over the segment or datagram.
func PseudoHeaderIPv4(src, dst [4]byte, protocol uint8, length uint16) uint16 {
	s := uint32(src[0])<<8 | uint32(src[1])
	s += uint32(src[2])<<8 | uint32(src[3])
	s += uint32(dst[0])<<8 | uint32(dst[1])
	s += uint32(dst[2])<<8 | uint32(dst[3])
	s += uint32(protocol)
	s += uint32(length)
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// PseudoHeaderIPv6 returns the sum over the IPv6 pseudo-header (RFC 8200
// section 8.1): source and destination address, the upper-layer packet
// length and the next header value.
func PseudoHeaderIPv6(src, dst [16]byte, nextHeader uint8, length uint32) uint16 {
	var s uint64
	s += uint64(binary.BigEndian.Uint32(src[0:4]))
	s += uint64(binary.BigEndian.Uint32(src[4:8]))
	s += uint64(binary.BigEndian.Uint32(src[8:12]))
	s += uint64(binary.BigEndian.Uint32(src[12:16]))
	s += uint64(binary.BigEndian.Uint32(dst[0:4]))
	s += uint64(binary.BigEndian.Uint32(dst[4:8]))
	s += uint64(binary.BigEndian.Uint32(dst[8:12]))
	s += uint64(binary.BigEndian.Uint32(dst[12:16]))
	s += uint64(length)
	s += uint64(nextHeader)
	return fold(s)
}

// Update returns the checksum field that results when a 16-bit field covered
// by checksum changes from oldField to newField, without recomputing the
// sum (RFC 1624 equation 3: HC' = ~(~HC + ~m + m')).
//
// Equation 3 rather than RFC 1141's HC' = HC + m + ~m' or equation 2's
// subtraction: those can yield 0xffff where a full recomputation yields
// 0x0000 (RFC 1624 section 3). The result equals a full recomputation
// whenever the covered data is not all zeros afterwards, which no IPv4,
// TCP or UDP header can be (the version field, or the pseudo-header's
// protocol, is never zero).
func Update(checksum, oldField, newField uint16) uint16 {
	return ^Combine(Combine(^checksum, ^oldField), newField)
}

// Update32 is Update for a 32-bit field, such as an IPv4 address in a TCP or
// UDP pseudo-header or a TCP sequence number, given as its big-endian value.
func Update32(checksum uint16, oldField, newField uint32) uint16 {
	s := Combine(^checksum, ^uint16(oldField>>16))
	s = Combine(s, ^uint16(oldField))
	s = Combine(s, uint16(newField>>16))
	s = Combine(s, uint16(newField))
	return ^s
}

// Accumulator sums data that arrives in slices of any length, such as a
// header in one buffer and its payload in another: a slice that starts at an
// odd offset of the whole is summed byte-swapped, which is the same as
// shifting it by one byte (RFC 1071 section 2(B)). The zero value is an
// empty sum.
type Accumulator struct {
	sum uint16
	odd bool // an odd number of bytes has been added so far
}

// NewAccumulator returns an Accumulator whose sum starts at initial, such as a
// pseudo-header sum.
func NewAccumulator(initial uint16) Accumulator {
	return Accumulator{sum: initial}
}

// Add adds b, which follows the bytes added so far.
func (a *Accumulator) Add(b []byte) {
	s := Sum(b, 0)
	if a.odd {
		s = bits.ReverseBytes16(s)
	}
	a.sum = Combine(a.sum, s)
	a.odd = a.odd != (len(b)&1 == 1)
}

// Sum returns the one's complement sum of everything added.
func (a Accumulator) Sum() uint16 { return a.sum }
