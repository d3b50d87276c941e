package stack

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack/header"
)

// bulkConn is one bulk connection from a to b over a mem wire, b's
// application reading everything as it arrives, a's writing all it can.
type bulkConn struct {
	m              *memNet
	tick           time.Duration
	got            int64 // bytes b's application read
	client, server *TCPConn
}

// newBulk opens the connection; the clock moves by tick (see run).
func newBulk(t *testing.T, faults mem.Faults, tick time.Duration, tweak func(*TCPConfig)) *bulkConn {
	t.Helper()
	m := newMemNet(t, faults, 1, "10.0.0.1/24", "10.0.0.2/24")
	a, b := m.stacks[0], m.stacks[1]
	if tweak != nil {
		for _, s := range m.stacks {
			cfg := s.cfg.TCP
			tweak(&cfg)
			if err := s.tcp.init(s, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.LearnNeighbour(ip4("10.0.0.2"), b.mac)
	b.LearnNeighbour(ip4("10.0.0.1"), a.mac)
	bc := &bulkConn{m: m, tick: tick}
	if _, err := b.ListenTCP(5001, TCPListenOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
		bc.server = c
		if ev == TCPEventReadable {
			x, y := c.Peek()
			bc.got += int64(len(x) + len(y))
			c.Discard(len(x) + len(y))
		}
	}}); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	var err error
	bc.client, err = a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventEstablished || ev == TCPEventWritable {
			for {
				n, err := c.Write(chunk)
				if err != nil || n < len(chunk) {
					return
				}
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for bc.server == nil {
		bc.run(time.Millisecond)
	}
	return bc
}

// run moves the clock by d. It moves in steps (tick) shorter than a
// full-sized frame takes on the link, so that segments arrive one by one,
// as they would, and are acknowledged every second one: the 1 ms steps of
// memNet.run would hand the receiver a millisecond of segments at once,
// and the stretch ACKs that makes hold slow start back (ABC).
func (bc *bulkConn) run(d time.Duration) {
	m := bc.m
	for end := m.clock.Now() + int64(d); m.clock.Now() < end; {
		for i := 0; i < 100 && m.step() > 0; i++ {
		}
		m.clock.Advance(bc.tick)
	}
}

// goodput runs for span and returns the payload bits per second (of
// virtual time) b's application read.
func (bc *bulkConn) goodput(span time.Duration) float64 {
	from, start := bc.got, bc.m.clock.Now()
	bc.run(span)
	return float64(bc.got-from) * 8 / (float64(bc.m.clock.Now()-start) / 1e9)
}

// TestTCPWindowAutotuningFillsALongFatLink is issue 17's test of window
// autotuning: one connection over a 1 Gbit/s link with 20 ms of round
// trip (a bandwidth-delay product of 2.5 MB) reaches at least 90% of
// what the link carries of payload. With the 128 KiB initial windows
// and no autotuning it reaches some 50 Mbit/s (checked too: the link is
// long enough to need autotuning).
func TestTCPWindowAutotuningFillsALongFatLink(t *testing.T) {
	const rate = 1e9
	// Slow start and autotuning fill the link within some 300 ms (15
	// round trips).
	warm, span := 500*time.Millisecond, 500*time.Millisecond
	if !testing.Short() && !raceEnabled {
		warm, span = time.Second, 4*time.Second // the long form: some 2 s of real time
	}
	link := mem.Faults{Delay: 10 * time.Millisecond, Bandwidth: rate}
	bc := newBulk(t, link, 10*time.Microsecond, nil)
	first := bc.goodput(warm)
	bps := bc.goodput(span)
	client, server := bc.client, bc.server
	// What the link carries of payload: full-sized segments (1448 bytes
	// with timestamps) in frames of 1448+52+14 bytes plus 24 of framing.
	mss := float64(client.sndMSS - 12)
	capacity := rate * mss / (mss + 52 + 14 + 24)
	t.Logf("goodput %.0f Mbit/s of %.0f (%.1f%%; %.0f in the first %v); receive bound %d, send bound %d, cwnd %d, wscale %d",
		bps/1e6, capacity/1e6, 100*bps/capacity, first/1e6, warm, server.rcvBuf.bound(), client.sndBuf.bound(), client.cc.Cwnd(), server.rcvShift)
	if bps < 0.9*capacity {
		t.Fatalf("goodput %.0f Mbit/s: under 90%% of the link's %.0f", bps/1e6, capacity/1e6)
	}
	// The grown rings move the bytes without allocating.
	if !raceEnabled { // the race detector allocates
		if allocs := testing.AllocsPerRun(5, func() { bc.run(20 * time.Millisecond) }); allocs != 0 {
			t.Errorf("%.1f allocations per 20 ms of transfer at full windows", allocs)
		}
	}
	// Without autotuning the windows stay at the initial 128 KiB: some
	// 50 Mbit/s at 20 ms.
	slow := newBulk(t, link, 10*time.Microsecond, func(c *TCPConfig) {
		c.ReceiveBufferMax, c.SendBufferMax = 128<<10, 128<<10
	})
	slow.run(300 * time.Millisecond)
	off := slow.goodput(500 * time.Millisecond)
	t.Logf("without autotuning: %.0f Mbit/s", off/1e6)
	if off > 0.1*capacity {
		t.Fatalf("without autotuning %.0f Mbit/s: the link is not long enough to need it", off/1e6)
	}
}

// tunePeer is a scripted sender with a round trip of tuneRTT: each round
// it sends what it plans, in 1000-byte segments, as far as the window
// the stack offered allows.
type tunePeer struct {
	h     *tcpScript
	shift uint8
	nxt   int64 // next sequence number to send, relative
	edge  int64 // the right edge of the window offered, relative
	// maxWnd is the largest window offered since the last round began.
	maxWnd int64
}

const tuneRTT = 100 * time.Millisecond

// take reads the window off what the stack sent.
func (p *tunePeer) take() {
	for _, g := range p.h.sent {
		if g.f.Flags&header.TCPFlagACK == 0 || g.f.DestinationPort != p.h.peerPort {
			continue
		}
		ack := int64(g.f.AckNumber - p.h.peerISN)
		wnd := int64(g.f.Window) << p.shift
		p.edge = max(p.edge, ack+wnd)
		p.maxWnd = max(p.maxWnd, wnd)
	}
	p.h.sent = p.h.sent[:0]
}

// round waits out a round trip from the last (the first round goes at
// once) and sends up to n bytes (all the window offered by then allows
// if n < 0); it returns how many went.
func (p *tunePeer) round(first bool, n int64) int64 {
	h := p.h
	if !first {
		h.advanceTo(h.now() + int64(tuneRTT))
		h.peerTS += uint32(tuneRTT / time.Millisecond)
	}
	p.take()
	p.maxWnd = 0
	// What the window offered at the start of the round allows: the
	// ACKs of this round's data come back only in the next.
	edge := p.edge
	sent := int64(0)
	for (n < 0 || sent < n) && p.nxt+1000 <= edge {
		h.inject(&tseg{f: "P.", seq: p.nxt, ack: 1, n: 1000})
		p.nxt += 1000
		sent += 1000
		p.take()
	}
	return sent
}

// tuneScript opens a connection from a peer with Window Scale and
// timestamps, RTT 100 ms, whose application reads everything at once.
func tuneScript(t *testing.T, tweak func(*TCPConfig), shift uint8) (*tcpScript, *tunePeer) {
	h := newTCPScript(t, func(c *Config) { tweak(&c.TCP) })
	h.onEvent = func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventReadable && c == h.conn {
			c.Discard(c.Buffered())
		}
	}
	h.listen()
	h.autoTS = true
	h.run(passiveOpen(synOpts(1460, "ws7", "sack"), &header.TCPOptions{HasMSS: true, MSS: 1460,
		HasWindowScale: true, WindowScale: shift, SACKPermitted: true, HasTimestamps: true, TSEcr: 1000}))
	p := &tunePeer{h: h, shift: shift, nxt: 1, edge: 1 + 65535}
	return h, p
}

// TestTCPReceiveBufferGrowsWithConsumptionPerRoundTrip: the receive
// bound grows once per round trip, by Linux's formula, when the
// application consumed more in the last round trip than in any before,
// not when it consumed less, and stops at ReceiveBufferMax; the windows
// offered follow it.
func TestTCPReceiveBufferGrowsWithConsumptionPerRoundTrip(t *testing.T) {
	const initial, most = 64 << 10, 1 << 20
	h, p := tuneScript(t, func(c *TCPConfig) { c.ReceiveBuffer, c.ReceiveBufferMax = initial, most }, 5)
	c := h.conn
	mss := int64(h.s.tcp.localMSS(false))
	if c.tune.space != 10*int(mss) {
		t.Fatalf("initial measure %d, want ten segments", c.tune.space)
	}
	// want is the bound after a round trip in which the application
	// consumed copied bytes, space the most in one before: Linux's
	// formula, at most twice the bound.
	want := func(copied, space, bound int64) int64 {
		win := 2*copied + 16*mss
		return min(win+2*(win*(copied-space)/space), 2*bound, most)
	}
	space := int64(10 * mss)
	type round struct {
		send  int64 // -1: the whole window
		bound int64 // the bound the round's first segment leaves (0: the last one)
	}
	rounds := []round{
		// The measure began at Established, just before the first round:
		// the next round's first segment ends it, counted with it.
		{10000, initial},
		{10000, initial}, // 11000 consumed: less than ten segments
		{20000, initial}, // 10000
		{20000, 0},       // 20000: grows
		{40000, 0},       // 20000: not more than before
		{-1, 0},          // 40000: grows (to twice the bound)
		{-1, 0},          // the whole window: grows, at most twice
		{-1, 0},
		{-1, 0},
		{-1, most}, // the most
		{-1, most}, // stays
	}
	bound := int64(initial)
	var prev int64
	for i, r := range rounds {
		// The round's first segment ends the last measure (the bound it
		// leaves is what the ACKs of the round offer).
		sent := p.round(i == 0, r.send)
		if i > 0 {
			copied := prev
			if i == 1 {
				copied += 1000 // the first segment of this round, and of the first
			}
			if copied > space {
				bound = max(bound, want(copied, space, bound))
				space = copied
			}
		}
		if r.bound != 0 && bound != r.bound {
			t.Fatalf("round %d: the test's own arithmetic gives %d, want %d", i, bound, r.bound)
		}
		if got := int64(c.rcvBuf.bound()); got != bound || int64(c.ReceiveBuffer()) != bound {
			t.Fatalf("round %d (%d bytes, %d before): bound %d (ReceiveBuffer %d), want %d", i, sent, prev, got, c.ReceiveBuffer(), bound)
		}
		if p.maxWnd > most || p.maxWnd < bound-2*1000-32 {
			t.Fatalf("round %d: windows offered up to %d, bound %d", i, p.maxWnd, bound)
		}
		if r.send >= 0 && sent != r.send {
			t.Fatalf("round %d: the window let %d of %d bytes go", i, sent, r.send)
		}
		t.Logf("round %d: %d bytes, bound %d, window %d", i, sent, bound, p.maxWnd)
		prev = sent
	}
	if bound != most {
		t.Fatalf("bound %d after the rounds, want ReceiveBufferMax %d", bound, most)
	}
	// An application bound ends autotuning.
	c.SetReceiveBuffer(initial)
	for range 3 {
		p.round(false, -1)
	}
	if c.rcvBuf.bound() != initial || c.tune.space < initial {
		t.Fatalf("after SetReceiveBuffer: bound %d", c.rcvBuf.bound())
	}
}

// TestTCPReceiveBufferDoesNotGrowUnderMemoryPressure: while the stack is
// under memory pressure (another connection's unread bytes hold it
// there), a connection that consumes its whole window every round trip
// keeps its bound; once pressure ends, it grows to the most.
func TestTCPReceiveBufferDoesNotGrowUnderMemoryPressure(t *testing.T) {
	const initial, most = 64 << 10, 1 << 20
	h, p := tuneScript(t, func(c *TCPConfig) {
		c.ReceiveBuffer, c.ReceiveBufferMax = initial, most
		c.MemoryPressure = 48 << 10
	}, 5)
	c := h.conn
	// A second connection whose application does not read: 60000 bytes
	// put the stack past the pressure threshold.
	const port = 5000
	h.injectRaw(port, scriptPeerISN, 0, header.TCPFlagSYN, 65535, nil, nil)
	other := h.s.tcp.conns[tcpTuple{localAddr: mapped4(h.s.addr), remoteAddr: mapped4(scriptPeer), localPort: scriptPort, remotePort: port}]
	if other == nil {
		t.Fatal("no second connection")
	}
	h.injectRaw(port, scriptPeerISN+1, other.iss+1, header.TCPFlagACK, 65535, nil, nil)
	for off := 0; off < 60000; off += 1000 {
		h.injectRaw(port, scriptPeerISN+1+uint32(off), other.iss+1, header.TCPFlagACK|header.TCPFlagPSH, 65535, nil, pattern(1000))
	}
	h.sent = h.sent[:0]
	if !h.s.tcp.mem.under {
		t.Fatalf("not under pressure: %d ring bytes", h.s.TCPStats().RingBytes)
	}
	for i := range 5 {
		sent := p.round(i == 0, -1)
		t.Logf("round %d under pressure: %d bytes, bound %d, window %d", i, sent, c.rcvBuf.bound(), p.maxWnd)
		if c.rcvBuf.bound() > initial || c.ReceiveBuffer() != initial || p.maxWnd > initial {
			t.Fatalf("round %d under pressure (%d bytes): bound %d, limit %d, window %d", i, sent, c.rcvBuf.bound(), c.ReceiveBuffer(), p.maxWnd)
		}
	}
	other.Discard(other.Buffered())
	if h.s.tcp.mem.under {
		t.Fatalf("still under pressure: %d ring bytes", h.s.TCPStats().RingBytes)
	}
	for i := range 12 {
		sent := p.round(false, -1)
		t.Logf("after pressure %d: %d bytes, bound %d, window %d, under %v", i, sent, c.rcvBuf.bound(), p.maxWnd, h.s.tcp.mem.under)
	}
	if c.rcvBuf.bound() != most {
		t.Fatalf("pressure over: bound %d, want %d", c.rcvBuf.bound(), most)
	}
}

// TestTCPWindowScaleIsChosenForReceiveBufferMax: the scale a SYN and a
// SYN-ACK announce is the least that covers ReceiveBufferMax (the most
// the window grows to), whatever the initial ReceiveBuffer.
func TestTCPWindowScaleIsChosenForReceiveBufferMax(t *testing.T) {
	for _, tc := range []struct {
		buf, most int
		want      uint8
	}{
		{64 << 10, 64 << 10, 1}, // 65536 does not fit 16 bits
		{32 << 10, 32 << 10, 0},
		{128 << 10, 128 << 10, 2}, // the scale of autotuning off at the default buffer
		{64 << 10, 1 << 20, 5},
		{128 << 10, 0, 7}, // the default: 4 MiB
		{128 << 10, 6 << 20, 7},
		{15 << 20, 15 << 20, 8},
		{128 << 10, 1 << 30, 14},
	} {
		name := fmt.Sprintf("%d-%d", tc.buf, tc.most)
		t.Run(name, func(t *testing.T) {
			h := newTCPScript(t, func(c *Config) { c.TCP.ReceiveBuffer, c.TCP.ReceiveBufferMax = tc.buf, tc.most })
			h.dial(TCPConnOptions{})
			if len(h.sent) != 1 || h.sent[0].opts.WindowScale != tc.want || !h.sent[0].opts.HasWindowScale ||
				int(h.sent[0].f.Window) != min(tc.buf, 0xffff) {
				t.Fatalf("SYN %+v window %d; want scale %d", h.sent[0].opts, h.sent[0].f.Window, tc.want)
			}
			h.sent = h.sent[:0]
			h.listen()
			h.local = scriptPort
			o := synOpts(1460, "ws7")
			var ob [header.TCPMaximumOptionsSize]byte
			h.injectRaw(4001, 1, 0, header.TCPFlagSYN, 65535, ob[:header.EncodeTCPOptions(ob[:], o)], nil)
			if len(h.sent) != 1 || h.sent[0].opts.WindowScale != tc.want {
				t.Fatalf("SYN-ACK %+v; want scale %d", h.sent, tc.want)
			}
		})
	}
	if _, err := New(Config{MAC: header.MAC{2, 0, 0, 0, 0, 1}, Addr: netip.MustParsePrefix("10.0.0.1/24"),
		TCP: TCPConfig{ReceiveBuffer: 1 << 20, ReceiveBufferMax: 512 << 10}}); err == nil {
		t.Fatal("ReceiveBufferMax below ReceiveBuffer: accepted")
	}
}

// TestTCPSendBufferGrowsWithTheCongestionWindow: a writer the send bound
// holds back gets a bound of twice the congestion window as ACKs free
// room (Linux's tcp_sndbuf_expand), up to SendBufferMax; not while the
// stack is under memory pressure, nor once the application set the bound.
func TestTCPSendBufferGrowsWithTheCongestionWindow(t *testing.T) {
	const initial, most = 64 << 10, 1 << 20
	for _, tc := range []string{"grows", "pressure", "set"} {
		t.Run(tc, func(t *testing.T) {
			h, _ := tuneScript(t, func(c *TCPConfig) {
				c.SendBuffer, c.SendBufferMax = initial, most
				if tc == "pressure" {
					c.MemoryPressure = 32 << 10
				}
			}, 7)
			c := h.conn
			if tc == "set" {
				c.SetSendBuffer(initial)
			}
			big := pattern(2 * most)
			bound := c.sndBuf.bound()
			for round := 0; round < 30 && bound < most; round++ {
				if n, err := c.Write(big); err != nil || n == len(big) {
					t.Fatalf("round %d: Write took %d, %v: the bound did not hold it back", round, n, err)
				}
				if tc == "pressure" && !h.s.tcp.mem.under {
					t.Fatalf("round %d: %d ring bytes, not under pressure", round, h.s.TCPStats().RingBytes)
				}
				// The peer acknowledges every second segment, 10 ms later.
				h.advanceTo(h.now() + int64(10*time.Millisecond))
				for seqLT(c.sndUna, c.sndMax) {
					ack := min(c.sndUna+uint32(2*c.sndMSS), c.sndMax)
					h.sent = h.sent[:0]
					h.inject(&tseg{f: ".", seq: 1, ack: int64(ack - c.iss)})
					if b := c.sndBuf.bound(); b < bound || b > most || b > max(initial, 2*c.cc.Cwnd()) {
						t.Fatalf("round %d: bound %d (was %d), cwnd %d", round, b, bound, c.cc.Cwnd())
					}
					bound = c.sndBuf.bound()
				}
				h.sent = h.sent[:0]
				t.Logf("round %d: bound %d, cwnd %d", round, bound, c.cc.Cwnd())
			}
			want := most
			if tc != "grows" {
				want = initial
			}
			if bound != want || c.SendBuffer() != want {
				t.Fatalf("bound %d (SendBuffer %d), want %d", bound, c.SendBuffer(), want)
			}
		})
	}
}

// TestWindowUpdateOnceTheWindowLeftIsSmall: with a large receive ring
// (grown by autotuning, or set), a read that frees less than a quarter of
// it still opens the window when the peer has little of it left, to twice
// what it had (Linux's __tcp_cleanup_rbuf). Before, the update waited for
// the window to close altogether, and a sender that defers a TSO frame
// until the window takes it waited with it.
func TestWindowUpdateOnceTheWindowLeftIsSmall(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", func(c *Config) { c.TCP.SendBuffer = 2 << 20 })
	b := n.add("10.0.0.2/24", func(c *Config) { c.TCP.ReceiveBuffer = 1 << 20 })
	l, err := b.ListenTCP(80, TCPListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, sc := connect(t, n, a, l, "10.0.0.2", TCPConnOptions{})
	const left = 40 << 10
	total := sc.rcvBuf.free() - left
	for sent := 0; sent < total; {
		k, err := c.Write(pattern(min(64<<10, total-sent)))
		if err != nil {
			t.Fatal(err)
		}
		sent += k
		n.run()
	}
	if adv := int(sc.rcvAdvEdge - sc.rcvNxt); adv > left+1500 || adv < left-1500 {
		t.Fatalf("the peer may still send %d bytes, want about %d", adv, left)
	}
	framesBefore := n.frames
	var buf [128 << 10]byte
	if k := sc.Read(buf[:]); k != len(buf) {
		t.Fatalf("read %d", k)
	}
	n.run()
	if n.frames == framesBefore {
		t.Fatal("no window update after a 128 KiB read left the peer 40 KiB of window in a 1 MiB ring")
	}
	if adv := int(sc.rcvAdvEdge - sc.rcvNxt); adv < left+len(buf)-1500 {
		t.Fatalf("the peer may now send %d bytes, want at least %d", adv, left+len(buf))
	}
}
