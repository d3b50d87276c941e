package stack

// # TCP: design notes
//
// This file and its siblings (tcp_*.go) are the stack's TCP (RFC 9293).
//
// ## Connections
//
// A TCPConn is one connection, owned by the core whose stack holds it, for
// its whole life (ownership never migrates; see DESIGN.md). Its send and
// receive state carry RFC 9293's names so the code can be read against
// section 3.3.1 line by line:
//
//	iss, sndUna, sndNxt, sndWnd, sndWl1, sndWl2   send sequence space
//	irs, rcvNxt, rcvWnd                            receive sequence space
//
// rcvWnd is not stored: it is the free space of the receive ring, so it
// can never disagree with what the ring can hold. Sequence numbers compare
// with seqLT and friends (serial arithmetic modulo 2^32), never with <.
//
// ## The connection table
//
// tcpTable is per stack (never shared between cores). Connections are found
// by their 4-tuple, a comparable struct (tcpTuple) used directly as a map key:
// no string keys, no formatting, no allocation on lookup. The table is
// bounded by TCPConfig.MaxConns; a SYN or a dial beyond it is refused. A
// TIME-WAIT connection stays in the table (it holds its tuple) until 2*MSL
// passes. Listen sockets are a second map by local port.
//
// ## Listen sockets
//
// A TCPListener bounds two queues: the SYN queue (connections in
// SYN-RECEIVED, counted, not stored: they live in the table) and the accept
// queue (established connections not yet taken by Accept, a ring). A SYN
// arriving with the SYN queue full is dropped today; SYN cookies (RFC 4987)
// are the planned fallback. A listener with a run-to-completion handler
// (TCPListenOptions.OnEvent) bypasses the accept queue: the handler owns the
// connection from TCPEventEstablished on.
//
// ## Buffers
//
// Each connection has a send ring and a receive ring of bytes (byteRing),
// sized by TCPConfig.SendBuffer and ReceiveBuffer, allocated once at the
// connection's creation. The send ring holds every byte from sndUna to the
// end of what the application wrote: retransmission copies from it again, so
// no packet buffer is held while waiting for an ACK. The receive ring holds
// in-order data the application has not read; its free space is the window
// we advertise. Received data is copied once into the ring; handing out
// views of the packet buffers (zero copy) is a later step.
//
// ## Timers
//
// Every timer is a timer.Timer embedded in the connection and given its
// function once (Init) when the connection is made, so arming one never
// allocates. All run on the stack's wheel, driven by the stack's clock.
//
//	rtoTimer    retransmission (RFC 6298): SRTT/RTTVAR from one sample per
//	            window (Karn: never from a retransmitted segment), RTO =
//	            SRTT + max(G, 4*RTTVAR) clamped to [MinRTO, MaxRTO], doubled on
//	            each expiry, initial 1 s. On expiry everything from sndUna is
//	            resent (go-back-N) until SACK recovery lands.
//	waitTimer   TIME-WAIT: 2*MSL (TCPConfig.MSL), restarted by a retransmitted
//	            FIN, then the connection leaves the table.
//	            Planned on the same pattern: delayed ACK (every second full
//	            segment or a short timeout; immediate on out-of-order),
//	            persist (zero-window probes, backoff like RTO), keepalive.
//
// ## Congestion control (planned)
//
// A small interface, chosen per connection, called only on the events that
// move the window, so an implementation is a plain struct embedded by value
// in the connection (no allocation, no indirection through a map):
//
//	type congestionControl interface {
//		init(mss int)                 // IW = 10*MSS (RFC 6928)
//		onAck(acked int, rtt int64)   // slow start / avoidance
//		onDupAcks(inFlight int)       // fast retransmit and recovery
//		onRTO()                       // cwnd = 1 MSS, ssthresh halved
//		cwnd() int
//	}
//
// CUBIC (RFC 9438) is the default, NewReno (RFC 5681, 6582) the other.
// Today output is limited by the peer's window only.
//
// ## No allocation in steady state
//
// On the path of an established connection nothing allocates: lookup by a
// struct key, segments built in buffers from the stack's pool with the
// header written in place, data copied between rings and packet buffers,
// timers embedded and initialised once, options parsed into a value on the
// stack frame. Allocation happens when a connection is created (the struct
// and its rings); a free list of closed connections with their rings is the
// next step so connect/close churn (CRR) does not allocate either.
//
// ## Events
//
// Handlers run on the owning core, run to completion (they must not block):
// a TCPHandler is called with the connection and one TCPEvent:
// Established, Readable (data in the receive ring), Writable (the send ring
// freed space), PeerClosed (a FIN arrived: Read drains what is left and then
// returns io.EOF semantics via PeerClosed), Closed (the connection left the
// table; Err says why). The sockets package will turn these into
// net.Conn wake-ups by messages; a per-core application can use them
// directly.

