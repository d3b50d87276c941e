package sockets

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// tcpConn is the application's handle on a TCP connection: the net.Conn
// Accept and Dial return. The connection's state (conn: queues, wake-up
// channels, timers) goes back to a pool once the handle is closed and the
// core is done with it, so a connection allocates only its handle. An
// application may keep the handle past Close, as it may a *net.TCPConn:
// every call then fails with net.ErrClosed, and none reaches the state,
// which by then may serve another connection.
type tcpConn struct {
	sc *conn
	// calls counts the calls under way in sc, plus handleClosed once Close
	// has begun; the last call out after that lets go of the
	// application's hold on sc.
	calls         atomic.Int64
	local, remote netip.AddrPort
	laddr, raddr  atomic.Pointer[net.TCPAddr] // made at the first LocalAddr, RemoteAddr
}

const handleClosed = 1 << 40

func newHandle(sc *conn) *tcpConn {
	return &tcpConn{sc: sc, local: sc.local, remote: sc.remote}
}

// enter reports whether a call may use sc (the handle is not closed), and
// if so counts it until leave.
func (h *tcpConn) enter() bool { return h.take(1) }

// take adds n to calls unless the handle is closed.
func (h *tcpConn) take(n int64) bool {
	for {
		c := h.calls.Load()
		if c >= handleClosed {
			return false
		}
		if h.calls.CompareAndSwap(c, c+n) {
			return true
		}
	}
}

// call runs fn on sc as a call of the handle's (op names it in the error
// of a closed handle): the setters and the half-closes.
func (h *tcpConn) call(op string, fn func(sc *conn) error) error {
	if !h.enter() {
		return h.closedError(op)
	}
	defer h.leave()
	return fn(h.sc)
}

func (h *tcpConn) leave() {
	if h.calls.Add(-1) == handleClosed {
		h.sc.release()
	}
}

func (h *tcpConn) closedError(op string) error {
	return opError(op, h.local, h.remote, net.ErrClosed)
}

// Read reads what has arrived, waiting for data if none has. Bytes the
// core has staged cost no message to the core; a Read that waits costs
// one wake-up when they come.
func (h *tcpConn) Read(p []byte) (int, error) {
	if !h.enter() {
		return 0, h.closedError("read")
	}
	n, err := h.sc.Read(p)
	h.leave()
	return n, err
}

// Write stages p for the core and returns once all of it is staged,
// waiting only when the staging queue and the send ring are full (as a
// kernel socket's send buffer); the core sends it in order. An error the
// connection meets later (a reset) is reported by the next Write.
func (h *tcpConn) Write(p []byte) (int, error) {
	if !h.enter() {
		return 0, h.closedError("write")
	}
	n, err := h.sc.Write(p)
	h.leave()
	return n, err
}

// Close closes the connection: a FIN after the data written, or a reset if
// received data was left unread (as Linux does). Blocked Read and Write
// calls return net.ErrClosed.
func (h *tcpConn) Close() error {
	// Counted as a call, and marking the handle closed for every later one.
	if !h.take(handleClosed + 1) {
		return h.closedError("close")
	}
	err := h.sc.Close()
	h.leave()
	return err
}

// CloseWrite sends a FIN after the data written; reading goes on.
func (h *tcpConn) CloseWrite() error {
	return h.call("close", func(sc *conn) error { return sc.CloseWrite() })
}

// CloseRead shuts the reading side down, as *net.TCPConn's: Read reports
// io.EOF from then on, and data that arrives afterwards is acknowledged
// and discarded (as Linux's shutdown(SHUT_RD) lets a peer go on sending).
func (h *tcpConn) CloseRead() error {
	return h.call("close", func(sc *conn) error { return sc.CloseRead() })
}

// SetKeepAlive turns keepalive probes on (DefaultKeepAlive's timing) or
// off, as *net.TCPConn's.
func (h *tcpConn) SetKeepAlive(on bool) error {
	return h.call("set", func(sc *conn) error { return sc.SetKeepAlive(on) })
}

// SetKeepAlivePeriod sets the idle time before the first probe and the
// time between probes, as *net.TCPConn's.
func (h *tcpConn) SetKeepAlivePeriod(d time.Duration) error {
	return h.call("set", func(sc *conn) error { return sc.SetKeepAlivePeriod(d) })
}

// SetKeepAliveConfig configures keepalive as *net.TCPConn's: a zero field
// takes DefaultKeepAlive's value; a negative one leaves keepalive's
// current value... which here means the stack's own default.
func (h *tcpConn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	return h.call("set", func(sc *conn) error { return sc.SetKeepAliveConfig(cfg) })
}

// SetNoDelay turns Nagle's algorithm off (true, the default, as Go's net)
// or on, as *net.TCPConn's.
func (h *tcpConn) SetNoDelay(noDelay bool) error {
	return h.call("set", func(sc *conn) error { return sc.SetNoDelay(noDelay) })
}

// SetLinger sets what Close does with bytes not yet sent, as
// *net.TCPConn's: sec < 0 (the default) returns at once and the core sends
// them, then the FIN; sec == 0 discards them and resets the connection;
// sec > 0 waits up to sec seconds for them and the FIN to go to TCP, then
// resets what is left.
func (h *tcpConn) SetLinger(sec int) error {
	return h.call("set", func(sc *conn) error { return sc.SetLinger(sec) })
}

// SetReadBuffer bounds what the connection holds of received bytes, as
// *net.TCPConn's (Linux's SO_RCVBUF); see conn.SetReadBuffer.
func (h *tcpConn) SetReadBuffer(bytes int) error {
	return h.call("set", func(sc *conn) error { return sc.SetReadBuffer(bytes) })
}

// SetWriteBuffer bounds what the connection holds of written bytes not
// yet acknowledged, as *net.TCPConn's (Linux's SO_SNDBUF); see
// conn.SetWriteBuffer.
func (h *tcpConn) SetWriteBuffer(bytes int) error {
	return h.call("set", func(sc *conn) error { return sc.SetWriteBuffer(bytes) })
}

// LocalAddr and RemoteAddr are made at their first call and kept: most
// servers never ask, and net/http asks once.
func (h *tcpConn) LocalAddr() net.Addr  { return cachedAddr(&h.laddr, h.local) }
func (h *tcpConn) RemoteAddr() net.Addr { return cachedAddr(&h.raddr, h.remote) }

func cachedAddr(p *atomic.Pointer[net.TCPAddr], ap netip.AddrPort) net.Addr {
	if a := p.Load(); a != nil {
		return a
	}
	a := net.TCPAddrFromAddrPort(ap)
	if p.CompareAndSwap(nil, a) {
		return a
	}
	return p.Load()
}

func (h *tcpConn) SetDeadline(t time.Time) error {
	return h.call("set", func(sc *conn) error { return sc.SetDeadline(t) })
}

// SetReadDeadline sets the read deadline and wakes a blocked Read so it
// sees the new one.
func (h *tcpConn) SetReadDeadline(t time.Time) error {
	return h.call("set", func(sc *conn) error { return sc.SetReadDeadline(t) })
}

func (h *tcpConn) SetWriteDeadline(t time.Time) error {
	return h.call("set", func(sc *conn) error { return sc.SetWriteDeadline(t) })
}
