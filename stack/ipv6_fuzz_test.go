package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// ipv6Accounted is the number of IPv6 packets a stack has dealt with: each
// is either dropped for one reason or handled in one of the counted ways.
// Drops that come on top of dealing with a packet (an error not sent for
// the rate, no buffer for an answer, no room for a neighbour or in its
// queue of packets waiting for resolution, a held packet whose neighbour
// never answered) are left out.
func ipv6Accounted(s *Stack) uint64 {
	st := s.Stats()
	var n uint64
	for r, v := range st.Drops {
		switch DropReason(r) {
		case DropICMPRateLimited, DropNoBuffer, DropTxQueueFull, DropNeighbourTableFull, DropNeighbourQueueFull, DropNeighbourTimeout:
		default:
			n += v
		}
	}
	return n + st.ICMPv6EchoRepliesSent + st.NeighbourSolicitsIn + st.NeighbourAdvertsIn + st.RouterAdvertsIn
}

// ipv6Counts is what FuzzStackInputIPv6 counts of a stack: ipv6Accounted
// and what its UDP socket queued (counted), the part of that the
// reassembler dropped (a fragment, or those it held), the fragments in,
// the datagrams reassembled, and the segments TCP took.
type ipv6Counts struct {
	counted, reasmDrops, fragments, reassembled, tcp uint64
}

func ipv6FuzzCounts(s *Stack, ep *UDPEndpoint) ipv6Counts {
	st := s.Stats()
	c := ipv6Counts{counted: ipv6Accounted(s) + ep.Received, fragments: st.FragmentsIn, reassembled: st.Reassembled, tcp: s.TCPStats().SegmentsIn}
	for _, r := range []DropReason{DropReason(header.DropBadFragment), DropFragmentOverlap, DropReassemblyMemory, DropTooManyFragments} {
		c.reasmDrops += st.Drops[r]
	}
	return c
}

// checkCountedOnce fails unless one packet, whose counts went from b to
// a, was counted once: a fragment is kept, or dropped by the reassembler
// (with what it held), or completes a datagram, which then counts as a
// packet; a packet is dropped for one reason or handled in one counted
// way, and a segment TCP took (SegmentsIn) is handled unless dropped.
func checkCountedOnce(t *testing.T, s *Stack, b, a ipv6Counts) {
	t.Helper()
	counted, tcp := a.counted-b.counted, a.tcp-b.tcp
	frags, whole := a.fragments-b.fragments, a.reassembled-b.reassembled
	fail := func(why string) {
		t.Helper()
		t.Fatalf("%s: counted %d times (%d by the reassembler), %d TCP segments in, %d fragments in, %d reassembled; stats %+v drops %v",
			why, counted, a.reasmDrops-b.reasmDrops, tcp, frags, whole, *s.Stats(), nonZero(s))
	}
	if frags > 1 || whole > frags {
		fail("one packet, several fragments")
	}
	if frags == 1 {
		counted -= a.reasmDrops - b.reasmDrops
		if whole == 0 {
			if counted != 0 || tcp != 0 {
				fail("a fragment kept or dropped by the reassembler")
			}
			return
		}
	}
	if tcp > 1 || tcp == 1 && counted > 1 || tcp == 0 && counted != 1 {
		fail("a packet")
	}
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

// The stack FuzzStackInputIPv6 builds listens on TCP port 80, has UDP
// port 7 bound, and has one connection ESTABLISHED from the peer's
// fuzzPeerPort6 with ISN fuzzPeerISN6, its own ISS fixed by fuzzISNKey.
const (
	fuzzPeerPort6 = 4000
	fuzzPeerISN6  = 0x5eed0000
)

var fuzzISNKey = [16]byte{'f', 'u', 'z', 'z', 6}

// It has a default router, fe80::1, so every answer has a route and
// no_route is never on top of another count.
var fuzzRouter6 = ip6("fe80::1")

// ipv6FuzzStack builds that stack and returns the ISS of its connection.
func ipv6FuzzStack(t *testing.T) (n *testNet, s *Stack, ep *UDPEndpoint, l *TCPListener, iss uint32) {
	t.Helper()
	n, s = newIPv6Stack(t, func(c *Config) {
		c.Warn = func(string) {} // so a bad checksum's report reads the packet too
		c.TCP.ISNKey = fuzzISNKey
		c.Gateway6 = netip.AddrFrom16(fuzzRouter6)
	})
	s.LearnNeighbour6(peer6, peerMAC)
	s.LearnNeighbour6(fuzzRouter6, header.MAC{2, 0, 0, 0, 0, 0xfe})
	l, err := s.ListenTCP(80, TCPListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep, err = s.BindUDP(7, UDPOptions{}); err != nil {
		t.Fatal(err)
	}
	syn := tcp6(peer6, ours6, fuzzPeerPort6, 80, fuzzPeerISN6, 0, header.TCPFlagSYN, synOpts(1440, "ws7", "sack"), nil)
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolTCP, nil, syn))
	frames := sent(s)
	if len(frames) != 1 || header.Ethernet(frames[0]).PayloadType() != header.EtherTypeIPv6 {
		t.Fatalf("SYN: %d frames sent", len(frames))
	}
	synack := header.TCP(header.IPv6(header.Ethernet(frames[0]).Payload()).Payload())
	if synack.Flags() != header.TCPFlagSYN|header.TCPFlagACK || synack.AckNumber() != fuzzPeerISN6+1 {
		t.Fatalf("SYN answered with flags %v ack %d", synack.Flags(), synack.AckNumber())
	}
	iss = synack.SequenceNumber()
	ack := tcp6(peer6, ours6, fuzzPeerPort6, 80, fuzzPeerISN6+1, iss+1, header.TCPFlagACK, nil, nil)
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolTCP, nil, ack))
	if frames := sent(s); len(frames) != 0 || s.TCPStats().Established != 1 {
		t.Fatalf("ACK: %d frames sent, %d established", len(frames), s.TCPStats().Established)
	}
	return n, s, ep, l, iss
}

