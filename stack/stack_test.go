package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
)

func TestGratuitousARPAtStartTeachesNeighbours(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	// b already knows a's address (as after an earlier exchange), then a
	// restarts with a new MAC and announces it.
	b.LearnNeighbour(ip4("10.0.0.1"), header.MAC{2, 9, 9, 9, 9, 9})
	a.Start()
	n.run()
	if mac, ok := b.Neighbour(ip4("10.0.0.1")); !ok || mac != a.mac {
		t.Fatalf("b's entry for a = %v,%v; want %v", mac, ok, a.mac)
	}
	n.checkNoLeaks()
}

func TestPingResolvesARPAndGetsAReply(t *testing.T) {
	n := newTestNet(t)
	var replies []uint16
	a := n.add("10.0.0.1/24", func(c *Config) {
		c.OnEchoReply = func(from [4]byte, id, seq uint16, payload []byte) {
			if from != ip4("10.0.0.2") || id != 7 || len(payload) != 56 {
				t.Errorf("reply from %v id %d len %d", from, id, len(payload))
			}
			replies = append(replies, seq)
		}
	})
	var learned [][4]byte
	b := n.add("10.0.0.2/24", func(c *Config) {
		c.OnNeighbour = func(ip [4]byte, _ header.MAC) { learned = append(learned, ip) }
	})
	for seq := uint16(1); seq <= 3; seq++ {
		if err := a.Ping(ip4("10.0.0.2"), 7, seq, 56); err != nil {
			t.Fatal(err)
		}
		n.run()
	}
	if len(replies) != 3 || replies[2] != 3 {
		t.Fatalf("replies %v, want seqs 1..3", replies)
	}
	if a.Stats().ARPRequestsSent != 1 || b.Stats().ARPRepliesSent != 1 {
		t.Fatalf("ARP requests %d replies %d; want exactly one exchange", a.Stats().ARPRequestsSent, b.Stats().ARPRepliesSent)
	}
	if b.Stats().EchoRepliesSent != 3 {
		t.Fatalf("echo replies %d", b.Stats().EchoRepliesSent)
	}
	if len(learned) != 1 || learned[0] != ip4("10.0.0.1") {
		t.Fatalf("OnNeighbour calls %v; want one for 10.0.0.1", learned)
	}
	n.checkNoLeaks()
}

func echoHandler(ep *UDPEndpoint, payload []byte, from [4]byte, port uint16) {
	ep.SendTo(payload, from, port)
}

