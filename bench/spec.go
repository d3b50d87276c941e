package bench

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Workload names what one point of a run measures.
type Workload string

// The workloads. Transactions are counted per request answered, except for
// the streams, whose rate is in bytes per second received by the server.
const (
	// UDPEcho: 64-byte datagrams echoed by the server, one in flight per
	// flow.
	UDPEcho Workload = "udp-echo"
	// TCPRR: persistent connections, a 64-byte request and a 64-byte
	// response, one in flight per connection (netperf TCP_RR).
	TCPRR Workload = "tcp-rr"
	// TCPCRR: connect, a 64-byte request, a 64-byte response, close; the
	// client closes first (netperf TCP_CRR).
	TCPCRR Workload = "tcp-crr"
	// TCPStream: bulk transfer from client to server, one flow per core.
	TCPStream Workload = "tcp-stream"
	// TCPStreamMany: bulk transfer, StreamFlows flows per core.
	TCPStreamMany Workload = "tcp-stream-many"
	// HTTP: HTTP/1.1 keep-alive GETs answered with a small body.
	HTTP Workload = "http"
	// Memcached: the memcached text protocol, memcaslap's default mix
	// (64-byte keys, 1024-byte values, nine gets to a set) on persistent
	// connections; stock memcached against mkstack's sharded application
	// (serve --app memcached), both on the lab's veth (Supports).
	Memcached Workload = "memcached"
)

// CRRServerClosesFirst turns tcp-crr around: the server closes as soon as
// it has sent the response and the client closes on the server's FIN, so
// the TIME-WAITs are the server's and a client port reused at once reopens
// a tuple the server holds in TIME-WAIT (RFC 6191). Off by default
// (netperf's TCP_CRR: the client closes first). It applies to the
// systems of this module, not to gVisor's child process.
var CRRServerClosesFirst = false

// Workloads lists every workload in the order runs and tables use.
var Workloads = []Workload{UDPEcho, TCPRR, TCPCRR, TCPStream, TCPStreamMany, HTTP, Memcached}

// Stream reports whether w is measured in bytes rather than transactions.
func (w Workload) Stream() bool { return w == TCPStream || w == TCPStreamMany }

// Unit is what the rate of w counts per second.
func (w Workload) Unit() string {
	if w.Stream() {
		return "bytes/s"
	}
	return "trans/s"
}

// Sizes and defaults of the workloads.
const (
	// MsgSize is the request and response size of udp-echo, tcp-rr and
	// tcp-crr.
	MsgSize = 64
	// DefaultConns is the flows per core of the transaction workloads,
	// each with one request in flight.
	DefaultConns = 16
	// MaxConns bounds the flows per core a spec may ask for.
	MaxConns = 100000
	// StreamFlows is the flows per core of tcp-stream-many.
	StreamFlows = 8
	// StreamChunk is the size of the writes of the streams.
	StreamChunk = 64 << 10
)

// HTTPBody is the body of the http workload's response.
const HTTPBody = "Hello, World!"

