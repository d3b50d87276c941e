package stack

// Window autotuning: send and receive buffers that grow with the measured
// bandwidth-delay product, as Linux's do (tcp_rcv_space_adjust, "dynamic
// right-sizing", and tcp_sndbuf_expand).
//
// A connection starts with rings bounded by TCPConfig.ReceiveBuffer and
// SendBuffer (128 KiB by default): enough for most connections, and what a
// connection that exchanges small messages never reaches anyway. One
// connection's throughput is at most its window per round trip, though:
// 128 KiB over 20 ms is 50 Mbit/s. So the bounds grow, per connection:
//
//   - Receive: once per round trip (the receiver's own estimate, below),
//     the bytes the application consumed in that round trip are compared
//     with the most it consumed in one before (Linux's rcvq_space); when
//     more, the bound grows to twice them plus 16 segments, and more in
//     proportion to the growth (a sender in slow start doubles its rate
//     each round trip, and the window this ACK offers is for the next
//     one): Linux's formula. Unlike Linux, one step at most doubles the
//     bound, as fast as slow start can use it: consumption measured
//     against a round-trip estimate of whole milliseconds on a faster
//     path, or a layer above the stack that drains the ring into a
//     queue of its own at once (the sockets package), would otherwise
//     take the bound to the most in one step. A connection whose
//     application reads slowly keeps a small window; one that reads at
//     line rate gets twice the bandwidth-delay product, which leaves
//     room for a lost segment's round trip of data beyond the hole. Under
//     memory pressure the measure is not kept either, so growth resumes
//     where it was once pressure ends.
//   - Send: when an ACK frees room for a writer the bound held back, and
//     the congestion window is not full, the bound grows to twice the
//     congestion window (Linux's tcp_sndbuf_expand, whose 2 is for the
//     same reason).
//
// Neither grows past TCPConfig.ReceiveBufferMax or SendBufferMax (4 MiB
// by default), under memory pressure, past what TCPConfig.MemoryLimit
// still leaves (the memory the ring holds and what no ring holds), nor on
// a connection whose application set its bound (SetReceiveBuffer,
// SetSendBuffer: Linux's SOCK_RCVBUF_LOCK and SOCK_SNDBUF_LOCK). Growing a
// bound takes no memory: the rings take it as bytes need it, from the
// same pools and under the same limit (tcp_ring.go, tcp_mem.go), and
// memory pressure brings a receive bound back down as it does any other
// (never taking back a window offered). The window scale is chosen for
// ReceiveBufferMax at the handshake (rcvShift), as the scale cannot
// change later.
//
// The receiver's round-trip estimate (Linux's rcv_rtt_est): with
// timestamps, the age of the TSecr a full-sized data segment echoes (the
// ACK it answers went out that long ago), smoothed by 1/8; without, the
// time a window's worth of data takes to arrive, the least seen. Until
// there is one, the handshake's RTT stands in.
//
// This is per connection and costs a comparison per read and per data
// segment; nothing scans the connections.

// rcvTune is a connection's receive-side measure for autotuning.
type rcvTune struct {
	// space is the most the application consumed in one measured round
	// trip (Linux's rcvq_space.space); seq and time are where and when
	// the current measure began (the sequence number up to which the
	// application has consumed).
	space int
	seq   uint32
	time  int64
	// rtt is the receiver's round-trip estimate in ns, 0 before the
	// first. Without timestamps, rttSeq ends the window being timed
	// since rttTime (0: none yet). lastTSecr is the last TSecr sampled.
	rtt       int64
	rttTime   int64
	rttSeq    uint32
	lastTSecr uint32
}

// copiedSeq is the sequence number up to which the application has
// consumed received bytes (Linux's copied_seq).
func (c *TCPConn) copiedSeq() uint32 { return c.rcvNxt - uint32(c.rcvBuf.len()) }