// tcp6 builds a TCP segment from src to dst with a valid checksum.
func tcp6(src, dst [16]byte, sport, dport uint16, seq, ack uint32, flags header.TCPFlags, o *header.TCPOptions, payload []byte) []byte {
	var ob [header.TCPMaximumOptionsSize]byte
	ol := 0
	if o != nil {
		ol = header.EncodeTCPOptions(ob[:], o)
	}
	seg := header.TCP(make([]byte, header.TCPMinimumSize+ol+len(payload)))
	seg.Encode(&header.TCPFields{SourcePort: sport, DestinationPort: dport, SequenceNumber: seq, AckNumber: ack,
		DataOffset: header.TCPMinimumSize + ol, Flags: flags, Window: 65535})
	copy(seg[header.TCPMinimumSize:], ob[:ol])
	copy(seg[header.TCPMinimumSize+ol:], payload)
	seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv6(src, dst, header.ProtocolTCP, uint32(len(seg)))))
	return seg
}

// udp6 builds a UDP datagram from src to dst with a valid checksum.
func udp6(src, dst [16]byte, sport, dport uint16, payload []byte) []byte {
	u := header.UDP(make([]byte, header.UDPSize+len(payload)))
	u.Encode(&header.UDPFields{SourcePort: sport, DestinationPort: dport, Length: uint16(len(u))})
	copy(u[header.UDPSize:], payload)
	u.SetChecksum(u.ComputeChecksum(checksum.PseudoHeaderIPv6(src, dst, header.ProtocolUDP, uint32(len(u)))))
	return u
}

