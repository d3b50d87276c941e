package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// The IPv6 tests talk to one stack, 2001:db8::2/64 with MAC
// 02:00:00:00:00:01 (link-local fe80::ff:fe00:1), from a peer at
// 2001:db8::9 / fe80::9 with MAC 02:00:00:00:00:09.
var (
	peerMAC  = header.MAC{2, 0, 0, 0, 0, 9}
	peer6    = ip6("2001:db8::9")
	peerLL6  = ip6("fe80::9")
	ours6    = ip6("2001:db8::2")
	oursLL6  = ip6("fe80::ff:fe00:1")
	oursMAC6 = header.MAC{2, 0, 0, 0, 0, 1}
)

func ip6(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func newIPv6Stack(t *testing.T, tweak func(*Config)) (*testNet, *Stack) {
	t.Helper()
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) {
		c.Addrs6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::2/64")}
		if tweak != nil {
			tweak(c)
		}
	})
	return n, s
}

// packet6 builds an IPv6 packet: the fixed header, then ext (extension
// headers, whose first Next Header is next) and upper.
func packet6(src, dst [16]byte, hopLimit, next uint8, ext, upper []byte) []byte {
	p := make([]byte, header.IPv6FixedHeaderSize+len(ext)+len(upper))
	encodeIPv6(p, next, hopLimit, len(ext)+len(upper), src, dst)
	copy(p[header.IPv6FixedHeaderSize:], ext)
	copy(p[header.IPv6FixedHeaderSize+len(ext):], upper)
	return p
}

// icmp6 fills in the checksum of msg as sent from src to dst.
func icmp6(src, dst [16]byte, msg []byte) []byte {
	m := header.ICMPv6(msg)
	m.SetChecksum(m.ComputeChecksum(checksum.PseudoHeaderIPv6(src, dst, header.ProtocolICMPv6, uint32(len(msg)))))
	return msg
}

func echo6(src, dst [16]byte, id, seq uint16, data []byte) []byte {
	m := make([]byte, header.ICMPv6MinimumSize+len(data))
	header.EncodeICMPv6Echo(m, header.ICMPv6EchoRequest, id, seq, data)
	return icmp6(src, dst, m)
}

// ns6 is a neighbour solicitation for target, with a source link-layer
// address option unless sll is the zero MAC.
func ns6(src, dst, target [16]byte, sll header.MAC) []byte {
	m := make([]byte, header.NDPNeighborMessageSize, header.NDPNeighborMessageSize+8)
	header.EncodeNDPNeighborSolicitation(m, target)
	if sll != (header.MAC{}) {
		m = m[:len(m)+8]
		header.EncodeNDPLinkLayerAddressOption(m[header.NDPNeighborMessageSize:], header.NDPOptionSourceLinkLayerAddress, sll)
	}
	return icmp6(src, dst, m)
}

func na6(src, dst, target [16]byte, flags uint8, tll header.MAC) []byte {
	m := make([]byte, header.NDPNeighborMessageSize+8)
	header.EncodeNDPNeighborAdvertisement(m, flags, target)
	header.EncodeNDPLinkLayerAddressOption(m[header.NDPNeighborMessageSize:], header.NDPOptionTargetLinkLayerAddress, tll)
	return icmp6(src, dst, m)
}

// inject6 hands s an IPv6 packet in a frame from srcMAC to dstMAC.
func inject6(n *testNet, s *Stack, srcMAC, dstMAC header.MAC, pkt []byte) {
	b := n.pools[0].Get()
	f := b.Append(header.EthernetMinimumSize + len(pkt))
	header.Ethernet(f).Encode(&header.EthernetFields{Destination: dstMAC, Source: srcMAC, Type: header.EtherTypeIPv6})
	copy(f[header.EthernetMinimumSize:], pkt)
	s.Input([]*nicq.Buf{b})
}

// sent returns copies of the frames s has queued, and frees them.
func sent(s *Stack) [][]byte {
	var out [][]byte
	s.Flush(func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			out = append(out, append([]byte(nil), b.Bytes()...))
			b.Free()
		}
		return len(bufs)
	})
	return out
}

