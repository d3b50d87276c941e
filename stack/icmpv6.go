// ICMPv6 (RFC 4443): echo requests are answered in place, Parameter
// Problems are sent about packets whose extension headers RFC 8200 4 says
// to refuse, and the neighbour discovery messages go to ndp.go. Echo
// replies, errors (there are no IPv6 flows yet to deliver them to),
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
func (s *Stack) replyEcho6(b *nicq.Buf, ip header.IPv6, off int, srcMAC header.MAC) {
	to := ip.Source()
	from := s.ip6.sourceFor(ip.Destination())
	n := len(ip) - off
	bufPull(b, off)
	m := header.ICMPv6(bufData(b))
	m.SetType(header.ICMPv6EchoReply)
	m.SetCode(0)
	m.SetChecksum(m.ComputeChecksum(checksum.PseudoHeaderIPv6(from, to, header.ProtocolICMPv6, uint32(n))))
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
