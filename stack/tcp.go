package stack

// # TCP: design notes
//
// This file and its siblings (tcp_*.go) are the stack's TCP (RFC 9293).
//
// ## Connections
//
// A TCPConn is one connection, owned by the core whose stack holds it, for
// its whole life (ownership never migrates; see docs/ARCHITECTURE.md). Its send and
// receive state carry RFC 9293's names so the code can be read against
// section 3.3.1 line by line (iss, sndUna, sndNxt, sndWnd, sndWl1, sndWl2;
// irs, rcvNxt), plus sndMax, the highest sequence number sent (sndNxt goes
// back after a timeout). rcvWnd is not stored: it is the free space of
// the receive ring, so it cannot disagree with what the ring holds.
// Sequence numbers compare with seqLT and friends (modulo 2^32).
//
// ## The connection table
//
// tcpTable is per stack. Connections are found by their 4-tuple, a
// comparable struct used directly as a map key (no strings, no allocation
// on lookup), bounded by TCPConfig.MaxConns, TIME-WAIT included; a full
// table recycles its oldest TIME-WAIT for a new connection. Listen
// sockets are a second map by local port. Closed connections the
// application released go on a free list with their timers, so
// connection churn does not allocate (TestTCPSteadyStateDoesNotAllocate).
// Send and receive rings take memory from per-stack pools only while
// bytes wait in them, growing by size class up to their bounds
// (SendBuffer and ReceiveBuffer at first, grown by window autotuning up
// to SendBufferMax and ReceiveBufferMax as the bandwidth-delay product
// asks: tcp_autotune.go), and give it back when they empty
// (tcp_ring.go): an idle connection, or one in TIME-WAIT, holds none. What they hold together is
// bounded per stack (TCPConfig.MemoryLimit, with a pressure threshold
// below it, as Linux's tcp_mem; tcp_mem.go).
//
// ## Listen sockets and SYN cookies
//
// A TCPListener bounds its SYN queue (connections in SYN-RECEIVED,
// counted; they live in the table) and its accept queue (a ring). With the
// SYN queue or the table full, a SYN is answered with a SYN cookie (RFC
// 4987; tcp_cookie.go) and no state; the ACK that returns a valid cookie
// makes the connection. A listener with a handler (OnEvent) hands each
// connection to it at Established instead of queueing it.
//
// ## Receive path
//
// Segments are checked in RFC 9293 3.10.7.4's order with PAWS first (RFC
// 7323) and RFC 5961's challenge ACKs for blind RST, SYN and old ACKs
// (rate-limited). In-order data is copied once, into the receive ring;
// data beyond a hole is written at its place in the ring (the window we
// advertised is that space) and its range kept, bounded, for SACK blocks;
// a filled hole joins the in-order bytes without a copy. The application
// reads with Read (a copy) or Peek and Discard (views of the ring: no
// copy). Work a segment causes beyond its own state is deferred to the
// end of the receive burst (flushPending): one Readable event for all the
// burst's data of a connection (GRO-like), then the application's answer
// with the ACK riding on it, then a pure ACK only if one is still owed
// (out of order, a filled hole, a FIN, every second segment, a short
// segment the application has read, any segment while data starts to
// flow: TCPConfig.QuickACKs), else the delayed-ACK timer.
//
// ## Send path
//
// Write copies into the send ring and sends at once as many full segments
// as the peer's window and the congestion window allow (a burst,
// GSO-like); retransmission copies from the ring again, so no packet
// buffer is held while waiting for an ACK. Nagle (unless NoDelay) and
// sender-side silly window avoidance hold back short segments. PSH ends
// each Write and, as in Linux, each GSO-sized packet of a burst
// (TCPConfig.DisableBurstPush).
//
// ## Loss recovery and congestion control
//
// Congestion windows come from package congestion (CUBIC by default,
// NewReno), embedded by value in the connection. Loss is found by three
// duplicate ACKs or by SACK (more than two segments SACKed above sndUna);
// recovery follows RFC 6675 with SACK and RFC 6582 without
// (tcp_recovery.go), with limited transmit (RFC 3042), a restart of the
// hole pass when a retransmission is itself lost (RACK-like), and tail
// loss probes (RFC 8985) before the retransmission timeout (RFC 6298:
// Karn, backoff, MinRTO, MaxRetries).
//
// ## Timers
//
// Every timer is a timer.Timer embedded in the connection, given its
// function once, all on the stack's wheel and clock: retransmission (and
// tail loss probe), TIME-WAIT (2*MSL, restarted by a retransmitted FIN,
// RSTs ignored per RFC 1337, reusable by a newer SYN), delayed ACK,
// persist (zero-window probes with backoff) and keepalive. Each gives up:
// SYN and SYN-ACK after SYNRetries and SYNACKRetries, data after
// MaxRetries, zero-window probes after MaxRetries unanswered ones, or,
// for a connection with a user timeout (TCPConnOptions.UserTimeout, RFC
// 5482), each of these once it has lasted that long. A
// connection the application closed also ends in FIN-WAIT-2
// (FinWait2Timeout), in persist once the probe interval reaches MaxRTO,
// and at the first byte of data that still arrives (a reset).
//
// ## Events
//
// Handlers run on the owning core, run to completion and must not block.
// A TCPHandler is called with the connection and one TCPEvent:
// Established, Readable, Writable (after a Write that did not fit, the
// ring freed space), PeerClosed (the FIN arrived: after the buffered bytes
// the stream ends), Closed (the connection left the table; Err says why).
// The sockets package turns these into net.Conn wake-ups.

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mkstack/mkstack/stack/congestion"
	"github.com/mkstack/mkstack/stack/header"
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

// PortPicker chooses the local port of an active open so that the peer's
// replies land on this core's NIC queue; *rss.PortAllocator is one.
// Release gives a port back when its connection leaves the table.
type PortPicker interface {
	PickIPv4(local, remote [4]byte, remotePort uint16) (uint16, error)
	Release(port uint16) bool
}

