package stack

import "github.com/mkstack/mkstack/stack/header"

// DropReason says why the stack dropped a packet. The first values are the
// header package's validation reasons, one for one; the rest are the
// stack's own. Values are dense so counters are an array indexed by reason.
type DropReason uint8

// The stack's own drop reasons follow header.NumDropReasons.
const (
	// DropNotForUs: a frame or datagram addressed to another host.
	DropNotForUs DropReason = DropReason(header.NumDropReasons) + iota
	// DropVLANTagged: an 802.1Q-tagged frame while VLANs are not configured.
	DropVLANTagged
	// DropUnknownEtherType: neither ARP nor IPv4.
	DropUnknownEtherType
	// DropMartianSource: a source address that no host may use (broadcast,
	// multicast, loopback, or our own address arriving from the wire).
	DropMartianSource
	// DropUnknownProtocol: an IPv4 protocol this stack does not speak.
	DropUnknownProtocol
	// DropNoSocket: a UDP datagram or TCP segment to a port nobody bound.
	DropNoSocket
	// DropSocketQueueFull: a socket's bounded receive queue was full.
	DropSocketQueueFull
	// DropNoRoute: no route to the destination of an outgoing packet.
	DropNoRoute
	// DropNeighbourQueueFull: too many packets waiting for ARP resolution.
	DropNeighbourQueueFull
	// DropNeighbourTableFull: no room for another neighbour entry.
	DropNeighbourTableFull
	// DropNeighbourTimeout: ARP resolution failed; the waiting packets go.
	DropNeighbourTimeout
	// DropFragmentOverlap: fragments of one datagram overlapped.
	DropFragmentOverlap
	// DropReassemblyMemory: the per-stack reassembly budget was full.
	DropReassemblyMemory
	// DropReassemblyTimeout: a datagram's fragments did not all arrive.
	DropReassemblyTimeout
	// DropTooManyFragments: a datagram came in more pieces than allowed.
	DropTooManyFragments
	// DropTxQueueFull: the stack's bounded transmit queue was full.
	DropTxQueueFull
	// DropNoBuffer: the buffer pool was empty.
	DropNoBuffer
	// DropForwardFailed: the packet belonged to another core and could
	// not be handed over.
	DropForwardFailed
	// DropICMPRateLimited: an ICMP error not sent, to stay under the rate.
	DropICMPRateLimited
	// DropICMPUnmatched: an ICMP error quoting a flow we do not have.
	DropICMPUnmatched
	// DropTooBig: a datagram larger than IPv4 allows.
	DropTooBig
	// DropNotSupported: IPv6 on a stack without Config.Addrs6, and other
	// protocols not built yet.
	DropNotSupported

	// DropTCPOutOfWindow: a segment outside the receive window (answered
	// with an ACK, RFC 9293 3.10.7.4).
	DropTCPOutOfWindow
	// DropTCPPAWS: a segment with an old timestamp (RFC 7323 5.3).
	DropTCPPAWS
	// DropTCPChallenged: an RST, SYN or ACK that RFC 5961 answers with a
	// challenge ACK instead of acting on it.
	DropTCPChallenged
	// DropTCPBadACK: an ACK for data never sent (answered with an ACK).
	DropTCPBadACK
	// DropTCPSYNQueueFull: a SYN refused because the SYN queue was full
	// and SYN cookies are disabled.
	DropTCPSYNQueueFull
	// DropTCPAcceptQueueFull: a handshake completed with a full accept
	// queue (the connection is reset).
	DropTCPAcceptQueueFull
	// DropTCPOutOfOrderFull: an out-of-order segment that would need more
	// than the bounded number of holes.
	DropTCPOutOfOrderFull
	// DropTCPBadCookie: an ACK to a listener whose SYN cookie did not
	// validate.
	DropTCPBadCookie
	// DropTCPTooManyConns: a SYN refused because the connection table was
	// full.
	DropTCPTooManyConns
	// DropTCPIgnored: a segment the state machine discards without an
	// answer (no ACK flag, an RST in TIME-WAIT per RFC 1337, a stray
	// segment to a listener).
	DropTCPIgnored
	// DropTCPSYNCookieRate: a SYN to a full SYN queue beyond
	// TCPConfig.SYNCookiesPerSecond, dropped without a cookie.
	DropTCPSYNCookieRate
	// DropTCPMemory: a segment whose data the receive ring had no memory
	// for under TCPConfig.MemoryLimit (Linux's SKB_DROP_REASON_PROTO_MEM);
	// the peer sends it again.
	DropTCPMemory

	// DropIPv6BadHeader: an IPv6 fixed header that is truncated, of
	// another version, or whose Payload Length runs past the frame.
	DropIPv6BadHeader
	// DropIPv6NotForUs: an IPv6 packet to an address that is not ours (nor
	// the solicited-node group of one, nor all-nodes), or a neighbour
	// solicitation for a target that is not ours.
	DropIPv6NotForUs
	// DropIPv6BadExtension: an extension header chain RFC 8200 4 refuses
	// (truncated, too long, an unknown option whose type says discard,
	// a Routing header with segments left, a bad fragment); answered with
	// a Parameter Problem where the RFC asks for one.
	DropIPv6BadExtension
	// DropIPv6UnknownNextHeader: a Next Header this stack does not know,
	// or a Hop-by-Hop header not first (Parameter Problem code 1).
	DropIPv6UnknownNextHeader
	// DropIPv6UnsupportedProtocol: a packet with No Next Header.
	DropIPv6UnsupportedProtocol
	// DropICMPv6BadChecksum: an ICMPv6 message whose checksum (over the
	// IPv6 pseudo-header) does not verify.
	DropICMPv6BadChecksum
	// DropICMPv6Unhandled: an ICMPv6 message this stack does not act on
	// yet: echo replies, errors, redirects, router solicitations.
	DropICMPv6Unhandled
	// DropNDPInvalid: a neighbour discovery message that fails RFC 4861's
	// validity checks (header.ValidateNDP).
	DropNDPInvalid

	// DropICMPUnhandled: an ICMP message this stack does not act on: an
	// echo request to a broadcast address (RFC 1122 3.2.2.6 allows
	// silence), an echo reply without Config.OnEchoReply, and types
	// other than echo and the errors (timestamp, information, router
	// discovery, address mask).
	DropICMPUnhandled

	// NumDropReasons is the number of DropReason values.
	NumDropReasons
)