// The systems. A system is a stack and the API the load uses on it.
const (
	// SysMkstack is mkstack over the mem wire, driven by the per-core
	// handler API on both sides: the load runs on the client runtime's
	// cores.
	SysMkstack = "mkstack"
	// SysMkstackConn is mkstack over the mem wire through its net.Conn
	// face (goroutines on both sides).
	SysMkstackConn = "mkstack-conn"
	// SysGVisor is gVisor's netstack in-process over its channel link,
	// through its gonet net.Conn adapter (the nested module
	// bench/gvisorpeer runs it).
	SysGVisor = "gvisor"
	// SysLinux is the kernel's stack over loopback with Go's net package.
	SysLinux = "linux"
	// SysMkstackAFXDP is mkstack driving one end of a veth pair with
	// AF_XDP (copy mode) in a network namespace of its own, with the
	// per-core handlers of SysMkstack; the load is the kernel's, from
	// the other end's namespace, through Go's net package.
	SysMkstackAFXDP = "mkstack-afxdp"
	// SysMkstackTap is SysMkstackAFXDP over a multi-queue TAP device
	// (the load from the device's kernel side).
	SysMkstackTap = "mkstack-tap"
	// SysLinuxVeth is the kernel serving on the veth end SysMkstackAFXDP
	// drives, with the same load, through Go's net package (net/http for
	// http), with the devices at their default offloads: the baseline of
	// the veth net.Conn systems.
	SysLinuxVeth = "linux-veth"
	// SysLinuxVethOffloadsOff is SysLinuxVeth with the checksum and
	// segmentation offloads of both veth ends switched off: what the
	// kernel costs when its peer sends what a wire carries.
	SysLinuxVethOffloadsOff = "linux-veth-offloads-off"
	// SysLinuxEpoll is the kernel's best equivalent of the handler API
	// over loopback: one thread per core, pinned, with its own
	// SO_REUSEPORT listener (or UDP socket) and an epoll loop over
	// non-blocking sockets serving the same request/response logic as
	// mkstack's handlers; the load is the same, from one epoll thread
	// per core.
	SysLinuxEpoll = "linux-epoll"
	// SysLinuxEpollVeth is SysLinuxEpoll's server on the lab's veth
	// (devices at their default offloads), with the veth systems' load
	// from the peer namespace: the baseline of SysMkstackAFXDP and
	// SysMkstackTap.
	SysLinuxEpollVeth = "linux-epoll-veth"
	// SysMkstackConnAFXDP is mkstack on the lab's veth with AF_XDP, as
	// SysMkstackAFXDP, serving through its net.Conn face (goroutines,
	// net/http for http): the pair of SysLinuxVeth.
	SysMkstackConnAFXDP = "mkstack-conn-afxdp"
	// SysMkstackConnTap is SysMkstackConnAFXDP over the multi-queue TAP.
	SysMkstackConnTap = "mkstack-conn-tap"
	// SysMemcachedVeth is stock memcached (-t with a thread per core, on
	// the point's CPUs) serving the memcached workload from the kernel on
	// the lab's veth at its default offloads: the peer of SysMkstackAFXDP
	// on that workload, which serves it with mkstack's sharded
	// application.
	SysMemcachedVeth = "memcached-veth"
)

// Systems lists every system name the harness knows.
var Systems = []string{
	SysMkstack, SysMkstackConn, SysGVisor, SysLinux, SysLinuxEpoll,
	SysMkstackAFXDP, SysMkstackTap, SysLinuxEpollVeth,
	SysMkstackConnAFXDP, SysMkstackConnTap, SysLinuxVeth, SysLinuxVethOffloadsOff,
	SysMemcachedVeth,
}

// ErrNotAvailable: a system that cannot run here (yet).
var ErrNotAvailable = errors.New("not available")

// Spec is one run: every system at every core count, one workload.
type Spec struct {
	Workload Workload
	Cores    []int
	Systems  []string
	// Duration is the measured time per point; Warmup runs before it.
	Duration, Warmup time.Duration
	// Conns is the flows per core (0: DefaultConns; tcp-stream always 1).
	Conns int
	// Transactions, if positive, replaces Duration: each point runs
	// until that many transactions are done (the instruction-count mode;
	// not for the streams).
	Transactions uint64
	// Rate, if positive, is the fixed-rate mode: the load is paced at
	// Rate transactions per second per point (Params.Rate), for the
	// streams Rate bytes per second per point, all flows together.
	Rate float64
	// IPv6 runs the load over IPv6 on every system that can
	// (TakesIPv6): the veth systems between the lab's fd77::1 (the
	// server: mkstack with it in Addrs6, or the kernel) and fd77::2
	// (the kernel peer), the mem wire systems between fd00::1 and
	// fd00::2, the loopback ones on ::1. Each point records the family
	// it ran (Point.Family). Off: IPv4, as always.
	IPv6 bool
	// MTU is the MTU of the veth and TAP systems' devices (both ends),
	// recorded in each of their points (Point.MTU); 0 means 1500. The mem
	// wire and loopback systems keep theirs. Above 3822 the AF_XDP
	// systems use multi-buffer.
	MTU int
	// Idle is the idle-connection mode (tcp-rr and http): each point
	// opens Conns connections per core, makes one exchange on each (a
	// request and its echo, or a GET) and leaves them open without
	// traffic; it reports the whole machine's memory those idle
	// connections hold (Point.IdleMemoryBytes) and, as its rate, the
	// connections opened per second.
	Idle bool
	// IdleSettle is how long MemAvailable must hold still before each of
	// the idle mode's readings (0: DefaultIdleSettle).
	IdleSettle time.Duration
}