// TCPConfig configures a stack's TCP (Config.TCP). Zero values take the
// defaults named on each field.
type TCPConfig struct {
	// ISNKey is the secret of the initial sequence number hash (RFC 6528)
	// and of SYN cookies. The runtime must fill it from crypto/rand; tests
	// may fix it for replay. The same key on every core is fine.
	ISNKey [16]byte
	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2*MSL
	// (default 30s, as Linux's 60s TIME-WAIT).
	MSL time.Duration
	// MaxConns bounds the connection table, TIME-WAIT included (default
	// 65536). When the table is full, a new connection (a SYN, a valid
	// SYN cookie, a DialTCP) takes the place of the oldest connection in
	// TIME-WAIT, if there is one (counted in TCPStats.TimeWaitRecycled):
	// as Linux's tcp_max_tw_buckets, TIME-WAIT never keeps a live
	// connection out of the table.
	MaxConns int
	// NoTimeWaitReuse keeps a DialTCP that finds every local port taken
	// from reusing one held by a connection of ours in TIME-WAIT. By
	// default such a port is reused, as Linux's tcp_tw_reuse does, when
	// the old connection went to the same remote address and port, used
	// timestamps, and has received nothing for a second: the peer's PAWS
	// then tells the old connection's duplicates from the new one's
	// segments (RFC 7323 5), and the new connection's first sequence
	// number starts above the old one's last (counted in
	// TCPStats.TimeWaitReused).
	NoTimeWaitReuse bool
	// FinWait2Timeout is how long a connection the application closed
	// (Close, not CloseWrite) waits in FIN-WAIT-2 for the peer's FIN
	// before it is dropped (default 60s, Linux's tcp_fin_timeout; counted
	// in TCPStats.FinWait2Timeouts). RFC 9293 sets no bound, and a peer
	// that never closes would otherwise hold the entry forever.
	FinWait2Timeout time.Duration
	// SendBuffer and ReceiveBuffer are each connection's initial ring
	// bounds (default 128 KiB each, Linux's tcp_wmem[1] and tcp_rmem[1]
	// play this part) and the most SetSendBuffer and SetReceiveBuffer
	// take (Linux's wmem_max and rmem_max). The receive ring's free space
	// against its bound is the window; the memory is taken as bytes
	// arrive, 4 KiB first, and given back when the ring empties
	// (tcp_ring.go), as Linux holds socket memory only while packets
	// carry bytes. From there the bounds grow with the measured
	// bandwidth-delay product, up to SendBufferMax and ReceiveBufferMax
	// (tcp_autotune.go).
	SendBuffer, ReceiveBuffer int
	// SendBufferMax and ReceiveBufferMax bound what window autotuning
	// grows a connection's rings to (default 4 MiB each, or SendBuffer and
	// ReceiveBuffer if larger; Linux's tcp_wmem[2] and tcp_rmem[2], 4 MiB
	// and 6 MiB there): the receive bound grows, once per round trip, to
	// about twice what the application consumed in the last one (Linux's
	// tcp_rcv_space_adjust), the send bound to twice the congestion window
	// (tcp_sndbuf_expand), neither under memory pressure nor past what
	// MemoryLimit leaves, nor on a connection whose bound the application
	// set. The window scale announced is chosen for ReceiveBufferMax (7
	// for 4 MiB). Setting them to SendBuffer and ReceiveBuffer turns
	// autotuning off. At a 4 MiB window, one connection fills 1 Gbit/s up
	// to some 30 ms of round trip (a 2.5 MB bandwidth-delay product at 20
	// ms).
	SendBufferMax, ReceiveBufferMax int
	// MemoryLimit bounds the ring memory of all the stack's connections
	// together, send and receive (TCPStats.RingBytes), as Linux's tcp_mem
	// bounds TCP's memory (tcp_mem.go): no ring takes memory past it, so
	// Write takes less and a segment the receive ring has no memory for
	// is dropped (DropTCPMemory) and sent again by the peer. Default 256
	// MiB per stack (a core): room for 1024 connections with both rings
	// full at the 128 KiB default, 32 bulk connections whose rings
	// autotuning grew to 4 MiB each way, or some 30000 with a smallest
	// (4 KiB) ring each way. Linux derives its limit from the machine's memory
	// (tcp_init_mem: tcp_mem[2] is 3/32 of the free pages); a stack does
	// not look at the machine, so the default is fixed and the runtime,
	// which knows the memory and the number of cores, may set it (as
	// Linux would: 3/32 of memory over the cores). At least 64 KiB.
	MemoryLimit int
	// MemoryPressure is the RingBytes above which the stack is under
	// memory pressure (default 2/3 of MemoryLimit, Linux's ratio of
	// tcp_mem[1] to tcp_mem[2]): new connections offer a window of the
	// smallest ring class, rings do not grow, and windows come down to
	// the memory their rings hold as the application reads (never taking
	// back a window offered). Pressure ends below 3/4 of it (Linux's
	// tcp_mem[0]). Counted in TCPStats.MemoryPressure.
	MemoryPressure int
	// SYNQueue and AcceptQueue are a listener's defaults (1024 and 4096,
	// as Linux's tcp_max_syn_backlog and somaxconn).
	SYNQueue, AcceptQueue int
	// DisableSYNCookies refuses SYNs when a SYN queue is full instead of
	// answering with a cookie (RFC 4987).
	DisableSYNCookies bool
	// InitialRTO, MinRTO and MaxRTO bound the retransmission timeout
	// (defaults 1s, 200ms as Linux, 60s as RFC 6298 allows).
	InitialRTO, MinRTO, MaxRTO time.Duration
	// MaxRetries is how many RTO expiries in a row end a connection
	// (default 15, as Linux's tcp_retries2). It also bounds zero-window
	// probes the peer leaves unanswered (Linux: icsk_probes_out against
	// tcp_retries2); a peer that answers them keeps the connection open
	// with its window closed, as RFC 9293 3.8.6.1 (RFC 1122 MUST-67)
	// requires, unless the application has closed it (see
	// orphanProbes).
	MaxRetries int
	// SYNRetries and SYNACKRetries are how many times a SYN (active
	// open) and a SYN-ACK (passive open) are sent again before the
	// connection gives up (defaults 6 and 5, Linux's tcp_syn_retries and
	// tcp_synack_retries: with the 1 s initial RTO, 127 s and 63 s).
	SYNRetries, SYNACKRetries int
	// DelayedACK is the longest an ACK waits for a second segment or for
	// data to ride on (default 40ms, Linux's minimum).
	DelayedACK time.Duration
	// QuickACKs is how many segments are acknowledged at once, each
	// without the delayed ACK, when data starts to flow: at a
	// connection's first data and again when the peer resumes after
	// being silent for longer than the retransmission timeout (default
	// 16; negative: none, every ACK may wait). Linux does this (its
	// quickack mode, icsk_ack.quick, at most TCP_MAX_QUICKACKS = 16 and
	// at most half the receive window in segments): a sender in slow
	// start grows its window by the ACKs it gets, and a receiver that
	// delays them at the start holds the transfer back by a delayed-ACK
	// time per round trip. As in Linux, a connection in interactive
	// (ping-pong) mode still lets the ACK of a request wait for the reply.
	QuickACKs int
	// Congestion names the default congestion control: "cubic" (the
	// default) or "newreno".
	Congestion string
	// DisableSACK and DisableTimestamps stop offering those options.
	DisableSACK, DisableTimestamps bool
	// DisableBurstPush marks PSH only on the segment that ends a Write.
	// By default, as Linux does, a burst of new data is also cut into
	// the packets Linux's GSO would make of it (tcp_tso_autosize: about
	// a millisecond at its pacing rate, at least 2 segments, at most 64
	// KiB) and the last segment of each carries PSH: Linux forces PSH on
	// every GSO packet so that the receiver's GRO hands it up at once
	// instead of holding it for more.
	DisableBurstPush bool
	// MaxOutOfOrder bounds the holes the receive side tracks (default 16);
	// a segment that would need more is dropped and counted.
	MaxOutOfOrder int
	// KeepAliveIdle, KeepAliveInterval and KeepAliveProbes shape
	// keepalive for connections that enable it (defaults 2h, 75s, 9, as
	// Linux).
	KeepAliveIdle, KeepAliveInterval time.Duration
	KeepAliveProbes                  int
	// ChallengeACKsPerSecond bounds RFC 5961 challenge ACKs across the
	// stack (section 7; default 1000, Linux's tcp_challenge_ack_limit of
	// 4.7 to 5.19). As Linux does since CVE-2016-5696, each second's
	// budget is drawn at random in [limit/2, limit/2+limit) (keyed by
	// ISNKey), so an off-path attacker cannot count the challenge ACKs
	// another connection took. (Linux 6.0 and later leave the global
	// bound off by default and rely on InvalidACKInterval; RFC 5961 7
	// asks for a bound across the stack, kept here.)
	ChallengeACKsPerSecond int
	// InvalidACKInterval is the least time between two ACKs a connection
	// sends for invalid segments: challenge ACKs, and duplicate ACKs for
	// segments without data that fail the sequence or PAWS check
	// (default 500ms, Linux's tcp_invalid_ratelimit; negative: no
	// limit). One connection then takes at most a few of the stack's
	// challenge ACKs a second, and two ends cannot loop ACKs at speed.
	InvalidACKInterval time.Duration
	// SYNCookiesPerSecond bounds the cookie SYN-ACKs this stack sends
	// (default 25000; negative: no bound). Cookies are sent only when a
	// SYN queue is full, that is under a flood, and a flood's SYNs beyond
	// the bound are dropped and counted (DropTCPSYNCookieRate), so the
	// flood cannot take the core's time from established connections.
	// A refused client retransmits its SYN as after any loss. At the
	// default, answering a flood costs a core in AF_XDP copy mode about a
	// tenth of its time.
	SYNCookiesPerSecond int
	// Ports, if set, chooses the local ports of active opens (the runtime
	// passes an rss.PortAllocator for this core). Otherwise ports come
	// from the IANA ephemeral range in turn.
	Ports PortPicker
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
	def(&c.SendBuffer, 128<<10)
	def(&c.ReceiveBuffer, 128<<10)
	def(&c.SendBufferMax, max(4<<20, c.SendBuffer))
	def(&c.ReceiveBufferMax, max(4<<20, c.ReceiveBuffer))
	def(&c.MemoryLimit, 256<<20)
	def(&c.MemoryPressure, c.MemoryLimit/3*2)
	def(&c.SYNQueue, 1024)
	def(&c.AcceptQueue, 4096)
	defDur(&c.InitialRTO, time.Second)
	defDur(&c.MinRTO, 200*time.Millisecond)
	defDur(&c.MaxRTO, 60*time.Second)
	def(&c.MaxRetries, 15)
	defDur(&c.FinWait2Timeout, 60*time.Second)
	def(&c.SYNRetries, 6)
	def(&c.SYNACKRetries, 5)
	defDur(&c.DelayedACK, 40*time.Millisecond)
	if c.QuickACKs == 0 {
		c.QuickACKs = 16
	}
	if c.Congestion == "" {
		c.Congestion = "cubic"
	}
	def(&c.MaxOutOfOrder, 16)
	c.MaxOutOfOrder = min(c.MaxOutOfOrder, maxOutOfOrder)
	defDur(&c.KeepAliveIdle, 2*time.Hour)
	defDur(&c.KeepAliveInterval, 75*time.Second)
	def(&c.KeepAliveProbes, 9)
	def(&c.ChallengeACKsPerSecond, 1000)
	if c.InvalidACKInterval == 0 {
		c.InvalidACKInterval = 500 * time.Millisecond
	}
	if c.SYNCookiesPerSecond == 0 {
		c.SYNCookiesPerSecond = 25000
	}
}