func TestUDPEchoRoundTrip(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	if _, err := b.BindUDP(7, UDPOptions{Handler: echoHandler}); err != nil {
		t.Fatal(err)
	}
	ep, err := a.BindUDP(0, UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello, multikernel")
	if err := ep.SendTo(msg, ip4("10.0.0.2"), 7); err != nil {
		t.Fatal(err)
	}
	n.run()
	d, ok := ep.Recv()
	if !ok {
		t.Fatalf("no echo; a drops %v b drops %v", nonZero(a), nonZero(b))
	}
	if !bytes.Equal(d.Payload(), msg) || d.From != ip4("10.0.0.2") || d.FromPort != 7 {
		t.Fatalf("echo %q from %v:%d", d.Payload(), d.From, d.FromPort)
	}
	d.Release()
	if _, err := b.BindUDP(7, UDPOptions{}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("second bind of 7: %v", err)
	}
	ep.Close()
	n.checkNoLeaks()
}

func TestUDPToClosedPortGetsPortUnreachable(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	ep, _ := a.BindUDP(0, UDPOptions{})
	ep.SendTo([]byte("x"), ip4("10.0.0.2"), 9999)
	n.run()
	e, ok := ep.Err()
	if !ok || !errors.Is(e.Err, ErrPortUnreachable) || e.Remote != ip4("10.0.0.2") || e.RemotePort != 9999 {
		t.Fatalf("error %+v, %v; want port unreachable from 10.0.0.2:9999", e, ok)
	}
	if b.Stats().Drops[DropNoSocket] != 1 || b.Stats().ICMPErrorsSent != 1 {
		t.Fatalf("b: no_socket %d, icmp errors %d", b.Stats().Drops[DropNoSocket], b.Stats().ICMPErrorsSent)
	}
	ep.Close()
	n.checkNoLeaks()
}

// udpEchoThrough sends size bytes from a to an echo server on b
// (10.0.0.2) and checks the echo comes back intact; it returns a's
// endpoint, for the caller to close.
func udpEchoThrough(t *testing.T, n *testNet, a, b *Stack, size int) *UDPEndpoint {
	t.Helper()
	b.BindUDP(7, UDPOptions{Handler: echoHandler})
	ep, _ := a.BindUDP(0, UDPOptions{})
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	if err := ep.SendTo(msg, ip4("10.0.0.2"), 7); err != nil {
		t.Fatal(err)
	}
	n.run()
	d, ok := ep.Recv()
	if !ok {
		t.Fatalf("%d bytes: no echo; a drops %v b drops %v", size, nonZero(a), nonZero(b))
	}
	if !bytes.Equal(d.Payload(), msg) {
		t.Fatalf("echo of %d bytes differs (got %d)", len(msg), len(d.Payload()))
	}
	d.Release()
	return ep
}

func TestFragmentedUDPBothWays(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	ep := udpEchoThrough(t, n, a, b, 9000)
	// 9008 bytes of UDP in 1480-byte pieces: 7 fragments each way.
	if a.Stats().FragmentsOut != 7 || b.Stats().FragmentsOut != 7 || b.Stats().Reassembled != 1 || a.Stats().Reassembled != 1 {
		t.Fatalf("fragments out a=%d b=%d, reassembled a=%d b=%d", a.Stats().FragmentsOut, b.Stats().FragmentsOut, a.Stats().Reassembled, b.Stats().Reassembled)
	}
	ep.Close()
	n.checkNoLeaks()
}

func TestReassemblyTimeoutDropsAndTellsTheSender(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	b.BindUDP(7, UDPOptions{})
	ep, _ := a.BindUDP(0, UDPOptions{})
	// Lose every fragment but the first.
	n.filter = func(from int, f []byte) bool {
		eth := header.Ethernet(f)
		if from != 0 || eth.PayloadType() != header.EtherTypeIPv4 {
			return true
		}
		ip := header.IPv4(eth.Payload())
		return !ip.IsFragment() || ip.FragmentOffset() == 0
	}
	ep.SendTo(make([]byte, 3000), ip4("10.0.0.2"), 7)
	n.run()
	if b.ReassemblyBytes() == 0 {
		t.Fatal("first fragment not held")
	}
	n.advance(29 * time.Second)
	if b.Stats().Drops[DropReassemblyTimeout] != 0 {
		t.Fatal("timed out early")
	}
	n.advance(2 * time.Second)
	if b.Stats().Drops[DropReassemblyTimeout] != 1 || b.ReassemblyBytes() != 0 {
		t.Fatalf("timeout drops %d, held %d", b.Stats().Drops[DropReassemblyTimeout], b.ReassemblyBytes())
	}
	if e, ok := ep.Err(); !ok || !errors.Is(e.Err, ErrTimeExceeded) {
		t.Fatalf("sender error %+v,%v; want time exceeded", e, ok)
	}
	ep.Close()
	n.checkNoLeaks()
}

func TestNeighbourExpiresWhenThePeerIsGoneAndSendersAreTold(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	a.Ping(ip4("10.0.0.2"), 1, 1, 8)
	n.run()
	if _, ok := a.Neighbour(ip4("10.0.0.2")); !ok {
		t.Fatal("not resolved")
	}
	// b leaves the wire: nothing it sends arrives any more.
	n.filter = func(from int, _ []byte) bool { return from != 1 }
	n.advance(60*time.Second + 5*time.Second)
	if a.NeighbourCount() != 0 {
		t.Fatalf("entry survived an unanswered refresh: %d entries", a.NeighbourCount())
	}
	// A send now waits for ARP and fails after the attempts.
	ep, _ := a.BindUDP(0, UDPOptions{})
	ep.SendTo([]byte("anyone?"), ip4("10.0.0.2"), 7)
	n.advance(5 * time.Second)
	if e, ok := ep.Err(); !ok || !errors.Is(e.Err, ErrHostUnreachable) {
		t.Fatalf("sender error %+v,%v; want host unreachable", e, ok)
	}
	if a.Stats().Drops[DropNeighbourTimeout] != 1 {
		t.Fatalf("neighbour timeout drops %d", a.Stats().Drops[DropNeighbourTimeout])
	}
	_ = b
	ep.Close()
	n.checkNoLeaks()
}

func TestNeighbourRefreshKeepsALivePeer(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	n.add("10.0.0.2/24", nil)
	a.Ping(ip4("10.0.0.2"), 1, 1, 8)
	n.run()
	n.advance(200 * time.Second)
	if _, ok := a.Neighbour(ip4("10.0.0.2")); !ok {
		t.Fatal("live neighbour dropped")
	}
	n.checkNoLeaks()
}

func TestOffLinkTrafficGoesToTheGatewayMAC(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", func(c *Config) { c.Gateway = netipAddr("10.0.0.254") })
	gw := n.add("10.0.0.254/24", nil)
	var seen []byte
	n.filter = func(from int, f []byte) bool {
		eth := header.Ethernet(f)
		if from == 0 && eth.PayloadType() == header.EtherTypeIPv4 {
			seen = append([]byte(nil), f...)
		}
		return true
	}
	ep, _ := a.BindUDP(0, UDPOptions{})
	if err := ep.SendTo([]byte("far away"), ip4("192.168.7.9"), 53); err != nil {
		t.Fatal(err)
	}
	n.run()
	if seen == nil {
		t.Fatal("nothing sent")
	}
	eth := header.Ethernet(seen)
	ip := header.IPv4(eth.Payload())
	if eth.Destination() != gw.mac || ip.Destination() != ip4("192.168.7.9") {
		t.Fatalf("frame to MAC %v IP %v; want gateway MAC %v, IP 192.168.7.9", eth.Destination(), ip.DestinationAddr(), gw.mac)
	}
	// The gateway is not a router: it counts the datagram as not for it.
	if gw.Stats().Drops[DropNotForUs] == 0 {
		t.Fatal("gateway did not count the datagram")
	}
	ep.Close()
	n.checkNoLeaks()
}

func TestOverlappingFragmentsDropTheDatagram(t *testing.T) {
	n := newTestNet(t)
	b := n.add("10.0.0.2/24", nil)
	b.BindUDP(7, UDPOptions{})
	send := func(off int, more bool, size int) {
		buf := n.pools[0].Get()
		frame := buf.Append(14 + 20 + size)
		header.Ethernet(frame).Encode(&header.EthernetFields{Destination: b.mac, Source: header.MAC{2, 0, 0, 0, 0, 99}, Type: header.EtherTypeIPv4})
		flags := uint8(0)
		if more {
			flags = header.IPv4FlagMoreFragments
		}
		header.IPv4(frame[14:]).Encode(&header.IPv4Fields{TotalLength: uint16(20 + size), ID: 42, Flags: flags, FragmentOffset: uint16(off), TTL: 64, Protocol: header.ProtocolUDP, Source: ip4("10.0.0.9"), Destination: ip4("10.0.0.2")})
		b.Input([]*nicq.Buf{buf})
	}
	send(0, true, 16)
	send(8, true, 16) // overlaps [8,16)
	if got := b.Stats().Drops[DropFragmentOverlap]; got != 2 {
		t.Fatalf("overlap drops %d, want 2 (held fragment and the new one)", got)
	}
	if b.ReassemblyBytes() != 0 {
		t.Fatal("fragments still held")
	}
	n.checkNoLeaks()
}

func TestBadFramesAreCountedByReason(t *testing.T) {
	n := newTestNet(t)
	b := n.add("10.0.0.2/24", nil)
	in := func(frame []byte) {
		buf := n.pools[0].Get()
		copy(buf.Append(len(frame)), frame)
		b.Input([]*nicq.Buf{buf})
	}
	hdr := func(typ uint16) []byte {
		f := make([]byte, 14, 64)
		header.Ethernet(f).Encode(&header.EthernetFields{Destination: b.mac, Source: header.MAC{2, 1, 1, 1, 1, 1}, Type: typ})
		return f
	}
	in([]byte{1, 2, 3})
	in(append(hdr(0x1234), 0))
	tagged := make([]byte, 18+20)
	header.Ethernet(tagged).Encode(&header.EthernetFields{Destination: b.mac, Source: header.MAC{2, 1, 1, 1, 1, 1}, Type: header.EtherTypeIPv4, TPID: header.EtherTypeVLAN, TCI: 5})
	in(tagged)
	ipBad := append(hdr(header.EtherTypeIPv4), make([]byte, 20)...)
	header.IPv4(ipBad[14:]).Encode(&header.IPv4Fields{TotalLength: 20, TTL: 1, Protocol: 99, Source: ip4("10.0.0.9"), Destination: ip4("10.0.0.2")})
	ipBad[14+10] ^= 0xff // break the checksum
	in(ipBad)
	st := b.Stats()
	for r, want := range map[DropReason]uint64{
		DropReason(header.DropTruncated):   1,
		DropUnknownEtherType:               1,
		DropVLANTagged:                     1,
		DropReason(header.DropBadChecksum): 1,
	} {
		if st.Drops[r] != want {
			t.Errorf("%v drops = %d, want %d (all: %v)", r, st.Drops[r], want, nonZero(b))
		}
	}
	n.checkNoLeaks()
}

func TestReassembledDatagramOfAnotherCoresFlowIsForwarded(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	var forwarded []*nicq.Buf
	b := n.add("10.0.0.2/24", func(c *Config) {
		c.Core = 0
		c.FlowOwner = func(proto uint8, src, dst [4]byte, sp, dp uint16) int { return 1 }
		c.Forward = func(core int, buf *nicq.Buf) bool {
			if core != 1 {
				t.Errorf("forwarded to core %d", core)
			}
			forwarded = append(forwarded, buf)
			return true
		}
	})
	ep, _ := a.BindUDP(0, UDPOptions{})
	ep.SendTo(make([]byte, 4000), ip4("10.0.0.2"), 7)
	n.run()
	if len(forwarded) != 1 || b.Stats().Forwarded != 1 {
		t.Fatalf("forwarded %d datagrams", len(forwarded))
	}
	ip := header.IPv4(forwarded[0].Bytes())
	if ip.IsFragment() || int(ip.TotalLength()) != 20+8+4000 {
		t.Fatalf("forwarded datagram: fragment=%v length %d", ip.IsFragment(), ip.TotalLength())
	}
	// The receiving core's stack takes it from here.
	c := n.add("10.0.0.2/24", nil)
	sock, _ := c.BindUDP(7, UDPOptions{})
	c.InputForwarded(forwarded[0])
	if d, ok := sock.Recv(); !ok || len(d.Payload()) != 4000 {
		t.Fatal("forwarded datagram not delivered on the owning core")
	} else {
		d.Release()
	}
	ep.Close()
	n.checkNoLeaks()
}

func TestUDPEchoSteadyStateDoesNotAllocate(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	b.BindUDP(7, UDPOptions{Handler: echoHandler})
	got := 0
	ep, _ := a.BindUDP(0, UDPOptions{Handler: func(*UDPEndpoint, []byte, [4]byte, uint16) { got++ }})
	msg := make([]byte, 64)
	one := func() {
		ep.SendTo(msg, ip4("10.0.0.2"), 7)
		n.run()
	}
	one() // resolve ARP, warm up
	allocs := testing.AllocsPerRun(200, one)
	if allocs != 0 {
		t.Fatalf("UDP echo allocates %.1f times per round trip", allocs)
	}
	if got < 200 {
		t.Fatalf("only %d echoes came back", got)
	}
}

func nonZero(s *Stack) map[string]uint64 {
	m := map[string]uint64{}
	for r, v := range s.Stats().Drops {
		if v != 0 {
			m[DropReason(r).String()] = v
		}
	}
	return m
}

func TestICMPErrorForAFlowOfAnotherCoreIsForwarded(t *testing.T) {
	n := newTestNet(t)
	var forwarded []*nicq.Buf
	a := n.add("10.0.0.1/24", func(c *Config) {
		c.Core = 0
		// Replies from 10.0.0.2:9999 to our port land on core 1.
		c.FlowOwner = func(proto uint8, src, dst [4]byte, sp, dp uint16) int {
			if src == ip4("10.0.0.2") && sp == 9999 {
				return 1
			}
			return 0
		}
		c.Forward = func(core int, b *nicq.Buf) bool { forwarded = append(forwarded, b); return true }
	})
	n.add("10.0.0.2/24", nil)
	ep, _ := a.BindUDP(0, UDPOptions{})
	ep.SendTo([]byte("x"), ip4("10.0.0.2"), 9999)
	n.run()
	if len(forwarded) != 1 {
		t.Fatalf("forwarded %d ICMP errors, want 1", len(forwarded))
	}
	if _, ok := ep.Err(); ok {
		t.Fatal("error delivered on the wrong core")
	}
	// On the owning core the error reaches the socket.
	c := n.add("10.0.0.1/24", nil)
	sock, _ := c.BindUDP(ep.Port(), UDPOptions{})
	c.InputForwarded(forwarded[0])
	if e, ok := sock.Err(); !ok || !errors.Is(e.Err, ErrPortUnreachable) {
		t.Fatalf("owning core's socket error %+v,%v", e, ok)
	}
	ep.Close()
	sock.Close()
	n.checkNoLeaks()
}

func TestThreeStacksPingEachOtherAndLearnEachOther(t *testing.T) {
	n := newTestNet(t)
	replies := map[[4]byte]int{}
	on := func(c *Config) {
		c.OnEchoReply = func(from [4]byte, _, _ uint16, _ []byte) { replies[from]++ }
	}
	s := []*Stack{n.add("10.0.0.1/24", on), n.add("10.0.0.2/24", on), n.add("10.0.0.3/24", on)}
	for i, x := range s {
		for j, y := range s {
			if i != j {
				x.Ping(y.addr, uint16(i), uint16(j), 16)
			}
		}
	}
	n.run()
	for _, x := range s {
		if replies[x.addr] != 2 {
			t.Errorf("%v answered %d pings, want 2", x.Addr(), replies[x.addr])
		}
		if x.NeighbourCount() != 2 {
			t.Errorf("%v knows %d neighbours, want 2", x.Addr(), x.NeighbourCount())
		}
	}
	n.checkNoLeaks()
}

// inject hands s a frame built by fill (which gets the bytes after the
// Ethernet header) from a host at 10.0.0.9.
func inject(n *testNet, s *Stack, size int, fill func(ip []byte)) {
	b := n.pools[0].Get()
	f := b.Append(14 + size)
	header.Ethernet(f).Encode(&header.EthernetFields{Destination: s.mac, Source: header.MAC{2, 0, 0, 0, 0, 9}, Type: header.EtherTypeIPv4})
	fill(f[14:])
	s.Input([]*nicq.Buf{b})
}

func TestFragmentationNeededLowersThePathMTU(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	n.add("10.0.0.2/24", nil)
	ep, _ := a.BindUDP(0, UDPOptions{})
	// A router says 10.0.0.2 is behind a 576-byte link, quoting our datagram.
	inject(n, a, 20+8+28, func(p []byte) {
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 56, TTL: 64, Protocol: header.ProtocolICMPv4, Source: ip4("10.0.0.9"), Destination: ip4("10.0.0.1")})
		m := header.ICMPv4(p[20:])
		m.Encode(&header.ICMPv4Fields{Type: header.ICMPv4DestinationUnreachable, Code: header.ICMPv4FragmentationNeeded, RestOfHeader: 576})
		header.IPv4(p[28:]).Encode(&header.IPv4Fields{TotalLength: 1028, TTL: 64, Protocol: header.ProtocolUDP, Flags: header.IPv4FlagDontFragment, Source: ip4("10.0.0.1"), Destination: ip4("10.0.0.2")})
		header.UDP(p[48:]).Encode(&header.UDPFields{SourcePort: ep.Port(), DestinationPort: 7, Length: 1008})
		m.SetChecksum(m.ComputeChecksum())
	})
	if got := a.PathMTU(ip4("10.0.0.2")); got != 576 {
		t.Fatalf("path MTU %d, want 576", got)
	}
	if e, ok := ep.Err(); !ok || !errors.Is(e.Err, ErrMessageTooLong) {
		t.Fatalf("socket error %+v,%v; want message too long", e, ok)
	}
	ep.SendTo(make([]byte, 1000), ip4("10.0.0.2"), 7)
	n.run()
	// 1008 bytes of UDP in 552-byte pieces.
	if a.Stats().FragmentsOut != 2 {
		t.Fatalf("fragments out %d, want 2", a.Stats().FragmentsOut)
	}
	if a.PathMTU(ip4("10.0.0.3")) != 1500 {
		t.Fatal("path MTU leaked to another destination")
	}
	ep.Close()
	n.checkNoLeaks()
}