// one6 checks that s sent exactly one frame, an IPv6 packet with a valid
// ICMPv6 message, from our MAC to dstMAC, and returns the packet and the
// message.
func one6(t *testing.T, s *Stack, dstMAC header.MAC) (header.IPv6, header.ICMPv6) {
	t.Helper()
	frames := sent(s)
	if len(frames) != 1 {
		t.Fatalf("sent %d frames, want 1; drops %v", len(frames), nonZero(s))
	}
	eth := header.Ethernet(frames[0])
	if eth.Destination() != dstMAC || eth.Source() != s.mac || eth.PayloadType() != header.EtherTypeIPv6 {
		t.Fatalf("frame %v -> %v type %#x; want %v -> %v IPv6", eth.Source(), eth.Destination(), eth.PayloadType(), s.mac, dstMAC)
	}
	ip, r := header.ParseIPv6(eth.Payload())
	if r != header.DropNone || len(ip) != len(eth.Payload()) {
		t.Fatalf("reply's IPv6 header: %v (packet %d of %d bytes)", r, len(ip), len(eth.Payload()))
	}
	if ip.NextHeader() != header.ProtocolICMPv6 {
		t.Fatalf("next header %d, want ICMPv6", ip.NextHeader())
	}
	m := header.ICMPv6(ip.Payload())
	if !m.IsChecksumValid(ip.PseudoHeaderSum(header.ProtocolICMPv6, len(m))) {
		t.Fatal("reply's ICMPv6 checksum does not verify")
	}
	return ip, m
}

func TestPing6ToGlobalAndLinkLocalAddressesIsAnswered(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	data := []byte("ping six, with an odd length")
	for i, c := range []struct {
		name     string
		src, dst [16]byte
		dstMAC   header.MAC
		ext      []byte
		from     [16]byte
	}{
		{"global", peer6, ours6, s.mac, nil, ours6},
		{"link-local", peerLL6, oursLL6, s.mac, nil, oursLL6},
		// Behind a Destination Options header (PadN), which the reply
		// does not carry.
		{"after destination options", peer6, ours6, s.mac, []byte{header.ProtocolICMPv6, 0, header.IPv6OptionPadN, 4, 0, 0, 0, 0}, ours6},
		// To all-nodes, answered from the link-local address (RFC 4443 4.2).
		{"all-nodes", peerLL6, header.IPv6AllNodesMulticast, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast), nil, oursLL6},
	} {
		next := uint8(header.ProtocolICMPv6)
		if c.ext != nil {
			next = header.ProtocolIPv6DestinationOptions
		}
		seq := uint16(i + 1)
		inject6(n, s, peerMAC, c.dstMAC, packet6(c.src, c.dst, 64, next, c.ext, echo6(c.src, c.dst, 0x77, seq, data)))
		ip, m := one6(t, s, peerMAC)
		if ip.Source() != c.from || ip.Destination() != c.src || ip.HopLimit() != defaultHopLimit {
			t.Errorf("%s: reply %v -> %v hop limit %d; want %v -> %v, %d", c.name, ip.SourceAddr(), ip.DestinationAddr(), ip.HopLimit(),
				netip.AddrFrom16(c.from), netip.AddrFrom16(c.src), defaultHopLimit)
		}
		if m.Type() != header.ICMPv6EchoReply || m.Code() != 0 || m.Identifier() != 0x77 || m.Sequence() != seq || !bytes.Equal(m.Payload(), data) {
			t.Errorf("%s: reply type %d code %d id %#x seq %d data %q", c.name, m.Type(), m.Code(), m.Identifier(), m.Sequence(), m.Payload())
		}
	}
	if got := s.Stats().ICMPv6EchoRepliesSent; got != 4 {
		t.Errorf("ICMPv6EchoRepliesSent = %d, want 4", got)
	}
	if d := nonZero(s); len(d) != 0 {
		t.Errorf("drops %v", d)
	}
	n.checkNoLeaks()
}