func (c *TCPConfig) validate() error {
	if _, err := congestion.ByName(c.Congestion); err != nil {
		return err
	}
	if c.SendBuffer < 1024 || c.ReceiveBuffer < 1024 {
		return fmt.Errorf("tcp buffers of %d and %d bytes: at least 1024 each", c.SendBuffer, c.ReceiveBuffer)
	}
	if c.ReceiveBuffer > 1<<30 || c.SendBuffer > 1<<30 {
		return fmt.Errorf("tcp buffers of %d and %d bytes: at most 1 GiB each", c.SendBuffer, c.ReceiveBuffer)
	}
	if c.SendBufferMax < c.SendBuffer || c.ReceiveBufferMax < c.ReceiveBuffer {
		return fmt.Errorf("tcp buffer maxima of %d and %d bytes: at least the buffers (%d and %d)", c.SendBufferMax, c.ReceiveBufferMax, c.SendBuffer, c.ReceiveBuffer)
	}
	if c.ReceiveBufferMax > 1<<30 || c.SendBufferMax > 1<<30 {
		return fmt.Errorf("tcp buffer maxima of %d and %d bytes: at most 1 GiB each", c.SendBufferMax, c.ReceiveBufferMax)
	}
	if c.MemoryLimit < 64<<10 || c.MemoryPressure > c.MemoryLimit {
		return fmt.Errorf("tcp memory limit of %d bytes, pressure at %d: at least 64 KiB, pressure at most the limit", c.MemoryLimit, c.MemoryPressure)
	}
	return nil
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

var tcpEventNames = [...]string{"established", "readable", "writable", "peer-closed", "closed"}

func (e TCPEvent) String() string {
	if int(e) < len(tcpEventNames) {
		return tcpEventNames[e]
	}
	return "unknown"
}

// TCPHandler runs on the owning core for each event of a connection. It
// must not block.
type TCPHandler func(c *TCPConn, ev TCPEvent)

// tcpTuple identifies a connection; it is the table's map key. Its
// addresses are IPv6 or mapped IPv4 (addr.go), both ends of one family.
type tcpTuple struct {
	localAddr, remoteAddr [16]byte
	localPort, remotePort uint16
}

// v6 reports whether the connection runs over IPv6.
func (id *tcpTuple) v6() bool { return !is4(&id.remoteAddr) }

// defaultMSS is the send MSS for a peer that announces none (RFC 9293
// 3.7.1, MUST-15): 536 over IPv4, 1220 over IPv6 (its minimum MTU less
// the headers).
func (id *tcpTuple) defaultMSS() int {
	if id.v6() {
		return header.IPv6MinimumMTU - header.IPv6FixedHeaderSize - header.TCPMinimumSize
	}
	return 536
}

// ipHeaderLen is the size of the IP header of the connection's segments.
func (id *tcpTuple) ipHeaderLen() int {
	if id.v6() {
		return header.IPv6FixedHeaderSize
	}
	return header.IPv4MinimumSize
}

// TCPStats are a stack's TCP counters.
type TCPStats struct {
	SegmentsIn, SegmentsOut uint64
	Retransmits             uint64 // segments sent again, for any reason
	FastRetransmits         uint64 // recoveries entered on dup ACKs or SACK
	RTOs                    uint64 // retransmission timer expiries
	TailLossProbes          uint64 // RFC 8985 probes sent
	SACKRecoveries          uint64 // recoveries driven by SACK blocks
	ResetsSent              uint64
	ChallengeACKs           uint64
	ActiveOpens             uint64
	PassiveOpens            uint64
	SYNCookiesSent          uint64
	SYNCookiesValid         uint64
	SYNQueueDrops           uint64
	AcceptQueueDrops        uint64
	BadSegments             uint64
	DelayedACKs             uint64 // ACKs sent by the delayed-ACK timer
	PersistProbes           uint64
	KeepAliveProbes         uint64
	OutOfOrderSegments      uint64
	// D-SACK (RFC 2883): segments sent reporting a duplicate received,
	// and D-SACK blocks received.
	DSACKsSent, DSACKsReceived uint64
	// Congestion reductions undone as spurious (OnSpuriousCongestion),
	// by detector: every retransmission of the episode reported by
	// D-SACK (RFC 3708), or the first ACK after the first
	// retransmission echoing an older timestamp (Eifel, RFC 3522).
	DSACKUndos, EifelUndos uint64
	// FRTOUndos counts timeouts found spurious by F-RTO (RFC 5682): after
	// the retransmission, two ACKs of data not retransmitted.
	FRTOUndos     uint64
	ZeroCopyBytes uint64 // in-order bytes an OnSegment handler consumed from packet buffers
	Established   uint64 // connections now in ESTABLISHED
	TimeWait      uint64 // connections now in TIME-WAIT
	// RingBytes is the send and receive ring memory connections hold
	// now; RingGrowths counts rings moved to a larger class.
	RingBytes, RingGrowths uint64
	// MemoryPressure counts the times RingBytes rose past
	// TCPConfig.MemoryPressure (Linux's TCPMemoryPressures);
	// RcvMemoryDrops counts segments dropped because the receive ring
	// could not take memory under TCPConfig.MemoryLimit (Linux's
	// TCPRcvQDrop; also DropTCPMemory).
	MemoryPressure, RcvMemoryDrops uint64
	// Connections the stack ended because the application had closed
	// them: FIN-WAIT-2 timed out, zero-window probes gave up, data
	// arrived after Close (answered with a reset); and TIME-WAIT
	// connections recycled for a new one when the table was full.
	FinWait2Timeouts, ZeroWindowAborts, AbortOnData, TimeWaitRecycled uint64
	// TimeWaitReused counts active opens that took the local port of a
	// connection of ours in TIME-WAIT (TCPConfig.NoTimeWaitReuse).
	TimeWaitReused uint64
	// TxQueueWaits counts the times a connection held its data back
	// because the stack's transmit queue was nearly full (txFull).
	TxQueueWaits uint64
	// TSO (Config.TSO): segments larger than one MSS handed to the NIC
	// to cut, the MSS-sized segments they stand for, and the times no
	// TSO buffer was free and a segment of one MSS went instead.
	TSOSegmentsOut, TSOSegmentsCut, TSOBufferWaits uint64
	// ACKs not sent for invalid segments: within a connection's
	// InvalidACKInterval (Linux's TCPACKSkippedChallenge, Seq and PAWS),
	// and challenge ACKs over the stack's budget for the second.
	InvalidACKsSkipped, ChallengeACKsOverBudget uint64
	// CookieACKsNoOverflow counts ACKs to a listener not checked as SYN
	// cookies because its SYN queue had not overflowed recently
	// (synCookieValid); they are answered with a reset.
	CookieACKsNoOverflow uint64
}

const maxOutOfOrder = 32

type tcpTable struct {
	s         *Stack
	cfg       TCPConfig
	cc        congestion.Algorithm
	conns     map[tcpTuple]*TCPConn
	listeners map[uint16]*TCPListener
	// free holds closed connections the application released, so
	// connect/close churn does not allocate; their rings' memory went back
	// to sndRings and rcvRings. It takes every one: TIME-WAITs run out by
	// the thousand at once (a coarse level of the wheel expires together),
	// and a list that dropped the surplus had newConn allocate it again
	// the next moment. trimFree gives back what churn stopped needing.
	free               []*TCPConn
	freeLow            int // the fewest entries free held since the last trim
	freeTrim           timer.Timer
	freeScoreboards    []*tcpScoreboard
	sndRings, rcvRings ringPool
	mem                tcpMem // what the rings hold, against MemoryLimit
	// timeWait lists connections as they entered TIME-WAIT, oldest
	// first from twHead: the first recycled when the table is full. An
	// entry whose connection has since left the state, or restarted it
	// (its deadline moved), is stale and skipped.
	timeWait []twEntry
	twHead   int
	// txWait lists connections that held data back for room in the
	// stack's transmit queue (txFull), in the order they stopped.
	txWait []*TCPConn
	// pending lists connections with work deferred to the end of the
	// receive burst (one ACK and one Readable event per burst).
	pending []*TCPConn
	// nextEphemeral is where the search for a free local port resumes
	// when no PortPicker is configured.
	nextEphemeral uint16
	// challenge ACK budget (RFC 5961 7).
	challengeTokens int
	challengeSecond int64
	// cookieDue is when the next cookie SYN-ACK is due under
	// SYNCookiesPerSecond: a virtual-scheduling (GCRA) bucket.
	cookieDue int64
	stats     TCPStats
}

type twEntry struct {
	c        *TCPConn
	deadline int64
}

func (e twEntry) live() bool {
	return e.c != nil && e.c.state == tcpTimeWait && e.c.waitTimer.Deadline() == e.deadline
}

// pushTimeWait lists c, which just entered (or restarted) TIME-WAIT.
func (t *tcpTable) pushTimeWait(c *TCPConn) {
	t.dropStaleTimeWait()
	if t.twHead > 0 && t.twHead >= len(t.timeWait)/2 {
		n := copy(t.timeWait, t.timeWait[t.twHead:])
		clear(t.timeWait[n:])
		t.timeWait, t.twHead = t.timeWait[:n], 0
	}
	if len(t.timeWait) > 2*int(t.stats.TimeWait)+64 {
		// Restarts (a peer resending its FIN) left stale entries behind
		// the oldest live one: drop them.
		// Only from twHead: the entries before it are cleared.
		live := t.timeWait[:0]
		for _, e := range t.timeWait[t.twHead:] {
			if e.live() {
				live = append(live, e)
			}
		}
		clear(t.timeWait[len(live):])
		t.timeWait, t.twHead = live, 0
	}
	t.timeWait = append(t.timeWait, twEntry{c, c.waitTimer.Deadline()})
}

func (t *tcpTable) dropStaleTimeWait() {
	for t.twHead < len(t.timeWait) && !t.timeWait[t.twHead].live() {
		t.timeWait[t.twHead] = twEntry{}
		t.twHead++
	}
	if t.twHead == len(t.timeWait) {
		t.timeWait, t.twHead = t.timeWait[:0], 0
	}
}

// room reports whether the table has room for a new connection: under
// MaxConns, or made so by recycling the oldest connection in TIME-WAIT
// (see TCPConfig.MaxConns).
func (t *tcpTable) room() bool {
	if len(t.conns) < t.cfg.MaxConns {
		return true
	}
	t.dropStaleTimeWait()
	if t.twHead == len(t.timeWait) {
		return false
	}
	c := t.timeWait[t.twHead].c
	t.timeWait[t.twHead] = twEntry{}
	t.twHead++
	t.stats.TimeWaitRecycled++
	c.free(nil)
	return true
}

// txFull reports whether TCP holds new segments back: the stack's
// transmit queue has a quarter of its room or less left, kept for ACKs,
// control segments and other protocols. It is a small-queues rule like
// Linux's TSQ: data waits in its connection's ring, where it costs
// nothing and is sent as soon as the NIC takes frames (resumeTx, from
// Flush), instead of being dropped at the queue (DropTxQueueFull) and
// resent after a timeout as if the network had lost it.
func (t *tcpTable) txFull() bool {
	s := t.s
	return cap(s.tx)-len(s.tx) <= cap(s.tx)/4
}

// waitTx lists c to send again when the queue has room.
func (c *TCPConn) waitTx() {
	t := c.t
	t.stats.TxQueueWaits++
	if !c.txWaiting {
		c.txWaiting = true
		t.txWait = append(t.txWait, c)
	}
}

// resumeTx lets the connections held back by txFull send, in the order
// they stopped, while the queue has room.
func (t *tcpTable) resumeTx() {
	i := 0
	for ; i < len(t.txWait) && !t.txFull(); i++ {
		c := t.txWait[i]
		t.txWait[i] = nil
		c.txWaiting = false
		if c.state != tcpClosed {
			c.output()
		}
	}
	n := copy(t.txWait, t.txWait[i:])
	clear(t.txWait[n:])
	t.txWait = t.txWait[:n]
}

// tcpOf returns s's TCP state.
func tcpOf(s *Stack) *tcpTable { return &s.tcp }

func (t *tcpTable) init(s *Stack, cfg TCPConfig) error {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	t.s = s
	t.cfg = cfg
	t.cc, _ = congestion.ByName(cfg.Congestion)
	t.conns = make(map[tcpTuple]*TCPConn)
	t.listeners = make(map[uint16]*TCPListener)
	t.pending = make([]*TCPConn, 0, 64)
	t.nextEphemeral = ephemeralFirst
	t.mem.init(t)
	t.freeTrim.Init(t.trimFree)
	t.sndRings.init(cfg.SendBuffer, cfg.SendBufferMax, &t.mem, false)
	t.rcvRings.init(cfg.ReceiveBuffer, cfg.ReceiveBufferMax, &t.mem, true)
	return nil
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
	// OnAcceptable, if set, is called when a connection joins the accept
	// queue (the sockets layer wakes Accept with it).
	OnAcceptable func(l *TCPListener)
	// SYNQueue and AcceptQueue bound the listener's queues (defaults from
	// TCPConfig).
	SYNQueue, AcceptQueue int
	// NoDelay turns Nagle's algorithm off for accepted connections.
	NoDelay bool
	// KeepAlive turns keepalive on for accepted connections.
	KeepAlive bool
	// UserTimeout is accepted connections' user timeout (see
	// TCPConnOptions.UserTimeout), as Linux's children inherit their
	// listener's TCP_USER_TIMEOUT.
	UserTimeout time.Duration
	// OnSegment, if set, receives accepted connections' in-order data
	// zero-copy (see TCPSegmentHandler).
	OnSegment TCPSegmentHandler
	// Family limits the listener to IPv4 (4) or IPv6 (6) connections, as
	// Go's "tcp4" and "tcp6" networks do; 0, the default, takes both.
	// A SYN of another family is answered as if no one listened.
	Family int
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

	// overflowAt is when a SYN last found the SYN queue full with cookies
	// on, valid once overflowed: ACKs are checked as cookies only for
	// synCookieValid after it.
	overflowAt int64
	overflowed bool
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
	if opts.Family != 0 && opts.Family != 4 && opts.Family != 6 {
		return nil, fmt.Errorf("listen tcp port %d: family %d is not 4, 6 or 0 for both: %w", port, opts.Family, ErrInvalidConfig)
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

// Pending returns the connections waiting in the accept queue.
func (l *TCPListener) Pending() int { return l.n }

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

// Close stops listening, resets the connections not yet accepted and
// those still in the handshake.
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
	if l.synCount > 0 {
		for _, c := range l.t.conns {
			if c.listener == l && c.state == tcpSynReceived {
				c.Abort()
			}
		}
	}
	delete(l.t.listeners, l.port)
}

func (l *TCPListener) pushAccept(c *TCPConn) bool {
	if l.n == len(l.accept) {
		return false
	}
	l.accept[(l.head+l.n)%len(l.accept)] = c
	l.n++
	if l.opts.OnAcceptable != nil {
		l.opts.OnAcceptable(l)
	}
	return true
}

// TCPConnOptions configure a connection opened by DialTCP.
type TCPConnOptions struct {
	OnEvent TCPHandler
	// NoDelay turns Nagle's algorithm off.
	NoDelay bool
	// KeepAlive turns keepalive probes on.
	KeepAlive bool
	// Congestion overrides TCPConfig.Congestion for this connection.
	Congestion string
	// UserTimeout bounds how long the connection tries to deliver data
	// the peer does not acknowledge before it is aborted with
	// ErrConnectionTimeout (RFC 5482's USER TIMEOUT, Linux's
	// TCP_USER_TIMEOUT); 0 keeps the default behaviour (MaxRetries
	// retransmission timeouts). See SetUserTimeout.
	UserTimeout time.Duration
	// OnSegment, if set, receives in-order data zero-copy (see
	// TCPSegmentHandler).
	OnSegment TCPSegmentHandler
}

// TCPSegmentHandler receives a connection's in-order data as a view of the
// packet buffer it arrived in, whenever nothing is waiting in the
// connection's receive ring (so the order of bytes is kept), and returns how
// many bytes it consumed; the rest is copied into the ring and offered by
// the Readable event as usual. The view is valid only during the call. It
// runs inside the receive path: it may Write, Close or Abort, but must not
// block.
type TCPSegmentHandler func(c *TCPConn, payload []byte) (consumed int)

// seqRange is [start, end) in sequence space.
type seqRange struct{ start, end uint32 }

// TCPConn is one TCP connection. Its methods must be called on the owning
// core. After the Closed event and a call to Close (or Abort) the stack may
// reuse the value for another connection: drop every reference by then.
type TCPConn struct {
	t         *tcpTable
	onSegment TCPSegmentHandler
	id        tcpTuple
	state     tcpState
	handler   TCPHandler
	// listener is the listen socket a passive connection counts against
	// until it is accepted (SYN queue while SYN-RECEIVED, then accept
	// queue).
	listener *TCPListener
	err      error
	softErr  error // the last ICMP error, reported on timeout
	// Context is the application's: the stack never reads it.
	Context any

	// Send sequence space (RFC 9293 3.3.1).
	iss, sndUna, sndNxt uint32
	// sndMax is the highest sequence number sent: sndNxt goes back
	// after a timeout, sndMax never does (an ACK up to it is valid).
	sndMax            uint32
	sndWnd, maxSndWnd uint32 // scaled
	sndWl1, sndWl2    uint32
	sndShift          uint8 // the peer's window scale
	sndMSS            int   // largest segment (payload + options) we send
	// Receive sequence space; rcvWnd is rcvBuf's free space.
	irs, rcvNxt uint32
	rcvShift    uint8 // our window scale
	wsOK        bool  // both SYNs carried Window Scale
	lastAckSent uint32
	// rcvAdvEdge is the furthest right edge of the window we advertised
	// (RCV.NXT + window): a window scaled down rounds the edge back by up
	// to 2^rcvShift-1 bytes when RCV.NXT moves, and a peer may send up to
	// what it was offered, so acceptable takes that much in (RFC 9293
	// 3.8.6: the receiver should not shrink the window).
	rcvAdvEdge uint32

	// Options both sides agreed on.
	sackOK, tsOK bool
	tsRecent     uint32 // the peer's latest TSval (RFC 7323 4.3)
	tsRecentAt   int64
	tsOffset     uint32 // added to our millisecond clock for TSval

	noDelay, keepAlive, released, portPicked bool
	flowLabel                                uint32 // IPv6 (RFC 6437), 0 for IPv4
	// kaIdle, kaInterval and kaCount override TCPConfig's keepalive
	// timing when set (SetKeepAlive).
	kaIdle, kaInterval int64
	kaCount            int
	// userTimeout is the user timeout in ns (SetUserTimeout), 0 for none.
	// rexmitStart is when the retransmissions in progress began (Linux's
	// retrans_stamp): the first SYN in SYN-SENT, otherwise the first
	// retransmission by the timer since an ACK last took new data.
	// zwpStart is when the first zero-window probe of the current closed
	// window went (Linux's icsk_probes_tstamp), valid while zwpTiming.
	userTimeout, rexmitStart, zwpStart int64
	zwpTiming                          bool

	// finQueued: the application closed; a FIN follows the last byte.
	// finSent and finSeq: the FIN's sequence number once sent; finBare:
	// it went in a segment of its own, without data.
	finQueued, finSent, finBare bool
	finSeq                      uint32
	peerFIN                     bool
	// A FIN that arrived beyond a hole, processed when the hole fills.
	peerFINPending bool
	peerFINSeq     uint32

	sndBuf, rcvBuf byteRing
	// Window autotuning (tcp_autotune.go): rcvLocked and sndLocked, the
	// application set the ring's bound (SetReceiveBuffer,
	// SetSendBuffer), which then no longer grows; tune, the receive
	// side's measure of what the application consumes per round trip.
	rcvLocked, sndLocked bool
	tune                 rcvTune
	// sb holds the ranges loss recovery keeps (tcpScoreboard): the
	// out-of-order ranges held in rcvBuf beyond rcvNxt (nOOO of sb.ooo,
	// sorted; oooLatest starts the one that got the latest segment, the
	// first SACK block, RFC 2018 4), the SACK scoreboard (nSacked) and
	// the ranges retransmitted for undo (nUndo). It is attached at the
	// first range and goes back to the table's free list with the
	// connection, so a connection that never saw loss carries none.
	sb        *tcpScoreboard
	nOOO      int
	oooLatest uint32
	// dsack is a duplicate range received, reported as the first SACK
	// block of the next segment while dsackOn (RFC 2883; tcp_undo.go).
	dsack   seqRange
	dsackOn bool

	// Delayed ACK and burst work (see flushPending).
	segsUnacked                        int
	ackNow, rxEvent, wrEvent, finEvent bool
	queued, writeBlocked, pushed       bool
	// memWaiting: listed in tcpMem.waiting (Write was cut short by the
	// memory limit).
	memWaiting bool
	// pingpong: the connection answers what it receives (it sent data
	// within DelayedACK of receiving some, Linux's interactive mode), so
	// the ACK of a request waits to ride on the reply instead of going
	// alone when the application reads it; a delayed ACK the timer has
	// to send ends the mode. lastDataIn is when data last arrived.
	pingpong   bool
	lastDataIn int64
	// quickACKs counts the ACKs still to send at once (TCPConfig.QuickACKs).
	quickACKs int

	// Loss recovery (RFC 5681, 6582, 6675). sb.sacked is the SACK
	// scoreboard above sndUna, sorted.
	cc                     congestion.Controller
	algs                   congestion.Algorithms
	nSacked                int
	dupAcks                int
	inRecovery             bool
	recoverSeq, rexmitNxt  uint32
	recoveryGuard          bool // recoverSeq is valid (RFC 6582 4.1)
	persistBackoff, probes int
	lastRecv               int64
	holeRexmitAt           int64 // when the hole at sndUna was last resent
	tlpArmed, tlpOut       bool  // the RTO timer is a tail loss probe; one went
	zwpOut                 uint8 // zero-window probes not answered yet
	txWaiting              bool  // listed in tcpTable.txWait
	rtoAt                  int64 // when the timeout behind an armed probe is due
	oowACKAt               int64 // when an ACK for an invalid segment last went (InvalidACKInterval)
	rttProbeAt             int64 // when a tail loss probe resent the timed segment (see sendTailProbe)

	// Proportional Rate Reduction (RFC 9937), in bytes: delivered to the
	// peer and retransmitted since recovery began, the flight it began
	// with, and the room the last ACK gave (less retransmissions since).
	// New data sent counts through sndNxt: from prrNxt0 (at the start)
	// and from prrNxt (at the last ACK). See prrACK.
	prrDelivered, prrRexmit, recoverFS, prrRoom int
	prrNxt0, prrNxt                             uint32
	// dupCredit is the data duplicate ACKs reported delivered, without
	// SACK, that no cumulative ACK has covered yet (see delivered).
	dupCredit int

	// Undo of a spurious reduction (tcp_undo.go): undoOn while the last
	// reduction (undoRTO: by the timer) may still be undone. sb.undo
	// are the ranges retransmitted since that no D-SACK has reported yet
	// (undoAny: some were; undoNoDSACK: D-SACK cannot tell, a range went
	// twice or there were too many); eifelTS is the TSval of the first
	// retransmission, whose first ACK Eifel checks while eifelArmed.
	// frto is F-RTO's step after a timeout (RFC 5682 2.1): 1 waits for
	// the first ACK after the retransmission, 2 (new data sent, frtoSend
	// the bytes of it still allowed beyond cwnd) for the second;
	// frtoRecover is SND.MAX at the timeout ("recover").
	frto                                              uint8
	frtoRecover                                       uint32
	frtoSend                                          int
	undoOn, undoRTO, undoAny, undoNoDSACK, eifelArmed bool
	eifelTS                                           uint32
	nUndo                                             int

	// RFC 6298 state, in nanoseconds. rttSeq is the sequence number whose
	// ACK completes the running measurement (rttTiming).
	srtt, rttvar, rto int64
	rttTiming         bool
	rttSeq            uint32
	rttStart          int64
	retries           int

	rtoTimer, waitTimer, delackTimer, persistTimer, keepTimer timer.Timer
}

func (t *tcpTable) newConn(id tcpTuple, h TCPHandler, alg congestion.Algorithm) *TCPConn {
	var c *TCPConn
	if n := len(t.free); n > 0 {
		c = t.free[n-1]
		t.free[n-1] = nil
		t.free = t.free[:n-1]
		t.freeLow = min(t.freeLow, n-1)
		c.reset()
	} else {
		c = &TCPConn{}
		c.rtoTimer.Init(c.onRTO)
		c.waitTimer.Init(c.onTimeWait)
		c.delackTimer.Init(c.onDelayedACK)
		c.persistTimer.Init(c.onPersist)
		c.keepTimer.Init(c.onKeepAlive)
	}
	c.t, c.id, c.handler = t, id, h
	c.sndBuf.init(&t.sndRings)
	c.rcvBuf.init(&t.rcvRings)
	c.rto = int64(t.cfg.InitialRTO)
	c.rcvShift = t.rcvShift()
	c.iss = t.isn(id, t.s.now)
	c.sndUna, c.sndNxt, c.sndMax = c.iss, c.iss, c.iss
	c.tsOffset = t.tsOffset(id)
	c.flowLabel = t.flowLabel(&id)
	c.sndMSS = min(t.localMSS(id.v6()), t.pathMTU(&id)-id.ipHeaderLen()-header.TCPMinimumSize)
	c.cc = c.algs.Select(alg)
	c.cc.Init(c.sndMSS)
	c.lastRecv = t.s.now
	t.conns[id] = c
	return c
}

// tcpScoreboard is the room for the ranges of loss recovery, which a
// connection needs only once a segment arrives out of order, a SACK block
// arrives, or data goes again: 576 bytes every idle connection would
// otherwise carry (TCPConn is then 1280 bytes instead of 1848, a 1280-byte
// allocation instead of a 2048-byte one). Counts in TCPConn say which
// entries are valid, so a reused one is not cleared.
type tcpScoreboard struct {
	ooo    [maxOutOfOrder]seqRange
	sacked [maxOutOfOrder]seqRange
	undo   [maxUndoRanges]seqRange
}

// scoreboard returns the connection's scoreboard, attaching one (from the
// table's free list, so recovery allocates nothing in steady state) if it
// has none.
func (c *TCPConn) scoreboard() *tcpScoreboard {
	if c.sb == nil {
		t := c.t
		if n := len(t.freeScoreboards); n > 0 {
			c.sb = t.freeScoreboards[n-1]
			t.freeScoreboards = t.freeScoreboards[:n-1]
		} else {
			c.sb = new(tcpScoreboard)
		}
	}
	return c.sb
}

// reset clears a recycled connection but keeps its timers (its rings
// were released by recycle).
func (c *TCPConn) reset() {
	timers := [...]timer.Timer{c.rtoTimer, c.waitTimer, c.delackTimer, c.persistTimer, c.keepTimer}
	*c = TCPConn{}
	c.rtoTimer, c.waitTimer, c.delackTimer, c.persistTimer, c.keepTimer = timers[0], timers[1], timers[2], timers[3], timers[4]
}

// localMSS is the MSS we announce and the most we send over IPv4 or IPv6:
// the link MTU bounds it, and the pool's buffers too unless the NIC takes
// larger frames from the stack's large buffers (Config.LargeFrames).
func (t *tcpTable) localMSS(v6 bool) int {
	s := t.s
	ipHeader := header.IPv4MinimumSize
	if v6 {
		ipHeader = header.IPv6FixedHeaderSize
	}
	mss := s.cfg.MTU - ipHeader - header.TCPMinimumSize
	if s.cfg.LargeFrames {
		return mss
	}
	return min(mss, s.poolFrameRoom()-header.EthernetMinimumSize-ipHeader-header.TCPMinimumSize)
}

// pathMTU is the MTU towards the connection's peer: what path MTU
// discovery learned (IPv4), else the link's.
func (t *tcpTable) pathMTU(id *tcpTuple) int {
	if id.v6() {
		return t.s.pathMTU6(id.remoteAddr)
	}
	return t.s.PathMTU(unmap4(id.remoteAddr))
}

// PortPicker6 is a PortPicker that also picks ports for IPv6 active opens
// (*rss.PortAllocator is one). Without it, an IPv6 dial takes the next
// free ephemeral port.
type PortPicker6 interface {
	PickIPv6(local, remote [16]byte, remotePort uint16) (uint16, error)
}

// DialTCP starts an active open to the IPv4 address remote, port port.
func (s *Stack) DialTCP(remote [4]byte, port uint16, opts TCPConnOptions) (*TCPConn, error) {
	return s.DialTCPAddr(netip.AddrFrom4(remote), port, opts)
}

// DialTCPAddr starts an active open to remote:port, over IPv4 or IPv6 by
// remote's family (an IPv4-mapped IPv6 address counts as IPv4). An IPv6
// connection leaves from our link-local address to a link-local remote,
// else from our first other address.
func (s *Stack) DialTCPAddr(remote netip.Addr, port uint16, opts TCPConnOptions) (*TCPConn, error) {
	t := tcpOf(s)
	s.now = s.clock.Now()
	remote = remote.Unmap()
	alg := t.cc
	if opts.Congestion != "" {
		a, err := congestion.ByName(opts.Congestion)
		if err != nil {
			return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, err)
		}
		alg = a
	}
	if !t.room() {
		return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, ErrTooManyConns)
	}
	id := tcpTuple{remotePort: port}
	picker := t.cfg.Ports
	if remote.Is4() {
		if !s.ip4 {
			return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, errNoIPv4)
		}
		id.localAddr, id.remoteAddr = mapped4(s.addr), mapped4(remote.As4())
	} else {
		local, err := s.ip6.sourceTo(remote.As16())
		if err != nil {
			return nil, fmt.Errorf("dial tcp [%v]:%d: %w", remote, port, err)
		}
		id.localAddr, id.remoteAddr = local, remote.As16()
		if _, ok := picker.(PortPicker6); !ok {
			picker = nil
		}
	}
	if picker != nil {
		var p uint16
		var err error
		if id.v6() {
			p, err = picker.(PortPicker6).PickIPv6(id.localAddr, id.remoteAddr, port)
		} else {
			p, err = picker.PickIPv4(unmap4(id.localAddr), unmap4(id.remoteAddr), port)
		}
		if err == nil {
			id.localPort = p
			if t.conns[id] != nil || t.listeners[p] != nil {
				t.cfg.Ports.Release(p)
				return nil, fmt.Errorf("dial tcp %v:%d: port %d: %w", remote, port, p, ErrPortInUse)
			}
			c := t.newConn(id, opts.OnEvent, alg)
			c.portPicked = true
			return t.dial(c, opts), nil
		}
		if c := t.reuseTimeWait(id, opts, alg); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, err)
	}
	if t.pickEphemeral(&id) {
		return t.dial(t.newConn(id, opts.OnEvent, alg), opts), nil
	}
	if c := t.reuseTimeWait(id, opts, alg); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("dial tcp %v:%d: %w", remote, port, ErrNoEphemeralPort)
}

