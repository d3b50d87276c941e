package stack

import (
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// ipv6Accounted is the number of IPv6 packets a stack has dealt with: each
// is either dropped for one reason or handled in one of the counted ways.
// Drops that come on top of dealing with a packet (an error not sent for
// the rate, no buffer for an answer, no room for a neighbour) are left out.
func ipv6Accounted(s *Stack) uint64 {
	st := s.Stats()
	var n uint64
	for r, v := range st.Drops {
		switch DropReason(r) {
		case DropICMPRateLimited, DropNoBuffer, DropTxQueueFull, DropNeighbourTableFull:
		default:
			n += v
		}
	}
	return n + st.ICMPv6EchoRepliesSent + st.NeighbourSolicitsIn + st.NeighbourAdvertsIn + st.RouterAdvertsIn
}

// ipv6FuzzSeeds are packets of every kind the IPv6 input handles or drops.
func ipv6FuzzSeeds() [][]byte {
	group := header.SolicitedNodeMulticast(ours6)
	all := header.IPv6AllNodesMulticast
	hbh := []byte{header.ProtocolICMPv6, 0, 0x80, 2, 0, 0, 1, 0} // an option type with high bits 10
	frag := make([]byte, 8+16)
	header.IPv6Fragment(frag).Encode(&header.IPv6FragmentFields{NextHeader: header.ProtocolICMPv6, FragmentOffset: 8, Identification: 1})
	atomic := make([]byte, 8)
	header.IPv6Fragment(atomic).Encode(&header.IPv6FragmentFields{NextHeader: header.ProtocolICMPv6})
	ra := make([]byte, header.NDPRouterAdvertisementSize)
	header.EncodeNDPRouterAdvertisement(ra, &header.NDPRouterAdvertisementFields{RouterLifetime: 1800})
	return [][]byte{
		packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, []byte("seed"))),
		packet6(peerLL6, oursLL6, 64, header.ProtocolIPv6DestinationOptions, []byte{header.ProtocolICMPv6, 0, 1, 4, 0, 0, 0, 0}, echo6(peerLL6, oursLL6, 1, 2, nil)),
		packet6(peerLL6, all, 64, header.ProtocolICMPv6, nil, echo6(peerLL6, all, 1, 3, nil)),
		packet6(peer6, ours6, 64, header.ProtocolIPv6Fragment, atomic, echo6(peer6, ours6, 1, 4, nil)),
		packet6(peer6, group, 255, header.ProtocolICMPv6, nil, ns6(peer6, group, ours6, peerMAC)),
		packet6([16]byte{}, group, 255, header.ProtocolICMPv6, nil, ns6([16]byte{}, group, ours6, header.MAC{})),
		packet6(peer6, all, 255, header.ProtocolICMPv6, nil, na6(peer6, all, peer6, header.NDPFlagOverride, peerMAC)),
		packet6(peerLL6, all, 255, header.ProtocolICMPv6, nil, icmp6(peerLL6, all, ra)),
		packet6(peer6, ours6, 64, 253, nil, []byte("unknown")),
		packet6(peer6, ours6, 64, header.ProtocolIPv6HopByHop, hbh, echo6(peer6, ours6, 1, 5, nil)),
		packet6(peer6, ours6, 64, header.ProtocolIPv6Fragment, frag, nil),
		packet6(peer6, ours6, 64, header.ProtocolUDP, nil, make([]byte, 8)),
		packet6(peer6, ours6, 64, header.ProtocolIPv6Routing, []byte{header.ProtocolICMPv6, 0, 0, 1, 0, 0, 0, 0}, nil),
		packet6(peer6, ours6, 64, header.ProtocolIPv6NoNextHeader, nil, nil),
		{0x60},
	}
}