// startAutotune begins the receive measure at Established, from Linux's
// initial rcvq_space: the initial window or ten segments if less (space
// is never 0 once begun).
func (c *TCPConn) startAutotune() {
	c.tune = rcvTune{
		space: max(min(c.rcvBuf.limitOr(), 10*c.t.localMSS(c.id.v6())), 1),
		seq:   c.copiedSeq(),
		time:  c.t.s.now,
	}
}

// measureRcvRTT takes a round-trip sample from in-order data of n bytes.
func (c *TCPConn) measureRcvRTT(seg *tcpSegment, n int) {
	a := &c.tune
	if c.tsOK {
		ecr := seg.opts.TSEcr
		if !seg.opts.HasTimestamps || ecr == 0 || ecr == a.lastTSecr || 2*n < c.sndMSS {
			return
		}
		a.lastTSecr = ecr
		if d := int32(c.tsNow() - ecr); d > 0 {
			sample := int64(d) * 1e6
			if a.rtt == 0 {
				a.rtt = sample
			} else {
				a.rtt += (sample - a.rtt) / 8
			}
		}
		return
	}
	now := c.t.s.now
	if a.rttTime != 0 {
		if seqLT(c.rcvNxt, a.rttSeq) {
			return
		}
		if sample := now - a.rttTime; sample > 0 && (a.rtt == 0 || sample < a.rtt) {
			a.rtt = sample
		}
	}
	a.rttSeq = c.rcvNxt + uint32(max(c.rcvBuf.free(), c.sndMSS))
	a.rttTime = now
}

// rcvSpaceAdjust ends the receive measure once a round trip has passed
// since it began, growing the receive bound if the application consumed
// more than in any measured round trip before (Linux's
// tcp_rcv_space_adjust), and begins the next.
func (c *TCPConn) rcvSpaceAdjust() {
	a := &c.tune
	if a.space == 0 {
		// Never Established (closed in SYN-RECEIVED, say): begin now.
		c.startAutotune()
		return
	}
	now := c.t.s.now
	rtt := a.rtt
	if rtt == 0 {
		rtt = c.srtt
	}
	if rtt <= 0 || now-a.time < rtt {
		return
	}
	seq := c.copiedSeq()
	// Under memory pressure the bound does not grow, and the measure is
	// not kept either: once pressure ends, consumption is compared with
	// what it was before.
	if copied := int(seq - a.seq); copied > a.space && !c.t.mem.under {
		if !c.rcvLocked {
			// Twice what was consumed, and 16 segments of cushion; and as
			// much again in proportion to the growth (slow start).
			win := 2*int64(copied) + 16*int64(c.t.localMSS(c.id.v6()))
			grow := win * int64(copied-a.space) / int64(a.space)
			win += 2 * grow
			// At most twice the bound per step (see above).
			win = min(win, 2*int64(c.rcvBuf.limit), int64(c.t.cfg.ReceiveBufferMax))
			c.rcvBuf.grow(int(win))
		}
		a.space = copied
	}
	a.seq, a.time = seq, now
}

// expandSndBuf grows the send ring's bound to twice the congestion window
// (Linux's tcp_sndbuf_expand), up to SendBufferMax, when an ACK frees room
// for a writer the bound held back and the congestion window is not full.
func (c *TCPConn) expandSndBuf() {
	cwnd := c.cc.Cwnd()
	if c.sndLocked || int(c.sndMax-c.sndUna) >= cwnd {
		return
	}
	c.sndBuf.grow(int(min(2*int64(cwnd), int64(c.t.cfg.SendBufferMax))))
}

// grow raises the ring's limit, and its bound, to n (at most the pool's
// largest class), unless the stack is under memory pressure; not past
// what the memory limit leaves it: the memory it holds and what no ring
// holds. It takes no memory.
func (r *byteRing) grow(n int) {
	m := r.pool.mem
	if m.under {
		return
	}
	used := m.stats.RingBytes + m.reserved
	room := uint64(len(r.buf))
	if used < m.limit {
		room += m.limit - used
	}
	n = int(min(uint64(min(n, r.pool.bound)), room))
	if n <= int(r.limit) {
		return
	}
	r.limit = int32(n)
	r.size = max(r.size, int32(n))
}
