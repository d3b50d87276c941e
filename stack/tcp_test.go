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

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*131 + i>>8)
	}
	return p
}

// tcpPair is two stacks with a listener on b:80 that queues connections.
func tcpPair(t *testing.T) (n *testNet, a, b *Stack, l *TCPListener) {
	return tcpPairWith(t, nil)
}

// tcpPairWith is tcpPair with a tweak of a's config.
func tcpPairWith(t *testing.T, tweakA func(*Config)) (n *testNet, a, b *Stack, l *TCPListener) {
	n = newTestNet(t)
	a = n.add("10.0.0.1/24", tweakA)
	b = n.add("10.0.0.2/24", nil)
	l, err := b.ListenTCP(80, TCPListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n, a, b, l
}

// connect dials l's port at to from a and returns both ends once the
// listener accepted.
func connect(t *testing.T, n *testNet, a *Stack, l *TCPListener, to string, opts TCPConnOptions) (c, sc *TCPConn) {
	t.Helper()
	c, err := a.DialTCPAddr(netip.MustParseAddr(to), l.port, opts)
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	sc, ok := l.Accept()
	if !ok {
		t.Fatal("not accepted")
	}
	return c, sc
}

// transfer writes msg on c as its ring allows, running the wire, and
// returns what sc read meanwhile, once it has read as much as was sent.
func transfer(t *testing.T, n *testNet, c, sc *TCPConn, msg []byte) []byte {
	t.Helper()
	var got []byte
	for sent := 0; sent < len(msg) || len(got) < len(msg); {
		k, err := c.Write(msg[sent:])
		if err != nil {
			t.Fatal(err)
		}
		sent += k
		n.run()
		readAll(sc, &got)
		n.run()
	}
	return got
}

func readAll(c *TCPConn, into *[]byte) {
	var buf [4096]byte
	for {
		k := c.Read(buf[:])
		if k == 0 {
			return
		}
		*into = append(*into, buf[:k]...)
	}
}

func TestTCPHandshakeThenTransferByteForByteBothWays(t *testing.T) {
	n, a, b, l := tcpPair(t)
	var events []TCPEvent
	c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{OnEvent: func(_ *TCPConn, ev TCPEvent) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	if c.State() != "ESTABLISHED" || len(events) == 0 || events[0] != TCPEventEstablished {
		t.Fatalf("client %s, events %v", c.State(), events)
	}
	sc, ok := l.Accept()
	if !ok || sc.State() != "ESTABLISHED" {
		t.Fatalf("accept: %v", ok)
	}
	if sc.RemotePort() != c.LocalPort() {
		t.Fatalf("ports %d vs %d", sc.RemotePort(), c.LocalPort())
	}
	// 100 KiB from a to b, written as the ring allows and read as it comes.
	msg := pattern(100 << 10)
	got := transfer(t, n, c, sc, msg)
	if !bytes.Equal(got, msg) {
		t.Fatalf("received %d bytes, differ from the %d sent", len(got), len(msg))
	}
	// And a reply the other way.
	reply := pattern(5000)[1000:]
	sc.Write(reply)
	n.run()
	var back []byte
	readAll(c, &back)
	if !bytes.Equal(back, reply) {
		t.Fatalf("reply of %d bytes came back as %d", len(reply), len(back))
	}
	if a.TCPStats().Retransmits != 0 || b.TCPStats().Retransmits != 0 {
		t.Fatal("retransmissions on a clean wire")
	}
}

func TestTCPCloseFromClientGoesThroughTimeWait(t *testing.T) {
	n, a, b, l := tcpPairWith(t, func(c *Config) { c.TCP.MSL = time.Second })
	c, _ := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	n.run()
	sc, _ := l.Accept()
	c.CloseWrite()
	n.run()
	if c.State() != "FIN-WAIT-2" || sc.State() != "CLOSE-WAIT" || !sc.PeerClosed() {
		t.Fatalf("after client FIN: client %s server %s", c.State(), sc.State())
	}
	// Half close: the server still sends, the client still receives.
	sc.Write([]byte("last words"))
	n.run()
	var got []byte
	readAll(c, &got)
	if string(got) != "last words" {
		t.Fatalf("half-closed client read %q", got)
	}
	c.Close()
	sc.Close()
	n.run()
	if c.State() != "TIME-WAIT" || sc.State() != "CLOSED" || sc.Err() != nil {
		t.Fatalf("after server FIN: client %s server %s (%v)", c.State(), sc.State(), sc.Err())
	}
	if b.TCPConnCount() != 0 || a.TCPConnCount() != 1 {
		t.Fatalf("tables: a %d b %d", a.TCPConnCount(), b.TCPConnCount())
	}
	n.advance(1900 * time.Millisecond)
	if c.State() != "TIME-WAIT" {
		t.Fatalf("left TIME-WAIT before 2*MSL: %s", c.State())
	}
	n.advance(200 * time.Millisecond)
	if c.State() != "CLOSED" || a.TCPConnCount() != 0 {
		t.Fatalf("after 2*MSL: %s, %d conns", c.State(), a.TCPConnCount())
	}
	n.checkNoLeaks()
}

func TestTCPCloseFromServerAndSimultaneousClose(t *testing.T) {
	n, a, b, l := tcpPair(t)
	c, _ := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	n.run()
	sc, _ := l.Accept()
	sc.Close()
	n.run()
	if sc.State() != "FIN-WAIT-2" || c.State() != "CLOSE-WAIT" {
		t.Fatalf("server %s client %s", sc.State(), c.State())
	}
	c.Close()
	n.run()
	if sc.State() != "TIME-WAIT" || c.State() != "CLOSED" {
		t.Fatalf("server %s client %s", sc.State(), c.State())
	}

	// Both close at once: the FINs cross, both pass through CLOSING.
	c2, _ := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	n.run()
	sc2, _ := l.Accept()
	c2.Close()
	sc2.Close()
	n.run()
	if c2.State() != "TIME-WAIT" || sc2.State() != "TIME-WAIT" {
		t.Fatalf("simultaneous close: %s %s", c2.State(), sc2.State())
	}
	_ = b
}

func TestTCPSimultaneousOpen(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	// Make the ports meet: both dial the other's first ephemeral port.
	ca, _ := a.DialTCP(ip4("10.0.0.2"), ephemeralFirst, TCPConnOptions{})
	cb, _ := b.DialTCP(ip4("10.0.0.1"), ephemeralFirst, TCPConnOptions{})
	n.run()
	if ca.State() != "ESTABLISHED" || cb.State() != "ESTABLISHED" {
		t.Fatalf("a %s b %s", ca.State(), cb.State())
	}
	ca.Write([]byte("hi"))
	n.run()
	var got []byte
	readAll(cb, &got)
	if string(got) != "hi" {
		t.Fatalf("got %q", got)
	}
}

func TestTCPDialToClosedPortIsRefusedByReset(t *testing.T) {
	n, a, b, _ := tcpPair(t)
	c, _ := a.DialTCP(ip4("10.0.0.2"), 81, TCPConnOptions{})
	n.run()
	if c.State() != "CLOSED" || !errors.Is(c.Err(), ErrConnectionRefused) {
		t.Fatalf("%s, %v", c.State(), c.Err())
	}
	if b.TCPStats().ResetsSent != 1 || b.Stats().Drops[DropNoSocket] != 1 {
		t.Fatalf("resets %d", b.TCPStats().ResetsSent)
	}
	n.checkNoLeaks()
}

func TestTCPRetransmitsLostSYNAfterInitialRTO(t *testing.T) {
	n, a, _, l := tcpPair(t)
	var syns []int64
	lost := 1
	n.filter = func(from int, f []byte) bool {
		eth := header.Ethernet(f)
		if eth.PayloadType() == header.EtherTypeIPv4 {
			ip := header.IPv4(eth.Payload())
			if ip.Protocol() == header.ProtocolTCP && header.TCP(ip.Payload()).Flags() == header.TCPFlagSYN {
				syns = append(syns, n.clock.Now())
				if lost > 0 {
					lost--
					return false
				}
			}
		}
		return true
	}
	c, _ := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	n.run()
	n.advance(1100 * time.Millisecond)
	if c.State() != "ESTABLISHED" || len(syns) != 2 || syns[1]-syns[0] < int64(time.Second) {
		t.Fatalf("%s after SYNs at %v", c.State(), syns)
	}
	if _, ok := l.Accept(); !ok {
		t.Fatal("nothing to accept")
	}
}

func TestSipHash24ReferenceVector(t *testing.T) {
	// From the SipHash paper, appendix A: key 00..0f, message 00..0e.
	var k [16]byte
	m := make([]byte, 15)
	for i := range k {
		k[i] = byte(i)
	}
	for i := range m {
		m[i] = byte(i)
	}
	k0 := uint64(0x0706050403020100)
	k1 := uint64(0x0f0e0d0c0b0a0908)
	if got := sipHash24(k0, k1, m); got != 0xa129ca6149be45e5 {
		t.Fatalf("siphash = %#x", got)
	}
}

func TestISNDiffersByTupleAndAdvancesWithTime(t *testing.T) {
	tb := &tcpTable{}
	tb.cfg.ISNKey = [16]byte{1, 2, 3}
	id := tcpTuple{localAddr: mapped4(ip4("10.0.0.1")), remoteAddr: mapped4(ip4("10.0.0.2")), localPort: 1000, remotePort: 80}
	other := id
	other.localPort++
	if tb.isn(id, 0) == tb.isn(other, 0) {
		t.Fatal("same ISN for two tuples")
	}
	if d := tb.isn(id, 4000*1000) - tb.isn(id, 0); d != 1000 {
		t.Fatalf("ISN moved %d in 4 ms, want 1000 (one per 4 µs)", d)
	}
}

// Scripted segments: inject one exact segment into a stack and assert the
// exact segment it answers with.

type scriptSeg struct {
	sport, dport uint16
	seq, ack     uint32
	flags        header.TCPFlags
	wnd          uint16
	payload      []byte
}

// injectTCP delivers seg from 10.0.0.9 to s.
func injectTCP(t *testing.T, n *testNet, s *Stack, pool *nicq.Pool, g scriptSeg) {
	t.Helper()
	b := pool.Get()
	total := header.IPv4MinimumSize + header.TCPMinimumSize + len(g.payload)
	p := b.Append(total)
	src := ip4("10.0.0.9")
	header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: uint16(total), TTL: 64, Protocol: header.ProtocolTCP, Source: src, Destination: s.addr})
	seg := header.TCP(p[header.IPv4MinimumSize:])
	seg.Encode(&header.TCPFields{SourcePort: g.sport, DestinationPort: g.dport, SequenceNumber: g.seq, AckNumber: g.ack, DataOffset: 20, Flags: g.flags, Window: g.wnd})
	copy(seg[20:], g.payload)
	seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(src, s.addr, header.ProtocolTCP, uint16(len(seg)))))
	s.now = n.clock.Now()
	s.tcpInput(b, header.IPv4(bufData(b)))
	s.tcp.flushPending()
}