import (
	"errors"
	"fmt"
	"time"

	"github.com/mkstack/mkstack/stack/timer"
)

// TCP errors, matched with errors.Is.
var (
	ErrConnectionRefused = errors.New("connection refused")
	ErrConnectionReset   = errors.New("connection reset by peer")
	ErrConnectionTimeout = errors.New("connection timed out")
	ErrConnectionClosed  = errors.New("use of closed connection")
	ErrTooManyConns      = errors.New("too many connections")
)

// TCPConfig configures a stack's TCP (Config.TCP). Zero values take the
// defaults named on each field.
type TCPConfig struct {
	// ISNKey is the secret of the initial sequence number hash (RFC 6528).
	// The runtime must fill it from crypto/rand; tests may fix it for
	// replay. The same key on every core is fine (the tuple differs).
	ISNKey [16]byte
	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2*MSL
	// (default 30s, as Linux's 60s TIME-WAIT).
	MSL time.Duration
	// MaxConns bounds the connection table (default 65536).
	MaxConns int
	// SendBuffer and ReceiveBuffer size each connection's rings (default
	// 256 KiB each).
	SendBuffer, ReceiveBuffer int
	// SYNQueue and AcceptQueue are a listener's defaults (128 each).
	SYNQueue, AcceptQueue int
	// InitialRTO, MinRTO and MaxRTO bound the retransmission timeout
	// (defaults 1s, 200ms as Linux, 60s as RFC 6298 allows).
	InitialRTO, MinRTO, MaxRTO time.Duration
	// MaxRetries is how many RTO expiries in a row end a connection
	// (default 15, as Linux's tcp_retries2).
	MaxRetries int
}

func (c *TCPConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&c.MSL, 30*time.Second)
	def(&c.MaxConns, 65536)
	def(&c.SendBuffer, 256<<10)
	def(&c.ReceiveBuffer, 256<<10)
	def(&c.SYNQueue, 128)
	def(&c.AcceptQueue, 128)
	defDur(&c.InitialRTO, time.Second)
	defDur(&c.MinRTO, 200*time.Millisecond)
	defDur(&c.MaxRTO, 60*time.Second)
	def(&c.MaxRetries, 15)
}

// tcpState is a connection state of RFC 9293 section 3.3.2.
type tcpState uint8

const (
	tcpClosed tcpState = iota
	tcpSynSent
	tcpSynReceived
	tcpEstablished
	tcpFinWait1
	tcpFinWait2
	tcpCloseWait
	tcpClosing
	tcpLastAck
	tcpTimeWait
)