// FuzzStackInputIPv6 feeds arbitrary IPv6 packets, in frames to our MAC,
// to one of our groups, to another group or to broadcast (by sel), to a
// stack with IPv6 configured. It must never panic; each packet must be
// counted exactly once, as a drop or as handled; whatever the stack sends
// must be a well-formed answer (an echo reply, a neighbour advertisement
// or a parameter problem from one of our addresses, with a valid
// checksum); and every buffer must come back to the pool.
func FuzzStackInputIPv6(f *testing.F) {
	for i, p := range ipv6FuzzSeeds() {
		f.Add(byte(i), p)
	}
	f.Fuzz(func(t *testing.T, sel byte, pkt []byte) {
		n, s := newIPv6Stack(t, nil)
		macs := [...]header.MAC{
			s.mac,
			header.IPv6MulticastMAC(header.IPv6AllNodesMulticast),
			header.IPv6MulticastMAC(header.SolicitedNodeMulticast(ours6)),
			header.IPv6MulticastMAC(header.SolicitedNodeMulticast(oursLL6)),
			header.IPv6MulticastMAC(header.SolicitedNodeMulticast(ip6("2001:db8::3"))),
			header.BroadcastMAC,
		}
		pool := n.pools[0]
		if room := pool.FrameSize() - pool.Headroom() - header.EthernetMinimumSize; len(pkt) > room {
			pkt = pkt[:room]
		}
		for range 2 { // twice: the second meets what the first taught
			before := ipv6Accounted(s)
			inject6(n, s, peerMAC, macs[int(sel)%len(macs)], pkt)
			if got := ipv6Accounted(s) - before; got != 1 {
				t.Fatalf("packet counted %d times; stats %+v drops %v", got, *s.Stats(), nonZero(s))
			}
			for _, fr := range sent(s) {
				checkIPv6Answer(t, s, fr)
			}
		}
		if pool.InUse() != 0 {
			t.Fatalf("%d buffers leaked; drops %v", pool.InUse(), nonZero(s))
		}
	})
}

// checkIPv6Answer fails unless frame is something the stack may send: an
// ICMPv6 echo reply, neighbour advertisement or parameter problem, from
// one of its addresses, whole and with a valid checksum.
func checkIPv6Answer(t *testing.T, s *Stack, frame []byte) {
	t.Helper()
	eth, r := header.ParseEthernet(frame)
	if r != header.DropNone || eth.PayloadType() != header.EtherTypeIPv6 || eth.Source() != s.mac {
		t.Fatalf("sent a frame that is not IPv6 from us: %x", frame)
	}
	if d := eth.Destination(); d == (header.MAC{}) || d.IsBroadcast() || d.IsMulticast() && (d[0] != 0x33 || d[1] != 0x33) {
		t.Fatalf("sent to link-layer address %v", d)
	}
	ip, r := header.ParseIPv6(eth.Payload())
	if r != header.DropNone || len(ip) != len(eth.Payload()) || ip.NextHeader() != header.ProtocolICMPv6 || len(ip) > header.IPv6MinimumMTU {
		t.Fatalf("sent a malformed packet (%v): %x", r, eth.Payload())
	}
	if !s.ip6.isOurs(ip.Source()) || isMartian6(ip.Destination()) && ip.Destination() != header.IPv6AllNodesMulticast {
		t.Fatalf("sent %v -> %v", ip.SourceAddr(), ip.DestinationAddr())
	}
	m, r := header.ParseICMPv6(ip.Payload())
	if r != header.DropNone || !m.IsChecksumValid(ip.PseudoHeaderSum(header.ProtocolICMPv6, len(m))) {
		t.Fatalf("sent an ICMPv6 message with a bad checksum: %x", ip.Payload())
	}
	switch m.Type() {
	case header.ICMPv6EchoReply, header.ICMPv6ParameterProblem:
		if ip.HopLimit() != defaultHopLimit || header.IsIPv6Multicast(ip.Destination()) {
			t.Fatalf("type %d to %v with hop limit %d", m.Type(), ip.DestinationAddr(), ip.HopLimit())
		}
	case header.ICMPv6NeighborAdvertisement:
		if e := header.ValidateNDP(ip, m); e != header.NDPValid {
			t.Fatalf("sent an invalid neighbour advertisement: %v", e)
		}
	default:
		t.Fatalf("sent ICMPv6 type %d", m.Type())
	}
}