// replies takes the TCP segments s sent since the last call.
func replies(s *Stack) []header.TCPFields {
	var out []header.TCPFields
	s.Flush(func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			eth := header.Ethernet(b.Bytes())
			if eth.PayloadType() == header.EtherTypeIPv4 {
				if ip := header.IPv4(eth.Payload()); ip.Protocol() == header.ProtocolTCP {
					f := header.TCP(ip.Payload()).Fields()
					f.Checksum = 0
					out = append(out, f)
				}
			}
			b.Free()
		}
		return len(bufs)
	})
	return out
}

func TestScriptedResetsToAClosedPort(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", nil)
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	cases := []struct {
		name string
		in   scriptSeg
		want []header.TCPFields
	}{
		{"SYN gets RST|ACK acking SEQ+1",
			scriptSeg{sport: 4000, dport: 81, seq: 1000, flags: header.TCPFlagSYN, wnd: 1000},
			[]header.TCPFields{{SourcePort: 81, DestinationPort: 4000, SequenceNumber: 0, AckNumber: 1001, DataOffset: 20, Flags: header.TCPFlagRST | header.TCPFlagACK}}},
		{"data without ACK acks SEQ+LEN incl. FIN",
			scriptSeg{sport: 4000, dport: 81, seq: 1000, flags: header.TCPFlagFIN, payload: []byte("abc")},
			[]header.TCPFields{{SourcePort: 81, DestinationPort: 4000, SequenceNumber: 0, AckNumber: 1004, DataOffset: 20, Flags: header.TCPFlagRST | header.TCPFlagACK}}},
		{"ACK gets RST with SEQ=SEG.ACK",
			scriptSeg{sport: 4000, dport: 81, seq: 1000, ack: 77777, flags: header.TCPFlagACK},
			[]header.TCPFields{{SourcePort: 81, DestinationPort: 4000, SequenceNumber: 77777, DataOffset: 20, Flags: header.TCPFlagRST}}},
		{"RST gets nothing",
			scriptSeg{sport: 4000, dport: 81, seq: 1000, flags: header.TCPFlagRST},
			nil},
	}
	for _, tc := range cases {
		injectTCP(t, n, s, n.pools[0], tc.in)
		got := replies(s)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: replies %+v, want %+v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: reply %+v, want %+v", tc.name, got[i], tc.want[i])
			}
		}
	}
	n.checkNoLeaks()
}

