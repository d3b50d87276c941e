package stack

import (
	"errors"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
)

// Errors delivered to sockets and returned by sends. Callers match them with
// errors.Is; the sockets layer maps them to the syscall errors Go code
// checks.
var (
	ErrHostUnreachable  = errors.New("host unreachable")
	ErrPortUnreachable  = errors.New("port unreachable (connection refused)")
	ErrNetUnreachable   = errors.New("network unreachable")
	ErrProtoUnreachable = errors.New("protocol unreachable")
	ErrTimeExceeded     = errors.New("time exceeded")
	ErrMessageTooLong   = errors.New("message too long")
	ErrNoBuffers        = errors.New("no buffer space available")
)

// icmpQuoteMax is how much of an offending datagram an ICMP error quotes:
// enough for the error to fit in 576 bytes (RFC 1812 4.3.2.3).
const icmpQuoteMax = 576 - header.IPv4MinimumSize - header.ICMPv4MinimumSize

func (s *Stack) inputICMP(b *nicq.Buf, ip header.IPv4) {
	msg, r := header.ParseICMPv4(ip.Payload())
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	switch t := msg.Type(); {
	case t == header.ICMPv4Echo:
		if ip.Destination() != s.addr {
			// No replies to broadcast pings (RFC 1122 3.2.2.6 allows
			// silence).
			s.drop(b, DropICMPUnhandled)
			return
		}
		s.replyEcho(b, ip, msg)
	case t == header.ICMPv4EchoReply:
		if s.cfg.OnEchoReply == nil {
			s.drop(b, DropICMPUnhandled)
			return
		}
		s.cfg.OnEchoReply(ip.Source(), msg.Identifier(), msg.Sequence(), msg.Payload())
		bufFree(b)
	case t.IsError():
		s.inputICMPError(b, msg)
	default:
		s.drop(b, DropICMPUnhandled)
	}
}

// replyEcho turns an echo request into its reply in place: swap the
// addresses, change the type, patch the checksums incrementally. A reply
// larger than the path MTU (to a request that came in fragments, ping -s
// 20000) goes in fragments, as Linux sends it.
func (s *Stack) replyEcho(b *nicq.Buf, ip header.IPv4, msg header.ICMPv4) {
	src := ip.Source()
	nextHop, ok := s.routes.nextHop(src)
	if !ok {
		s.drop(b, DropNoRoute)
		return
	}
	msg.SetType(header.ICMPv4EchoReply)
	msg.SetChecksum(0)
	msg.SetChecksum(msg.ComputeChecksum())
	s.stats.EchoRepliesSent++
	if mtu := s.pmtu.lookup(src, s.cfg.MTU, s.now); int(ip.TotalLength()) > mtu {
		s.ipID++
		s.fragment(msg, nil, header.ProtocolICMPv4, src, nextHop, mtu)
		bufFree(b)
		return
	}
	ip.SetSource(s.addr)
	ip.SetDestination(src)
	ip.SetTTL(defaultTTL)
	ip.SetChecksum(0)
	ip.SetChecksum(ip.ComputeChecksum())
	s.outputIPv4(b, nextHop)
}

// inputICMPError delivers an error to the flow whose datagram it quotes.
func (s *Stack) inputICMPError(b *nicq.Buf, msg header.ICMPv4) {
	quoted := msg.Payload()
	if len(quoted) < header.IPv4MinimumSize {
		s.drop(b, DropReason(header.DropTruncated))
		return
	}
	inner := header.IPv4(quoted)
	hl := inner.HeaderLength()
	if inner.Version() != 4 || hl < header.IPv4MinimumSize || len(quoted) < hl+8 || inner.Source() != s.addr {
		s.drop(b, DropICMPUnmatched)
		return
	}
	l4 := quoted[hl:]
	localPort := uint16(l4[0])<<8 | uint16(l4[1])
	remotePort := uint16(l4[2])<<8 | uint16(l4[3])
	remote := inner.Destination()
	if msg.Type() == header.ICMPv4DestinationUnreachable && msg.Code() == header.ICMPv4FragmentationNeeded {
		s.pmtu.update(remote, int(msg.NextHopMTU()), s.now)
	}
	// The flow's own packets arrive with the remote end as source.
	if s.forwardFlow(b, inner.Protocol(), remote, s.addr, remotePort, localPort) {
		return
	}
	err := icmpError(msg.Type(), msg.Code())
	delivered := false
	switch inner.Protocol() {
	case header.ProtocolUDP:
		delivered = s.udp.deliverError(localPort, UDPError{Err: err, Remote: remote, RemotePort: remotePort})
	case header.ProtocolTCP:
		id := tcpTuple{localAddr: mapped4(s.addr), remoteAddr: mapped4(remote), localPort: localPort, remotePort: remotePort}
		seq := uint32(l4[4])<<24 | uint32(l4[5])<<16 | uint32(l4[6])<<8 | uint32(l4[7])
		delivered = s.tcp.deliverError(id, seq, err, s.PathMTU(remote))
	}
	if !delivered {
		s.drop(b, DropICMPUnmatched)
		return
	}
	s.stats.ICMPErrorsDelivered++
	bufFree(b)
}

func icmpError(t header.ICMPv4Type, c header.ICMPv4Code) error {
	switch t {
	case header.ICMPv4DestinationUnreachable:
		switch c {
		case header.ICMPv4NetUnreachable:
			return ErrNetUnreachable
		case header.ICMPv4ProtocolUnreachable:
			return ErrProtoUnreachable
		case header.ICMPv4PortUnreachable:
			return ErrPortUnreachable
		case header.ICMPv4FragmentationNeeded:
			return ErrMessageTooLong
		}
		return ErrHostUnreachable
	case header.ICMPv4TimeExceeded:
		return ErrTimeExceeded
	}
	return ErrHostUnreachable
}