// The address families a point may record (Point.Family).
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// TakesIPv6 reports whether system runs over IPv6 when a spec asks
// (Spec.IPv6): every system but gVisor, whose child process runs over
// IPv4 alone (its points record ipv4, and no ratio pairs them with an
// IPv6 point).
func TakesIPv6(system string) bool { return system != SysGVisor }

// ParseWorkload checks a workload name.
func ParseWorkload(s string) (Workload, error) {
	for _, w := range Workloads {
		if string(w) == s {
			return w, nil
		}
	}
	names := make([]string, len(Workloads))
	for i, w := range Workloads {
		names[i] = string(w)
	}
	return "", fmt.Errorf("workload %q: want one of %s", s, strings.Join(names, ", "))
}

// ParseCores parses "1,2,4" or a range "1-4" (or both: "1-2,4") into
// ascending distinct core counts, each in 1..64.
func ParseCores(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cores %q: %q is not a number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cores %q: %q is not a number", s, hi)
			}
		}
		if a < 1 || b > 64 || a > b {
			return nil, fmt.Errorf("cores %q: %q outside 1..64 or reversed", s, f)
		}
		for k := a; k <= b; k++ {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ParseSystems parses a comma-separated list of system names.
func ParseSystems(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(Systems, f) {
			return nil, fmt.Errorf("system %q: want one of %s", f, strings.Join(Systems, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Validate checks a spec and fills in its defaults.
func (s *Spec) Validate() error {
	if _, err := ParseWorkload(string(s.Workload)); err != nil {
		return err
	}
	if len(s.Cores) == 0 {
		return errors.New("no core counts")
	}
	if len(s.Systems) == 0 {
		return errors.New("no systems")
	}
	if s.Transactions == 0 && s.Duration <= 0 {
		return fmt.Errorf("duration %v: want a positive duration", s.Duration)
	}
	if s.Transactions > 0 && s.Workload.Stream() {
		return fmt.Errorf("a fixed number of transactions does not apply to %s", s.Workload)
	}
	if s.Rate < 0 {
		return fmt.Errorf("rate %v: want zero (peak) or a positive rate", s.Rate)
	}
	if s.MTU != 0 && (s.MTU < 1280 || s.MTU > 65535) {
		return fmt.Errorf("MTU %d: want 1280 to 65535, or 0 for 1500", s.MTU)
	}
	if s.Rate > 0 && s.Transactions > 0 {
		return errors.New("a fixed rate applies over a duration, not to a fixed number of transactions")
	}
	if s.Warmup < 0 {
		return fmt.Errorf("warmup %v: want zero or more", s.Warmup)
	}
	if s.Idle {
		if s.Workload != TCPRR && s.Workload != HTTP {
			return fmt.Errorf("the idle-connection mode measures %s or %s connections, not %s", TCPRR, HTTP, s.Workload)
		}
		if s.Rate > 0 || s.Transactions > 0 {
			return errors.New("the idle-connection mode has no rate or transaction count: its connections carry one exchange each")
		}
	}
	if s.Conns < 0 || s.Conns > MaxConns {
		return fmt.Errorf("conns %d: want 1..%d per core", s.Conns, MaxConns)
	}
	if s.Conns == 0 {
		s.Conns = DefaultConns
	}
	return nil
}

// flows is the number of flows per core a point of w runs.
func flows(w Workload, conns int) int {
	switch w {
	case TCPStream:
		return 1
	case TCPStreamMany:
		return StreamFlows
	}
	return conns
}
