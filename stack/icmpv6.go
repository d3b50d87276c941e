// ICMPv6 (RFC 4443): echo requests are answered in place, Parameter
// Problems are sent about packets whose extension headers RFC 8200 4 says
// to refuse, errors are delivered to the TCP connection or UDP socket
// whose packet they quote (a Packet Too Big also lowers the path MTU, RFC
// 8201), and the neighbour discovery messages go to ndp.go. Echo replies,
// redirects and other types are counted as icmpv6_unhandled and dropped.

package stack

import (
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// inputICMPv6 handles an ICMPv6 message at ip[off:], ip's upper-layer
// packet; b starts at ip.
func (s *Stack) inputICMPv6(b *nicq.Buf, ip header.IPv6, off int, srcMAC header.MAC) {
	m, r := header.ParseICMPv6(ip[off:])
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	if !m.IsChecksumValid(ip.PseudoHeaderSum(header.ProtocolICMPv6, len(m))) {
		s.drop(b, DropICMPv6BadChecksum)
		return
	}
	switch m.Type() {
	case header.ICMPv6EchoRequest:
		if header.IsIPv6Unspecified(ip.Source()) {
			s.drop(b, DropMartianSource) // nobody to answer
			return
		}
		s.replyEcho6(b, ip, off, srcMAC)
	case header.ICMPv6DestinationUnreachable, header.ICMPv6PacketTooBig, header.ICMPv6TimeExceeded, header.ICMPv6ParameterProblem:
		s.inputICMPv6Error(b, m)
	case header.ICMPv6NeighborSolicitation, header.ICMPv6NeighborAdvertisement,
		header.ICMPv6RouterSolicitation, header.ICMPv6RouterAdvertisement:
		s.inputNDP(b, ip, m, srcMAC)
	default:
		s.drop(b, DropICMPv6Unhandled)
	}
}

// replyEcho6 turns an echo request into its reply in place (RFC 4443 4.2):
// the message keeps its place in the buffer, a new fixed header goes over
// the old one and any extension headers, from the address the request
// went to (our link-local address if it went to a group, which RFC 4443
// says to answer too) back to its source.
//
// A reply larger than the path MTU (to a request that came in fragments)
// goes in fragments (RFC 8200 4.5).
func (s *Stack) replyEcho6(b *nicq.Buf, ip header.IPv6, off int, srcMAC header.MAC) {
	to := ip.Source()
	from := s.ip6.sourceFor(ip.Destination())
	n := len(ip) - off
	bufPull(b, off)
	m := header.ICMPv6(bufData(b))
	m.SetType(header.ICMPv6EchoReply)
	m.SetCode(0)
	m.SetChecksum(m.ComputeChecksum(checksum.PseudoHeaderIPv6(from, to, header.ProtocolICMPv6, uint32(n))))
	if mtu := s.pathMTU6(to); header.IPv6FixedHeaderSize+n > mtu {
		s.stats.ICMPv6EchoRepliesSent++
		s.fragment6(m[:n], nil, header.ProtocolICMPv6, from, to, mtu)
		bufFree(b)
		return
	}
	encodeIPv6(bufPush(b, header.IPv6FixedHeaderSize), header.ProtocolICMPv6, defaultHopLimit, n, from, to)
	s.stats.ICMPv6EchoRepliesSent++
	s.transmitIPv6(b, to, srcMAC)
}

// sendICMPv6Error reports a problem with the packet orig, which came from
// srcMAC, to its source, unless RFC 4443 2.4 (e) forbids it
// (header.ICMPv6ErrorAllowed) or the rate limit says no: the bucket of
// ICMPv4 errors, Config.ICMPErrorsPerSecond, serves both (2.4 (f)).
func (s *Stack) sendICMPv6Error(orig header.IPv6, srcMAC header.MAC, linkMulticast bool, t header.ICMPv6Type, c header.ICMPv6Code, rest uint32) {
	if !header.ICMPv6ErrorAllowed(t, c, orig, linkMulticast) {
		return
	}
	if !s.icmp.allow(s.now) {
		s.stats.Drops[DropICMPRateLimited]++
		return
	}
	b := s.getBuf()
	if b == nil {
		return
	}
	to := orig.Source()
	from := s.ip6.sourceFor(orig.Destination())
	q := min(len(orig), header.ICMPv6ErrorQuoteMax, bufTailroom(b)-header.ICMPv6MinimumSize)
	msg := bufAppend(b, header.ICMPv6MinimumSize+q)
	n := header.EncodeICMPv6Error(msg, t, c, rest, orig)
	m := header.ICMPv6(msg[:n])
	m.SetChecksum(m.ComputeChecksum(checksum.PseudoHeaderIPv6(from, to, header.ProtocolICMPv6, uint32(n))))
	encodeIPv6(bufPush(b, header.IPv6FixedHeaderSize), header.ProtocolICMPv6, defaultHopLimit, n, from, to)
	s.stats.ICMPv6ErrorsSent++
	s.transmitIPv6(b, to, srcMAC)
}

// inputICMPv6Error delivers an error to the flow whose packet it quotes
// (RFC 4443 2.4 (b)): a TCP connection or UDP socket of ours, found by the
// quoted header's addresses and ports. The quote must hold the IPv6 header
// and the first 8 bytes of a TCP or UDP header right after it, or after
// the Fragment header of a first fragment (a quote with other extension
// headers is counted as unmatched: we send none). A Packet Too Big lowers
// the path MTU to what it says, but not below 1280 (RFC 8201 4).
func (s *Stack) inputICMPv6Error(b *nicq.Buf, m header.ICMPv6) {
	quoted := m.Payload()
	if len(quoted) < header.IPv6FixedHeaderSize+8 {
		s.drop(b, DropReason(header.DropTruncated))
		return
	}
	inner := header.IPv6(quoted)
	local, remote := inner.Source(), inner.Destination()
	proto, l4 := inner.NextHeader(), quoted[header.IPv6FixedHeaderSize:]
	if proto == header.ProtocolIPv6Fragment && len(l4) >= header.IPv6FragmentSize+8 {
		// A first fragment of ours (a reassembly that timed out): its
		// upper-layer header follows the Fragment header.
		if f := header.IPv6Fragment(l4); f.FragmentOffset() == 0 {
			proto, l4 = f.NextHeader(), l4[header.IPv6FragmentSize:]
		}
	}
	if inner[0]>>4 != 6 || !s.ip6.isOurs(local) || (proto != header.ProtocolTCP && proto != header.ProtocolUDP) {
		s.drop(b, DropICMPUnmatched)
		return
	}
	localPort := uint16(l4[0])<<8 | uint16(l4[1])
	remotePort := uint16(l4[2])<<8 | uint16(l4[3])
	if m.Type() == header.ICMPv6PacketTooBig {
		s.pmtu6.update(remote, max(int(m.MTU()), header.IPv6MinimumMTU), s.now)
	}
	if s.forwardToOwner6(b, proto, remote, local, remotePort, localPort) {
		return
	}
	err := icmpv6Error(m.Type(), m.Code())
	delivered := false
	switch proto {
	case header.ProtocolUDP:
		delivered = s.udp.deliverError(localPort, UDPError{Err: err, Remote6: remote, IPv6: true, RemotePort: remotePort})
	case header.ProtocolTCP:
		id := tcpTuple{localAddr: local, remoteAddr: remote, localPort: localPort, remotePort: remotePort}
		seq := uint32(l4[4])<<24 | uint32(l4[5])<<16 | uint32(l4[6])<<8 | uint32(l4[7])
		delivered = s.tcp.deliverError(id, seq, err, s.pathMTU6(remote))
	}
	if !delivered {
		s.drop(b, DropICMPUnmatched)
		return
	}
	s.stats.ICMPErrorsDelivered++
	bufFree(b)
}

// icmpv6Error maps an ICMPv6 error to the error its flow sees, as Linux's
// icmpv6_err_convert does.
func icmpv6Error(t header.ICMPv6Type, c header.ICMPv6Code) error {
	switch t {
	case header.ICMPv6DestinationUnreachable:
		switch c {
		case header.ICMPv6PortUnreachable:
			return ErrPortUnreachable
		case header.ICMPv6NoRoute, header.ICMPv6RejectRoute:
			return ErrNetUnreachable
		}
		return ErrHostUnreachable
	case header.ICMPv6PacketTooBig:
		return ErrMessageTooLong
	case header.ICMPv6TimeExceeded:
		return ErrTimeExceeded
	case header.ICMPv6ParameterProblem:
		return ErrProtoUnreachable
	}
	return ErrHostUnreachable
}
