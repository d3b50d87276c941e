package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/mem"
)

// The TCP benchmarks run two whole stacks on one goroutine over the mem
// driver (one queue each, frames copied into the receiver's pool as a NIC
// would DMA them), stepped like a core's loop: receive burst, input,
// timers, flush. The clock is virtual and moves only when the wire is
// idle, so timers (delayed ACK, RTO) never fire in a clean run: what is
// measured is the protocol work and the wire's copies, both directions.

// tcpBenchPair is a client stack a (10.0.0.1) and a server stack b
// (10.0.0.2) with a listener on 5001 whose handler is srv.
func tcpBenchPair(tb testing.TB, tweak func(*Config), srv TCPHandler) *memNet {
	return tcpBenchPairNICs(tb, false, tweak, srv)
}

// tcpBenchPairNICs is tcpBenchPair over NICs with TSO if tso.
func tcpBenchPairNICs(tb testing.TB, tso bool, tweak func(*Config), srv TCPHandler) *memNet {
	m := newMemNetNICs(tb, mem.Faults{}, 1, tso, nil, "10.0.0.1/24", "10.0.0.2/24")
	if tweak != nil {
		for _, s := range m.stacks {
			cfg := s.cfg
			tweak(&cfg)
			if err := s.tcp.init(s, cfg.TCP); err != nil {
				tb.Fatal(err)
			}
		}
	}
	a, b := m.stacks[0], m.stacks[1]
	a.LearnNeighbour(ip4("10.0.0.2"), b.mac)
	b.LearnNeighbour(ip4("10.0.0.1"), a.mac)
	if _, err := b.ListenTCP(5001, TCPListenOptions{OnEvent: srv, NoDelay: true}); err != nil {
		tb.Fatal(err)
	}
	return m
}

// echoServer answers every request with the same bytes.
func echoServer(c *TCPConn, ev TCPEvent) {
	switch ev {
	case TCPEventReadable:
		x, y := c.Peek()
		n, _ := c.Write(x)
		if n == len(x) && len(y) > 0 {
			k, _ := c.Write(y)
			n += k
		}
		c.Discard(n)
	case TCPEventPeerClosed:
		c.Close()
	case TCPEventClosed:
		c.Close()
	}
}

// measureRR warms c's request-response loop up, then times b.N
// transactions of it.
func measureRR(b *testing.B, m *memNet, r *rrClient, c *TCPConn) {
	b.Helper()
	if !runUntil(m, func() bool { return r.done >= 100 }, 1000) {
		b.Fatalf("warm-up stalled at %d, state %s", r.done, c.State())
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := r.done
	runUntil(m, func() bool { return r.done-start >= b.N }, 1000)
	b.StopTimer()
	if r.done-start < b.N {
		b.Fatalf("%d of %d transactions", r.done-start, b.N)
	}
}

// rrClient keeps one 64-byte request outstanding and counts responses.
type rrClient struct {
	req   [64]byte
	buf   [256]byte
	have  int
	done  int
	limit int
}

func (r *rrClient) handle(c *TCPConn, ev TCPEvent) {
	switch ev {
	case TCPEventEstablished:
		c.Write(r.req[:])
	case TCPEventReadable:
		r.have += c.Read(r.buf[:])
		for r.have >= len(r.req) {
			r.have -= len(r.req)
			r.done++
			if r.done < r.limit {
				c.Write(r.req[:])
			}
		}
	}
}

func runUntil(m *memNet, cond func() bool, maxIdle int) bool {
	idle := 0
	for !cond() {
		if m.step() == 0 {
			if idle++; idle > maxIdle {
				return false
			}
			m.clock.Advance(time.Millisecond)
		} else {
			idle = 0
		}
	}
	return true
}

// BenchmarkTCPRR64 is one 64-byte request and its 64-byte response on a
// persistent connection: per op, two segments each carrying data and the
// ACK of the previous one.
func BenchmarkTCPRR64(b *testing.B) {
	m := tcpBenchPair(b, nil, echoServer)
	r := &rrClient{limit: 1 << 62}
	c, err := m.stacks[0].DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true})
	if err != nil {
		b.Fatal(err)
	}
	measureRR(b, m, r, c)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trans/s")
}

// BenchmarkTCPCRR is connect, 64-byte request, 64-byte response, close
// (client first; its TIME-WAIT is 2 ms of virtual time, so the table
// stays small): the handshake, the exchange and both FINs per op.
func BenchmarkTCPCRR(b *testing.B) {
	tweak := func(c *Config) { c.TCP.MSL = time.Millisecond }
	m := tcpBenchPair(b, tweak, echoServer)
	a := m.stacks[0]
	done := 0
	var req [64]byte
	var buf [128]byte
	handler := func(c *TCPConn, ev TCPEvent) {
		switch ev {
		case TCPEventEstablished:
			c.Write(req[:])
		case TCPEventReadable:
			if c.Read(buf[:]) > 0 {
				done++
				c.Close()
			}
		}
	}
	dial := func() {
		if _, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: handler, NoDelay: true}); err != nil {
			b.Fatal(err)
		}
	}
	one := func() {
		want := done + 1
		dial()
		if !runUntil(m, func() bool { return done >= want }, 1000) {
			b.Fatalf("connection %d stalled", want)
		}
		m.clock.Advance(time.Millisecond) // let TIME-WAIT run out
	}
	for range 100 {
		one()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		one()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	if n := a.TCPConnCount(); n > 8 {
		b.Fatalf("%d connections left in the client's table", n)
	}
}

