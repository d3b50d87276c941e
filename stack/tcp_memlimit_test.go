package stack

import (
	"bytes"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// The stack's TCP memory limit (TCPConfig.MemoryLimit, MemoryPressure;
// tcp_mem.go).

// TestTCPMemoryLimitBoundsRingsAndConnectionsRecover: eight connections
// each send 64 KiB, the window the receiver offered at the handshake, to
// an application that does not read: 512 KiB against a 256 KiB limit.
// The receiver's ring memory never passes the limit; what it had no
// memory for is dropped and counted, the stack goes under pressure once.
// Once the application reads, the senders' retransmissions get through
// and every byte is delivered in order.
func TestTCPMemoryLimitBoundsRingsAndConnectionsRecover(t *testing.T) {
	const limit, conns, size = 256 << 10, 8, 64 << 10
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", func(c *Config) {
		c.TCP.MemoryLimit = limit
		c.TCP.ReceiveBuffer = size
	})
	l, err := b.ListenTCP(80, TCPListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var peak uint64
	n.filter = func(int, []byte) bool {
		peak = max(peak, b.TCPStats().RingBytes)
		return true
	}
	var clients []*TCPConn
	for range conns {
		c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	n.run()
	want := pattern(size)
	for i, c := range clients {
		if k, err := c.Write(want); k != size || err != nil {
			t.Fatalf("client %d: Write = %d, %v", i, k, err)
		}
	}
	n.advance(3 * time.Second)
	peak = max(peak, b.TCPStats().RingBytes)
	st := *b.TCPStats()
	t.Logf("unread: peak ring bytes %d, now %d, drops %d, pressure events %d", peak, st.RingBytes, st.RcvMemoryDrops, st.MemoryPressure)
	if peak > limit {
		t.Fatalf("ring bytes reached %d, limit %d", peak, limit)
	}
	if st.RcvMemoryDrops == 0 || drops(b, DropTCPMemory) != st.RcvMemoryDrops {
		t.Fatalf("%d segments dropped for memory (%d counted as drops), want some", st.RcvMemoryDrops, drops(b, DropTCPMemory))
	}
	if st.MemoryPressure != 1 {
		t.Fatalf("%d pressure events, want 1", st.MemoryPressure)
	}
	// The application reads: everything arrives.
	var servers []*TCPConn
	for {
		sc, ok := l.Accept()
		if !ok {
			break
		}
		servers = append(servers, sc)
	}
	if len(servers) != conns {
		t.Fatalf("%d connections accepted, want %d", len(servers), conns)
	}
	got := make([][]byte, conns)
	done := func() bool {
		for i := range got {
			if len(got[i]) < size {
				return false
			}
		}
		return true
	}
	for round := 0; round < 1200 && !done(); round++ {
		for i, sc := range servers {
			readAll(sc, &got[i])
		}
		n.advance(100 * time.Millisecond)
	}
	for i := range got {
		if !bytes.Equal(got[i], want) {
			t.Fatalf("connection %d: %d bytes delivered, want the %d written", i, len(got[i]), size)
		}
	}
	for i, c := range clients {
		if c.Unsent() != 0 || c.State() != "ESTABLISHED" {
			t.Fatalf("client %d: %s, %d bytes unacknowledged", i, c.State(), c.Unsent())
		}
	}
	if peak > limit {
		t.Fatalf("ring bytes reached %d, limit %d", peak, limit)
	}
	t.Logf("delivered: peak ring bytes %d, drops %d", peak, b.TCPStats().RcvMemoryDrops)
}

// memOpen opens a connection from the scripted peer's port (no options:
// no window scale, so the window field is the window) and returns it.
func memOpen(h *tcpScript, port uint16) *TCPConn {
	h.t.Helper()
	isn := uint32(scriptPeerISN) + uint32(port)<<16
	h.sent = h.sent[:0]
	h.injectRaw(port, isn, 0, header.TCPFlagSYN, 65535, nil, nil)
	c := h.s.tcp.conns[tcpTuple{localAddr: mapped4(h.s.addr), remoteAddr: mapped4(scriptPeer), localPort: scriptPort, remotePort: port}]
	if c == nil {
		h.t.Fatalf("no connection for port %d", port)
	}
	h.injectRaw(port, isn+1, c.iss+1, header.TCPFlagACK, 65535, nil, nil)
	if c.state != tcpEstablished {
		h.t.Fatalf("port %d: %s", port, c.state)
	}
	return c
}

// memSend sends n bytes to c from its peer in 1000-byte segments, from
// where the stack expects them, acknowledging nothing new; it returns the
// segments the stack sent meanwhile.
func memSend(h *tcpScript, c *TCPConn, n int) []sentSeg {
	h.t.Helper()
	h.sent = h.sent[:0]
	for n > 0 {
		k := min(n, 1000)
		h.injectRaw(c.id.remotePort, c.rcvNxt, c.sndUna, header.TCPFlagACK|header.TCPFlagPSH, 65535, nil, pattern(k))
		n -= k
	}
	return h.sent
}

// TestTCPMemoryPressureShrinksWindowsWithoutTakingThemBack: once ring
// memory passes the pressure threshold, a new connection offers a window
// of the smallest ring class (and may write no more than that), and an
// old connection whose application reads has its window come down to the
// memory its ring holds, its right edge never moving left (RFC 9293
// 3.8.6). When pressure ends, the old window comes back at the next read.
func TestTCPMemoryPressureShrinksWindowsWithoutTakingThemBack(t *testing.T) {
	const rcvBuf = 64 << 10
	h := newTCPScript(t, func(c *Config) {
		c.TCP.MemoryLimit = 256 << 10 // pressure at 2/3: 170.7 KiB
		c.TCP.ReceiveBuffer, c.TCP.SendBuffer = rcvBuf, rcvBuf
	})
	read := map[uint16]bool{}
	h.onEvent = func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventReadable && read[c.id.remotePort] {
			c.Discard(c.Buffered())
		}
	}
	h.listen()
	old := memOpen(h, 10000)
	fillers := []*TCPConn{memOpen(h, 10001), memOpen(h, 10002), memOpen(h, 10003)}
	edge := old.rcvNxt + uint32(old.rcvWindow())
	if w := old.rcvWindow(); w != 0xffff {
		t.Fatalf("old connection offers %d, want 65535", w)
	}
	// The old connection's ring holds 20 KB (a 32 KiB class), each
	// filler's 40 KB (64 KiB): 224 KiB, past the threshold.
	memSend(h, old, 20000)
	for _, f := range fillers {
		memSend(h, f, 40000)
	}
	st := h.s.TCPStats()
	if st.MemoryPressure != 1 || st.RingBytes != 224<<10 {
		t.Fatalf("%d pressure events, %d ring bytes; want 1 and %d", st.MemoryPressure, st.RingBytes, 224<<10)
	}
	// A new connection: a small window and a small send buffer.
	h.sent = h.sent[:0]
	isn := uint32(scriptPeerISN) + 10004<<16
	h.injectRaw(10004, isn, 0, header.TCPFlagSYN, 65535, nil, nil)
	if len(h.sent) != 1 || h.sent[0].f.Flags != header.TCPFlagSYN|header.TCPFlagACK {
		t.Fatalf("sent %d segments, want a SYN-ACK", len(h.sent))
	}
	if w := h.sent[0].f.Window; w > ringMin {
		t.Fatalf("new connection under pressure offers %d, want at most %d", w, ringMin)
	}
	fresh := h.s.tcp.conns[tcpTuple{localAddr: mapped4(h.s.addr), remoteAddr: mapped4(scriptPeer), localPort: scriptPort, remotePort: 10004}]
	h.injectRaw(10004, isn+1, fresh.iss+1, header.TCPFlagACK, 65535, nil, nil)
	if w := fresh.WriteSpace(); w > ringMin {
		t.Fatalf("new connection under pressure: WriteSpace %d, want at most %d", w, ringMin)
	}
	if k, _ := fresh.Write(pattern(rcvBuf)); k > ringMin {
		t.Fatalf("new connection under pressure: Write took %d, want at most %d", k, ringMin)
	}
	// The old connection's application reads from now on: the window
	// comes down to the 32 KiB its ring holds, the edge never left.
	read[10000] = true
	old.Discard(old.Buffered())
	growths := st.RingGrowths
	for sent := 0; sent < 4*rcvBuf; sent += 1000 {
		for _, g := range memSend(h, old, 1000) {
			if g.f.Flags&header.TCPFlagACK == 0 || g.f.DestinationPort != 10000 {
				continue
			}
			right := g.f.AckNumber + uint32(g.f.Window)
			if seqLT(right, edge) {
				t.Fatalf("after %d bytes: window %d takes back the edge by %d", sent, g.f.Window, edge-right)
			}
			edge = right
			if sent >= rcvBuf && int(g.f.Window) > 32<<10 {
				t.Fatalf("after %d bytes: window %d, want at most the %d the ring holds", sent, g.f.Window, 32<<10)
			}
		}
	}
	if st.RingGrowths != growths || st.RcvMemoryDrops != 0 || st.RingBytes > 256<<10 {
		t.Fatalf("%d ring growths, %d drops, %d ring bytes under pressure", st.RingGrowths-growths, st.RcvMemoryDrops, st.RingBytes)
	}
	// The fillers' applications read: pressure ends, and the old
	// connection's window is back after its next read.
	for _, f := range fillers {
		f.Discard(f.Buffered())
	}
	if h.s.tcp.mem.under {
		t.Fatalf("still under pressure with %d ring bytes", st.RingBytes)
	}
	memSend(h, old, 1000)
	if w := old.rcvWindow(); w != 0xffff {
		t.Fatalf("after pressure: old connection offers %d, want 65535", w)
	}
}

