package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack/header"
)

// tcpPair6 is tcpPair with IPv6 on both stacks: a at 2001:db8::1 and b at
// 2001:db8::2 (and 10.0.0.1, 10.0.0.2), with a dual-stack listener on
// b:80. Neither knows the other's link-layer address: the first packet
// resolves it.
func tcpPair6(t *testing.T, opts TCPListenOptions) (n *testNet, a, b *Stack, l *TCPListener) {
	t.Helper()
	n = newTestNet(t)
	a = n.add("10.0.0.1/24", func(c *Config) { c.Addrs6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64")} })
	b = n.add("10.0.0.2/24", func(c *Config) { c.Addrs6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::2/64")} })
	l, err := b.ListenTCP(80, opts)
	if err != nil {
		t.Fatal(err)
	}
	return n, a, b, l
}

func TestTCPOverIPv6HandshakeTransferAndClose(t *testing.T) {
	n, a, b, l := tcpPair6(t, TCPListenOptions{})
	var ethTypes = map[uint16]int{}
	n.filter = func(_ int, frame []byte) bool {
		ethTypes[header.Ethernet(frame).PayloadType()]++
		return true
	}
	c, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8::2"), 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	sc, ok := l.Accept()
	if !ok || c.State() != "ESTABLISHED" || sc.State() != "ESTABLISHED" {
		t.Fatalf("client %s, accepted %v", c.State(), ok)
	}
	if !c.IPv6() || !sc.IPv6() || sc.RemoteAddr() != netip.MustParseAddr("2001:db8::1") || sc.LocalAddr() != netip.MustParseAddr("2001:db8::2") ||
		c.LocalAddr() != netip.MustParseAddr("2001:db8::1") || sc.RemotePort() != c.LocalPort() {
		t.Fatalf("client %v:%d, server sees %v:%d -> %v", c.LocalAddr(), c.LocalPort(), sc.RemoteAddr(), sc.RemotePort(), sc.LocalAddr())
	}
	if a.Stats().NeighbourSolicitsSent == 0 {
		t.Errorf("a resolved b without a neighbour solicitation")
	}
	// The MSS leaves room for the larger header: 1500 - 40 - 20.
	if c.sndMSS != 1440 || sc.sndMSS != 1440 {
		t.Errorf("MSS %d and %d, want 1440", c.sndMSS, sc.sndMSS)
	}
	msg := pattern(200 << 10)
	var back []byte
	if got := transfer(t, n, c, sc, msg); !bytes.Equal(got, msg) {
		t.Fatalf("server got %d bytes, not what was sent", len(got))
	}
	if _, err := sc.Write([]byte("and back")); err != nil {
		t.Fatal(err)
	}
	n.run()
	readAll(c, &back)
	if string(back) != "and back" {
		t.Fatalf("client got %q", back)
	}
	c.Close()
	n.run()
	sc.Close()
	n.run()
	n.advance(2 * time.Minute)
	if a.TCPConnCount() != 0 || b.TCPConnCount() != 0 {
		t.Fatalf("%d and %d connections left", a.TCPConnCount(), b.TCPConnCount())
	}
	if ethTypes[header.EtherTypeIPv4] != 0 || ethTypes[header.EtherTypeIPv6] == 0 {
		t.Fatalf("frames by EtherType %v; want IPv6 only", ethTypes)
	}
	if b.Stats().IPv6PacketsOut == 0 {
		t.Fatalf("IPv6PacketsOut not counted")
	}
	n.checkNoLeaks()
}

func TestListenerFamilies(t *testing.T) {
	for _, tc := range []struct {
		family       int
		take4, take6 bool
	}{{0, true, true}, {4, true, false}, {6, false, true}} {
		n, a, _, l := tcpPair6(t, TCPListenOptions{Family: tc.family})
		for _, to := range []struct {
			addr string
			want bool
		}{{"10.0.0.2", tc.take4}, {"2001:db8::2", tc.take6}} {
			var refused bool
			c, err := a.DialTCPAddr(netip.MustParseAddr(to.addr), 80, TCPConnOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
				if ev == TCPEventClosed && errors.Is(c.Err(), ErrConnectionRefused) {
					refused = true
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			n.run()
			sc, ok := l.Accept()
			if ok != to.want || refused == to.want {
				t.Errorf("family %d, dial %s: accepted %v, refused %v (client %s); want accepted %v", tc.family, to.addr, ok, refused, c.State(), to.want)
			}
			if ok && sc.RemoteAddr().Is6() != (to.addr != "10.0.0.2") {
				t.Errorf("family %d: accepted a connection from %v for a dial to %s", tc.family, sc.RemoteAddr(), to.addr)
			}
		}
	}
	_, _, b, _ := tcpPair6(t, TCPListenOptions{})
	if _, err := b.ListenTCP(81, TCPListenOptions{Family: 5}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("family 5: %v, want ErrInvalidConfig", err)
	}
}

func TestTCPOverIPv6ISNAndCookiesCoverTheWholeAddress(t *testing.T) {
	_, _, b, _ := tcpPair6(t, TCPListenOptions{})
	tt := &b.tcp
	x := tcpTuple{localAddr: ip6("2001:db8::2"), remoteAddr: ip6("2001:db8::1"), localPort: 80, remotePort: 40000}
	y := x
	y.remoteAddr = ip6("2001:db8:1::1") // differs only outside the low 4 bytes
	if tt.isn(x, 0) == tt.isn(y, 0) || tt.tsOffset(x) == tt.tsOffset(y) || tt.cookieHash(x, 1, 1, 1) == tt.cookieHash(y, 1, 1, 1) {
		t.Fatal("ISN, timestamp offset or cookie ignore the high bytes of an IPv6 address")
	}
}

func TestDialOverIPv6WithoutAnIPv6AddressFails(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	if _, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8::2"), 80, TCPConnOptions{}); !errors.Is(err, errNoIPv6) {
		t.Fatalf("dial: %v, want errNoIPv6", err)
	}
}

func TestIPv6ResolutionThatNobodyAnswersDropsWhatWaited(t *testing.T) {
	n, a, _, _ := tcpPair6(t, TCPListenOptions{})
	c, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8::77"), 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.advance(5 * time.Second)
	st := a.Stats()
	if st.NeighbourSolicitsSent != uint64(a.cfg.ARPAttempts) || st.Drops[DropNeighbourTimeout] == 0 {
		t.Fatalf("%d solicitations, drops %v; want %d solicitations and neighbour_timeout", st.NeighbourSolicitsSent, nonZero(a), a.cfg.ARPAttempts)
	}
	c.Abort()
	n.advance(time.Minute)
	n.checkNoLeaks()
}

func TestIPv6OffLinkNeedsAGateway(t *testing.T) {
	n, a, _, _ := tcpPair6(t, TCPListenOptions{})
	if _, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8:5::1"), 80, TCPConnOptions{}); err != nil {
		t.Fatal(err)
	}
	n.run()
	if a.Stats().Drops[DropNoRoute] == 0 {
		t.Fatalf("drops %v; want no_route for an off-link destination without Gateway6", nonZero(a))
	}
	// With a gateway the SYN goes to the gateway's link-layer address.
	n2 := newTestNet(t)
	g := n2.add("10.0.0.9/24", func(c *Config) { c.Addrs6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::9/64")} })
	a2 := n2.add("10.0.0.1/24", func(c *Config) {
		c.Addrs6 = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64")}
		c.Gateway6 = netip.MustParseAddr("fe80::ff:fe00:1") // g's link-local address
	})
	var toGateway int
	n2.filter = func(from int, frame []byte) bool {
		eth := header.Ethernet(frame)
		if from == 1 && eth.Destination() == g.mac && eth.PayloadType() == header.EtherTypeIPv6 && header.IPv6(eth.Payload()).NextHeader() == header.ProtocolTCP {
			toGateway++
		}
		return true
	}
	if _, err := a2.DialTCPAddr(netip.MustParseAddr("2001:db8:5::1"), 80, TCPConnOptions{}); err != nil {
		t.Fatal(err)
	}
	n2.run()
	if toGateway != 1 {
		t.Fatalf("%d SYNs to the gateway's MAC, want 1", toGateway)
	}
	if _, err := New(Config{MAC: header.MAC{2, 0, 0, 0, 0, 1}, Addr: netip.MustParsePrefix("10.0.0.1/24"), Clock: n.clock, Pool: a.pool,
		Addrs6: []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64")}, Gateway6: netip.MustParseAddr("2001:db9::1")}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("off-link Gateway6: %v, want ErrInvalidConfig", err)
	}
}

func TestUDPOverIPv6(t *testing.T) {
	n, a, b, _ := tcpPair6(t, TCPListenOptions{})
	srv, err := b.BindUDP(53, UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var gotFrom [16]byte
	var gotPayload string
	cli, err := a.BindUDP(0, UDPOptions{
		Handler:  func(*UDPEndpoint, []byte, [4]byte, uint16) { t.Error("an IPv6 reply reached the IPv4 handler") },
		Handler6: func(_ *UDPEndpoint, p []byte, from [16]byte, _ uint16) { gotFrom, gotPayload = from, string(p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.SendToAddr([]byte("query"), netip.MustParseAddrPort("[2001:db8::2]:53")); err != nil {
		t.Fatal(err)
	}
	n.run()
	d, ok := srv.Recv()
	if !ok || string(d.Payload()) != "query" || d.Source() != netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), cli.Port()) {
		t.Fatalf("server got %v from %v", ok, d.Source())
	}
	if err := srv.SendToAddr([]byte("answer"), d.Source()); err != nil {
		t.Fatal(err)
	}
	d.Release()
	n.run()
	if gotPayload != "answer" || gotFrom != ip6("2001:db8::2") {
		t.Fatalf("client got %q from %v", gotPayload, netip.AddrFrom16(gotFrom))
	}
	// A datagram to a closed port is answered with a port unreachable.
	before := a.Stats().Drops
	if err := cli.SendTo6([]byte("x"), ip6("2001:db8::2"), 54); err != nil {
		t.Fatal(err)
	}
	n.run()
	if b.Stats().ICMPv6ErrorsSent != 1 || b.Stats().Drops[DropNoSocket] != 1 {
		t.Fatalf("closed port: %d ICMPv6 errors, drops %v", b.Stats().ICMPv6ErrorsSent, nonZero(b))
	}
	if e, ok := cli.Err(); !ok || !errors.Is(e.Err, ErrPortUnreachable) || !e.IPv6 || e.Remote6 != ip6("2001:db8::2") || e.RemotePort != 54 {
		t.Errorf("client socket error %+v, %v; want port unreachable from [2001:db8::2]:54", e, ok)
	}
	if after := a.Stats().Drops; after != before || a.Stats().ICMPErrorsDelivered != 1 {
		t.Errorf("port unreachable: drops %v, %d errors delivered", nonZero(a), a.Stats().ICMPErrorsDelivered)
	}
	if err := cli.SendTo6(make([]byte, 0xffff-7), ip6("2001:db8::2"), 53); !errors.Is(err, ErrMessageTooLong) {
		t.Fatalf("datagram over UDP's length field: %v, want ErrMessageTooLong", err)
	}
	n.checkNoLeaks()
}

// tcpBenchPair6 is tcpBenchPair over IPv6: a at fd00::1, b at fd00::2.
func tcpBenchPair6(tb testing.TB, srv TCPHandler) *memNet {
	m := newMemNetWith(tb, mem.Faults{}, 1, func(i int, c *Config) {
		c.Addrs6 = []netip.Prefix{netip.MustParsePrefix([]string{"fd00::1/64", "fd00::2/64"}[i])}
	}, "10.0.0.1/24", "10.0.0.2/24")
	a, b := m.stacks[0], m.stacks[1]
	a.LearnNeighbour6(ip6("fd00::2"), b.mac)
	b.LearnNeighbour6(ip6("fd00::1"), a.mac)
	if _, err := b.ListenTCP(5001, TCPListenOptions{OnEvent: srv, NoDelay: true}); err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkTCPRR64IPv6 is BenchmarkTCPRR64 over IPv6.
func BenchmarkTCPRR64IPv6(b *testing.B) {
	m := tcpBenchPair6(b, echoServer)
	r := &rrClient{limit: 1 << 62}
	c, err := m.stacks[0].DialTCPAddr(netip.MustParseAddr("fd00::2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true})
	if err != nil {
		b.Fatal(err)
	}
	measureRR(b, m, r, c)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trans/s")
}

// BenchmarkTCPStreamIPv6 is BenchmarkTCPStream over IPv6.
func BenchmarkTCPStreamIPv6(b *testing.B) {
	benchStream(b, tcpBenchPair6, netip.MustParseAddr("fd00::2"))
}

func TestTCPOverIPv6SteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := tcpBenchPair6(t, echoServer)
	r := &rrClient{limit: 1 << 62}
	if _, err := m.stacks[0].DialTCPAddr(netip.MustParseAddr("fd00::2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true}); err != nil {
		t.Fatal(err)
	}
	if !runUntil(m, func() bool { return r.done >= 50 }, 100) {
		t.Fatalf("stalled at %d transactions", r.done)
	}
	if allocs := testing.AllocsPerRun(200, func() {
		want := r.done + 1
		runUntil(m, func() bool { return r.done >= want }, 100)
	}); allocs != 0 {
		t.Errorf("request/response over IPv6: %v allocations per transaction", allocs)
	}
}

// ptb6 is a Packet Too Big from router (any address) quoting pkt, an IPv6
// packet we sent.
func ptb6(router, to [16]byte, mtu uint32, pkt []byte) []byte {
	m := make([]byte, header.ICMPv6MinimumSize+min(len(pkt), header.ICMPv6ErrorQuoteMax))
	n := header.EncodeICMPv6PacketTooBig(m, mtu, pkt)
	return packet6(router, to, 64, header.ProtocolICMPv6, nil, icmp6(router, to, m[:n]))
}

func TestPacketTooBigLowersTheMSSAndIsRetransmittedSmaller(t *testing.T) {
	n, a, b, l := tcpPair6(t, TCPListenOptions{})
	c, sc := connect(t, n, a, l, "2001:db8::2", TCPConnOptions{})
	// Hold back b's segments to a, write a full segment, and answer it
	// with a Packet Too Big of 1400 from a router.
	var big []byte
	n.filter = func(from int, frame []byte) bool {
		eth := header.Ethernet(frame)
		if from == 1 && eth.PayloadType() == header.EtherTypeIPv6 && len(frame) > 1400 {
			big = append([]byte(nil), eth.Payload()...)
			return false
		}
		return true
	}
	if _, err := sc.Write(pattern(3000)); err != nil {
		t.Fatal(err)
	}
	n.run()
	if big == nil {
		t.Fatal("no full-sized segment went out")
	}
	if fl := header.IPv6(big).FlowLabel(); fl == 0 || fl != sc.flowLabel {
		t.Errorf("flow label %#x, connection's %#x; want the same, not 0", fl, sc.flowLabel)
	}
	inject6(n, b, a.mac, b.mac, ptb6(ip6("2001:db8::99"), ip6("2001:db8::2"), 1400, big))
	if b.Stats().ICMPErrorsDelivered != 1 || sc.sndMSS != 1400-60 {
		t.Fatalf("after PTB 1400: %d errors delivered, MSS %d; want 1, %d (drops %v)", b.Stats().ICMPErrorsDelivered, sc.sndMSS, 1400-60, nonZero(b))
	}
	if mtu := b.pathMTU6(ip6("2001:db8::1")); mtu != 1400 {
		t.Fatalf("path MTU %d, want 1400", mtu)
	}
	n.filter = nil
	n.run()
	var got []byte
	readAll(c, &got)
	if !bytes.Equal(got, pattern(3000)) {
		t.Fatalf("client read %d bytes after the PTB, want 3000 intact", len(got))
	}
	// A PTB below IPv6's minimum MTU only brings it to 1280 (RFC 8201 4).
	inject6(n, b, a.mac, b.mac, ptb6(ip6("2001:db8::99"), ip6("2001:db8::2"), 600, big))
	if mtu := b.pathMTU6(ip6("2001:db8::1")); mtu != header.IPv6MinimumMTU {
		t.Fatalf("path MTU %d after a PTB of 600, want 1280", mtu)
	}
	// Connections get different labels.
	c2, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8::2"), 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c2.flowLabel == c.flowLabel || c2.flowLabel == 0 {
		t.Errorf("labels %#x and %#x", c.flowLabel, c2.flowLabel)
	}
}

func TestDestinationUnreachableRefusesAnIPv6Dial(t *testing.T) {
	n, a, b, _ := tcpPair6(t, TCPListenOptions{})
	var syn []byte
	n.filter = func(from int, frame []byte) bool {
		eth := header.Ethernet(frame)
		if from == 0 && eth.PayloadType() == header.EtherTypeIPv6 && header.IPv6(eth.Payload()).NextHeader() == header.ProtocolTCP {
			syn = append([]byte(nil), eth.Payload()...)
			return false
		}
		return true
	}
	c, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8::2"), 81, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	if syn == nil {
		t.Fatal("no SYN")
	}
	m := make([]byte, header.ICMPv6MinimumSize+len(syn))
	k := header.EncodeICMPv6DestinationUnreachable(m, header.ICMPv6PortUnreachable, syn)
	inject6(n, a, b.mac, a.mac, packet6(ip6("2001:db8::2"), ip6("2001:db8::1"), 64, header.ProtocolICMPv6, nil, icmp6(ip6("2001:db8::2"), ip6("2001:db8::1"), m[:k])))
	if !c.Closed() || !errors.Is(c.Err(), ErrConnectionRefused) {
		t.Fatalf("after port unreachable: %s, %v; want closed, refused", c.State(), c.Err())
	}
	// An error quoting a flow we do not have is counted, not delivered.
	inject6(n, a, b.mac, a.mac, packet6(ip6("2001:db8::2"), ip6("2001:db8::1"), 64, header.ProtocolICMPv6, nil, icmp6(ip6("2001:db8::2"), ip6("2001:db8::1"), m[:k])))
	if a.Stats().Drops[DropICMPUnmatched] != 1 {
		t.Fatalf("drops %v; want one icmp_unmatched", nonZero(a))
	}
}

func TestIPv6FragmentsAreSentAndReassembled(t *testing.T) {
	n, a, b, _ := tcpPair6(t, TCPListenOptions{})
	srv, err := b.BindUDP(53, UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := a.BindUDP(0, UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var frags [][]byte
	n.filter = func(from int, frame []byte) bool {
		eth := header.Ethernet(frame)
		if eth.PayloadType() == header.EtherTypeIPv6 && header.IPv6(eth.Payload()).NextHeader() == header.ProtocolIPv6Fragment {
			frags = append(frags, append([]byte(nil), eth.Payload()...))
			if len(frame) > 1514 {
				t.Errorf("a %d-byte fragment over an MTU of 1500", len(frame)-14)
			}
		}
		return true
	}
	msg := pattern(4000)
	if err := cli.SendTo6(msg, ip6("2001:db8::2"), 53); err != nil {
		t.Fatal(err)
	}
	n.run()
	d, ok := srv.Recv()
	if !ok || !bytes.Equal(d.Payload(), msg) {
		t.Fatalf("server got %v: %d bytes; want the 4000 sent", ok, len(d.Payload()))
	}
	d.Release()
	if len(frags) != 3 || a.Stats().FragmentsOut != 3 || b.Stats().FragmentsIn != 3 || b.Stats().Reassembled != 1 {
		t.Fatalf("%d fragments on the wire, %d out, %d in, %d reassembled; want 3, 3, 3, 1", len(frags), a.Stats().FragmentsOut, b.Stats().FragmentsIn, b.Stats().Reassembled)
	}
	id := header.IPv6Fragment(frags[0][header.IPv6FixedHeaderSize:]).Identification()
	for _, f := range frags[1:] {
		if header.IPv6Fragment(f[header.IPv6FixedHeaderSize:]).Identification() != id {
			t.Fatal("fragments of one datagram with different Identifications")
		}
	}

	// Only the first fragment arrives: after the reassembly timeout the
	// stack drops it and tells the sender (RFC 8200 4.5).
	n.filter = func(from int, frame []byte) bool {
		eth := header.Ethernet(frame)
		if from == 0 && eth.PayloadType() == header.EtherTypeIPv6 && header.IPv6(eth.Payload()).NextHeader() == header.ProtocolIPv6Fragment {
			return header.IPv6Fragment(eth.Payload()[header.IPv6FixedHeaderSize:]).FragmentOffset() == 0
		}
		return true
	}
	if err := cli.SendTo6(msg, ip6("2001:db8::2"), 53); err != nil {
		t.Fatal(err)
	}
	n.run()
	if b.ReassemblyBytes() == 0 {
		t.Fatal("the first fragment is not held")
	}
	errsBefore := b.Stats().ICMPv6ErrorsSent
	n.advance(31 * time.Second)
	if b.ReassemblyBytes() != 0 || b.Stats().Drops[DropReassemblyTimeout] != 1 || b.Stats().ICMPv6ErrorsSent != errsBefore+1 {
		t.Fatalf("after the timeout: %d bytes held, drops %v, %d ICMPv6 errors sent", b.ReassemblyBytes(), nonZero(b), b.Stats().ICMPv6ErrorsSent-errsBefore)
	}
	if e, ok := cli.Err(); !ok || !errors.Is(e.Err, ErrTimeExceeded) {
		t.Fatalf("client socket error %+v, %v; want time exceeded", e, ok)
	}
	n.checkNoLeaks()
}

func TestIPv6FirstFragmentWithoutTheWholeHeaderChainIsRefused(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	// The fragmentable part starts with a Destination Options header
	// of 16 bytes, of which the first fragment carries 8 (RFC 7112).
	frag := make([]byte, header.IPv6FragmentSize+8)
	header.IPv6Fragment(frag).Encode(&header.IPv6FragmentFields{NextHeader: header.ProtocolIPv6DestinationOptions, MoreFragments: true, Identification: 9})
	frag[header.IPv6FragmentSize] = header.ProtocolUDP
	frag[header.IPv6FragmentSize+1] = 1 // 16 bytes
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolIPv6Fragment, nil, frag))
	if s.Stats().Drops[DropReason(header.DropBadFragment)] != 1 || s.ReassemblyBytes() != 0 {
		t.Fatalf("drops %v, %d bytes held; want one bad_fragment and nothing held", nonZero(s), s.ReassemblyBytes())
	}
	frames := sent(s)
	if len(frames) != 1 {
		t.Fatalf("%d frames sent, want the parameter problem", len(frames))
	}
	if m := header.ICMPv6(header.IPv6(header.Ethernet(frames[0]).Payload()).Payload()); m.Type() != header.ICMPv6ParameterProblem || m.Code() != header.ICMPv6IncompleteFirstFragment {
		t.Fatalf("type %d code %d; want parameter problem 3", m.Type(), m.Code())
	}
	n.checkNoLeaks()
}

func TestStaleIPv6NeighbourIsProbedByUnicastWhileInUse(t *testing.T) {
	n, a, b, l := tcpPair6(t, TCPListenOptions{})
	c, sc := connect(t, n, a, l, "2001:db8::2", TCPConnOptions{})
	var unicastNS, multicastNS, heldBack int
	// countSolicits counts a's solicitations by their Ethernet
	// destination.
	countSolicits := func(from int, frame []byte) {
		eth := header.Ethernet(frame)
		if from == 0 && icmp6Type(frame) == header.ICMPv6NeighborSolicitation {
			if eth.Destination().IsMulticast() {
				multicastNS++
			} else {
				unicastNS++
			}
		}
	}
	n.filter = func(from int, frame []byte) bool {
		countSolicits(from, frame)
		return true
	}
	n.advance(61 * time.Second) // a's entry for b is stale now
	var got []byte
	if _, err := c.Write([]byte("after the TTL")); err != nil {
		t.Fatal(err)
	}
	n.run()
	readAll(sc, &got)
	if string(got) != "after the TTL" || unicastNS != 1 || multicastNS != 0 {
		t.Fatalf("got %q with %d unicast and %d multicast solicitations; want the data at once and one unicast probe", got, unicastNS, multicastNS)
	}
	if mac, ok := a.Neighbour6(netip.MustParseAddr("2001:db8::2")); !ok || mac != b.mac {
		t.Fatalf("entry not confirmed by the probe's answer: %v %v", mac, ok)
	}
	// A neighbour that stops answering: the stale entry serves through
	// the probes, then resolution starts over by multicast.
	n.filter = func(from int, frame []byte) bool {
		if from == 1 && icmp6Type(frame) == header.ICMPv6NeighborAdvertisement {
			heldBack++
			return false
		}
		countSolicits(from, frame)
		return true
	}
	unicastNS, multicastNS = 0, 0
	n.advance(61 * time.Second)
	for range 5 {
		c.Write([]byte("x"))
		n.advance(time.Second)
	}
	if unicastNS != a.cfg.ARPAttempts || multicastNS == 0 || heldBack == 0 {
		t.Fatalf("%d unicast probes, %d multicast solicitations, %d advertisements held back; want %d probes, then multicast", unicastNS, multicastNS, heldBack, a.cfg.ARPAttempts)
	}
}

func TestIPv6OnlyStack(t *testing.T) {
	n := newTestNet(t)
	v6only := func(a string) *Stack {
		s, err := New(Config{MAC: header.MAC{2, 0, 0, 0, 0, byte(len(n.stacks) + 1)}, Clock: n.clock, Pool: mustPool(t, a),
			Addrs6: []netip.Prefix{netip.MustParsePrefix(a)}})
		if err != nil {
			t.Fatal(err)
		}
		n.stacks = append(n.stacks, s)
		n.pools = append(n.pools, s.pool)
		return s
	}
	a, b := v6only("2001:db8::1/64"), v6only("2001:db8::2/64")
	if a.Addr().IsValid() {
		t.Fatalf("an IPv6-only stack has IPv4 address %v", a.Addr())
	}
	l, err := b.ListenTCP(80, TCPListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.DialTCPAddr(netip.MustParseAddr("2001:db8::2"), 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	if _, ok := l.Accept(); !ok || c.State() != "ESTABLISHED" {
		t.Fatalf("IPv6-only handshake: accepted %v, client %s", ok, c.State())
	}
	if _, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{}); !errors.Is(err, errNoIPv4) {
		t.Fatalf("IPv4 dial from an IPv6-only stack: %v, want errNoIPv4", err)
	}
	u, _ := a.BindUDP(0, UDPOptions{})
	if err := u.SendTo([]byte("x"), ip4("10.0.0.2"), 9); !errors.Is(err, errNoIPv4) {
		t.Fatalf("IPv4 datagram from an IPv6-only stack: %v, want errNoIPv4", err)
	}
	// IPv4 and ARP frames are not for it.
	before := b.Stats().Drops[DropNotSupported]
	inject(n, b, 28, func(p []byte) {
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: header.ProtocolICMPv4, Source: ip4("10.0.0.9"), Destination: ip4("10.0.0.2")})
	})
	if b.Stats().Drops[DropNotSupported] != before+1 {
		t.Fatalf("an IPv4 frame to an IPv6-only stack: drops %v", nonZero(b))
	}
	if _, err := New(Config{MAC: header.MAC{2, 0, 0, 0, 0, 7}, Clock: n.clock, Pool: mustPool(t, "x")}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a stack with no address at all: %v, want ErrInvalidConfig", err)
	}
}

func mustPool(t *testing.T, name string) *nicq.Pool {
	t.Helper()
	p, err := nicq.NewPool(nicq.PoolConfig{Name: name, Buffers: 512})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// icmp6Type returns the type of the ICMPv6 message an Ethernet frame
// carries right after its IPv6 header, or 0 for any other frame.
func icmp6Type(frame []byte) header.ICMPv6Type {
	eth := header.Ethernet(frame)
	if eth.PayloadType() != header.EtherTypeIPv6 {
		return 0
	}
	ip := header.IPv6(eth.Payload())
	if ip.NextHeader() != header.ProtocolICMPv6 || len(ip.Payload()) == 0 {
		return 0
	}
	return header.ICMPv6(ip.Payload()).Type()
}
