package stack

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/stack/header"
)

// icmpAboutTCP injects into s an ICMP error from a router at 10.0.0.9
// quoting a TCP segment s sent to 10.0.0.2 with the given ports and
// sequence number.
func icmpAboutTCP(n *testNet, s *Stack, typ header.ICMPv4Type, code header.ICMPv4Code, mtu uint32, sport, dport uint16, seq uint32) {
	inject(n, s, 20+8+28, func(p []byte) {
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 56, TTL: 64, Protocol: header.ProtocolICMPv4, Source: ip4("10.0.0.9"), Destination: s.addr})
		m := header.ICMPv4(p[20:])
		m.Encode(&header.ICMPv4Fields{Type: typ, Code: code, RestOfHeader: mtu})
		header.IPv4(p[28:]).Encode(&header.IPv4Fields{TotalLength: 1500, TTL: 64, Protocol: header.ProtocolTCP, Flags: header.IPv4FlagDontFragment, Source: s.addr, Destination: ip4("10.0.0.2")})
		q := p[48:]
		q[0], q[1], q[2], q[3] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
		q[4], q[5], q[6], q[7] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
		m.SetChecksum(m.ComputeChecksum())
	})
}

func TestTCPFragmentationNeededLowersTheMSSAndResends(t *testing.T) {
	n, a, _, l := tcpPair(t)
	c, _ := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	n.run()
	sc, _ := l.Accept()
	// The data leaves in full segments; a router drops them and says the
	// path takes 1000 bytes.
	var sizes []int
	n.filter = func(from int, f []byte) bool {
		ip := header.IPv4(header.Ethernet(f).Payload())
		if from == 0 && ip.Protocol() == header.ProtocolTCP && len(header.TCP(ip.Payload()).Payload()) > 0 {
			sizes = append(sizes, len(ip))
			return len(ip) <= 1000
		}
		return true
	}
	msg := pattern(20000)
	c.Write(msg)
	icmpAboutTCP(n, a, header.ICMPv4DestinationUnreachable, header.ICMPv4FragmentationNeeded, 1000, c.LocalPort(), 80, c.sndUna)
	n.run()
	// The short tail waits (Nagle) for the delayed ACK of the last full
	// segment: 40 ms, as with Linux on both ends. Less than an RTO.
	n.advance(50 * time.Millisecond)
	var got []byte
	readAll(sc, &got)
	if !bytes.Equal(got, msg) {
		t.Fatalf("%d of %d bytes arrived; IP sizes %v", len(got), len(msg), sizes)
	}
	if c.sndMSS != 960 {
		t.Fatalf("MSS %d after a path MTU of 1000, want 960", c.sndMSS)
	}
	if a.TCPStats().RTOs != 0 {
		t.Fatal("the resend waited for a timeout")
	}
	// A quote of a sequence number not in flight is ignored (RFC 5927).
	icmpAboutTCP(n, a, header.ICMPv4DestinationUnreachable, header.ICMPv4FragmentationNeeded, 600, c.LocalPort(), 80, c.sndUna+100000)
	if c.sndMSS != 960 || a.Stats().Drops[DropICMPUnmatched] != 1 {
		t.Fatalf("blind ICMP: MSS %d, unmatched drops %d", c.sndMSS, a.Stats().Drops[DropICMPUnmatched])
	}
}

func TestTCPPortUnreachableRefusesAConnectInSYNSent(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	a.LearnNeighbour(ip4("10.0.0.2"), header.MAC{2, 0, 0, 0, 0, 2})
	c, _ := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	replies(a)
	icmpAboutTCP(n, a, header.ICMPv4DestinationUnreachable, header.ICMPv4HostUnreachable, 0, c.LocalPort(), 80, c.iss)
	if c.Closed() {
		t.Fatal("host unreachable is a soft error (RFC 1122 4.2.3.9), not fatal")
	}
	icmpAboutTCP(n, a, header.ICMPv4DestinationUnreachable, header.ICMPv4PortUnreachable, 0, c.LocalPort(), 80, c.iss)
	if !c.Closed() || !errors.Is(c.Err(), ErrConnectionRefused) {
		t.Fatalf("state %s err %v after port unreachable", c.State(), c.Err())
	}
}

