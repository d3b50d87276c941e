package stack

// The stack's TCP memory limit: Linux's tcp_mem, for ring memory.
//
// Every send and receive ring takes its memory from the stack's two ring
// pools (tcp_ring.go), which count what rings hold in TCPStats.RingBytes.
// tcpMem bounds that count for the whole stack (one core):
//
//   - Hard limit (TCPConfig.MemoryLimit): a ring never takes memory that
//     would put RingBytes past it, counting the memory a growing ring
//     still holds until its bytes are copied. A send ring that cannot
//     grow makes Write short (WriteSpace says so beforehand) and the
//     connection waits for memory: Writable comes when rings give memory
//     back. A segment whose data the receive ring cannot take is dropped
//     (DropTCPMemory, TCPStats.RcvMemoryDrops, Linux's TCPRcvQDrop):
//     acknowledged only as far as it was taken, with an ACK at once, so
//     the peer sends it again.
//   - Pressure (TCPConfig.MemoryPressure; Linux's tcp_mem[1]): above it,
//     new connections offer a window of the smallest ring class and their
//     rings take that class only; no ring's bound grows by autotuning
//     (tcp_autotune.go), which besides never grows a bound past what the
//     hard limit leaves; send rings do not grow past what they
//     hold (at least the smallest class), so Write takes less; and each
//     receive ring's bound comes down, as the application consumes, to
//     what the ring holds (at least the smallest class), so the window
//     offered is memory the ring already has. As SetReceiveBuffer, this
//     never takes back a window offered: the bound comes down by no more
//     than the bytes just consumed, so the right edge stays where it was
//     (RFC 9293 3.8.6). Drops at the hard limit are then left to the
//     windows offered before pressure began. Pressure ends when RingBytes
//     falls below 3/4 of the threshold (Linux's tcp_mem[0]); bounds go
//     back up at the next read.
//
// The pools' idle memory, kept for the next ring, is not counted: it is
// bounded on its own (ringPool.limit, 16 rings of the largest class).
//
// Far from the limit this costs a comparison where a ring takes or gives
// back memory (not per segment), and nothing scans the connections.

import "github.com/mkstack/mkstack/stack/timer"

// tcpMem is the stack's ring memory account.
type tcpMem struct {
	stats                 *TCPStats // RingBytes
	limit, pressure, calm uint64
	// reserved is memory set aside while a zero-copy handler runs
	// (TCPConn.onSegment): what the ring needs for the bytes it may leave.
	reserved uint64
	under    bool // under pressure
	// waiting lists connections whose Write memory cut short; wake is
	// set when memory comes back while any wait.
	// memory comes back after the receive burst (flushPending) or, when
	// it came back outside one (a Read, a timer), from wakeTimer at the
	// stack's next Advance.
	waiting   []*TCPConn
	wake      bool
	wakeTimer timer.Timer
	t         *tcpTable
}

func (m *tcpMem) init(t *tcpTable) {
	cfg := &t.cfg
	m.t, m.stats = t, &t.stats
	m.wakeTimer.Init(t.onMemoryWake)
	m.limit, m.pressure = uint64(cfg.MemoryLimit), uint64(cfg.MemoryPressure)
	m.calm = m.pressure / 4 * 3
}

// fits reports whether a ring may take size more bytes.
func (m *tcpMem) fits(size int) bool {
	return m.stats.RingBytes+m.reserved+uint64(size) <= m.limit
}

// took counts size bytes a ring took, and enters pressure past the
// threshold.
func (m *tcpMem) took(size int) {
	m.stats.RingBytes += uint64(size)
	if !m.under && m.stats.RingBytes > m.pressure {
		m.under = true
		m.stats.MemoryPressure++
	}
}

// gave counts size bytes a ring gave back.
func (m *tcpMem) gave(size int) {
	m.stats.RingBytes -= uint64(size)
	if m.under && m.stats.RingBytes < m.calm {
		m.under = false
	}
	if len(m.waiting) > 0 && !m.wake {
		m.wake = true
		m.t.s.wheel.Schedule(&m.wakeTimer, m.t.s.now)
	}
}

// hold sets aside what the receive ring needs to take end bytes, for the
// length of a zero-copy handler; it reports false when the limit refuses
// it. unhold ends it.
func (r *byteRing) hold(end int) bool {
	if end <= len(r.buf) {
		return true
	}
	p := r.pool
	size := p.classSize(p.class(end))
	if !p.mem.fits(size) {
		return false
	}
	p.mem.reserved = uint64(size)
	return true
}

func (r *byteRing) unhold() { r.pool.mem.reserved = 0 }

// space is how many bytes write takes now: the free space under the
// ring's bound, as far as the memory the ring holds, or may take, holds
// it. Under pressure a send ring takes no more than it holds, or the
// smallest class if it holds none.
func (r *byteRing) space() int {
	free := r.free()
	end := r.n + free
	if free <= 0 || end <= len(r.buf) {
		return max(free, 0)
	}
	p := r.pool
	if p.mem.under {
		end = min(end, max(len(r.buf), ringMin))
		if end <= len(r.buf) {
			return end - r.n
		}
	}
	// The largest class up to end the limit lets the ring take.
	for k := p.class(end); k >= 0; k-- {
		size := p.classSize(k)
		if size <= len(r.buf) {
			break
		}
		if p.mem.fits(size) {
			return min(end, size) - r.n
		}
	}
	return len(r.buf) - r.n
}

// target is the bound the ring heads for as bytes leave it: the
// connection's limit (autotuned or set); under pressure, for a receive
// ring, no more than the memory it holds (at least the smallest class).
func (r *byteRing) target() int32 {
	if r.pool == nil {
		return r.size
	}
	t := r.limit
	if t <= 0 {
		t = int32(r.pool.initial)
	}
	if r.pool.rcv && r.pool.mem.under {
		t = min(t, int32(max(len(r.buf), ringMin)))
	}
	return t
}

// onMemoryWake wakes the writers waiting for memory given back outside
// a receive burst.
func (t *tcpTable) onMemoryWake(*timer.Timer) {
	if t.mem.wake {
		t.wakeWriters()
	}
	if len(t.pending) > 0 {
		t.flushPending()
	}
}

// waitMemory lists c to be told Writable when ring memory comes back.
func (c *TCPConn) waitMemory() {
	if c.memWaiting {
		return
	}
	c.memWaiting = true
	m := &c.t.mem
	m.waiting = append(m.waiting, c)
}

// wakeWriters tells the connections waiting for memory that they may
// write again (Writable, delivered by flushPending). Those still
// short of it list themselves again at their next Write.
func (t *tcpTable) wakeWriters() {
	m := &t.mem
	m.wake = false
	t.s.wheel.Cancel(&m.wakeTimer)
	if !m.fits(ringMin) {
		return // the next memory given back looks again
	}
	for i, c := range m.waiting {
		m.waiting[i] = nil
		if !c.memWaiting || c.t != t || c.state == tcpClosed {
			continue // recycled since, or closed
		}
		c.memWaiting = false
		c.writeBlocked = false
		c.wrEvent = true
		c.schedule()
	}
	m.waiting = m.waiting[:0]
}

// memoryDrop drops a segment whose data the receive ring had no memory
// for: nothing of it is taken, and an ACK goes at once with what was, so
// the peer learns where to resume (as Linux's tcp_data_queue when
// tcp_try_rmem_schedule fails).
func (c *TCPConn) memoryDrop() DropReason {
	c.t.stats.RcvMemoryDrops++
	c.ackNow = true
	c.schedule()
	return DropTCPMemory
}
