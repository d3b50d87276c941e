// Package frametest builds Ethernet frames for tests (nicq and its
// drivers, the runtime, the command's load tests): well-formed IPv4 and IPv6 UDP frames with correct checksums (so a
// reader such as tcpdump decodes them, and a bit flip is detectable), and
// an ARP broadcast. It is test support, not a protocol implementation; the
// stack owns protocols.
package frametest

import (
	"encoding/binary"
)

// MAC addresses for tests: locally administered unicast addresses, and the
// broadcast address.
var (
	MACA      = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	MACB      = [6]byte{0x02, 0, 0, 0, 0, 0x0b}
	MACC      = [6]byte{0x02, 0, 0, 0, 0, 0x0c}
	Broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// UDP4 describes an Ethernet/IPv4/UDP frame.
type UDP4 struct {
	DstMAC, SrcMAC   [6]byte
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
	Payload          []byte
	// MinFrame, if set, pads the frame with zeros to this length (60 is
	// Ethernet's minimum without FCS).
	MinFrame int
}

// Frame returns the frame's bytes.
func (u UDP4) Frame() []byte {
	return u.AppendTo(nil)
}

// AppendTo appends the frame to dst and returns the result.
func (u UDP4) AppendTo(dst []byte) []byte {
	start := len(dst)
	ipLen := 20 + 8 + len(u.Payload)
	dst = append(dst, u.DstMAC[:]...)
	dst = append(dst, u.SrcMAC[:]...)
	dst = append(dst, 0x08, 0x00)
	ip := len(dst)
	dst = append(dst,
		0x45, 0, byte(ipLen>>8), byte(ipLen), // version, IHL, TOS, total length
		0, 1, 0x40, 0, // id 1, don't fragment
		64, 17, 0, 0, // TTL, UDP, checksum
	)
	dst = append(dst, u.Src[:]...)
	dst = append(dst, u.Dst[:]...)
	binary.BigEndian.PutUint16(dst[ip+10:], ^fold(sum(0, dst[ip:ip+20])))
	l4 := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, u.SrcPort)
	dst = binary.BigEndian.AppendUint16(dst, u.DstPort)
	dst = binary.BigEndian.AppendUint16(dst, uint16(8+len(u.Payload)))
	dst = append(dst, 0, 0)
	dst = append(dst, u.Payload...)
	pseudo := sum(0, u.Src[:])
	pseudo = sum(pseudo, u.Dst[:])
	pseudo += 17 + uint32(8+len(u.Payload))
	c := ^fold(sum(pseudo, dst[l4:]))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(dst[l4+6:], c)
	for len(dst)-start < u.MinFrame {
		dst = append(dst, 0)
	}
	return dst
}

// UDP6 describes an Ethernet/IPv6/UDP frame.
type UDP6 struct {
	DstMAC, SrcMAC   [6]byte
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Payload          []byte
}

// Frame returns the frame's bytes.
func (u UDP6) Frame() []byte {
	l4len := 8 + len(u.Payload)
	var dst []byte
	dst = append(dst, u.DstMAC[:]...)
	dst = append(dst, u.SrcMAC[:]...)
	dst = append(dst, 0x86, 0xdd)
	dst = append(dst, 0x60, 0, 0, 0, byte(l4len>>8), byte(l4len), 17, 64)
	dst = append(dst, u.Src[:]...)
	dst = append(dst, u.Dst[:]...)
	l4 := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, u.SrcPort)
	dst = binary.BigEndian.AppendUint16(dst, u.DstPort)
	dst = binary.BigEndian.AppendUint16(dst, uint16(l4len))
	dst = append(dst, 0, 0)
	dst = append(dst, u.Payload...)
	pseudo := sum(0, u.Src[:])
	pseudo = sum(pseudo, u.Dst[:])
	pseudo += 17 + uint32(l4len)
	c := ^fold(sum(pseudo, dst[l4:]))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(dst[l4+6:], c)
	return dst
}

// ARPRequest returns a broadcast ARP request from mac/ip asking for target.
func ARPRequest(mac [6]byte, ip, target [4]byte) []byte {
	var dst []byte
	dst = append(dst, Broadcast[:]...)
	dst = append(dst, mac[:]...)
	dst = append(dst, 0x08, 0x06)
	dst = append(dst, 0, 1, 0x08, 0, 6, 4, 0, 1)
	dst = append(dst, mac[:]...)
	dst = append(dst, ip[:]...)
	dst = append(dst, 0, 0, 0, 0, 0, 0)
	dst = append(dst, target[:]...)
	for len(dst) < 60 {
		dst = append(dst, 0)
	}
	return dst
}

// ChecksumsValid reports whether frame is an Ethernet/IPv4/UDP frame whose
// IPv4 header checksum and UDP checksum are both correct, as UDP4 builds
// it. Tests use it to check that an injected bit flip is detectable.
func ChecksumsValid(frame []byte) bool {
	if len(frame) < 14+20+8 || frame[12] != 0x08 || frame[13] != 0x00 {
		return false
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl {
		return false
	}
	if fold(sum(0, ip[:ihl])) != 0xffff {
		return false
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total < ihl+8 || total > len(ip) || ip[9] != 17 {
		return false
	}
	udp := ip[ihl:total]
	if int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return false
	}
	pseudo := sum(0, ip[12:20])
	pseudo += 17 + uint32(len(udp))
	return fold(sum(pseudo, udp)) == 0xffff
}

// sum adds b as big-endian 16-bit words to acc (RFC 1071), unfolded.
func sum(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