func TestPing6ReplyGoesToTheLearnedNeighbour(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	// The peer solicits us from one MAC ...
	learned := header.MAC{2, 0, 0, 0, 0, 0x42}
	inject6(n, s, learned, header.IPv6MulticastMAC(header.SolicitedNodeMulticast(ours6)),
		packet6(peer6, header.SolicitedNodeMulticast(ours6), 255, header.ProtocolICMPv6, nil,
			ns6(peer6, header.SolicitedNodeMulticast(ours6), ours6, learned)))
	one6(t, s, learned)
	// ... and a ping from another link-layer source (a bridge, a bond)
	// is answered at the address the cache holds.
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, nil)))
	one6(t, s, learned)
	n.checkNoLeaks()
}

func TestBadICMPv6ChecksumIsDroppedAndCounted(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	m := echo6(peer6, ours6, 1, 1, []byte("x"))
	m[2] ^= 0x55
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, m))
	if frames := sent(s); len(frames) != 0 || drops(s, DropICMPv6BadChecksum) != 1 {
		t.Fatalf("sent %d frames, drops %v; want none and one icmpv6_bad_checksum", len(frames), nonZero(s))
	}
	n.checkNoLeaks()
}

func TestNeighbourSolicitationForOurAddressGetsAnAdvertisement(t *testing.T) {
	var reported [][16]byte
	n, s := newIPv6Stack(t, func(c *Config) {
		c.OnNeighbour6 = func(ip [16]byte, mac header.MAC) { reported = append(reported, ip) }
	})
	for _, target := range [][16]byte{ours6, oursLL6} {
		group := header.SolicitedNodeMulticast(target)
		inject6(n, s, peerMAC, header.IPv6MulticastMAC(group),
			packet6(peerLL6, group, 255, header.ProtocolICMPv6, nil, ns6(peerLL6, group, target, peerMAC)))
		ip, m := one6(t, s, peerMAC)
		if e := header.ValidateNDP(ip, m); e != header.NDPValid || m.Type() != header.ICMPv6NeighborAdvertisement {
			t.Fatalf("reply type %d: %v", m.Type(), e)
		}
		if ip.Source() != target || ip.Destination() != peerLL6 {
			t.Errorf("advertisement %v -> %v; want %v -> %v", ip.SourceAddr(), ip.DestinationAddr(), netip.AddrFrom16(target), netip.AddrFrom16(peerLL6))
		}
		na := header.NDPNeighborAdvertisement(m)
		if na.TargetAddress() != target || na.Flags() != header.NDPFlagSolicited|header.NDPFlagOverride {
			t.Errorf("advertisement of %v flags %#x; want %v, S|O", netip.AddrFrom16(na.TargetAddress()), na.Flags(), netip.AddrFrom16(target))
		}
		if mac, ok := ndpLinkLayerAddress(na.Options(), header.NDPOptionTargetLinkLayerAddress); !ok || mac != s.mac {
			t.Errorf("target link-layer address option %v,%v; want %v", mac, ok, s.mac)
		}
	}
	if mac, ok := s.Neighbour6(netip.AddrFrom16(peerLL6)); !ok || mac != peerMAC || s.Neighbour6Count() != 1 {
		t.Fatalf("solicitor's entry %v,%v (%d entries); want %v", mac, ok, s.Neighbour6Count(), peerMAC)
	}
	if len(reported) != 2 || reported[0] != peerLL6 || reported[1] != peerLL6 {
		t.Fatalf("OnNeighbour6 reported %v; want the solicitor twice", reported)
	}
	st := s.Stats()
	if st.NeighbourSolicitsIn != 2 || st.NeighbourAdvertsSent != 2 {
		t.Errorf("solicitations in %d, advertisements sent %d; want 2, 2", st.NeighbourSolicitsIn, st.NeighbourAdvertsSent)
	}
	// A solicitation for another address (sent to ours, as a
	// reachability probe would be) is not answered, and teaches nothing.
	other := ip6("2001:db8::3")
	inject6(n, s, header.MAC{2, 0, 0, 0, 0, 0x33}, s.mac,
		packet6(ip6("2001:db8::33"), ours6, 255, header.ProtocolICMPv6, nil, ns6(ip6("2001:db8::33"), ours6, other, header.MAC{2, 0, 0, 0, 0, 0x33})))
	if frames := sent(s); len(frames) != 0 || drops(s, DropIPv6NotForUs) != 1 || s.Neighbour6Count() != 1 {
		t.Fatalf("solicitation for %v: sent %d, drops %v, %d entries", netip.AddrFrom16(other), len(frames), nonZero(s), s.Neighbour6Count())
	}
	// Nor does a frame to the solicited-node group of another address
	// get past Ethernet.
	group := header.SolicitedNodeMulticast(other)
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(group), packet6(peerLL6, group, 255, header.ProtocolICMPv6, nil, ns6(peerLL6, group, other, peerMAC)))
	if frames := sent(s); len(frames) != 0 || drops(s, DropNotForUs) != 1 {
		t.Fatalf("to another solicited-node group: sent %d, drops %v", len(frames), nonZero(s))
	}
	n.checkNoLeaks()
}

