package stack

import (
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
)

// defaultTTL is the TTL of datagrams we originate (RFC 1700's 64).
const defaultTTL = 64

func isMartian(a [4]byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0] >= 224 // this-net, loopback, multicast and class E, broadcast
}

// inputIPv4 handles a datagram whose Ethernet header was pulled.
// linkBroadcast tells whether the frame went to the broadcast MAC.
func (s *Stack) inputIPv4(b *nicq.Buf, srcMAC header.MAC, linkBroadcast bool) {
	ip, r := header.ParseIPv4(bufData(b))
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	bufTruncate(b, len(ip)) // drop link padding
	dst, src := ip.Destination(), ip.Source()
	if dst != s.addr && dst != s.bcast && dst != [4]byte{255, 255, 255, 255} {
		s.drop(b, DropNotForUs)
		return
	}
	if isMartian(src) || src == s.addr || src == s.bcast {
		s.drop(b, DropMartianSource)
		return
	}
	if ip.IsFragment() {
		s.stats.FragmentsIn++
		b = s.reasm.add(b, ip)
		if b == nil {
			return // kept until the rest arrives, or dropped and counted
		}
		s.stats.Reassembled++
		if s.forwardIfNotOurs(b) {
			return
		}
	}
	s.deliverIPv4(b)
}

// InputForwarded processes a datagram another core forwarded to this one
// (it starts at the IPv4 or IPv6 header, already validated and reassembled
// there).
func (s *Stack) InputForwarded(b *nicq.Buf) {
	s.now = s.clock.Now()
	if d := bufData(b); len(d) > 0 && d[0]>>4 == 6 {
		s.inputForwarded6(b)
		if len(s.tcp.pending) > 0 {
			s.tcp.flushPending()
		}
		return
	}
	ip, r := header.ParseIPv4(bufData(b))
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	bufTruncate(b, len(ip))
	s.deliverIPv4(b)
	if len(s.tcp.pending) > 0 {
		s.tcp.flushPending()
	}
}

// forwardIfNotOurs hands a reassembled datagram to the core that owns its
// flow. The NIC hashed the fragments by addresses only (they carry no ports
// after the first), so they reassembled here; the flow's packets with ports
// land on the core the 4-tuple hash picks.
func (s *Stack) forwardIfNotOurs(b *nicq.Buf) bool {
	ip := header.IPv4(bufData(b))
	sport, dport, ok := transportPorts(ip)
	return ok && s.forwardToOwner(b, ip, sport, dport)
}

// forwardToOwner hands b, an IPv4 datagram of the flow (sport, dport), to
// the core that owns the flow, if that is another core, and reports whether
// it did (a failed forward drops and counts b). Besides reassembled
// datagrams, TCP and UDP call it for a segment or datagram for which this
// core has no connection or socket: a NIC whose steering the RSS
// configuration predicts (the mem wire, a TAP or fanout steered by the
// Toeplitz program, hardware RSS) never misdirects, one that steers by a
// hash of its own (a veth whose sender does not steer by RSS) does, and
// then every flow still lives on the core RSS names, where its active
// opens chose their ports. Traffic that lands right pays nothing: the
// check runs only when the local lookup failed.
func (s *Stack) forwardToOwner(b *nicq.Buf, ip header.IPv4, sport, dport uint16) bool {
	return s.forwardFlow(b, ip.Protocol(), ip.Source(), ip.Destination(), sport, dport)
}

// forwardFlow is forwardToOwner for the flow (protocol, src, dst, sport,
// dport) as its packets arrive.
func (s *Stack) forwardFlow(b *nicq.Buf, protocol uint8, src, dst [4]byte, sport, dport uint16) bool {
	if s.cfg.FlowOwner == nil || s.cfg.Forward == nil {
		return false
	}
	return s.forwardTo(s.cfg.FlowOwner(protocol, src, dst, sport, dport), b)
}

// forwardTo hands b to core owner, if that is another core, and reports
// whether it did (a failed forward drops and counts b).
func (s *Stack) forwardTo(owner int, b *nicq.Buf) bool {
	if owner == s.cfg.Core {
		return false
	}
	if !s.cfg.Forward(owner, b) {
		s.drop(b, DropForwardFailed)
		return true
	}
	s.stats.Forwarded++
	return true
}

// transportPorts returns the ports of a TCP or UDP datagram that carries
// its transport header.
func transportPorts(ip header.IPv4) (src, dst uint16, ok bool) {
	p := ip.Payload()
	if (ip.Protocol() != header.ProtocolUDP && ip.Protocol() != header.ProtocolTCP) || len(p) < 4 {
		return 0, 0, false
	}
	return uint16(p[0])<<8 | uint16(p[1]), uint16(p[2])<<8 | uint16(p[3]), true
}

