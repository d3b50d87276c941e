package stack

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
)

// Every per-stack table and queue is bounded: these tests try to exhaust
// each one and check that the excess is dropped and counted, and that the
// table never grows past its bound (docs/RELIABILITY.md).

func drops(s *Stack, r DropReason) uint64 { return s.Stats().Drops[r] }

// firstFragment injects the first fragment (8 bytes of UDP payload, more
// fragments to come) of datagram id from src.
func firstFragment(n *testNet, s *Stack, src [4]byte, id uint16) {
	inject(n, s, 20+16, func(p []byte) {
		ip := header.IPv4(p)
		ip.Encode(&header.IPv4Fields{TotalLength: 36, ID: id, Flags: header.IPv4FlagMoreFragments, TTL: 64, Protocol: header.ProtocolUDP, Source: src, Destination: s.addr})
		ip.SetChecksum(ip.ComputeChecksum())
	})
}

func TestReassemblyMemoryIsBounded(t *testing.T) {
	n := newTestNet(t)
	const limit = 4 << 10
	s := n.add("10.0.0.2/24", func(c *Config) { c.ReassemblyMemory = limit })
	for id := range uint16(500) {
		firstFragment(n, s, ip4("10.0.0.9"), id)
		if s.reasm.bytes > limit {
			t.Fatalf("reassembly holds %d bytes, bound %d", s.reasm.bytes, limit)
		}
	}
	t.Logf("drops: %v", nonZero(s))
	if drops(s, DropReassemblyMemory) == 0 {
		t.Fatalf("500 incomplete datagrams and no reassembly_memory drop: %v", nonZero(s))
	}
}

func TestNeighbourTableAndPendingQueuesAreBounded(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.1/16", func(c *Config) { c.MaxNeighbours = 8; c.PendingPerNeighbour = 4 })
	ep, _ := s.BindUDP(0, UDPOptions{})
	// 50 unresolvable neighbours: the table stops at 8.
	for i := range 50 {
		ep.SendTo([]byte("x"), [4]byte{10, 0, 1, byte(i)}, 9)
		if c := s.NeighbourCount(); c > 8 {
			t.Fatalf("%d neighbour entries, bound 8", c)
		}
	}
	if drops(s, DropNeighbourTableFull) == 0 {
		t.Fatalf("no neighbour_table_full drop: %v", nonZero(s))
	}
	// 10 packets for one unresolved neighbour: 4 wait, 6 are dropped.
	before := drops(s, DropNeighbourQueueFull)
	for range 10 {
		ep.SendTo([]byte("y"), [4]byte{10, 0, 1, 0}, 9)
	}
	if got := drops(s, DropNeighbourQueueFull) - before; got < 6 {
		t.Fatalf("%d neighbour_queue_full drops for 10 packets over a queue of 4 (some were queued already)", got)
	}
	ep.Close()
	replies(s)
}

func TestSocketAndTransmitQueuesAreBounded(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) { c.SocketQueue = 4; c.TxQueue = 16 })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	sock, _ := s.BindUDP(7, UDPOptions{})
	for range 10 {
		inject(n, s, 20+8+1, func(p []byte) {
			header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 29, TTL: 64, Protocol: header.ProtocolUDP, Source: ip4("10.0.0.9"), Destination: s.addr})
			ip := header.IPv4(p)
			ip.SetChecksum(ip.ComputeChecksum())
			header.UDP(p[20:]).Encode(&header.UDPFields{SourcePort: 1, DestinationPort: 7, Length: 9})
		})
	}
	if sock.Len() != 4 || drops(s, DropSocketQueueFull) != 6 {
		t.Fatalf("socket holds %d, socket_queue_full %d; want 4 and 6", sock.Len(), drops(s, DropSocketQueueFull))
	}
	for {
		d, ok := sock.Recv()
		if !ok {
			break
		}
		d.Release()
	}
	// 40 datagrams without a Flush: 16 wait for the NIC, 24 are dropped.
	for range 40 {
		sock.SendTo([]byte("z"), ip4("10.0.0.9"), 1)
	}
	if s.PendingOutput() != 16 || drops(s, DropTxQueueFull) != 24 {
		t.Fatalf("tx queue holds %d, tx_queue_full %d; want 16 and 24", s.PendingOutput(), drops(s, DropTxQueueFull))
	}
	sock.Close()
	replies(s)
}

func TestAnEmptyPoolDropsAndCounts(t *testing.T) {
	n := newTestNet(t)
	pool, _ := nicq.NewPool(nicq.PoolConfig{Name: "tiny", Buffers: 4})
	s := n.add("10.0.0.2/24", func(c *Config) { c.Pool = pool })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	ep, _ := s.BindUDP(0, UDPOptions{})
	var errs int
	for range 10 {
		if err := ep.SendTo([]byte("q"), ip4("10.0.0.9"), 1); errors.Is(err, ErrNoBuffers) {
			errs++
		}
	}
	if pool.InUse() > 4 || errs == 0 && drops(s, DropNoBuffer) == 0 {
		t.Fatalf("in use %d, send errors %d, no_buffer drops %d", pool.InUse(), errs, drops(s, DropNoBuffer))
	}
	ep.Close()
	replies(s)
}

