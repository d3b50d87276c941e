// Package vnet reads the virtio-net header (struct virtio_net_hdr, in
// linux/virtio_net.h) that Linux puts in front of each frame on a TAP
// opened with IFF_VNET_HDR and on a packet socket with PACKET_VNET_HDR,
// and splits the large frames the kernel hands over with it (a local
// sender's TSO/GSO, a NIC's GRO) into frames of one segment each, as the
// kernel's software GSO would: the work a device does for a stack that
// took its offloads, done in the driver so the stack sees what a wire
// carries.
//
// It is the one place under nicq that reads protocol headers, and only
// the few fields segmentation rewrites (IPv4 length, ID and checksum; TCP
// sequence number and flags; UDP length); everything else is the stack's.
package vnet

import (
	"encoding/binary"

	"github.com/mkstack/mkstack/nicq"
)

// HdrLen is the length of struct virtio_net_hdr, the header without the
// num_buffers field of mergeable receive buffers (TUNSETVNETHDRSZ and
// PACKET_VNET_HDR use this size).
const HdrLen = 10

// Header flags (VIRTIO_NET_HDR_F_*).
const (
	// FlagNeedsCsum: the checksum is partial; the field at CsumStart +
	// CsumOffset holds the pseudo-header sum and the device was to fill
	// it in. Linux's CHECKSUM_PARTIAL.
	FlagNeedsCsum = 1
	// FlagDataValid: the checksum was verified (CHECKSUM_UNNECESSARY).
	FlagDataValid = 2
)

// GSO types (VIRTIO_NET_HDR_GSO_*).
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3 // UFO: one datagram to fragment; Linux no longer makes it
	GSOTCPv6 = 4
	GSOUDPL4 = 5 // UDP_SEGMENT: datagrams of GSOSize bytes each
	GSOECN   = 0x80
)

// Hdr is a virtio-net header.
type Hdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // the headers' length, as the sender saw them
	GSOSize    uint16 // the payload of each segment
	CsumStart  uint16
	CsumOffset uint16
}

// Parse reads a header from the first HdrLen bytes of b, in the byte
// order Linux uses for a device of this host's order (the legacy virtio
// rule, which both the TAP and the packet socket follow by default). It
// reports false if b is shorter.
func Parse(b []byte) (Hdr, bool) {
	if len(b) < HdrLen {
		return Hdr{}, false
	}
	e := binary.NativeEndian
	return Hdr{
		Flags: b[0], GSOType: b[1],
		HdrLen: e.Uint16(b[2:]), GSOSize: e.Uint16(b[4:]),
		CsumStart: e.Uint16(b[6:]), CsumOffset: e.Uint16(b[8:]),
	}, true
}

// BufFlags are the buffer flags the header's checksum facts mean: a
// partial checksum (the stack accepts it unchecked) or a verified one.
func (h Hdr) BufFlags() nicq.Flags {
	var f nicq.Flags
	if h.Flags&FlagNeedsCsum != 0 {
		f |= nicq.FlagL4ChecksumPartial
	}
	if h.Flags&FlagDataValid != 0 {
		f |= nicq.FlagL4ChecksumVerified
	}
	return f
}

// GSO reports whether the frame is a large one to segment.
func (h Hdr) GSO() bool { return h.GSOType&^GSOECN != GSONone }

// Zero is the header a driver writes in front of a frame it transmits:
// no checksum to fill in, no segmentation.
var Zero [HdrLen]byte

// Ethernet, IPv4, TCP and UDP facts the segmenter needs.
const (
	ethLen       = 14
	etherTypeIP4 = 0x0800
	etherTypeIP6 = 0x86dd
	ip6HdrLen    = 40
	protoTCP     = 6
	protoUDP     = 17
	tcpFlagFIN   = 0x01
	tcpFlagPSH   = 0x08
	tcpFlagCWR   = 0x80
)