var stackDropNames = [...]string{
	"not_for_us", "vlan_tagged", "unknown_ethertype", "martian_source",
	"unknown_protocol", "no_socket", "socket_queue_full", "no_route",
	"neighbour_queue_full", "neighbour_table_full", "neighbour_timeout",
	"fragment_overlap", "reassembly_memory", "reassembly_timeout",
	"too_many_fragments", "tx_queue_full", "no_buffer", "forward_failed",
	"icmp_rate_limited", "icmp_unmatched", "too_big", "not_supported",
	"tcp_out_of_window", "tcp_paws", "tcp_challenged", "tcp_bad_ack",
	"tcp_syn_queue_full", "tcp_accept_queue_full", "tcp_out_of_order_full",
	"tcp_bad_cookie", "tcp_too_many_conns", "tcp_ignored",
	"tcp_syn_cookie_rate", "tcp_memory",
	"ipv6_bad_header", "ipv6_not_for_us", "ipv6_bad_extension",
	"ipv6_unknown_next_header",
	"ipv6_unsupported_protocol", "icmpv6_bad_checksum", "icmpv6_unhandled",
	"ndp_invalid",
	"icmp_unhandled",
}

// String returns the reason in snake case, fit for a metric label value.
func (r DropReason) String() string {
	if r < DropReason(header.NumDropReasons) {
		return header.DropReason(r).String()
	}
	if i := int(r) - int(header.NumDropReasons); i < len(stackDropNames) {
		return stackDropNames[i]
	}
	return "unknown"
}

// DropReasonNames returns every reason's name, indexed by reason, for
// metric labels.
func DropReasonNames() []string {
	names := make([]string, NumDropReasons)
	for r := range names {
		names[r] = DropReason(r).String()
	}
	return names
}