func TestDuplicateAddressDetectionSolicitationIsAnsweredToAllNodes(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	group := header.SolicitedNodeMulticast(ours6)
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(group),
		packet6([16]byte{}, group, 255, header.ProtocolICMPv6, nil, ns6([16]byte{}, group, ours6, header.MAC{})))
	ip, m := one6(t, s, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast))
	if e := header.ValidateNDP(ip, m); e != header.NDPValid {
		t.Fatalf("advertisement invalid: %v", e)
	}
	na := header.NDPNeighborAdvertisement(m)
	if ip.Source() != ours6 || ip.Destination() != header.IPv6AllNodesMulticast || na.Flags() != header.NDPFlagOverride || na.TargetAddress() != ours6 {
		t.Fatalf("advertisement %v -> %v flags %#x; want %v -> ff02::1, O only", ip.SourceAddr(), ip.DestinationAddr(), na.Flags(), netip.AddrFrom16(ours6))
	}
	if s.Neighbour6Count() != 0 {
		t.Fatal("learned an entry from the unspecified address")
	}
	n.checkNoLeaks()
}

func TestNeighbourAdvertisementsUpdateOnlyEntriesWeHave(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	group := header.SolicitedNodeMulticast(ours6)
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(group), packet6(peer6, group, 255, header.ProtocolICMPv6, nil, ns6(peer6, group, ours6, peerMAC)))
	sent(s)
	moved := header.MAC{2, 0, 0, 0, 0, 0x10}
	advertise := func(target [16]byte, flags uint8, mac header.MAC) {
		all := header.IPv6AllNodesMulticast
		inject6(n, s, mac, header.IPv6MulticastMAC(all), packet6(target, all, 255, header.ProtocolICMPv6, nil, na6(target, all, target, flags, mac)))
	}
	advertise(peer6, 0, moved) // no Override: the cached address stays
	if mac, _ := s.Neighbour6(netip.AddrFrom16(peer6)); mac != peerMAC {
		t.Fatalf("an advertisement without Override replaced the entry: %v", mac)
	}
	advertise(peer6, header.NDPFlagOverride, moved)
	if mac, _ := s.Neighbour6(netip.AddrFrom16(peer6)); mac != moved {
		t.Fatalf("an advertisement with Override left the entry at %v", mac)
	}
	advertise(ip6("2001:db8::77"), header.NDPFlagOverride, moved) // nobody asked
	if s.Neighbour6Count() != 1 || s.Stats().NeighbourAdvertsIn != 3 {
		t.Fatalf("%d entries, %d advertisements in; want 1, 3", s.Neighbour6Count(), s.Stats().NeighbourAdvertsIn)
	}
	if len(sent(s)) != 0 {
		t.Fatal("an advertisement was answered")
	}
	n.checkNoLeaks()
}