// Segmenter splits one large TCP (GSOTCPv4 over IPv4, GSOTCPv6 over IPv6)
// or UDP (GSOUDPL4) frame into frames of at most GSOSize bytes of payload
// each, with the headers copied and rewritten per segment: IPv4 total
// length, ID (consecutive, as Linux's GSO does) and header checksum, or
// IPv6 payload length; TCP sequence number, FIN and
// PSH on the last segment only, CWR on the first only; UDP length. Each
// segment's TCP or UDP checksum is left partial, the pseudo-header sum
// for its length (what the sender left for the device), so the driver
// marks the buffers nicq.FlagL4ChecksumPartial.
//
// It keeps a reference to the frame until the last segment is out: the
// caller keeps the frame's memory as it is until then. The zero value is
// idle; Init starts a frame and Next yields its segments.
type Segmenter struct {
	frame    []byte
	hdrLen   int // Ethernet + IP + TCP/UDP headers
	l4       int // offset of the TCP or UDP header
	v6       bool
	mss      int
	off      int // next payload byte, from hdrLen
	n        int // segments yielded
	tcp      bool
	id       uint16
	seq      uint32
	pseudo   uint32 // addresses and protocol, unfolded
	lastFlag uint8
}

// Init starts segmenting frame (an Ethernet frame, without the virtio-net
// header) as h describes. It reports false, leaving the segmenter idle,
// for what it cannot segment: another GSO type, a VLAN tag, IPv6
// extension headers, a segment size of 0, headers that are not what h
// says or do not fit in the frame. The caller drops such a frame and
// counts it.
func (s *Segmenter) Init(frame []byte, h Hdr) bool {
	*s = Segmenter{}
	typ := h.GSOType &^ GSOECN
	if typ != GSOTCPv4 && typ != GSOTCPv6 && typ != GSOUDPL4 || h.GSOSize == 0 || len(frame) < ethLen+20 {
		return false
	}
	var l4 int
	var proto uint8
	switch et := binary.BigEndian.Uint16(frame[12:]); {
	case et == etherTypeIP4 && frame[ethLen]>>4 == 4 && typ != GSOTCPv6:
		ihl := int(frame[ethLen]&0xf) * 4
		l4 = ethLen + ihl
		if ihl < 20 || len(frame) < l4+8 {
			return false
		}
		proto = frame[ethLen+9]
		s.pseudo = sum16(frame[ethLen+12:ethLen+20], uint32(proto))
	case et == etherTypeIP6 && frame[ethLen]>>4 == 6 && typ != GSOTCPv4:
		l4 = ethLen + ip6HdrLen
		if len(frame) < l4+8 {
			return false
		}
		proto = frame[ethLen+6] // no extension headers: Linux's TSO6 frames from TCP carry none
		s.pseudo = sum16(frame[ethLen+8:ethLen+40], uint32(proto))
		s.v6 = true
	default:
		return false
	}
	var hl int
	switch {
	case typ != GSOUDPL4 && proto == protoTCP:
		if len(frame) < l4+20 {
			return false
		}
		doff := int(frame[l4+12]>>4) * 4
		if doff < 20 {
			return false
		}
		hl = l4 + doff
		s.tcp = true
		s.seq = binary.BigEndian.Uint32(frame[l4+4:])
		s.lastFlag = frame[l4+13]
	case typ == GSOUDPL4 && proto == protoUDP:
		hl = l4 + 8
	default:
		s.pseudo, s.v6 = 0, false
		return false
	}
	if hl >= len(frame) {
		*s = Segmenter{}
		return false
	}
	s.frame, s.hdrLen, s.l4, s.mss = frame, hl, l4, int(h.GSOSize)
	if !s.v6 {
		s.id = binary.BigEndian.Uint16(frame[ethLen+4:])
	}
	return true
}