// reuseTimeWaitScan bounds how many TIME-WAIT entries, oldest first, a
// dial looks through for one to reuse.
const reuseTimeWaitScan = 64

// reuseTimeWait opens a connection to id's remote address and port on the
// local port of a connection of ours in TIME-WAIT with the same
// addresses, when one may give it up (TCPConfig.NoTimeWaitReuse), and
// returns it; nil when none may. The old connection ends, its port kept
// for the new one, whose first sequence number is above everything the
// old one sent, by a window, as Linux's tcp_twsk_unique makes it.
func (t *tcpTable) reuseTimeWait(id tcpTuple, opts TCPConnOptions, alg congestion.Algorithm) *TCPConn {
	if t.cfg.NoTimeWaitReuse {
		return nil
	}
	t.dropStaleTimeWait()
	for i, n := t.twHead, 0; i < len(t.timeWait) && n < reuseTimeWaitScan; i++ {
		e := t.timeWait[i]
		if !e.live() {
			continue
		}
		n++
		old := e.c
		if old.id.localAddr != id.localAddr || old.id.remoteAddr != id.remoteAddr || old.id.remotePort != id.remotePort ||
			!old.tsOK || t.s.now-old.lastRecv < int64(time.Second) {
			continue
		}
		iss := old.sndNxt + 65535 + 2
		picked := old.portPicked
		old.portPicked = false // the port goes to the new connection
		id.localPort = old.id.localPort
		t.timeWait[i] = twEntry{}
		old.free(nil)
		t.stats.TimeWaitReused++
		c := t.newConn(id, opts.OnEvent, alg)
		if seqLT(c.iss, iss) {
			c.iss = iss
			c.sndUna, c.sndNxt, c.sndMax = iss, iss, iss
		}
		c.portPicked = picked
		return t.dial(c, opts)
	}
	return nil
}