// ipv6TransportSeeds are TCP and UDP packets to the stack
// FuzzStackInputIPv6 builds, whose connection has ISS iss: SYNs to the
// listener (from a global and a link-local address, with and without
// options) and to a closed port, data, a FIN and RSTs on the connection,
// an ACK that is no SYN cookie, and datagrams to the bound port and to a
// closed one.
func ipv6TransportSeeds(iss uint32) [][]byte {
	const syn, ack, psh, fin, rst = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagPSH, header.TCPFlagFIN, header.TCPFlagRST
	seg := func(src, dst [16]byte, sport, dport uint16, seq, ackn uint32, flags header.TCPFlags, o *header.TCPOptions, payload []byte) []byte {
		return packet6(src, dst, 64, header.ProtocolTCP, nil, tcp6(src, dst, sport, dport, seq, ackn, flags, o, payload))
	}
	conn := func(seq, ackn uint32, flags header.TCPFlags, o *header.TCPOptions, payload []byte) []byte {
		return seg(peer6, ours6, fuzzPeerPort6, 80, fuzzPeerISN6+seq, iss+ackn, flags, o, payload)
	}
	ts := &header.TCPOptions{HasTimestamps: true, TSVal: 5000, TSEcr: 1}
	// A datagram to the bound port in two fragments, and a SYN in one.
	frag := func(off uint16, more bool, next uint8, data []byte) []byte {
		h := make([]byte, header.IPv6FragmentSize)
		header.IPv6Fragment(h).Encode(&header.IPv6FragmentFields{NextHeader: next, FragmentOffset: off, MoreFragments: more, Identification: 0x600d})
		return packet6(peer6, ours6, 64, header.ProtocolIPv6Fragment, h, data)
	}
	big := udp6(peer6, ours6, 1000, 7, make([]byte, 40))
	dstOpts := []byte{header.ProtocolUDP, 0, header.IPv6OptionPadN, 4, 0, 0, 0, 0}
	return [][]byte{
		seg(peer6, ours6, 4001, 80, 1000, 0, syn, synOpts(1440, "ws7", "sack", "ts"), nil),
		seg(peer6, ours6, 4002, 80, 1000, 0, syn, nil, nil),
		seg(peerLL6, oursLL6, 4003, 80, 1000, 0, syn, synOpts(1220), nil),
		seg(peer6, ours6, 4004, 81, 1000, 0, syn, nil, nil),
		seg(peer6, ours6, 4005, 80, 1001, 12345, ack, nil, []byte("not a cookie")),
		conn(1, 1, psh|ack, nil, []byte("data on the connection")),
		conn(1, 1, ack, ts, make([]byte, 1000)),
		conn(1000, 1, ack, &header.TCPOptions{NumSACKBlocks: 1, SACKBlocks: [4]header.SACKBlock{{Left: iss + 1, Right: iss + 2}}}, []byte("out of order")),
		conn(1, 1, fin|ack, nil, []byte("bye")),
		conn(1, 0, rst, nil, nil),
		conn(100, 0, rst, nil, nil),
		conn(1, 1, syn, nil, nil),
		packet6(peer6, ours6, 64, header.ProtocolUDP, nil, udp6(peer6, ours6, 1000, 7, []byte("udp over ipv6"))),
		packet6(peer6, ours6, 64, header.ProtocolUDP, nil, udp6(peer6, ours6, 1000, 9, []byte("closed"))),
		packet6(peerLL6, oursLL6, 64, header.ProtocolUDP, nil, udp6(peerLL6, oursLL6, 1000, 7, nil)),
		packet6(peer6, ours6, 64, header.ProtocolIPv6DestinationOptions, dstOpts, udp6(peer6, ours6, 1000, 7, []byte("after options"))),
		frag(0, true, header.ProtocolUDP, big[:24]),
		frag(24, false, header.ProtocolUDP, big[24:]),
		frag(0, false, header.ProtocolTCP, tcp6(peer6, ours6, 4006, 80, 1000, 0, syn, nil, nil)),
	}
}