// Start begins cutting the large frame in frame (its virtio-net header
// first, as a device read it) into segments of at most maxFrame bytes, and
// reports whether it could. Only a frame whose checksum the kernel vouches
// for (partial from a local sender, or verified by a NIC before GRO) is
// cut: the segments' checksums are left partial. A frame it cannot cut
// leaves the segmenter idle, for the driver to drop and count as
// oversize.
func (s *Segmenter) Start(frame []byte, maxFrame int) bool {
	h, ok := Parse(frame)
	if ok && h.GSO() && h.Flags&(FlagNeedsCsum|FlagDataValid) != 0 && s.Init(frame[HdrLen:], h) && s.MaxSegment() <= maxFrame {
		return true
	}
	*s = Segmenter{}
	return false
}

// Fill moves segments of the frame being cut into buffers of pool, at
// bufs[got:] until the frame or bufs ends, and returns the new got. The
// buffers are marked as from queue and their checksums partial; c counts
// them, and the rest of the frame as lost when the pool runs dry.
func (s *Segmenter) Fill(bufs []*nicq.Buf, got int, pool *nicq.Pool, queue int, c *nicq.Counters) int {
	for got < len(bufs) && s.Active() {
		b := pool.Get()
		if b == nil {
			c.Drops[nicq.DropNoBuffer]++
			*s = Segmenter{} // the rest of the frame is lost
			break
		}
		n := s.Next(b.Append(b.Tailroom()))
		if n == 0 {
			b.Free()
			*s = Segmenter{}
			c.Drops[nicq.DropOversize]++
			break
		}
		b.Truncate(n)
		b.RxQueue = uint16(queue)
		b.Flags = nicq.FlagL4ChecksumPartial // what the sender left, rewritten per segment
		bufs[got] = b
		got++
		c.RxPackets++
		c.RxBytes += uint64(n)
	}
	return got
}

// Active reports whether segments remain.
func (s *Segmenter) Active() bool { return s.frame != nil }

// MaxSegment is the longest segment Next writes for the current frame.
func (s *Segmenter) MaxSegment() int { return s.hdrLen + s.mss }

// Next writes the next segment into dst and returns its length; 0 when
// none remain (the segmenter is idle again) or dst is shorter than
// MaxSegment (then nothing is consumed).
func (s *Segmenter) Next(dst []byte) int {
	if s.frame == nil || len(dst) < s.MaxSegment() {
		return 0
	}
	payload := s.frame[s.hdrLen:]
	chunk := min(s.mss, len(payload)-s.off)
	last := s.off+chunk == len(payload)
	n := copy(dst, s.frame[:s.hdrLen])
	n += copy(dst[n:], payload[s.off:s.off+chunk])
	seg := dst[:n]

	ip := seg[ethLen:s.l4]
	if s.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(n-s.l4))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(n-ethLen))
		binary.BigEndian.PutUint16(ip[4:], s.id+uint16(s.n))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip, 0)))
	}

	l4len := n - s.l4
	l4 := seg[s.l4:]
	var field int
	if s.tcp {
		binary.BigEndian.PutUint32(l4[4:], s.seq+uint32(s.off))
		flags := s.lastFlag
		if !last {
			flags &^= tcpFlagFIN | tcpFlagPSH
		}
		if s.n > 0 {
			flags &^= tcpFlagCWR
		}
		l4[13] = flags
		field = tcpCsumField
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4len))
		field = udpCsumField
	}
	// The partial checksum: the pseudo-header sum for this length.
	binary.BigEndian.PutUint16(l4[field:], fold(s.pseudo+uint32(l4len)))

	s.off += chunk
	s.n++
	if last {
		s.frame = nil
	}
	return n
}