func TestUDPWithZeroChecksumIsAcceptedAndWithABadOneDropped(t *testing.T) {
	n := newTestNet(t)
	b := n.add("10.0.0.2/24", nil)
	sock, _ := b.BindUDP(7, UDPOptions{})
	datagram := func(csum func(u header.UDP) uint16) {
		inject(n, b, 20+8+4, func(p []byte) {
			header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 32, TTL: 64, Protocol: header.ProtocolUDP, Source: ip4("10.0.0.9"), Destination: ip4("10.0.0.2")})
			u := header.UDP(p[20:])
			u.Encode(&header.UDPFields{SourcePort: 1000, DestinationPort: 7, Length: 12})
			copy(u[8:], "ping")
			u.SetChecksum(csum(u))
		})
	}
	datagram(func(header.UDP) uint16 { return 0 })
	datagram(func(header.UDP) uint16 { return 0x1234 })
	if sock.Len() != 1 || b.Stats().Drops[DropReason(header.DropBadChecksum)] != 1 {
		t.Fatalf("queued %d, bad checksum drops %d; want 1 and 1", sock.Len(), b.Stats().Drops[DropReason(header.DropBadChecksum)])
	}
	sock.Close()
	n.checkNoLeaks()
}

// TestARPConfirmationsAddressedToUsAreReported: the runtime refreshes the
// other cores' copies of an entry only through OnNeighbour, and ARP lands
// on one queue, so a confirmation with nothing new must be reported too.
func TestARPConfirmationsAddressedToUsAreReported(t *testing.T) {
	n := newTestNet(t)
	var reported int
	a := n.add("10.0.0.1/24", func(c *Config) {
		c.OnNeighbour = func(ip [4]byte, mac header.MAC) { reported++ }
	})
	arp := func(target [4]byte) {
		b := n.pools[0].Get()
		f := b.Append(14 + header.ARPSize)
		header.Ethernet(f).Encode(&header.EthernetFields{Destination: header.BroadcastMAC, Source: header.MAC{2, 0, 0, 0, 0, 9}, Type: header.EtherTypeARP})
		header.ARP(f[14:]).Encode(&header.ARPFields{Op: header.ARPRequest, SenderHardwareAddress: header.MAC{2, 0, 0, 0, 0, 9},
			SenderProtocolAddress: ip4("10.0.0.9"), TargetProtocolAddress: target})
		a.Input([]*nicq.Buf{b})
	}
	arp(ip4("10.0.0.1"))
	arp(ip4("10.0.0.1")) // the same mapping again: a confirmation
	arp(ip4("10.0.0.7")) // for another host: an update with no news
	if reported != 2 {
		t.Fatalf("OnNeighbour called %d times, want 2 (news, then the confirmation to us)", reported)
	}
	replies(a)
}

