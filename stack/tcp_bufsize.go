package stack

// Per-connection buffer bounds: Linux's SO_RCVBUF and SO_SNDBUF, which Go
// code sets with (*net.TCPConn).SetReadBuffer and SetWriteBuffer.
//
// TCPConfig.ReceiveBuffer and SendBuffer are every connection's initial
// bounds, which window autotuning grows (tcp_autotune.go); a connection
// may set its own instead. The request is clamped to [MinTCPBuffer,
// TCPConfig.ReceiveBuffer or SendBuffer], as Linux clamps to
// [SOCK_MIN_RCVBUF, rmem_max], becomes the ring's limit, and, as in Linux
// (SOCK_RCVBUF_LOCK, SOCK_SNDBUF_LOCK), ends autotuning of that ring:
//
//   - the receive ring's bound, so both the window advertised (the
//     ring's free space) and the memory it grows to. A smaller bound
//     never takes back a window already offered (RFC 9293 3.8.6: the
//     right edge must not move left; Linux's tcp_select_window keeps it
//     too): the ring's bound comes down only as the application consumes
//     bytes, by as many as it consumes, so the right edge stays where it
//     was until the bound reaches the limit. Once the peer has used the
//     window it had, every window advertised is at most the limit.
//   - the send ring's bound: what Write takes at once is at most the
//     limit less the bytes not yet acknowledged. Bytes already held above
//     the limit stay (nothing written is dropped); the bound comes down as
//     they are acknowledged.
//
// A larger request takes effect at once, up to the stack's bound.

// MinTCPBuffer is the least a per-connection buffer bound takes: the
// smallest ring class, which holds two full-sized Ethernet segments, so
// the window never falls to where silly window avoidance stalls it.
const MinTCPBuffer = ringMin

// clampBuffer clamps a requested buffer size to [MinTCPBuffer, bound].
func clampBuffer(n, bound int) int {
	return max(MinTCPBuffer, min(n, bound))
}

// SetReceiveBuffer asks that the connection hold at most n received bytes
// (Linux's SO_RCVBUF): the receive window it advertises and the receive
// ring's memory are bounded by it, once the window already offered is
// used (see above), and autotuning no longer grows it. n is clamped to
// [MinTCPBuffer, TCPConfig.ReceiveBuffer]; the value applied is returned
// (0 on a connection the stack has recycled). Raising the bound from a
// window below one segment sends a window update at once.
func (c *TCPConn) SetReceiveBuffer(n int) int {
	if c.t == nil {
		return 0
	}
	n = clampBuffer(n, c.t.cfg.ReceiveBuffer)
	c.rcvLocked = true
	before := c.rcvBuf.free()
	c.rcvBuf.setLimit(n, false)
	if c.synchronized() && c.state != tcpClosed && before < c.sndMSS && c.rcvBuf.free() >= c.sndMSS {
		c.t.s.now = c.t.s.clock.Now()
		c.sendACK()
	}
	return n
}

// SetSendBuffer asks that the connection hold at most n bytes written and
// not yet acknowledged (Linux's SO_SNDBUF): Write takes no more than that
// bound leaves room for, and autotuning no longer grows it. n is clamped
// to [MinTCPBuffer, TCPConfig.SendBuffer]; the value applied is returned
// (0 on a connection the stack has recycled).
func (c *TCPConn) SetSendBuffer(n int) int {
	if c.t == nil {
		return 0
	}
	n = clampBuffer(n, c.t.cfg.SendBuffer)
	c.sndLocked = true
	c.sndBuf.setLimit(n, true)
	return n
}

// ReceiveBuffer returns the connection's receive buffer bound: what
// SetReceiveBuffer applied, or TCPConfig.ReceiveBuffer as autotuning has
// grown it (as Linux's SO_RCVBUF reads back).
func (c *TCPConn) ReceiveBuffer() int { return c.rcvBuf.limitOr() }

// SendBuffer returns the connection's send buffer bound: what
// SetSendBuffer applied, or TCPConfig.SendBuffer as autotuning has grown
// it.
func (c *TCPConn) SendBuffer() int { return c.sndBuf.limitOr() }

// setLimit bounds the ring at n bytes (n <= the pool's largest class).
// A larger bound applies at once. A smaller one applies at once as far as
// the held bytes allow if now is set (the send ring); otherwise (the
// receive ring, whose free space was offered to the peer) only as bytes
// are consumed (shrink).
func (r *byteRing) setLimit(n int, now bool) {
	r.limit = int32(n)
	switch {
	case n >= int(r.size):
		r.size = int32(n)
	case now:
		r.size = int32(max(n, r.n))
	}
}

// shrink lowers the bound toward t (the limit, or what memory pressure
// allows: target) by at most n, the bytes just consumed: the free space,
// and so the right edge of the window, does not move.
func (r *byteRing) shrink(n int, t int32) {
	r.size -= int32(min(n, int(r.size-t)))
}

// limitOr returns the ring's limit, or its bound if it has none.
func (r *byteRing) limitOr() int {
	if r.limit > 0 {
		return int(r.limit)
	}
	if r.pool != nil {
		return r.pool.initial
	}
	return int(r.size)
}