// BenchmarkTCPStream is bulk transfer from a to b in 64 KiB writes; one op
// is one write's worth delivered, bytes/s is the goodput.
func BenchmarkTCPStream(b *testing.B) {
	benchStream(b, func(tb testing.TB, srv TCPHandler) *memNet { return tcpBenchPair(tb, nil, srv) }, netip.MustParseAddr("10.0.0.2"))
}

// BenchmarkTCPStreamTSO is BenchmarkTCPStream over NICs with TSO: the
// sender builds segments of up to 64 KiB, the receiver takes them whole.
func BenchmarkTCPStreamTSO(b *testing.B) {
	benchStream(b, func(tb testing.TB, srv TCPHandler) *memNet { return tcpBenchPairNICs(tb, true, nil, srv) }, netip.MustParseAddr("10.0.0.2"))
}

// TestTCPStreamWithTSODoesNotAllocate: bulk transfer with TSO segments
// allocates nothing once the connection runs (the TSO and large receive
// pools are made at the first segment).
func TestTCPStreamWithTSODoesNotAllocate(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and nicq's debug checks allocate")
	}
	r := testing.Benchmark(BenchmarkTCPStreamTSO)
	if r.N == 0 {
		t.Fatal("the benchmark did not run")
	}
	if a := r.AllocsPerOp(); a != 0 {
		t.Errorf("TSO bulk transfer: %d allocations per 64 KiB", a)
	}
}

// benchStream is BenchmarkTCPStream on the pair pair makes, to dst.
func benchStream(b *testing.B, pair func(testing.TB, TCPHandler) *memNet, dst netip.Addr) {
	var got int64
	sink := func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventReadable {
			x, y := c.Peek()
			got += int64(len(x) + len(y))
			c.Discard(len(x) + len(y))
		}
	}
	m := pair(b, sink)
	chunk := make([]byte, 64<<10)
	var want, written int64
	pump := func(c *TCPConn) {
		for written < want {
			n, _ := c.Write(chunk[:min(int64(len(chunk)), want-written)])
			written += int64(n)
			if n == 0 {
				return
			}
		}
	}
	c, err := m.stacks[0].DialTCPAddr(dst, 5001, TCPConnOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventEstablished || ev == TCPEventWritable {
			pump(c)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	want = 16 << 20
	if !runUntil(m, func() bool { return got >= want }, 1000) {
		b.Fatalf("warm-up stalled at %d bytes, %s", got, c.State())
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	start := got
	want += int64(b.N) * int64(len(chunk))
	pump(c)
	runUntil(m, func() bool { return got >= want }, 1000)
	b.StopTimer()
	if got-start < int64(b.N)*int64(len(chunk)) {
		b.Fatalf("%d of %d bytes", got-start, int64(b.N)*int64(len(chunk)))
	}
}

// TestTCPSteadyStateDoesNotAllocate holds the data path to its promise:
// request/response on a persistent connection, and whole connections
// (connect, exchange, close, TIME-WAIT) once the free list is warm.
func TestTCPSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := tcpBenchPair(t, func(c *Config) { c.TCP.MSL = time.Millisecond }, echoServer)
	a := m.stacks[0]
	r := &rrClient{limit: 1 << 62}
	if _, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true}); err != nil {
		t.Fatal(err)
	}
	runUntil(m, func() bool { return r.done >= 50 }, 100)
	if allocs := testing.AllocsPerRun(200, func() {
		want := r.done + 1
		runUntil(m, func() bool { return r.done >= want }, 100)
	}); allocs != 0 {
		t.Errorf("request/response: %v allocations per transaction", allocs)
	}

	done := 0
	var req [64]byte
	handler := func(c *TCPConn, ev TCPEvent) {
		switch ev {
		case TCPEventEstablished:
			c.Write(req[:])
		case TCPEventReadable:
			c.Discard(c.Buffered())
			done++
			c.Close()
		}
	}
	cycle := func() {
		want := done + 1
		if _, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: handler, NoDelay: true}); err != nil {
			t.Fatal(err)
		}
		if !runUntil(m, func() bool { return done >= want }, 100) {
			t.Fatal("connection stalled")
		}
		m.clock.Advance(3 * time.Millisecond)
		m.step()
	}
	for range 20 {
		cycle()
	}
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Errorf("connect/request/response/close: %v allocations per connection", allocs)
	}
}

// BenchmarkTCPRR64ZeroCopy is BenchmarkTCPRR64 with both ends reading
// through OnSegment: each request and response is taken where it arrived,
// never copied into a receive ring.
func BenchmarkTCPRR64ZeroCopy(b *testing.B) {
	m := tcpBenchPair(b, nil, echoServer)
	srv := m.stacks[1]
	srv.tcp.listeners[5001].opts.OnSegment = func(c *TCPConn, p []byte) int {
		k, _ := c.Write(p)
		return k
	}
	r := &rrClient{limit: 1 << 62}
	onSeg := func(c *TCPConn, p []byte) int {
		r.have += len(p)
		for r.have >= len(r.req) {
			r.have -= len(r.req)
			r.done++
			if r.done < r.limit {
				c.Write(r.req[:])
			}
		}
		return len(p)
	}
	c, err := m.stacks[0].DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: r.handle, OnSegment: onSeg, NoDelay: true})
	if err != nil {
		b.Fatal(err)
	}
	measureRR(b, m, r, c)
	if zc := srv.TCPStats().ZeroCopyBytes; zc == 0 {
		b.Fatal("the server took nothing zero-copy")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trans/s")
}