// FuzzStackInputIPv6 feeds arbitrary IPv6 packets, in frames to our MAC,
// to one of our groups, to another group or to broadcast (by sel), to a
// stack with IPv6 configured. It must never panic; each packet must be
// counted exactly once, as a drop or as handled; whatever the stack sends
// must be a well-formed answer (checkIPv6Answer); and every buffer must
// come back to the pool.
//
// The stack listens on TCP port 80 with one connection ESTABLISHED and
// has UDP port 7 bound (ipv6FuzzStack), and the seeds carry TCP segments
// and UDP datagrams for them (ipv6TransportSeeds): a segment TCP takes is
// counted by TCPStats.SegmentsIn, and is handled unless also dropped; a
// datagram the socket queues by its Received. The stack may then also
// answer with TCP segments, port unreachables and neighbour solicitations
// (for a source it has no entry for); once its sockets are closed and its
// timers have run for two minutes, no buffer is left out of the pool. A
// fragment is counted when the reassembler keeps or drops it, and the
// datagram it completes once more.
func FuzzStackInputIPv6(f *testing.F) {
	seeds := ipv6FuzzSeeds()
	_, _, _, _, iss := ipv6FuzzStack(&testing.T{})
	seeds = append(seeds, ipv6TransportSeeds(iss)...)
	for i, p := range seeds {
		f.Add(byte(i), p)
	}
	f.Fuzz(func(t *testing.T, sel byte, pkt []byte) {
		n, s, ep, l, _ := ipv6FuzzStack(t)
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
			before := ipv6FuzzCounts(s, ep)
			inject6(n, s, peerMAC, macs[int(sel)%len(macs)], pkt)
			checkCountedOnce(t, s, before, ipv6FuzzCounts(s, ep))
			for _, fr := range sent(s) {
				checkIPv6Answer(t, s, fr)
			}
		}
		// Close the sockets (the listener resets its connections), then
		// run timer to timer for two minutes: retransmissions, and
		// packets held for a neighbour that never answers.
		ep.Close()
		l.Close()
		for _, fr := range sent(s) {
			checkIPv6Answer(t, s, fr)
		}
		runTimers(n, s, 2*time.Minute, func() {
			for _, fr := range sent(s) {
				checkIPv6Answer(t, s, fr)
			}
		})
		if pool.InUse() != 0 {
			t.Fatalf("%d buffers leaked; drops %v", pool.InUse(), nonZero(s))
		}
	})
}

// checkIPv6Answer fails unless frame is something the stack may send: an
// ICMPv6 echo reply, destination unreachable, time exceeded, neighbour
// solicitation or advertisement or parameter problem, or a TCP segment,
// from one of its addresses, whole and with a valid checksum.
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
	if r != header.DropNone || len(ip) != len(eth.Payload()) || len(ip) > header.IPv6MinimumMTU ||
		ip.NextHeader() != header.ProtocolICMPv6 && ip.NextHeader() != header.ProtocolTCP {
		t.Fatalf("sent a malformed packet (%v): %x", r, eth.Payload())
	}
	if !s.ip6.isOurs(ip.Source()) || isMartian6(ip.Destination()) && ip.Destination() != header.IPv6AllNodesMulticast &&
		!(header.IsIPv6Multicast(ip.Destination()) && ip.NextHeader() == header.ProtocolICMPv6 && header.ICMPv6(ip.Payload()).Type() == header.ICMPv6NeighborSolicitation) {
		t.Fatalf("sent %v -> %v", ip.SourceAddr(), ip.DestinationAddr())
	}
	if ip.NextHeader() == header.ProtocolTCP {
		seg, r := header.ParseTCP(ip.Payload())
		if r != header.DropNone || len(seg) != len(ip.Payload()) || !seg.IsChecksumValid(ip.PseudoHeaderSum(header.ProtocolTCP, len(seg))) {
			t.Fatalf("sent a bad TCP segment (%v): %x", r, ip.Payload())
		}
		if ip.HopLimit() != defaultHopLimit || header.IsIPv6Multicast(ip.Destination()) {
			t.Fatalf("TCP to %v with hop limit %d", ip.DestinationAddr(), ip.HopLimit())
		}
		return
	}
	m, r := header.ParseICMPv6(ip.Payload())
	if r != header.DropNone || !m.IsChecksumValid(ip.PseudoHeaderSum(header.ProtocolICMPv6, len(m))) {
		t.Fatalf("sent an ICMPv6 message with a bad checksum: %x", ip.Payload())
	}
	switch m.Type() {
	case header.ICMPv6EchoReply, header.ICMPv6ParameterProblem, header.ICMPv6DestinationUnreachable, header.ICMPv6TimeExceeded:
		if ip.HopLimit() != defaultHopLimit || header.IsIPv6Multicast(ip.Destination()) {
			t.Fatalf("type %d to %v with hop limit %d", m.Type(), ip.DestinationAddr(), ip.HopLimit())
		}
	case header.ICMPv6NeighborAdvertisement, header.ICMPv6NeighborSolicitation:
		if e := header.ValidateNDP(ip, m); e != header.NDPValid {
			t.Fatalf("sent an invalid neighbour message (type %d): %v", m.Type(), e)
		}
	default:
		t.Fatalf("sent ICMPv6 type %d", m.Type())
	}
}