func TestIPv6NeighbourTableIsBoundedAndEntriesExpire(t *testing.T) {
	n, s := newIPv6Stack(t, func(c *Config) { c.MaxNeighbours = 4 })
	solicit := func(i byte) {
		src := ip6("2001:db8::100")
		src[15] = i
		mac := header.MAC{2, 0, 0, 0, 1, i}
		inject6(n, s, mac, s.mac, packet6(src, ours6, 255, header.ProtocolICMPv6, nil, ns6(src, ours6, ours6, mac)))
	}
	for i := range byte(6) {
		solicit(i)
	}
	if s.Neighbour6Count() != 4 || drops(s, DropNeighbourTableFull) != 2 || len(sent(s)) != 6 {
		t.Fatalf("%d entries, drops %v; want 4 entries, 2 neighbour_table_full, every solicitation answered", s.Neighbour6Count(), nonZero(s))
	}
	first := ip6("2001:db8::100")
	n.advance(61 * time.Second)
	if _, ok := s.Neighbour6(netip.AddrFrom16(first)); ok {
		t.Fatal("an entry outlived NeighbourTTL")
	}
	solicit(9) // reuses an expired slot
	if s.Neighbour6Count() != 4 || drops(s, DropNeighbourTableFull) != 2 {
		t.Fatalf("after expiry: %d entries, drops %v", s.Neighbour6Count(), nonZero(s))
	}
	sent(s)
	n.checkNoLeaks()
}

func TestRouterAdvertisementIsValidatedAndCounted(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	all := header.IPv6AllNodesMulticast
	ra := func(hop uint8) {
		m := make([]byte, header.NDPRouterAdvertisementSize)
		header.EncodeNDPRouterAdvertisement(m, &header.NDPRouterAdvertisementFields{CurrentHopLimit: 64, RouterLifetime: 1800})
		inject6(n, s, peerMAC, header.IPv6MulticastMAC(all), packet6(peerLL6, all, hop, header.ProtocolICMPv6, nil, icmp6(peerLL6, all, m)))
	}
	ra(255)
	ra(64) // off the link: invalid
	if s.Stats().RouterAdvertsIn != 1 || drops(s, DropNDPInvalid) != 1 || len(sent(s)) != 0 {
		t.Fatalf("router advertisements in %d, drops %v", s.Stats().RouterAdvertsIn, nonZero(s))
	}
	n.checkNoLeaks()
}

func TestIPv6ToAnotherAddressIsDroppedAndCounted(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	other := ip6("2001:db8::77")
	inject6(n, s, peerMAC, s.mac, packet6(peer6, other, 64, header.ProtocolICMPv6, nil, echo6(peer6, other, 1, 1, nil)))
	if len(sent(s)) != 0 || drops(s, DropIPv6NotForUs) != 1 {
		t.Fatalf("drops %v; want one ipv6_not_for_us", nonZero(s))
	}
	n.checkNoLeaks()
}

func TestUnknownNextHeaderGetsParameterProblemPointingAtIt(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	for _, c := range []struct {
		name    string
		next    uint8
		ext     []byte
		pointer uint32
	}{
		{"in the fixed header", 253, nil, 6},
		{"after destination options", header.ProtocolIPv6DestinationOptions, []byte{253, 0, header.IPv6OptionPadN, 4, 0, 0, 0, 0}, 40},
	} {
		orig := packet6(peer6, ours6, 64, c.next, c.ext, []byte("payload of an unknown protocol"))
		inject6(n, s, peerMAC, s.mac, orig)
		ip, m := one6(t, s, peerMAC)
		if ip.Source() != ours6 || ip.Destination() != peer6 {
			t.Errorf("%s: error %v -> %v", c.name, ip.SourceAddr(), ip.DestinationAddr())
		}
		if m.Type() != header.ICMPv6ParameterProblem || m.Code() != header.ICMPv6UnrecognizedNextHeader || m.Pointer() != c.pointer {
			t.Errorf("%s: type %d code %d pointer %d; want parameter problem code 1 pointer %d", c.name, m.Type(), m.Code(), m.Pointer(), c.pointer)
		}
		if !bytes.Equal(m.Payload(), orig) {
			t.Errorf("%s: the error does not quote the packet", c.name)
		}
	}
	if drops(s, DropIPv6UnknownNextHeader) != 2 || s.Stats().ICMPv6ErrorsSent != 2 {
		t.Fatalf("drops %v, errors sent %d", nonZero(s), s.Stats().ICMPv6ErrorsSent)
	}
	// Not about a packet sent to a group (RFC 4443 2.4 (e)).
	all := header.IPv6AllNodesMulticast
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(all), packet6(peer6, all, 64, 253, nil, []byte("x")))
	if len(sent(s)) != 0 || drops(s, DropIPv6UnknownNextHeader) != 3 {
		t.Fatalf("to all-nodes: drops %v", nonZero(s))
	}
	n.checkNoLeaks()
}