// TestTCPDialTakesPortsWhoseRepliesComeBackToThisCore checks the active
// open's port choice against the RSS hash the NIC would compute on the
// replies.
func TestTCPDialTakesPortsWhoseRepliesComeBackToThisCore(t *testing.T) {
	cfg, err := rss.NewConfig(rss.Options{Queues: 4})
	if err != nil {
		t.Fatal(err)
	}
	const core = 2
	ports, err := rss.NewPortAllocator(cfg, rss.ProtoTCP, core, rss.DefaultPortRange, rand.NewPCG(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", func(c *Config) { c.TCP.Ports = ports })
	a.LearnNeighbour(ip4("10.0.0.2"), header.MAC{2, 0, 0, 0, 0, 2})
	var conns []*TCPConn
	for i := range 50 {
		c, err := a.DialTCP(ip4("10.0.0.2"), uint16(80+i%3), TCPConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The reply: source 10.0.0.2:80, destination us.
		if q := cfg.QueueIPv4Ports(ip4("10.0.0.2"), ip4("10.0.0.1"), c.RemotePort(), c.LocalPort()); q != core {
			t.Fatalf("port %d: replies land on queue %d, not %d", c.LocalPort(), q, core)
		}
		conns = append(conns, c)
	}
	if ports.Len() != 50 {
		t.Fatalf("allocator holds %d ports, want 50", ports.Len())
	}
	for _, c := range conns {
		c.Abort()
	}
	if ports.Len() != 0 {
		t.Fatalf("allocator holds %d ports after every connection closed", ports.Len())
	}
	a.Flush(func(b []*nicq.Buf) int {
		for _, x := range b {
			x.Free()
		}
		return len(b)
	})
}

// TestTCPSmallWindowIsNotADeadlock: the peer's window is open but smaller
// than silly-window avoidance sends into, and its next window update is
// lost. The persist timer must send what fits anyway (RFC 9293 3.8.6.2.1's
// override), so that the peer's answer carries its real window.
func TestTCPSmallWindowIsNotADeadlock(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", nil)
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	l, _ := s.ListenTCP(80, TCPListenOptions{NoDelay: true})
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 100, flags: header.TCPFlagSYN, wnd: 8000})
	iss := replies(s)[0].SequenceNumber
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 101, ack: iss + 1, flags: header.TCPFlagACK, wnd: 8000})
	c, _ := l.Accept()
	c.Write(pattern(20000))
	first := dataBytes(s) // the initial window
	// The peer acknowledges all of it, but its window is now 300.
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 101, ack: iss + 1 + uint32(first), flags: header.TCPFlagACK, wnd: 300})
	if d := dataBytes(s); d != 0 {
		t.Fatalf("%d bytes sent into a 300-byte window at once (silly window)", d)
	}
	// Nothing more comes from the peer. Within the persist timeout (the
	// RTO, 1 s initially) the sender offers what fits.
	got := 0
	for ms := 0; ms < 1500 && got == 0; ms += 10 {
		n.clock.Advance(10 * time.Millisecond)
		s.Advance()
		got = dataBytes(s)
	}
	if got != 300 {
		t.Fatalf("after 1.5 s the sender offered %d bytes into the 300-byte window, want 300", got)
	}
	c.Abort()
	replies(s)
}

// dataBytes takes the segments s sent and returns their payload bytes.
func dataBytes(s *Stack) int {
	total := 0
	s.Flush(func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			ip := header.IPv4(header.Ethernet(b.Bytes()).Payload())
			if ip.Protocol() == header.ProtocolTCP {
				total += len(header.TCP(ip.Payload()).Payload())
			}
			b.Free()
		}
		return len(bufs)
	})
	return total
}

// onePort makes every active open use the same local port, so each
// connection reopens the tuple its predecessor left in TIME-WAIT.
type onePort struct{}

func (onePort) PickIPv4(local, remote [4]byte, remotePort uint16) (uint16, error) { return 40000, nil }
func (onePort) Release(uint16) bool                                               { return true }

// TestServerCloseFirstReopensTimeWait: the server closes first, so it holds
// each tuple in TIME-WAIT; the client's next SYN on the same tuple must
// reopen it every time (RFC 6191: its timestamp is newer, or equal with a
// higher sequence number), never be refused. Timestamps derived per
// connection instead of per address pair made about half of them older.
func TestServerCloseFirstReopensTimeWait(t *testing.T) {
	n, a, b, l := tcpPairWith(t, func(c *Config) { c.TCP.Ports = onePort{} })
	for i := range 50 {
		c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		n.run()
		sc, ok := l.Accept()
		if !ok || !c.Established() {
			t.Fatalf("connection %d not established (accepted: %v; b has %d connections, %d in TIME-WAIT)", i, ok, b.TCPConnCount(), b.TCPStats().TimeWait)
		}
		sc.Close() // the server first: b keeps the tuple in TIME-WAIT
		n.run()
		c.Close()
		n.run()
		n.advance(3 * time.Millisecond)
	}
	if b.TCPStats().TimeWait != 1 {
		t.Fatalf("b holds %d TIME-WAITs, want the one the last connection left", b.TCPStats().TimeWait)
	}
}