// TestTCPTableIsBoundedAndRecyclesTheOldestTimeWait: TIME-WAIT counts
// toward MaxConns, but a new connection takes the place of the oldest
// TIME-WAIT when the table is full (Linux's tcp_max_tw_buckets: TIME-WAIT
// never keeps a live connection out), counted; a table full of live
// connections refuses.
func TestTCPTableIsBoundedAndRecyclesTheOldestTimeWait(t *testing.T) {
	n, a, b, l := tcpPairWith(t, func(c *Config) { c.TCP.MaxConns = 4 })
	// Four connections that close from a's side leave four TIME-WAITs.
	var first *TCPConn
	var ports []uint16
	for i := range 4 {
		c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, c.LocalPort())
		n.run()
		sc, _ := l.Accept()
		if i == 0 {
			first = c
		}
		c.CloseWrite() // keep the value, to see it close
		n.run()
		sc.Close()
		n.run()
		n.advance(time.Second) // the TIME-WAITs start a second apart
	}
	if a.TCPConnCount() != 4 || a.TCPStats().TimeWait != 4 {
		t.Fatalf("a holds %d connections (%d in TIME-WAIT), want 4 and 4", a.TCPConnCount(), a.TCPStats().TimeWait)
	}
	var live []*TCPConn
	for i := range 4 {
		c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
		if err != nil {
			t.Fatalf("connection %d with the table full of TIME-WAIT: %v", 5+i, err)
		}
		live = append(live, c)
		if i == 0 && (first.State() != "CLOSED" || first.Err() != nil) {
			t.Fatalf("the oldest TIME-WAIT (port %d) is %s (%v), want recycled", ports[0], first.State(), first.Err())
		}
		if got := a.TCPStats().TimeWaitRecycled; got != uint64(i+1) {
			t.Fatalf("%d TIME-WAITs recycled, want %d", got, i+1)
		}
	}
	n.run()
	for _, c := range live {
		if c.State() != "ESTABLISHED" {
			t.Fatalf("a new connection is %s", c.State())
		}
	}
	if _, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{}); !errors.Is(err, ErrTooManyConns) {
		t.Fatalf("a connection beyond 4 live ones: %v, want ErrTooManyConns", err)
	}
	_ = b
}

func TestTCPTableFullRefusesSYNsWithoutCookies(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) { c.TCP.MaxConns = 3; c.TCP.DisableSYNCookies = true })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	s.ListenTCP(80, TCPListenOptions{})
	for i := range 10 {
		injectTCP(t, n, s, n.pools[0], scriptSeg{sport: uint16(1000 + i), dport: 80, seq: 1, flags: header.TCPFlagSYN, wnd: 1000})
		if s.TCPConnCount() > 3 {
			t.Fatalf("%d connections, bound 3", s.TCPConnCount())
		}
	}
	if drops(s, DropTCPTooManyConns) != 7 {
		t.Fatalf("tcp_too_many_conns %d, want 7: %v", drops(s, DropTCPTooManyConns), nonZero(s))
	}
	replies(s)
}

func TestTCPOutOfOrderHolesAreBounded(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) { c.TCP.MaxOutOfOrder = 2 })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	l, _ := s.ListenTCP(80, TCPListenOptions{})
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 100, flags: header.TCPFlagSYN, wnd: 8192})
	synack := replies(s)
	if len(synack) != 1 {
		t.Fatalf("handshake: %+v", synack)
	}
	iss := synack[0].SequenceNumber
	injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: 101, ack: iss + 1, flags: header.TCPFlagACK, wnd: 8192})
	c, ok := l.Accept()
	if !ok {
		t.Fatal("no connection")
	}
	// Three segments, each beyond its own hole: the third needs a third
	// range and is dropped.
	for i, seq := range []uint32{201, 301, 401} {
		injectTCP(t, n, s, n.pools[0], scriptSeg{sport: 4000, dport: 80, seq: seq, ack: iss + 1, flags: header.TCPFlagACK, wnd: 8192, payload: []byte("0123456789")})
		if c.nOOO > 2 {
			t.Fatalf("segment %d: %d out-of-order ranges, bound 2", i, c.nOOO)
		}
	}
	if drops(s, DropTCPOutOfOrderFull) != 1 {
		t.Fatalf("tcp_out_of_order_full %d, want 1", drops(s, DropTCPOutOfOrderFull))
	}
	c.Abort()
	replies(s)
}