// sendICMPError reports a problem with datagram orig to its sender, unless
// RFC 1122 3.2.2 forbids it (about an ICMP error, a broadcast, a non-first
// fragment or a martian source) or the rate limit says no.
func (s *Stack) sendICMPError(orig header.IPv4, t header.ICMPv4Type, c header.ICMPv4Code, rest uint32) {
	src := orig.Source()
	if orig.Destination() != s.addr || isMartian(src) || src == s.bcast || orig.FragmentOffset() != 0 {
		return
	}
	if orig.Protocol() == header.ProtocolICMPv4 {
		if p := orig.Payload(); len(p) == 0 || header.ICMPv4Type(p[0]).IsError() || len(p) < header.ICMPv4MinimumSize {
			return
		}
	}
	if !s.icmp.allow(s.now) {
		s.stats.Drops[DropICMPRateLimited]++
		return
	}
	nextHop, ok := s.routes.nextHop(src)
	if !ok {
		s.stats.Drops[DropNoRoute]++
		return
	}
	b := s.getBuf()
	if b == nil {
		return
	}
	q := orig[:min(len(orig), icmpQuoteMax)]
	m := header.ICMPv4(bufAppend(b, header.ICMPv4MinimumSize+len(q)))
	m.Encode(&header.ICMPv4Fields{Type: t, Code: c, RestOfHeader: rest})
	copy(m[header.ICMPv4MinimumSize:], q)
	m.SetChecksum(m.ComputeChecksum())
	s.ipID++
	total := bufLen(b) + header.IPv4MinimumSize
	s.encodeIPv4(bufPush(b, header.IPv4MinimumSize), total, s.ipID, 0, 0, header.ProtocolICMPv4, src)
	s.stats.ICMPErrorsSent++
	s.outputIPv4(b, nextHop)
}

// Ping sends an ICMP echo request with size bytes of payload; the reply
// comes to Config.OnEchoReply.
//
// A request larger than the path MTU goes in fragments; size is at most
// what one IPv4 datagram holds.
func (s *Stack) Ping(dst [4]byte, id, seq uint16, size int) error {
	s.now = s.clock.Now()
	if size < 0 || size > header.IPv4MaximumTotalLength-header.IPv4MinimumSize-header.ICMPv4MinimumSize {
		return ErrMessageTooLong
	}
	b := s.getBufSize(header.ICMPv4MinimumSize + size)
	if b == nil {
		return ErrNoBuffers
	}
	if size > bufTailroom(b)-header.ICMPv4MinimumSize {
		bufFree(b)
		return ErrMessageTooLong
	}
	m := header.ICMPv4(bufAppend(b, header.ICMPv4MinimumSize+size))
	m.Encode(&header.ICMPv4Fields{Type: header.ICMPv4Echo, RestOfHeader: header.EchoRestOfHeader(id, seq)})
	for i := range m[header.ICMPv4MinimumSize:] {
		m[header.ICMPv4MinimumSize+i] = byte(i)
	}
	m.SetChecksum(m.ComputeChecksum())
	return s.sendIPv4(b, header.ProtocolICMPv4, dst)
}

// icmpLimiter is a token bucket for ICMP errors (as Linux's icmp_ratelimit),
// so a flood of bad packets cannot turn the stack into an amplifier.
type icmpLimiter struct {
	perSecond int
	tokens    int
	last      int64
}

func (l *icmpLimiter) init(perSecond int, now int64) {
	l.perSecond = perSecond
	l.tokens = perSecond
	l.last = now
}

func (l *icmpLimiter) allow(now int64) bool {
	if elapsed := now - l.last; elapsed > 0 {
		add := int(elapsed * int64(l.perSecond) / int64(time.Second))
		if add > 0 {
			l.tokens = min(l.perSecond, l.tokens+add)
			l.last = now
		}
	}
	if l.tokens == 0 {
		return false
	}
	l.tokens--
	return true
}

// pmtuCache remembers path MTUs learned from fragmentation-needed errors
// (RFC 1191) for a few destinations, for ten minutes each.
type pmtuCache[A comparable] struct {
	entries [16]struct {
		dst     A
		mtu     int
		expires int64
	}
	next int
}

const pmtuLifetime = int64(10 * time.Minute)

func (c *pmtuCache[A]) update(dst A, mtu int, now int64) {
	if mtu < 68 {
		mtu = 576 // an old router that sent no MTU: RFC 1191's plateau
	}
	for i := range c.entries {
		if e := &c.entries[i]; e.dst == dst && e.expires > now {
			e.mtu = min(e.mtu, mtu)
			e.expires = now + pmtuLifetime
			return
		}
	}
	e := &c.entries[c.next]
	c.next = (c.next + 1) % len(c.entries)
	e.dst, e.mtu, e.expires = dst, mtu, now+pmtuLifetime
}

func (c *pmtuCache[A]) lookup(dst A, linkMTU int, now int64) int {
	for i := range c.entries {
		if e := &c.entries[i]; e.dst == dst && e.expires > now {
			return min(e.mtu, linkMTU)
		}
	}
	return linkMTU
}

// PathMTU returns the MTU the stack uses towards dst.
func (s *Stack) PathMTU(dst [4]byte) int { return s.pmtu.lookup(dst, s.cfg.MTU, s.clock.Now()) }