// sum16 adds b as big-endian 16-bit words (a trailing odd byte as the
// high byte of a word) to acc, unfolded.
func sum16(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// fold reduces a one's complement accumulator to 16 bits.
func fold(acc uint32) uint16 {
	acc = acc>>16 + acc&0xffff
	acc = acc>>16 + acc&0xffff
	return uint16(acc)
}

// Put writes h into b[:HdrLen], in the order Parse reads.
func (h Hdr) Put(b []byte) {
	e := binary.NativeEndian
	b[0], b[1] = h.Flags, h.GSOType
	e.PutUint16(b[2:], h.HdrLen)
	e.PutUint16(b[4:], h.GSOSize)
	e.PutUint16(b[6:], h.CsumStart)
	e.PutUint16(b[8:], h.CsumOffset)
}

// TSO returns the header that hands frame, an Ethernet frame carrying one
// large TCP segment whose checksum field holds the pseudo-header sum, to
// the kernel to cut into segments of segSize payload bytes (or to take
// whole, as a local receiver does): the GSO type of its IP version, the
// headers' length, and the partial checksum's place. It reports false for
// a frame that is not an untagged IPv4 or IPv6 (no extension headers)
// TCP segment.
func TSO(frame []byte, segSize int) (Hdr, bool) {
	if len(frame) < ethLen+ip6HdrLen+20 || segSize <= 0 || segSize > 0xffff {
		return Hdr{}, false
	}
	l4, field, ok := PartialChecksum(frame)
	if !ok || field != tcpCsumField || len(frame) < l4+20 {
		return Hdr{}, false
	}
	typ := uint8(GSOTCPv4)
	if binary.BigEndian.Uint16(frame[12:]) == etherTypeIP6 {
		typ = GSOTCPv6
	}
	hl := l4 + int(frame[l4+12]>>4)*4
	if hl > len(frame) {
		return Hdr{}, false
	}
	return Hdr{Flags: FlagNeedsCsum, GSOType: typ, HdrLen: uint16(hl), GSOSize: uint16(segSize),
		CsumStart: uint16(l4), CsumOffset: tcpCsumField}, true
}

// Offsets of the checksum field in a TCP and in a UDP header.
const (
	tcpCsumField = 16
	udpCsumField = 6
)

// PartialChecksum locates the checksum a NIC is to complete in frame, an
// Ethernet frame (no VLAN tag) carrying TCP or UDP over IPv4 or over IPv6
// with no extension header: start is the offset of the TCP or UDP header,
// where the sum begins, and field the offset of the checksum within it
// (Linux's csum_start and csum_offset). ok is false for any other frame.
func PartialChecksum(frame []byte) (start, field int, ok bool) {
	if len(frame) < ethLen+20 {
		return 0, 0, false
	}
	var proto byte
	switch et := binary.BigEndian.Uint16(frame[12:]); {
	case et == etherTypeIP4 && frame[ethLen]>>4 == 4:
		start, proto = ethLen+int(frame[ethLen]&0xf)*4, frame[ethLen+9]
	case et == etherTypeIP6 && len(frame) >= ethLen+ip6HdrLen && frame[ethLen]>>4 == 6:
		start, proto = ethLen+ip6HdrLen, frame[ethLen+6]
	default:
		return 0, 0, false
	}
	switch proto {
	case protoTCP:
		field = tcpCsumField
	case protoUDP:
		field = udpCsumField
	default:
		return 0, 0, false
	}
	if start+field+2 > len(frame) {
		return 0, 0, false
	}
	return start, field, true
}

// CompleteChecksum completes the partial TCP or UDP checksum of frame
// (start and field as PartialChecksum returns them): the field holds the
// pseudo-header sum, and the sum of the bytes from start on is added to
// it, as a device does for Linux's CHECKSUM_PARTIAL. A driver uses it for
// a frame it cannot hand to its device with the checksum to complete.
func CompleteChecksum(frame []byte, start, field int) {
	c := ^fold(sum16(frame[start:], 0))
	if c == 0 && field == udpCsumField {
		c = 0xffff // UDP: zero would mean no checksum
	}
	binary.BigEndian.PutUint16(frame[start+field:], c)
}

// Csum is the header of a frame of one MTU whose TCP or UDP checksum the
// kernel is to complete (NEEDS_CSUM, no segmentation): a frame marked
// nicq.FlagL4ChecksumOffload. ok is false for a frame that carries no TCP
// or UDP checksum (PartialChecksum).
func Csum(frame []byte) (Hdr, bool) {
	start, field, ok := PartialChecksum(frame)
	if !ok {
		return Hdr{}, false
	}
	return Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(start), CsumOffset: uint16(field)}, true
}