func TestICMPv6ErrorsShareTheICMPRateLimit(t *testing.T) {
	n, s := newIPv6Stack(t, func(c *Config) { c.ICMPErrorsPerSecond = 3 })
	for range 5 {
		inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, 253, nil, nil))
	}
	if got := len(sent(s)); got != 3 || drops(s, DropICMPRateLimited) != 2 {
		t.Fatalf("%d errors sent, drops %v; want 3 and 2 icmp_rate_limited", got, nonZero(s))
	}
	n.checkNoLeaks()
}

func TestIPv6WhatIsNotHandledIsDroppedAndCounted(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	frag := make([]byte, 8+16)
	header.IPv6Fragment(frag).Encode(&header.IPv6FragmentFields{NextHeader: header.ProtocolICMPv6, MoreFragments: true, Identification: 7})
	udp := make([]byte, 12)
	header.UDP(udp).Encode(&header.UDPFields{SourcePort: 1, DestinationPort: 7, Length: 12})
	short := packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, []byte("abcd")))
	header.IPv6(short).SetPayloadLength(200)
	reply := echo6(peer6, ours6, 1, 1, nil)
	header.ICMPv6(reply).SetType(header.ICMPv6EchoReply)
	reply = icmp6(peer6, ours6, reply)
	for _, c := range []struct {
		name string
		pkt  []byte
		want DropReason
	}{
		{"fragment to a group", packet6(peer6, header.IPv6AllNodesMulticast, 64, header.ProtocolIPv6Fragment, nil, frag), DropIPv6NotForUs},
		{"UDP without a checksum", packet6(peer6, ours6, 64, header.ProtocolUDP, nil, udp), DropReason(header.DropBadChecksum)},
		{"TCP with data offset 0", packet6(peer6, ours6, 64, header.ProtocolTCP, nil, make([]byte, 20)), DropReason(header.DropBadDataOffset)},
		{"no next header", packet6(peer6, ours6, 64, header.ProtocolIPv6NoNextHeader, nil, nil), DropIPv6UnsupportedProtocol},
		{"payload length past the frame", short, DropIPv6BadHeader},
		{"version 4", append([]byte{0x45}, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, nil)[1:]...), DropIPv6BadHeader},
		{"multicast source", packet6(ip6("ff02::9"), ours6, 64, header.ProtocolICMPv6, nil, echo6(ip6("ff02::9"), ours6, 1, 1, nil)), DropMartianSource},
		{"echo reply", packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, reply), DropICMPv6Unhandled},
		{"truncated ICMPv6", packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, []byte{128, 0}), DropReason(header.DropTruncated)},
		{"routing header with segments left", packet6(peer6, ours6, 64, header.ProtocolIPv6Routing, []byte{header.ProtocolICMPv6, 0, 0, 1, 0, 0, 0, 0}, echo6(peer6, ours6, 1, 1, nil)), DropIPv6BadExtension},
	} {
		before := s.Stats().Drops
		inject6(n, s, peerMAC, s.mac, c.pkt)
		if got := s.Stats().Drops[c.want] - before[c.want]; got != 1 {
			t.Errorf("%s: %v drops +%d, want +1 (all: %v)", c.name, c.want, got, nonZero(s))
		}
	}
	// Only the Routing header is worth an error (Parameter Problem code 0
	// at its Routing Type).
	frames := sent(s)
	if len(frames) != 1 {
		t.Fatalf("sent %d frames, want the one parameter problem", len(frames))
	}
	if m := header.ICMPv6(header.IPv6(header.Ethernet(frames[0]).Payload()).Payload()); m.Type() != header.ICMPv6ParameterProblem || m.Code() != header.ICMPv6ErroneousHeaderField || m.Pointer() != 42 {
		t.Fatalf("type %d code %d pointer %d; want parameter problem 0 at 42", m.Type(), m.Code(), m.Pointer())
	}
	n.checkNoLeaks()
}