// TestUnansweredICMPIsCountedAsADrop: ICMP the stack does not act on is
// dropped and counted (icmp_unhandled), not freed unseen: an echo request
// to the subnet broadcast (RFC 1122 3.2.2.6 allows silence), an echo
// reply with no OnEchoReply to take it, a timestamp request.
func TestUnansweredICMPIsCountedAsADrop(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", nil)
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	for _, m := range []struct {
		dst [4]byte
		typ header.ICMPv4Type
	}{
		{ip4("10.0.0.255"), header.ICMPv4Echo},
		{ip4("10.0.0.2"), header.ICMPv4EchoReply},
		{ip4("10.0.0.2"), header.ICMPv4Timestamp},
	} {
		inject(n, s, 20+8, func(p []byte) {
			ip := header.IPv4(p)
			ip.Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: header.ProtocolICMPv4, Source: ip4("10.0.0.9"), Destination: m.dst})
			ip.SetChecksum(ip.ComputeChecksum())
			msg := header.ICMPv4(p[20:])
			msg.Encode(&header.ICMPv4Fields{Type: m.typ, RestOfHeader: header.EchoRestOfHeader(1, 1)})
			msg.SetChecksum(msg.ComputeChecksum())
		})
	}
	if d := drops(s, DropICMPUnhandled); d != 3 {
		t.Fatalf("icmp_unhandled %d, want 3: %v", d, nonZero(s))
	}
	if out := sent(s); len(out) != 0 {
		t.Fatalf("%d frames sent, want none", len(out))
	}
	n.checkNoLeaks()
}

// TestNewRejectsAnInvalidTCPConfig: New reports a TCPConfig that
// TCPConfig's own checks refuse, rather than return a stack whose TCP was
// never set up.
func TestNewRejectsAnInvalidTCPConfig(t *testing.T) {
	for name, tweak := range map[string]func(*TCPConfig){
		"congestion":   func(c *TCPConfig) { c.Congestion = "no-such-algorithm" },
		"memory limit": func(c *TCPConfig) { c.MemoryLimit = 1000 },
		"buffer":       func(c *TCPConfig) { c.SendBuffer = 100 },
	} {
		pool, err := nicq.NewPool(nicq.PoolConfig{Name: name, Buffers: 8})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{MAC: header.MAC{2, 0, 0, 0, 0, 1}, Addr: netip.MustParsePrefix("10.0.0.1/24"), Clock: nicq.NewVirtualClock(1), Pool: pool}
		tweak(&cfg.TCP)
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
}