// dial sends the SYN of c, a new active open.
func (t *tcpTable) dial(c *TCPConn, opts TCPConnOptions) *TCPConn {
	c.noDelay, c.keepAlive, c.onSegment = opts.NoDelay, opts.KeepAlive, opts.OnSegment
	c.userTimeout = max(int64(opts.UserTimeout), 0)
	c.state = tcpSynSent
	t.stats.ActiveOpens++
	c.sendSYN()
	return c
}

func (t *tcpTable) pickEphemeral(id *tcpTuple) bool {
	for range ephemeralLast - ephemeralFirst + 1 {
		id.localPort = t.nextEphemeral
		if t.nextEphemeral == ephemeralLast {
			t.nextEphemeral = ephemeralFirst
		} else {
			t.nextEphemeral++
		}
		if t.conns[*id] == nil && t.listeners[id.localPort] == nil {
			return true
		}
	}
	return false
}

// LocalPort and RemotePort return the connection's ports.
func (c *TCPConn) LocalPort() uint16  { return c.id.localPort }
func (c *TCPConn) RemotePort() uint16 { return c.id.remotePort }

// LocalAddr and RemoteAddr return the connection's addresses: 4-byte
// addresses for IPv4, 16-byte ones for IPv6.
func (c *TCPConn) LocalAddr() netip.Addr  { return tupleAddr(c.id.localAddr) }
func (c *TCPConn) RemoteAddr() netip.Addr { return tupleAddr(c.id.remoteAddr) }