// TestTCPWriteIsShortAtTheMemoryLimitAndResumesWhenMemoryFrees: with
// receive rings holding most of the limit, Write takes only what the
// memory left allows (WriteSpace says so first), then nothing; when an
// application reads and its ring's memory goes back, the writer is told
// Writable and Write takes more.
func TestTCPWriteIsShortAtTheMemoryLimitAndResumesWhenMemoryFrees(t *testing.T) {
	const limit = 128 << 10
	h := newTCPScript(t, func(c *Config) {
		c.TCP.MemoryLimit, c.TCP.MemoryPressure = limit, limit // the hard limit alone
		c.TCP.ReceiveBuffer, c.TCP.SendBuffer = 64<<10, 64<<10
	})
	writable := map[uint16]int{}
	h.onEvent = func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventWritable {
			writable[c.id.remotePort]++
		}
	}
	h.listen()
	big, small, w := memOpen(h, 10001), memOpen(h, 10002), memOpen(h, 10003)
	memSend(h, big, 40000)   // a 64 KiB ring
	memSend(h, small, 20000) // a 32 KiB ring
	if rb := h.s.TCPStats().RingBytes; rb != 96<<10 {
		t.Fatalf("%d ring bytes, want %d", rb, 96<<10)
	}
	w.SetNoDelay(true)
	if ws := w.WriteSpace(); ws != 32<<10 {
		t.Fatalf("WriteSpace %d, want the %d the limit leaves", ws, 32<<10)
	}
	p := pattern(64 << 10)
	if k, _ := w.Write(p); k != 32<<10 {
		t.Fatalf("Write took %d, want %d", k, 32<<10)
	}
	if k, _ := w.Write(p); k != 0 || w.WriteSpace() != 0 {
		t.Fatalf("second Write took %d (WriteSpace %d), want 0", k, w.WriteSpace())
	}
	if rb := h.s.TCPStats().RingBytes; rb > limit {
		t.Fatalf("%d ring bytes, limit %d", rb, limit)
	}
	if writable[10003] != 0 {
		t.Fatal("Writable before memory came back")
	}
	// The big ring's application reads: its 64 KiB go back, and the
	// writer hears of it at the stack's next turn.
	big.Discard(big.Buffered())
	h.advanceTo(h.now() + int64(10*time.Millisecond))
	if writable[10003] != 1 {
		t.Fatalf("%d Writable events after memory came back, want 1", writable[10003])
	}
	if ws := w.WriteSpace(); ws != 32<<10 {
		t.Fatalf("WriteSpace %d after memory came back, want %d", ws, 32<<10)
	}
	if k, _ := w.Write(p); k != 32<<10 {
		t.Fatalf("Write took %d after memory came back, want %d", k, 32<<10)
	}
}