func TestScriptedPassiveOpenAnswersWithSYNACKAndOptions(t *testing.T) {
	n := newTestNet(t)
	// Without quick ACKs, so that the first segment of data shows the
	// delayed ACK.
	s := n.add("10.0.0.2/24", func(c *Config) { c.TCP.QuickACKs = -1 })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	l, _ := s.ListenTCP(80, TCPListenOptions{})
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 5000, flags: header.TCPFlagSYN, wnd: 8192})
	// Catch the raw SYN-ACK to read its options.
	var opts header.TCPOptions
	var f header.TCPFields
	s.Flush(func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			seg := header.TCP(header.IPv4(header.Ethernet(b.Bytes()).Payload()).Payload())
			f = seg.Fields()
			header.ParseTCPOptions(seg.Options(), &opts)
			b.Free()
		}
		return len(bufs)
	})
	if f.Flags != header.TCPFlagSYN|header.TCPFlagACK || f.AckNumber != 5001 {
		t.Fatalf("reply %+v", f)
	}
	// The SYN had no Window Scale, so neither may the SYN-ACK (RFC 7323).
	if !opts.HasMSS || opts.MSS != 1460 || opts.HasWindowScale {
		t.Fatalf("options %+v", opts)
	}
	iss := f.SequenceNumber
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 5001, ack: iss + 1, flags: header.TCPFlagACK, wnd: 8192, payload: []byte("GET")})
	// One segment of data: the ACK is delayed (RFC 9293 3.8.6.3), by
	// DelayedACK (40 ms) at most.
	if got := replies(s); len(got) != 0 {
		t.Fatalf("ACK not delayed: %+v", got)
	}
	n.clock.Advance(39 * time.Millisecond)
	s.Advance()
	if got := replies(s); len(got) != 0 {
		t.Fatalf("ACK sent before the delayed-ACK timeout: %+v", got)
	}
	n.clock.Advance(2 * time.Millisecond)
	s.Advance()
	got := replies(s)
	if len(got) != 1 || got[0].Flags != header.TCPFlagACK || got[0].AckNumber != 5004 || got[0].SequenceNumber != iss+1 {
		t.Fatalf("replies %+v", got)
	}
	c, ok := l.Accept()
	var buf [8]byte
	if !ok || c.Read(buf[:]) != 3 || string(buf[:3]) != "GET" {
		t.Fatalf("accept %v", ok)
	}
	c.Abort()
	if r := replies(s); len(r) != 1 || r[0].Flags != header.TCPFlagRST|header.TCPFlagACK || r[0].SequenceNumber != iss+1 || r[0].AckNumber != 5004 {
		t.Fatalf("abort sent %+v", r)
	}
	n.checkNoLeaks()
}