// IPv6 reports whether the connection runs over IPv6.
func (c *TCPConn) IPv6() bool { return c.id.v6() }

// State returns the connection's RFC 9293 state name.
func (c *TCPConn) State() string { return c.state.String() }

// Established reports whether the handshake completed and the connection
// has not closed yet.
func (c *TCPConn) Established() bool { return c.state >= tcpEstablished }

// Closed reports whether the connection left the table.
func (c *TCPConn) Closed() bool { return c.state == tcpClosed }

// Err returns why the connection closed, nil for an orderly close.
func (c *TCPConn) Err() error { return c.err }

// Buffered returns the bytes waiting to be read.
func (c *TCPConn) Buffered() int { return c.rcvBuf.len() }

// MSS returns the most payload a segment of the connection carries: the
// peer's MSS, or the path's if smaller, less the options every segment
// carries (timestamps). It is what Linux's getsockopt(TCP_MAXSEG)
// returns on a connected socket (tp->mss_cache).
func (c *TCPConn) MSS() int { return c.dataMSS() }

// WriteSpace returns how many bytes Write would take now: the send
// buffer's free space, as far as the stack's memory allows
// (TCPConfig.MemoryLimit and MemoryPressure).
func (c *TCPConn) WriteSpace() int { return c.sndBuf.space() }