func TestStackWithoutIPv6DropsIPv6AsBefore(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", nil)
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, nil)))
	group := header.SolicitedNodeMulticast(oursLL6)
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(group), packet6(peerLL6, group, 255, header.ProtocolICMPv6, nil, ns6(peerLL6, group, oursLL6, peerMAC)))
	if len(sent(s)) != 0 || drops(s, DropNotSupported) != 1 || drops(s, DropNotForUs) != 1 {
		t.Fatalf("drops %v; want one not_supported, one not_for_us", nonZero(s))
	}
	if len(s.Addrs6()) != 0 {
		t.Fatalf("addresses %v", s.Addrs6())
	}
	n.checkNoLeaks()
}

func TestIPv6ConfigIsChecked(t *testing.T) {
	pool, _ := nicq.NewPool(nicq.PoolConfig{Name: "cfg", Buffers: 8})
	base := Config{MAC: oursMAC6, Addr: netip.MustParsePrefix("10.0.0.2/24"), Clock: nicq.NewVirtualClock(0), Pool: pool}
	for _, c := range []struct {
		name  string
		addrs []string
		mtu   int
	}{
		{"IPv4 prefix", []string{"10.0.0.3/24"}, 0},
		{"multicast", []string{"ff02::1/128"}, 0},
		{"unspecified", []string{"::/0"}, 0},
		{"mapped IPv4", []string{"::ffff:10.0.0.3/128"}, 0},
		{"MTU below 1280", []string{"2001:db8::2/64"}, 1000},
	} {
		cfg := base
		cfg.MTU = c.mtu
		for _, a := range c.addrs {
			cfg.Addrs6 = append(cfg.Addrs6, netip.MustParsePrefix(a))
		}
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", c.name, err)
		}
	}
	cfg := base
	cfg.Addrs6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::2/64")}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.AddrFrom16(oursLL6), netip.AddrFrom16(ours6)}
	if got := s.Addrs6(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("addresses %v, want %v", got, want)
	}
}

// echo6Round returns a function that hands s one echo request with 56
// bytes of data from the peer and sends the reply, as a core's loop would.
func echo6Round(n *testNet, s *Stack) func() {
	pkt := packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, make([]byte, 56)))
	pool := n.pools[0]
	send := func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			b.Free()
		}
		return len(bufs)
	}
	in := make([]*nicq.Buf, 1)
	return func() {
		b := pool.Get()
		f := b.Append(header.EthernetMinimumSize + len(pkt))
		header.Ethernet(f).Encode(&header.EthernetFields{Destination: s.mac, Source: peerMAC, Type: header.EtherTypeIPv6})
		copy(f[header.EthernetMinimumSize:], pkt)
		in[0] = b
		s.Input(in)
		s.Flush(send)
	}
}

func TestPing6DoesNotAllocate(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	one := echo6Round(n, s)
	one()
	if allocs := testing.AllocsPerRun(200, one); allocs != 0 {
		t.Fatalf("an echo request and its reply allocate %.1f times", allocs)
	}
	if got := s.Stats().ICMPv6EchoRepliesSent; got != 202 {
		t.Fatalf("%d replies, want 202", got)
	}
	n.checkNoLeaks()
}

// BenchmarkICMPv6Echo is one ping6 answered: an echo request with 56 bytes
// of data in, its reply written in place and flushed (one stack, no wire).
func BenchmarkICMPv6Echo(b *testing.B) {
	n, s := newIPv6Stack(&testing.T{}, nil)
	one := echo6Round(n, s)
	one()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		one()
	}
}

func TestLearnNeighbour6InstallsAReplicatedEntry(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	s.LearnNeighbour6(peer6, header.MAC{2, 0, 0, 0, 0, 0x42})
	// The reply goes to the replicated entry, not to the frame's source.
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, nil)))
	one6(t, s, header.MAC{2, 0, 0, 0, 0, 0x42})
	n.checkNoLeaks()
}