// deliverIPv4 dispatches a whole datagram addressed to us by protocol.
func (s *Stack) deliverIPv4(b *nicq.Buf) {
	ip := header.IPv4(bufData(b))
	switch ip.Protocol() {
	case header.ProtocolICMPv4:
		s.inputICMP(b, ip)
	case header.ProtocolUDP:
		s.inputUDP(b, ip)
	case header.ProtocolTCP:
		s.tcpInput(b, ip)
	default:
		if ip.Destination() == s.addr {
			s.sendICMPError(ip, header.ICMPv4DestinationUnreachable, header.ICMPv4ProtocolUnreachable, 0)
		}
		s.drop(b, DropUnknownProtocol)
	}
}

// sendIPv4 puts an IPv4 header in front of the transport payload in b and
// sends it towards dst, fragmenting it if it exceeds the path MTU.
func (s *Stack) sendIPv4(b *nicq.Buf, protocol uint8, dst [4]byte) error {
	return s.sendIPv4DF(b, protocol, dst, false)
}

// sendIPv4DF is sendIPv4 with Don't Fragment set when df is (TCP's path
// MTU discovery, RFC 1191: a router answers a datagram too big for the
// next hop with the MTU it takes, instead of fragmenting it). A datagram
// already larger than the path MTU this stack knows (a segment built
// before the MTU came down) is still fragmented here, without DF.
func (s *Stack) sendIPv4DF(b *nicq.Buf, protocol uint8, dst [4]byte, df bool) error {
	nextHop, ok := s.routes.nextHop(dst)
	if !ok {
		s.drop(b, DropNoRoute)
		return ErrNoRoute
	}
	total := bufLen(b) + header.IPv4MinimumSize
	if total > header.IPv4MaximumTotalLength {
		s.drop(b, DropTooBig)
		return ErrMessageTooLong
	}
	mtu := s.pmtu.lookup(dst, s.cfg.MTU, s.now)
	s.ipID++
	if total <= mtu || b.SegmentSize > 0 {
		var flags uint8
		if df {
			flags = header.IPv4FlagDontFragment
		}
		id := s.ipID
		if b.SegmentSize > 0 {
			// The NIC numbers the segments it cuts from this ID on, as
			// Linux's GSO does (counted before the IP header goes on).
			s.ipID += uint16(tsoPieces(b) - 1)
		}
		s.encodeIPv4(bufPush(b, header.IPv4MinimumSize), total, id, flags, 0, protocol, dst)
		s.outputIPv4(b, nextHop)
		return nil
	}
	err := s.fragment(bufData(b), nil, protocol, dst, nextHop, mtu)
	bufFree(b)
	return err
}

func (s *Stack) encodeIPv4(h []byte, total int, id uint16, flags uint8, offset uint16, protocol uint8, dst [4]byte) {
	header.IPv4(h).Encode(&header.IPv4Fields{
		TotalLength:    uint16(total),
		ID:             id,
		Flags:          flags,
		FragmentOffset: offset,
		TTL:            defaultTTL,
		Protocol:       protocol,
		Source:         s.addr,
		Destination:    dst,
	})
}

// fragment sends the transport payload head followed by body as datagrams
// that fit mtu (RFC 791): every fragment but the last carries a multiple of
// 8 payload bytes. The payload is copied, so it may be larger than a buffer.
func (s *Stack) fragment(head, body []byte, protocol uint8, dst, nextHop [4]byte, mtu int) error {
	return s.cutFragments(head, body, (mtu-header.IPv4MinimumSize)&^7, func(f *nicq.Buf, off, end int, last bool) {
		flags := uint8(0)
		if !last {
			flags = header.IPv4FlagMoreFragments
		}
		s.encodeIPv4(bufPush(f, header.IPv4MinimumSize), header.IPv4MinimumSize+end-off, s.ipID, flags, uint16(off), protocol, dst)
		s.stats.FragmentsOut++
		s.outputIPv4(f, nextHop)
	})
}

// cutFragments copies head+body into buffers of per bytes (the last may
// be shorter) and hands each to send with its range [off, end) and
// whether it is the last, for send to put its headers in front.
func (s *Stack) cutFragments(head, body []byte, per int, send func(f *nicq.Buf, off, end int, last bool)) error {
	// Fragments of an MTU larger than a buffer (Config.LargeFrames) are
	// cut to fit one: smaller, more of them, still valid.
	per = min(per, s.poolFrameRoom()&^7)
	size := len(head) + len(body)
	for off := 0; off < size; off += per {
		end := min(off+per, size)
		f := s.getBuf()
		if f == nil {
			return ErrNoBuffers
		}
		out := bufAppend(f, end-off)
		// Copy [off, end) of head+body.
		n := 0
		if off < len(head) {
			n = copy(out, head[off:min(end, len(head))])
		}
		if end > len(head) {
			copy(out[n:], body[max(off-len(head), 0):end-len(head)])
		}
		send(f, off, end, end == size)
	}
	return nil
}