// TestTCPMemoryPressureEndsBelowThreeQuarters: pressure has hysteresis
// (docs/RELIABILITY.md, Linux's tcp_mem[0]): it begins when RingBytes
// rises past MemoryPressure, holds while RingBytes is back just under
// it, and ends only below 3/4 of it. While it holds, a new connection
// offers a window of the smallest ring class; once it ends, the full
// 65535.
func TestTCPMemoryPressureEndsBelowThreeQuarters(t *testing.T) {
	const pressure = 140 << 10 // 3/4: 105 KiB
	h := newTCPScript(t, func(c *Config) {
		c.TCP.MemoryLimit, c.TCP.MemoryPressure = 256<<10, pressure
	})
	h.listen()
	port := uint16(20000)
	// synAckWindow is the window a new connection's SYN-ACK offers.
	synAckWindow := func() uint16 {
		t.Helper()
		h.sent = h.sent[:0]
		port++
		h.injectRaw(port, scriptPeerISN, 0, header.TCPFlagSYN, 65535, nil, nil)
		if len(h.sent) != 1 || h.sent[0].f.Flags != header.TCPFlagSYN|header.TCPFlagACK {
			t.Fatalf("sent %d segments, want a SYN-ACK", len(h.sent))
		}
		return h.sent[0].f.Window
	}
	st := h.s.TCPStats()
	check := func(when string, ringBytes uint64, under bool) {
		t.Helper()
		if st.RingBytes != ringBytes || h.s.tcp.mem.under != under || st.MemoryPressure != 1 && under {
			t.Fatalf("%s: %d ring bytes, under pressure %v (%d events); want %d, %v", when, st.RingBytes, h.s.tcp.mem.under, st.MemoryPressure, ringBytes, under)
		}
		if w := synAckWindow(); under && w > ringMin || !under && w != 0xffff {
			t.Fatalf("%s: a new connection offers %d (under pressure %v)", when, w, under)
		}
	}
	a, b, c, d := memOpen(h, 10001), memOpen(h, 10002), memOpen(h, 10003), memOpen(h, 10004)
	memSend(h, a, 40000) // a 64 KiB ring
	memSend(h, b, 20000) // 32 KiB
	memSend(h, c, 10000) // 16 KiB
	check("below the mark", 112<<10, false)
	memSend(h, d, 20000) // 32 KiB more: past the mark
	check("past the mark", 144<<10, true)
	d.Discard(d.Buffered())
	check("back just under the mark", 112<<10, true)
	c.Discard(c.Buffered())
	check("below 3/4 of the mark", 96<<10, false)
	if st.MemoryPressure != 1 {
		t.Fatalf("%d pressure events, want 1", st.MemoryPressure)
	}
}
