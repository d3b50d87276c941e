package stack

import (
	"runtime"
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// Memory a connection holds, measured with runtime.MemStats around
// opening many connections on one stack (its peers are scripted, so the
// heap holds only the stack under test).

// memConns opens n connections from peer ports 10000 on, each exchanging
// a 64-byte request and its echo, then left idle: the handler echoes
// what it reads. It returns the connections.
func memConns(h *tcpScript, n int) []*TCPConn {
	h.t.Helper()
	conns := make([]*TCPConn, 0, n)
	for i := range n {
		port := uint16(10000 + i)
		isn := uint32(scriptPeerISN + i*1000)
		h.injectRaw(port, isn, 0, header.TCPFlagSYN, 65535, nil, nil)
		c := h.s.tcp.conns[tcpTuple{localAddr: mapped4(h.s.addr), remoteAddr: mapped4(scriptPeer), localPort: scriptPort, remotePort: port}]
		if c == nil {
			h.t.Fatalf("no connection for port %d", port)
		}
		h.injectRaw(port, isn+1, c.iss+1, header.TCPFlagACK, 65535, nil, nil)
		h.injectRaw(port, isn+1, c.iss+1, header.TCPFlagACK|header.TCPFlagPSH, 65535, nil, pattern(64))
		h.injectRaw(port, isn+65, c.iss+65, header.TCPFlagACK, 65535, nil, nil)
		if c.state != tcpEstablished || c.sndBuf.len() != 0 || c.rcvBuf.len() != 0 {
			h.t.Fatalf("port %d: %s, %d unacknowledged, %d unread", port, c.state, c.sndBuf.len(), c.rcvBuf.len())
		}
		conns = append(conns, c)
		h.sent = h.sent[:0]
	}
	return conns
}

// timeWait closes each connection (our FIN) and lets the peer acknowledge
// it and send its own: each ends in TIME-WAIT.
func memTimeWait(h *tcpScript, conns []*TCPConn) {
	h.t.Helper()
	for _, c := range conns {
		c.Close()
		port, isn := c.id.remotePort, c.irs
		h.injectRaw(port, isn+65, c.iss+66, header.TCPFlagACK|header.TCPFlagFIN, 65535, nil, nil)
		if c.state != tcpTimeWait {
			h.t.Fatalf("port %d: %s, want TIME-WAIT", port, c.state)
		}
		h.sent = h.sent[:0]
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measureConnMemory returns the heap bytes per idle established
// connection and per connection in TIME-WAIT.
func measureConnMemory(t *testing.T, n int) (idle, timeWait float64) {
	h := newTCPScript(t, func(c *Config) { c.TCP.MaxConns = 2 * n })
	h.onEvent = echoServer
	h.listen()
	h.sent = make([]sentSeg, 0, 16)
	before := heapInUse()
	conns := memConns(h, n)
	mid := heapInUse()
	memTimeWait(h, conns)
	after := heapInUse()
	if got := h.s.TCPStats().TimeWait; got != uint64(n) {
		t.Fatalf("%d connections in TIME-WAIT, want %d", got, n)
	}
	runtime.KeepAlive(conns)
	return float64(mid-before) / float64(n), float64(after-before) / float64(n)
}

// TestTCPIdleAndTimeWaitConnectionsHoldNoRings: a connection holds ring
// memory only while bytes wait in it. An idle established connection
// (everything sent was acknowledged, everything received was read) and
// one in TIME-WAIT cost the connection's own state, not the 2 x 128 KiB
// of its send and receive rings.
func TestTCPIdleAndTimeWaitConnectionsHoldNoRings(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	const n = 200
	idle, tw := measureConnMemory(t, n)
	t.Logf("per idle established connection: %.0f bytes; per TIME-WAIT connection: %.0f bytes (%d connections)", idle, tw, n)
	const limit = 4 << 10
	if idle > limit || tw > limit {
		t.Errorf("idle established %.0f bytes, TIME-WAIT %.0f bytes per connection: want at most %d", idle, tw, limit)
	}
}

func ringBytes(s *TCPStats) uint64 { return s.RingBytes }

// TestTCPScriptReceiveRingGrowsAsDataNeedsAndTheWindowHolds: the receive
// ring takes memory as data arrives (4 KiB, then the next class up), also
// for data held beyond a hole, while the window offered stays what
// ReceiveBuffer allows (RFC 9293 3.8.6: never shrunk); once the
// application has read everything the memory goes back, and the next
// data takes the size the ring last had at once.
func TestTCPScriptReceiveRingGrowsAsDataNeedsAndTheWindowHolds(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.QuickACKs = -1 })
	h.listen()
	s := []step{
		in(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		do(ms(200), wantStat("ring bytes", ringBytes, 4096)),
		in(ms(201), tseg{f: ".", seq: 1001, ack: 1, n: 1000}),
		out(ms(201), tseg{f: ".", seq: 1, ack: 2001, win: 65535}),
		in(ms(202), tseg{f: ".", seq: 2001, ack: 1, n: 1000}),
		in(ms(203), tseg{f: ".", seq: 3001, ack: 1, n: 1000}),
		out(ms(203), tseg{f: ".", seq: 1, ack: 4001, win: 65535}),
		in(ms(204), tseg{f: ".", seq: 4001, ack: 1, n: 1000}),
		do(ms(204), wantStat("ring bytes", ringBytes, 8192)),
		// Beyond a hole, 55 KB ahead: the ring grows to hold it where it
		// belongs; the duplicate ACK still offers the whole window.
		in(ms(205), tseg{f: ".", seq: 60001, ack: 1, n: 1000}),
		out(ms(205), tseg{f: ".", seq: 1, ack: 5001, win: 65535}),
		do(ms(205), wantStat("ring bytes", ringBytes, 64<<10)),
		do(ms(205), func(h *tcpScript) {
			if n := h.conn.Read(make([]byte, 10000)); n != 5000 {
				h.t.Fatalf("read %d bytes, want 5000", n)
			}
		}),
		// Held out of order: the memory stays.
		do(ms(205), wantStat("ring bytes", ringBytes, 64<<10)),
	}
	// The hole fills: each segment is acknowledged at once, the last one
	// with the range beyond it.
	for seq := int64(5001); seq < 60001; seq += 1000 {
		ack := seq + 1000
		if ack == 60001 {
			ack = 61001
		}
		s = append(s, in(ms(210), tseg{f: ".", seq: seq, ack: 1, n: 1000}),
			out(ms(210), tseg{f: ".", seq: 1, ack: ack, win: 65535}))
	}
	s = append(s,
		do(ms(210), func(h *tcpScript) {
			buf := make([]byte, 100000)
			if n := h.conn.Read(buf); n != 56000 {
				h.t.Fatalf("read %d bytes, want 56000", n)
			}
			if h.conn.Buffered() != 0 {
				h.t.Fatal("bytes left")
			}
		}),
		do(ms(210), wantStat("ring bytes", ringBytes, 0)),
		in(ms(300), tseg{f: ".", seq: 61001, ack: 1, n: 1000}),
		do(ms(300), wantStat("ring bytes", ringBytes, 64<<10)),
		out(ms(340), tseg{f: ".", seq: 1, ack: 62001, win: 65535}),
	)
	h.run(steps(scriptMSS1000(), s))
}