// TestHalfOpenConnectionsHoldNoBuffers: a SYN flood fills the SYN queue with
// half-open connections; they must not each take a send and a receive
// buffer (256 KiB with the defaults), or the queue's bound bounds nothing
// useful.
func TestHalfOpenConnectionsHoldNoBuffers(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) { c.TCP.SYNQueue = 512 })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	s.ListenTCP(80, TCPListenOptions{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 512 {
		injectTCP(t, n, s, n.pools[0], scriptSeg{sport: uint16(1000 + i), dport: 80, seq: 1, flags: header.TCPFlagSYN, wnd: 1000})
		replies(s)
	}
	runtime.ReadMemStats(&after)
	if s.TCPConnCount() != 512 {
		t.Fatalf("%d half-open connections, want 512", s.TCPConnCount())
	}
	perConn := (after.TotalAlloc - before.TotalAlloc) / 512
	if perConn > 4<<10 {
		t.Fatalf("each half-open connection allocated %d bytes; its buffers must wait for data", perConn)
	}
	t.Logf("%d bytes allocated per half-open connection", perConn)
}

// TestSYNCookiesAreRateBounded: past a full SYN queue a flood is answered
// with cookies only up to SYNCookiesPerSecond (with a burst of 10 ms of
// them); the rest are dropped and counted, and the budget comes back with
// time.
func TestSYNCookiesAreRateBounded(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) { c.TCP.SYNQueue = 2; c.TCP.SYNCookiesPerSecond = 1000 })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	s.ListenTCP(80, TCPListenOptions{})
	port := uint16(1000)
	flood := func(k int) {
		for range k {
			injectTCP(t, n, s, n.pools[0], scriptSeg{sport: port, dport: 80, seq: 1, flags: header.TCPFlagSYN, wnd: 1000})
			port++
		}
	}
	synACKs := func() (k int) {
		for _, r := range replies(s) {
			if r.Flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK {
				k++
			}
		}
		return k
	}
	// Two SYNs fill the queue; of the next 100, a burst of 10 ms at
	// 1000/s gets cookies (11: the budget starts full and the first is
	// due at once).
	flood(102)
	if got, sent := synACKs(), s.TCPStats().SYNCookiesSent; got != 2+11 || sent != 11 {
		t.Fatalf("%d SYN-ACKs, %d cookies; want 2 from the queue and 11 cookies", got, sent)
	}
	if d := drops(s, DropTCPSYNCookieRate); d != 89 {
		t.Fatalf("tcp_syn_cookie_rate %d, want 89: %v", d, nonZero(s))
	}
	// 5 ms later, 5 more are due.
	n.clock.Advance(5 * time.Millisecond)
	flood(20)
	if got := synACKs(); got != 5 {
		t.Fatalf("5 ms on: %d cookie SYN-ACKs, want 5", got)
	}
	if s.TCPConnCount() != 2 {
		t.Fatalf("%d connections: cookies keep no state", s.TCPConnCount())
	}
}

// TestSYNCookiesPerSecondNegativeIsUnboundedAndZeroTheDefault: with
// TCPConfig.SYNCookiesPerSecond negative, every SYN beyond a full SYN
// queue gets a cookie, however many come at once; zero is the documented
// default of 25000 a second, whose 10 ms burst (251 cookies) a burst of
// 400 SYNs overruns.
func TestSYNCookiesPerSecondNegativeIsUnboundedAndZeroTheDefault(t *testing.T) {
	for _, tc := range []struct {
		name            string
		rate, effective int
		cookies         int // of 400 SYNs at once beyond the queue
	}{
		{"negative", -1, -1, 400},
		{"zero", 0, 25000, 251},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t)
			s := n.add("10.0.0.2/24", func(c *Config) { c.TCP.SYNQueue = 2; c.TCP.SYNCookiesPerSecond = tc.rate })
			if got := s.Config().TCP.SYNCookiesPerSecond; got != tc.effective {
				t.Fatalf("SYNCookiesPerSecond %d in effect, want %d", got, tc.effective)
			}
			s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
			s.ListenTCP(80, TCPListenOptions{})
			port := uint16(1000)
			synACKs := 0
			flood := func(k int) {
				for range k {
					injectTCP(t, n, s, n.pools[0], scriptSeg{sport: port, dport: 80, seq: 1, flags: header.TCPFlagSYN, wnd: 1000})
					port++
				}
				for _, r := range replies(s) {
					if r.Flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN|header.TCPFlagACK {
						synACKs++
					}
				}
			}
			flood(2) // the queue is full
			for range 4 {
				flood(100) // at the same instant
			}
			if sent := s.TCPStats().SYNCookiesSent; synACKs != 2+tc.cookies || sent != uint64(tc.cookies) {
				t.Fatalf("%d SYN-ACKs, %d cookies; want 2 from the queue and %d cookies", synACKs, sent, tc.cookies)
			}
			if d := drops(s, DropTCPSYNCookieRate); d != uint64(400-tc.cookies) {
				t.Fatalf("tcp_syn_cookie_rate %d, want %d: %v", d, 400-tc.cookies, nonZero(s))
			}
		})
	}
}
