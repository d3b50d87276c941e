package stack

import (
	"encoding/binary"
	"math/bits"
)

// isn returns the initial send sequence number of a connection (RFC 6528):
// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M
// is a clock ticking every 4 µs and F is SipHash-2-4 keyed by
// TCPConfig.ISNKey. The clock keeps successive incarnations of one tuple
// moving forward through sequence space; the keyed hash keeps an off-path
// attacker from guessing the ISN of a tuple it cannot see.
func (t *tcpTable) isn(id tcpTuple, now int64) uint32 {
	var buf [36]byte
	m := id.appendAddrs(buf[:0])
	m = binary.BigEndian.AppendUint16(m, id.localPort)
	m = binary.BigEndian.AppendUint16(m, id.remotePort)
	k0 := binary.LittleEndian.Uint64(t.cfg.ISNKey[0:8])
	k1 := binary.LittleEndian.Uint64(t.cfg.ISNKey[8:16])
	return uint32(now/4000) + uint32(sipHash24(k0, k1, m))
}

// appendAddrs appends the tuple's local then remote address to m, 4 bytes
// each for IPv4 and 16 for IPv6: the input of the keyed hashes.
func (id *tcpTuple) appendAddrs(m []byte) []byte {
	if id.v6() {
		return append(append(m, id.localAddr[:]...), id.remoteAddr[:]...)
	}
	return append(append(m, id.localAddr[12:]...), id.remoteAddr[12:]...)
}

// tsOffset is what a connection adds to the millisecond clock for its
// TSval: a keyed hash of the address pair alone (RFC 7323 5.4, as Linux
// does), so that successive connections between two hosts send ever newer
// timestamps and a SYN reopening a tuple in TIME-WAIT passes the RFC 6191
// check, while an off-path observer learns nothing of the clock.
func (t *tcpTable) tsOffset(id tcpTuple) uint32 {
	var buf [33]byte
	m := append(id.appendAddrs(buf[:0]), 'T') // a different message from any ISN input
	k0 := binary.LittleEndian.Uint64(t.cfg.ISNKey[0:8])
	k1 := binary.LittleEndian.Uint64(t.cfg.ISNKey[8:16])
	return uint32(sipHash24(k0, k1, m))
}

// flowLabel is the IPv6 Flow Label of a connection's packets (RFC 6437
// 3): a keyed hash of its tuple, 20 bits, never 0 (0 means no label); 0
// for IPv4.
func (t *tcpTable) flowLabel(id *tcpTuple) uint32 {
	if !id.v6() {
		return 0
	}
	var buf [36]byte
	m := id.appendAddrs(buf[:0])
	m = binary.BigEndian.AppendUint16(m, id.localPort)
	m = binary.BigEndian.AppendUint16(m, id.remotePort)
	k0 := binary.LittleEndian.Uint64(t.cfg.ISNKey[0:8]) ^ 0x666c6f77 // a different function from the ISN's
	k1 := binary.LittleEndian.Uint64(t.cfg.ISNKey[8:16])
	return max(uint32(sipHash24(k0, k1, m))&0xfffff, 1)
}

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein) of m under the key
// (k0, k1), both read little-endian as the reference does.
func sipHash24(k0, k1 uint64, m []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(m)
	for len(m) >= 8 {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
		m = m[8:]
	}
	last := uint64(n) << 56
	for i, b := range m {
		last |= uint64(b) << (8 * i)
	}
	v3 ^= last
	round()
	round()
	v0 ^= last
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