var tcpStateNames = [...]string{"CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
	"FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}

func (s tcpState) String() string { return tcpStateNames[s] }

// TCPEvent is what a TCPHandler is told.
type TCPEvent uint8

// TCP events.
const (
	TCPEventEstablished TCPEvent = iota
	TCPEventReadable
	TCPEventWritable
	TCPEventPeerClosed
	TCPEventClosed
)

// TCPHandler runs on the owning core for each event of a connection.
type TCPHandler func(c *TCPConn, ev TCPEvent)

// tcpTuple identifies a connection; it is the table's map key.
type tcpTuple struct {
	localAddr, remoteAddr [4]byte
	localPort, remotePort uint16
}

// TCPStats are a stack's TCP counters.
type TCPStats struct {
	SegmentsIn, SegmentsOut uint64
	Retransmits             uint64
	ResetsSent              uint64
	ChallengeACKs           uint64
	ActiveOpens             uint64
	PassiveOpens            uint64
	SYNQueueDrops           uint64
	AcceptQueueDrops        uint64
	BadSegments             uint64
}

type tcpTable struct {
	s         *Stack
	cfg       TCPConfig
	conns     map[tcpTuple]*TCPConn
	listeners map[uint16]*TCPListener
	// nextEphemeral is where the search for a free local port for an
	// active open resumes. TODO: take it from rss.PortAllocator so the
	// reply lands on this core.
	nextEphemeral uint16
	stats         TCPStats
}

// tcpOf returns s's TCP state.
func tcpOf(s *Stack) *tcpTable { return &s.tcp }

func (t *tcpTable) init(s *Stack, cfg TCPConfig) {
	cfg.setDefaults()
	t.s = s
	t.cfg = cfg
	t.conns = make(map[tcpTuple]*TCPConn)
	t.listeners = make(map[uint16]*TCPListener)
	t.nextEphemeral = ephemeralFirst
}

// TCPStats returns the stack's TCP counters.
func (s *Stack) TCPStats() *TCPStats { return &tcpOf(s).stats }

// TCPConnCount returns the number of connections in the table, TIME-WAIT
// included.
func (s *Stack) TCPConnCount() int { return len(tcpOf(s).conns) }

// TCPListenOptions configure a listen socket.
type TCPListenOptions struct {
	// OnEvent, if set, receives every event of each accepted connection,
	// which then bypasses the accept queue.
	OnEvent TCPHandler
	// SYNQueue and AcceptQueue bound the listener's queues (defaults from
	// TCPConfig).
	SYNQueue, AcceptQueue int
}

// TCPListener is a listen socket on one stack.
type TCPListener struct {
	t        *tcpTable
	port     uint16
	opts     TCPListenOptions
	synCount int
	accept   []*TCPConn // ring
	head, n  int
	closed   bool
}

// ListenTCP opens a listen socket on port.
func (s *Stack) ListenTCP(port uint16, opts TCPListenOptions) (*TCPListener, error) {
	t := tcpOf(s)
	if port == 0 {
		return nil, fmt.Errorf("listen tcp port 0: %w", ErrInvalidConfig)
	}
	if t.listeners[port] != nil {
		return nil, fmt.Errorf("listen tcp port %d: %w", port, ErrPortInUse)
	}
	if opts.SYNQueue <= 0 {
		opts.SYNQueue = t.cfg.SYNQueue
	}
	if opts.AcceptQueue <= 0 {
		opts.AcceptQueue = t.cfg.AcceptQueue
	}
	l := &TCPListener{t: t, port: port, opts: opts, accept: make([]*TCPConn, opts.AcceptQueue)}
	t.listeners[port] = l
	return l, nil
}

// Port returns the listening port.
func (l *TCPListener) Port() uint16 { return l.port }

// Accept takes the oldest established connection; ok is false when none
// waits.
func (l *TCPListener) Accept() (c *TCPConn, ok bool) {
	if l.n == 0 {
		return nil, false
	}
	c = l.accept[l.head]
	l.accept[l.head] = nil
	l.head = (l.head + 1) % len(l.accept)
	l.n--
	c.listener = nil
	return c, true
}

// Close stops listening and resets the connections not yet accepted.
func (l *TCPListener) Close() {
	if l.closed {
		return
	}
	l.closed = true
	for {
		c, ok := l.Accept()
		if !ok {
			break
		}
		c.Abort()
	}
	delete(l.t.listeners, l.port)
}

func (l *TCPListener) pushAccept(c *TCPConn) bool {
	if l.n == len(l.accept) {
		return false
	}
	l.accept[(l.head+l.n)%len(l.accept)] = c
	l.n++
	return true
}

// TCPConnOptions configure a connection opened by DialTCP.
type TCPConnOptions struct {
	OnEvent TCPHandler
}

// TCPConn is one TCP connection.
type TCPConn struct {
	t       *tcpTable
	id      tcpTuple
	state   tcpState
	handler TCPHandler
	// listener is the listen socket a passive connection counts against
	// until it is accepted (SYN queue while SYN-RECEIVED, then accept
	// queue).
	listener *TCPListener
	err      error

	// Send sequence space (RFC 9293 3.3.1).
	iss, sndUna, sndNxt uint32
	sndWnd              uint32 // scaled
	sndWl1, sndWl2      uint32
	sndShift            uint8 // the peer's window scale
	sndMSS              int   // largest payload we send
	// Receive sequence space; rcvWnd is rcvBuf's free space.
	irs, rcvNxt uint32
	rcvShift    uint8 // our window scale
	wsOK        bool  // both SYNs carried Window Scale

	// finQueued: the application closed; a FIN follows the last byte.
	// finSent and finSeq: the FIN's sequence number once sent.
	finQueued, finSent bool
	finSeq             uint32
	peerFIN            bool

	sndBuf, rcvBuf byteRing

	// RFC 6298 state, in nanoseconds. rttSeq is the sequence number whose
	// ACK completes the running measurement (rttTiming).
	srtt, rttvar, rto int64
	rttTiming         bool
	rttSeq            uint32
	rttStart          int64
	retries           int

	rtoTimer, waitTimer timer.Timer
}

func (t *tcpTable) newConn(id tcpTuple, h TCPHandler) *TCPConn {
	c := &TCPConn{t: t, id: id, handler: h}
	c.sndBuf.init(t.cfg.SendBuffer)
	c.rcvBuf.init(t.cfg.ReceiveBuffer)
	c.rtoTimer.Init(c.onRTO)
	c.waitTimer.Init(c.onTimeWait)
	c.rto = int64(t.cfg.InitialRTO)
	// The smallest shift that lets the window cover the whole ring.
	for c.rcvShift < 14 && t.cfg.ReceiveBuffer>>c.rcvShift > 0xffff {
		c.rcvShift++
	}
	c.iss = t.isn(id, t.s.now)
	c.sndUna, c.sndNxt = c.iss, c.iss
	// Our MSS: what fits the link MTU and one buffer of the pool.
	c.sndMSS = t.localMSS()
	t.conns[id] = c
	return c
}

// localMSS is the MSS we announce and the most we send: the link MTU and
// the pool's buffers both bound it.
func (t *tcpTable) localMSS() int {
	s := t.s
	room := s.pool.FrameSize() - s.pool.Headroom() - 14 - 20 - 20
	return min(s.cfg.MTU-40, room)
}

// DialTCP starts an active open to remote:port.
func (s *Stack) DialTCP(remote [4]byte, port uint16, opts TCPConnOptions) (*TCPConn, error) {
	t := tcpOf(s)
	s.now = s.clock.Now()
	if len(t.conns) >= t.cfg.MaxConns {
		return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, ErrTooManyConns)
	}
	id := tcpTuple{localAddr: s.addr, remoteAddr: remote, remotePort: port}
	found := false
	for range ephemeralLast - ephemeralFirst + 1 {
		id.localPort = t.nextEphemeral
		if t.nextEphemeral == ephemeralLast {
			t.nextEphemeral = ephemeralFirst
		} else {
			t.nextEphemeral++
		}
		if t.conns[id] == nil && t.listeners[id.localPort] == nil {
			found = true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, ErrNoEphemeralPort)
	}
	c := t.newConn(id, opts.OnEvent)
	c.state = tcpSynSent
	t.stats.ActiveOpens++
	c.sendSYN()
	return c, nil
}

