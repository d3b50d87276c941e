package stack

import (
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// bufsizeConn opens a connection from a scripted peer (no options: no
// window scale) whose handler reads what arrives while *read is set.
func bufsizeConn(t *testing.T, read *bool) (*tcpScript, *TCPConn, uint16, uint32) {
	h := newTCPScript(t, func(c *Config) { c.TCP.ReceiveBuffer, c.TCP.SendBuffer = 64<<10, 64<<10 })
	h.onEvent = func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventReadable && *read {
			c.Discard(c.Buffered())
		}
	}
	h.listen()
	const port = 10000
	isn := uint32(scriptPeerISN)
	h.injectRaw(port, isn, 0, header.TCPFlagSYN, 65535, nil, nil)
	c := h.s.tcp.conns[tcpTuple{localAddr: mapped4(h.s.addr), remoteAddr: mapped4(scriptPeer), localPort: scriptPort, remotePort: port}]
	if c == nil {
		t.Fatal("no connection")
	}
	h.injectRaw(port, isn+1, c.iss+1, header.TCPFlagACK, 65535, nil, nil)
	if c.state != tcpEstablished {
		t.Fatalf("state %s", c.state)
	}
	h.sent = h.sent[:0]
	return h, c, port, isn + 1
}

// TestTCPSetReceiveBufferBoundsTheWindowWithoutTakingItBack: after
// SetReceiveBuffer(n) the right edge of the window never moves left
// (RFC 9293 3.8.6), every window advertised once the old one is used is
// at most n, and the ring's bound comes down to n. Raising the bound from
// a shut window sends a window update at once.
func TestTCPSetReceiveBufferBoundsTheWindowWithoutTakingItBack(t *testing.T) {
	read := true
	h, c, port, seq := bufsizeConn(t, &read)
	const limit = 8 << 10
	edge := c.rcvNxt + uint32(c.rcvWindow()) // offered at the handshake
	oldWindow := int(c.rcvWindow())
	if got := c.SetReceiveBuffer(limit); got != limit || c.ReceiveBuffer() != limit {
		t.Fatalf("SetReceiveBuffer(%d) = %d, ReceiveBuffer() = %d", limit, got, c.ReceiveBuffer())
	}
	payload := pattern(1000)
	for off := 0; off < 200<<10; off += len(payload) {
		h.injectRaw(port, seq+uint32(off), c.iss+1, header.TCPFlagACK|header.TCPFlagPSH, 65535, nil, payload)
		for _, g := range h.sent {
			if g.f.Flags&header.TCPFlagACK == 0 {
				continue
			}
			right := g.f.AckNumber + uint32(g.f.Window)
			if seqLT(right, edge) {
				t.Fatalf("after %d bytes: window %d at %d takes back the edge %d", off, g.f.Window, g.f.AckNumber-seq, edge-seq)
			}
			edge = right
			if off >= oldWindow && int(g.f.Window) > limit {
				t.Fatalf("after %d bytes: window %d, want at most %d", off, g.f.Window, limit)
			}
		}
		h.sent = h.sent[:0]
	}
	if c.rcvBuf.bound() != limit || c.rcvBuf.free() > limit {
		t.Fatalf("ring bound %d, free %d; want %d", c.rcvBuf.bound(), c.rcvBuf.free(), limit)
	}
	// The application stops reading: the window shuts at the bound.
	read = false
	at := seq + 200<<10
	for range limit / len(payload) {
		h.injectRaw(port, at, c.iss+1, header.TCPFlagACK|header.TCPFlagPSH, 65535, nil, payload)
		at += uint32(len(payload))
	}
	if c.rcvBuf.len() > limit {
		t.Fatalf("%d bytes held, bound %d", c.rcvBuf.len(), limit)
	}
	h.sent = h.sent[:0]
	if got := c.SetReceiveBuffer(32 << 10); got != 32<<10 {
		t.Fatalf("SetReceiveBuffer(32 KiB) = %d", got)
	}
	h.capture()
	if len(h.sent) != 1 || int(h.sent[0].f.Window) < 24<<10 {
		t.Fatalf("raising the bound from a shut window sent %d segments (%v), want one window update", len(h.sent), h.sent)
	}
	// Clamped to [MinTCPBuffer, ReceiveBuffer].
	if got := c.SetReceiveBuffer(1); got != MinTCPBuffer {
		t.Errorf("SetReceiveBuffer(1) = %d, want %d", got, MinTCPBuffer)
	}
	if got := c.SetReceiveBuffer(1 << 30); got != 64<<10 {
		t.Errorf("SetReceiveBuffer(1 GiB) = %d, want %d", got, 64<<10)
	}
}

// TestTCPSetSendBufferBoundsWrite: after SetSendBuffer(n) Write takes at
// most n less what is unacknowledged; bytes held above a lowered bound
// stay and the bound comes down as they are acknowledged.
func TestTCPSetSendBufferBoundsWrite(t *testing.T) {
	read := true
	h, c, port, seq := bufsizeConn(t, &read)
	const limit = 8 << 10
	if got := c.SetSendBuffer(limit); got != limit || c.SendBuffer() != limit {
		t.Fatalf("SetSendBuffer(%d) = %d, SendBuffer() = %d", limit, got, c.SendBuffer())
	}
	big := pattern(64 << 10)
	if n, err := c.Write(big); n != limit || err != nil {
		t.Fatalf("Write(64 KiB) = %d, %v; want %d", n, err, limit)
	}
	// ackTo acknowledges the first n bytes written, in steps of what
	// was sent (the congestion window paces it).
	ackTo := func(n uint32) {
		t.Helper()
		for i := 0; seqLT(c.sndUna, c.iss+1+n); i++ {
			if i > 100 {
				t.Fatalf("stuck at %d of %d acknowledged", c.sndUna-c.iss-1, n)
			}
			a := min(n, c.sndMax-c.iss-1)
			h.injectRaw(port, seq, c.iss+1+a, header.TCPFlagACK, 65535, nil, nil)
		}
	}
	ackTo(4000)
	if n, _ := c.Write(big); n != 4000 || c.sndBuf.len() != limit {
		t.Fatalf("after 4000 acknowledged Write took %d, %d held; want 4000, %d", n, c.sndBuf.len(), limit)
	}
	// Raise, fill, lower: nothing held is dropped.
	c.SetSendBuffer(64 << 10)
	c.Write(big[:24<<10])
	held := c.sndBuf.len()
	c.SetSendBuffer(limit)
	if c.sndBuf.len() != held || c.WriteSpace() != 0 {
		t.Fatalf("lowering the bound: %d held (was %d), room %d", c.sndBuf.len(), held, c.WriteSpace())
	}
	acked := uint32(4000 + (held - limit) - 1000)
	ackTo(acked)
	if c.WriteSpace() != 0 || c.sndBuf.bound() != limit+1000 {
		t.Fatalf("bytes above the bound acknowledged but 1000: room %d, bound %d; want 0, %d", c.WriteSpace(), c.sndBuf.bound(), limit+1000)
	}
	all := uint32(4000 + held)
	ackTo(all)
	if c.sndBuf.len() != 0 || c.sndBuf.bound() != limit || c.WriteSpace() != limit {
		t.Fatalf("all acknowledged: %d held, bound %d, room %d; want 0, %d, %d", c.sndBuf.len(), c.sndBuf.bound(), c.WriteSpace(), limit, limit)
	}
}