// Unsent returns the bytes written and not yet acknowledged.
func (c *TCPConn) Unsent() int { return c.sndBuf.len() }

// PeerClosed reports whether the peer's FIN arrived (after the buffered
// bytes, the stream ends).
func (c *TCPConn) PeerClosed() bool { return c.peerFIN }

// SetNoDelay turns Nagle's algorithm off (true) or on.
func (c *TCPConn) SetNoDelay(v bool) { c.noDelay = v }

// SetUserTimeout sets the connection's user timeout (RFC 5482; Linux's
// TCP_USER_TIMEOUT, whose semantics it follows): the longest the
// connection goes on without the peer acknowledging its data before it is
// aborted with ErrConnectionTimeout. 0 (or less) restores the default
// behaviour. It takes effect at the next timer expiry and bounds:
//
//   - retransmissions: the connection ends at the first retransmission
//     timeout at least d after the first retransmission since new data was
//     last acknowledged (in SYN-SENT, after the first SYN), and the timer
//     after a retransmission is shortened to expire then. This replaces
//     MaxRetries once the connection is synchronized (d may allow fewer
//     or more retransmissions); SYNRetries still applies to a SYN.
//   - zero-window probes: the connection ends when the peer's window has
//     stayed closed for d since the first probe, even if the peer answers
//     every probe (which otherwise keeps it open, RFC 9293 3.8.6.1).
//   - keepalive: the connection ends when d has passed without a segment
//     from the peer and at least one probe went unanswered, instead of
//     after KeepAliveProbes probes.
//
// RFC 5482 4.2 lets a TCP bound the value; as Linux, this stack does not.
func (c *TCPConn) SetUserTimeout(d time.Duration) { c.userTimeout = max(int64(d), 0) }

// UserTimeout returns the connection's user timeout (0: none).
func (c *TCPConn) UserTimeout() time.Duration { return time.Duration(c.userTimeout) }

// KeepAliveConfig is a connection's keepalive, as net.KeepAliveConfig: an
// Idle time without a segment before the first probe, an Interval between
// probes, and Count unanswered probes before the connection times out.
// A zero field takes the stack's TCPConfig value.
type KeepAliveConfig struct {
	Enable         bool
	Idle, Interval time.Duration
	Count          int
}

// KeepAliveEnabled reports whether keepalive is on.
func (c *TCPConn) KeepAliveEnabled() bool { return c.keepAlive }

// SetKeepAlive turns keepalive on or off for the connection, with its own
// timing; on a synchronized connection the timer restarts from the last
// segment received.
func (c *TCPConn) SetKeepAlive(k KeepAliveConfig) {
	c.keepAlive = k.Enable
	c.kaIdle, c.kaInterval, c.kaCount = int64(k.Idle), int64(k.Interval), k.Count
	if c.t == nil {
		return
	}
	if !k.Enable {
		if c.keepTimer.Pending() {
			c.t.s.wheel.Cancel(&c.keepTimer)
		}
		return
	}
	if c.synchronized() {
		c.armKeepAlive()
	}
}

// Write queues p for sending and returns how much fit in the send ring.
// The bytes that fit leave at once as full-sized segments, as far as the
// windows allow (a burst, GSO-like); a short tail waits for Nagle unless
// NoDelay is set.
func (c *TCPConn) Write(p []byte) (int, error) {
	switch c.state {
	case tcpEstablished, tcpCloseWait, tcpSynSent, tcpSynReceived:
	default:
		if c.err != nil {
			return 0, c.err
		}
		return 0, ErrConnectionClosed
	}
	if c.finQueued {
		return 0, ErrConnectionClosed
	}
	c.t.s.now = c.t.s.clock.Now()
	n := c.sndBuf.write(p)
	c.writeBlocked = n < len(p)
	if c.writeBlocked && c.sndBuf.free() > 0 {
		c.waitMemory() // memory, not the buffer's bound, cut it short
	}
	c.output()
	return n, nil
}

// Read takes up to len(p) received bytes.
func (c *TCPConn) Read(p []byte) int {
	was := c.rcvBuf.free()
	n := c.rcvBuf.read(p)
	c.consumed(n, was)
	c.releaseRcvBuf()
	return n
}

// Peek returns views of the received bytes without copying them: a, then
// b when the bytes wrap around the ring. They stay valid until Discard or
// Read, or until more data arrives (the ring may then move to larger
// memory). Together with Discard it is the zero-copy receive path.
func (c *TCPConn) Peek() (a, b []byte) { return c.rcvBuf.views() }

// Discard drops the n oldest received bytes (after Peek).
func (c *TCPConn) Discard(n int) {
	n = min(n, c.rcvBuf.len())
	was := c.rcvBuf.free()
	c.rcvBuf.discard(n)
	c.consumed(n, was)
	c.releaseRcvBuf()
}

// releaseRcvBuf gives the receive ring's memory back to the stack once the
// application has read every byte and nothing waits beyond a hole; the
// next segment takes it again. The window offered is unchanged: it is
// counted against ReceiveBuffer, which the ring can always grow to.
func (c *TCPConn) releaseRcvBuf() {
	if c.rcvBuf.n == 0 && c.nOOO == 0 {
		c.rcvBuf.release()
	}
}

// consumed opens the window to the peer when a read freed a significant
// part of the ring (RFC 9293 3.8.6.2.2, receiver SWS avoidance): a window
// update when the window grows by a quarter of the ring or from below an
// MSS, or, when what the peer may still send is below a quarter of the
// ring, to twice that (Linux's __tcp_cleanup_rbuf), not on every read. The last matters once
// autotuning has grown the ring: a quarter of 4 MiB is more than one read
// frees, and a sender whose window ran down waited for the window to
// close altogether (a TAP peer sending 64 KiB TSO frames to a net.Conn
// reader ran at a quarter of its rate). was is the ring's free space
// before the read (less than after-n when the bound went back up after
// memory pressure).
func (c *TCPConn) consumed(n, was int) {
	if n == 0 || !c.synchronized() || c.peerFIN {
		return
	}
	c.rcvSpaceAdjust() // autotuning: the bound may grow (tcp_autotune.go)
	after := c.rcvBuf.free() - c.oooBytes()
	before := min(after-n, was-c.oooBytes())
	advertised := int(c.rcvAdvEdge - c.rcvNxt)         // what the peer may still send
	offer := min(after, int(c.rcvWindowBytes(0xffff))) // what a window field can say
	if after-before >= c.rcvBuf.bound()/4 && before < c.rcvBuf.bound()/2 || before < c.sndMSS ||
		advertised < c.rcvBuf.bound()/4 && offer >= 2*advertised && offer-advertised >= 2*c.sndMSS ||
		c.pushed && !c.pingpong && c.segsUnacked > 0 && c.rcvBuf.len() == 0 {
		c.t.s.now = c.t.s.clock.Now()
		c.sendACK()
	}
}