// LocalPort and RemotePort return the connection's ports.
func (c *TCPConn) LocalPort() uint16  { return c.id.localPort }
func (c *TCPConn) RemotePort() uint16 { return c.id.remotePort }

// RemoteAddr returns the peer's address.
func (c *TCPConn) RemoteAddr() [4]byte { return c.id.remoteAddr }

// State returns the connection's RFC 9293 state name.
func (c *TCPConn) State() string { return c.state.String() }

// Err returns why the connection closed, nil for an orderly close.
func (c *TCPConn) Err() error { return c.err }

// Buffered returns the bytes waiting to be read.
func (c *TCPConn) Buffered() int { return c.rcvBuf.len() }

// PeerClosed reports whether the peer's FIN arrived (after the buffered
// bytes, the stream ends).
func (c *TCPConn) PeerClosed() bool { return c.peerFIN }

// Write queues p for sending and returns how much fit in the send ring.
func (c *TCPConn) Write(p []byte) (int, error) {
	switch c.state {
	case tcpEstablished, tcpCloseWait, tcpSynSent, tcpSynReceived:
	default:
		return 0, ErrConnectionClosed
	}
	if c.finQueued {
		return 0, ErrConnectionClosed
	}
	c.t.s.now = c.t.s.clock.Now()
	n := c.sndBuf.write(p)
	c.output()
	return n, nil
}