// Close sends a FIN after the queued data (a half close: the peer's data
// still arrives until its FIN) and releases the connection to the stack:
// once it has left the table (the Closed event) the value may be reused.
//
// Once released, the connection ends on its own even if the peer does
// not cooperate: FIN-WAIT-2 lasts at most FinWait2Timeout, zero-window
// probes give up (orphanProbes), and data that still arrives is answered
// with a reset (RFC 1122 4.2.2.13; Linux counts it as TCPAbortOnData).
func (c *TCPConn) Close() {
	c.released = true
	c.closeWrite()
}

// CloseWrite sends a FIN after the queued data but keeps the connection
// (the peer may still send; Close releases it).
func (c *TCPConn) CloseWrite() { c.closeWrite() }

func (c *TCPConn) closeWrite() {
	if c.state == tcpClosed {
		c.recycle()
		return
	}
	c.t.s.now = c.t.s.clock.Now()
	switch c.state {
	case tcpSynSent:
		c.free(ErrConnectionClosed)
		return
	case tcpSynReceived, tcpEstablished:
		c.setState(tcpFinWait1)
	case tcpCloseWait:
		c.setState(tcpLastAck)
	case tcpFinWait2:
		c.armFinWait2()
		return
	default:
		return
	}
	c.finQueued = true
	c.output()
}

// armFinWait2 bounds FIN-WAIT-2 for a connection the application closed
// (TCPConfig.FinWait2Timeout). As in Linux, the time runs from entering
// the state (or from Close, if later) and segments do not restart it.
func (c *TCPConn) armFinWait2() {
	if c.released && c.state == tcpFinWait2 && !c.waitTimer.Pending() {
		c.t.s.wheel.Schedule(&c.waitTimer, c.t.s.now+int64(c.t.cfg.FinWait2Timeout))
	}
}

// Abort resets the connection and releases it.
func (c *TCPConn) Abort() {
	c.released = true
	if c.state == tcpClosed {
		c.recycle()
		return
	}
	c.t.s.now = c.t.s.clock.Now()
	if c.state != tcpSynSent && c.state != tcpTimeWait {
		c.sendReset()
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

// setState moves the connection, keeping the Established and TimeWait
// gauges.
func (c *TCPConn) setState(s tcpState) {
	st := &c.t.stats
	switch c.state {
	case tcpEstablished:
		st.Established--
	case tcpTimeWait:
		st.TimeWait--
	}
	switch s {
	case tcpEstablished:
		st.Established++
		if c.state != tcpEstablished {
			c.startAutotune()
		}
	case tcpTimeWait:
		st.TimeWait++
	}
	c.state = s
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
	c.setState(tcpClosed)
	c.err = err
	// Nothing more is sent: the send ring goes. Unread bytes stay for
	// the application until it reads them or closes.
	c.sndBuf.release()
	c.nOOO = 0
	if c.released {
		c.rcvBuf.release()
	}
	c.releaseRcvBuf()
	w := &t.s.wheel
	w.Cancel(&c.rtoTimer)
	w.Cancel(&c.waitTimer)
	w.Cancel(&c.delackTimer)
	w.Cancel(&c.persistTimer)
	w.Cancel(&c.keepTimer)
	if t.conns[c.id] == c {
		delete(t.conns, c.id)
		if c.portPicked {
			t.cfg.Ports.Release(c.id.localPort)
		}
	}
	c.notify(TCPEventClosed)
	c.recycle()
}

// recycle puts a closed, released connection on the free list.
func (c *TCPConn) recycle() {
	if c.state != tcpClosed || !c.released || c.queued || c.t == nil {
		return
	}
	t := c.t
	c.sndBuf.release()
	c.rcvBuf.release()
	if c.sb != nil {
		if len(t.freeScoreboards) < 1024 {
			t.freeScoreboards = append(t.freeScoreboards, c.sb)
		}
		c.sb = nil
	}
	c.t = nil // a second Close or recycle is a no-op
	c.handler = nil
	c.Context = nil
	t.free = append(t.free, c)
	if len(t.free) > freeKeep && !t.freeTrim.Pending() {
		t.freeLow = len(t.free)
		t.s.wheel.Schedule(&t.freeTrim, t.s.now+int64(freeTrimEvery))
	}
}

const (
	// freeKeep is how many free connections a table keeps however long
	// they go unused (1.25 MiB of TCPConns).
	freeKeep = 1024
	// freeTrimEvery is how often a table with more looks at what it used.
	freeTrimEvery = time.Second
)

// trimFree gives the collector half of the free connections that no
// newConn needed since the last trim (freeLow of them were never taken),
// keeping freeKeep, as a slab shrinker would: a steady churn keeps its
// list, a burst's leftovers are gone within seconds.
func (t *tcpTable) trimFree(*timer.Timer) {
	if unused := min(t.freeLow, len(t.free)) - freeKeep; unused > 0 {
		n := len(t.free) - (unused+1)/2
		clear(t.free[n:])
		t.free = t.free[:n]
		if cap(t.free) > 4*n {
			t.free = append(make([]*TCPConn, 0, 2*n), t.free...)
		}
	}
	t.freeLow = len(t.free)
	if len(t.free) > freeKeep {
		t.s.wheel.Schedule(&t.freeTrim, t.s.now+int64(freeTrimEvery))
	}
}

// Sequence number comparison modulo 2^32 (RFC 9293 3.4).
func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }
func seqGEQ(a, b uint32) bool { return int32(a-b) >= 0 }

// ShutdownTCP closes every listen socket and every connection: with a FIN
// after the queued data (abort false), or with a reset (abort true). It
// returns how many connections still have data or a FIN of ours not yet
// acknowledged (those a graceful shutdown waits for; FIN-WAIT-2 and
// TIME-WAIT wait only for the peer). Closing releases the
// connections: the application must not use them afterwards except for
// their Closed event.
func (s *Stack) ShutdownTCP(abort bool) (remaining int) {
	t := &s.tcp
	s.now = s.clock.Now()
	for _, l := range t.listeners {
		l.Close()
	}
	for _, c := range t.conns {
		switch {
		case abort:
			c.Abort()
		case c.state == tcpTimeWait:
		default:
			c.Close()
		}
	}
	for _, c := range t.conns {
		if c.state != tcpTimeWait && c.state != tcpFinWait2 {
			remaining++
		}
	}
	return remaining
}

// TCPConnInfo describes one connection for the control plane.
type TCPConnInfo struct {
	Local, Remote netip.Addr
	LocalPort     uint16
	RemotePort    uint16
	State         string
	SRTT          time.Duration
	RTO           time.Duration
	Retries       int
	Cwnd          int
	SndWnd        int // the peer's window
	RcvWnd        int // ours
	Unacked       int
	Unsent        int
	Buffered      int
	OutOfOrder    int // ranges held beyond a hole
	SACKed        int // scoreboard ranges
	InRecovery    bool
	TimerPending  bool // the retransmission timer
	PersistTimer  bool
}

// TCPConnections appends a description of every connection to dst.
func (s *Stack) TCPConnections(dst []TCPConnInfo) []TCPConnInfo {
	for _, c := range s.tcp.conns {
		dst = append(dst, TCPConnInfo{
			Local: tupleAddr(c.id.localAddr), Remote: tupleAddr(c.id.remoteAddr),
			LocalPort: c.id.localPort, RemotePort: c.id.remotePort,
			State: c.state.String(), SRTT: time.Duration(c.srtt), RTO: time.Duration(c.rto), Retries: c.retries,
			Cwnd: c.cc.Cwnd(), SndWnd: int(c.sndWnd), RcvWnd: c.rcvBuf.free(),
			Unacked: int(c.sndMax - c.sndUna), Unsent: c.unsent(), Buffered: c.rcvBuf.len(),
			OutOfOrder: c.nOOO, SACKed: c.nSacked, InRecovery: c.inRecovery,
			TimerPending: c.rtoTimer.Pending(), PersistTimer: c.persistTimer.Pending(),
		})
	}
	return dst
}

// unsent returns the bytes of the send ring not sent yet: those beyond
// sndNxt, which also counts our SYN and FIN while they are in flight.
func (c *TCPConn) unsent() int {
	sent := int(c.sndNxt - c.sndUna)
	if c.sndUna == c.iss && seqGT(c.sndNxt, c.iss) {
		sent-- // our SYN
	}
	if c.finSent && seqGT(c.sndNxt, c.finSeq) {
		sent-- // our FIN
	}
	return c.sndBuf.len() - max(sent, 0)
}