// Read takes up to len(p) received bytes. It opens the window to the peer
// when the read frees a significant part of the ring.
func (c *TCPConn) Read(p []byte) int {
	before := c.rcvBuf.free()
	n := c.rcvBuf.read(p)
	// Send a window update when the window grows by at least a quarter
	// of the ring or from below an MSS (RFC 9293 3.8.6.2.2, receiver SWS
	// avoidance): not on every read.
	if n > 0 && c.synchronized() && !c.peerFIN {
		after := c.rcvBuf.free()
		if after-before >= len(c.rcvBuf.buf)/4 || before < c.sndMSS {
			c.t.s.now = c.t.s.clock.Now()
			c.sendACK()
		}
	}
	return n
}

// Close sends a FIN after the queued data (a half close: the peer's data
// still arrives until its FIN).
func (c *TCPConn) Close() {
	c.t.s.now = c.t.s.clock.Now()
	switch c.state {
	case tcpSynSent:
		c.free(ErrConnectionClosed)
		return
	case tcpSynReceived, tcpEstablished:
		c.state = tcpFinWait1
	case tcpCloseWait:
		c.state = tcpLastAck
	default:
		return
	}
	c.finQueued = true
	c.output()
}

// Abort resets the connection.
func (c *TCPConn) Abort() {
	if c.state == tcpClosed {
		return
	}
	c.t.s.now = c.t.s.clock.Now()
	if c.state != tcpSynSent && c.state != tcpTimeWait {
		c.sendFlags(c.sndNxt, 0, tcpFlagsRST)
	}
	c.free(ErrConnectionClosed)
}

func (c *TCPConn) synchronized() bool {
	return c.state >= tcpEstablished
}

func (c *TCPConn) notify(ev TCPEvent) {
	if c.handler != nil {
		c.handler(c, ev)
	}
}

// free takes c out of the table for good.
func (c *TCPConn) free(err error) {
	if c.state == tcpClosed {
		return
	}
	t := c.t
	if l := c.listener; l != nil && c.state == tcpSynReceived {
		l.synCount--
	}
	c.state = tcpClosed
	c.err = err
	t.s.wheel.Cancel(&c.rtoTimer)
	t.s.wheel.Cancel(&c.waitTimer)
	delete(t.conns, c.id)
	c.notify(TCPEventClosed)
}

// Sequence number comparison modulo 2^32 (RFC 9293 3.4).
func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }
func seqGEQ(a, b uint32) bool { return int32(a-b) >= 0 }
