package core

import (
	"errors"
	"fmt"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/stack"
)

// Defaults of a Config field left at its zero value.
const (
	// DefaultBudget is the most frames a core takes from one queue per
	// loop iteration (NAPI's weight).
	DefaultBudget = 64
	// DefaultMailboxBudget is the most messages a core drains from its
	// mailbox per loop iteration.
	DefaultMailboxBudget = 128
	// DefaultPeerRing is the capacity of each core-to-core ring.
	DefaultPeerRing = 1024
	// DefaultSharedRing is the capacity of each core's ring for
	// application goroutines (Do, Broadcast, and the net.Conn face's
	// messages: one per Write that stages bytes, one per refill): room
	// for a message from each of thousands of connections' goroutines at
	// once. At 256, 4000 net.Conn connections on a core kept it full, and
	// every drain woke writers parked in DoOrWait.
	DefaultSharedRing = 4096
	// DefaultSpinWindow is how long an idle core keeps polling before it
	// sleeps: long enough to ride out the gaps of a busy flow without a
	// system call, short enough that an idle core costs nothing.
	DefaultSpinWindow = 50 * time.Microsecond
	// DefaultMaxForwardsInFlight bounds the packets of one core that are
	// at another core (forwarded and not yet returned).
	DefaultMaxForwardsInFlight = 512
)

// Config describes a runtime for Start.
type Config struct {
	// NIC is the interface the runtime drives. Its queues are shared out
	// among the cores: core c owns every queue q with q % Cores == c, and
	// transmits on the first of them. The runtime does not close the NIC.
	NIC nicq.NIC

	// Cores is the number of cores. 0 means one per NIC queue, capped by
	// the number of CPUs this process may use. More cores than queues is
	// an error: a core without a queue would have nothing to poll.
	Cores int
	// CPUs, if set, pins core i to CPUs[i] (and Cores, if set, must equal
	// len(CPUs)).
	CPUs []int
	// Pin pins the cores to the CPUs affinity.Plan chooses (preferring
	// Interface's NUMA node) when CPUs is not set. Without Pin or CPUs the
	// cores still get one OS thread each (runtime.LockOSThread) but the
	// kernel may run them anywhere, which is what a test that runs more
	// cores than the machine has CPUs needs. Pinning more cores than there
	// are allowed CPUs fails Start with an error wrapping
	// affinity.ErrNotEnoughCPUs; a CPU the process may not use fails with
	// one wrapping affinity.ErrCPUNotAllowed.
	Pin bool
	// Interface names the NIC in sysfs, for Plan's NUMA preference. ""
	// means NIC.Name() if sysfs knows it, else no preference.
	Interface string

	// StackConfig returns the configuration of core's stack (required): at
	// least Addr. The runtime sets Core, Clock, Pool, FlowOwner and
	// Forward; MAC and MTU default to the NIC's. An OnNeighbour it returns
	// is called as well as the runtime's replication.
	StackConfig func(core int) stack.Config

	// OnStart, if set, runs on each core's goroutine with its stack once
	// the stack is built and announced, before Start returns and before
	// the core takes its first frame: the place to bind the sockets or
	// listeners every core must have (replicated state) from the first
	// packet on.
	OnStart func(s *stack.Stack)

	// Clock is the time source of the stacks (nil: nicq.SystemClock).
	// An idle core sleeps until the stack's next timer by this clock; a
	// test stepping a virtual clock wakes the cores with Broadcast.
	Clock nicq.Clock

	// Budget is the most frames a core takes from each of its queues per
	// loop iteration (0: DefaultBudget).
	Budget int
	// MailboxBudget is the most messages a core drains per loop
	// iteration (0: DefaultMailboxBudget).
	MailboxBudget int
	// PeerRing and SharedRing size each core-to-core ring and each
	// core's ring for other goroutines (0: DefaultPeerRing,
	// DefaultSharedRing).
	PeerRing, SharedRing int

	// NoTSO keeps TCP from handing the NIC segments larger than one MSS
	// even when it offers TSO (nicq.FeatureTSO), and from leaving it
	// checksums to complete (nicq.FeatureTxChecksum), as ethtool -K DEV
	// tx off does for Linux: for captures whose every frame is on the
	// wire's scale, with complete checksums.
	NoTSO bool

	// LocalPorts is the range the cores' TCP active opens take their
	// local ports from, as Linux's ip_local_port_range (zero:
	// rss.DefaultPortRange, Linux's default, 32768-60999). Each core takes
	// the ports of the range whose replies its queue receives. A client
	// that opens connections faster than the range's ports leave
	// TIME-WAIT widens it.
	LocalPorts rss.PortRange

	// SpinWindow is how long a core that finds no work keeps polling
	// before it sleeps (0: DefaultSpinWindow), counting only its own
	// time: it yields its CPU between looks, and time other threads
	// take then is theirs. A negative value makes it sleep at the first
	// iteration that finds no work.
	SpinWindow time.Duration

	// MaxForwardsInFlight bounds the packets of one core that are at other
	// cores: forwarded to the core that owns their flow and not yet sent
	// back (0: DefaultMaxForwardsInFlight). Beyond it a forward is dropped
	// and counted (ForwardDrops, and the stack's forward_failed).
	MaxForwardsInFlight int

	// MaxCallsInFlight bounds the cross-core calls (Call) one core may
	// have in flight to each other core (0: DefaultMaxCallsInFlight).
	// Beyond it a call is refused with ErrBusy: the caller's
	// back-pressure.
	MaxCallsInFlight int

	// Threads chooses how the cores get their CPU time: ThreadsAuto (the
	// zero value) starts them on threads of their own and moves them onto
	// the Go scheduler's threads once the application serves from
	// goroutines (sockets' Listen, Dial and ListenPacket call
	// ShareThreads). See Threads for the trade-off.
	Threads Threads

	// KeepGOMAXPROCS leaves GOMAXPROCS alone. By default Start raises it
	// by the number of cores on threads of their own (none for
	// ThreadsShared; a core that moves there gives its P back), and Stop
	// lowers it again: a busy core on its own thread holds
	// its P (the Go scheduler's right to run Go code) for as long as
	// traffic flows, so with one core per CPU and GOMAXPROCS at the CPU
	// count the application's goroutines (net.Conn users, net/http) would
	// wait for the scheduler to preempt a core, 10 ms at a time. With the
	// extra Ps they run, and the kernel shares each CPU between its core
	// and them. Setting GOMAXPROCS stops Go from following a container's
	// CPU limit as it changes; runtime.SetDefaultGOMAXPROCS after Stop
	// brings that back.
	KeepGOMAXPROCS bool
}

// Threads is how a runtime's cores get CPU time.
//
// A core on a thread of its own (ThreadsPinned) is a goroutine locked to an
// OS thread, pinned to its CPU when the runtime pins: nothing else runs on
// that thread, the core polls for its spin window and then sleeps in
// poll(2). That suits run-to-completion handlers, whose work never leaves
// the core. It costs an application that serves from goroutines (net.Conn,
// net/http) a thread wake-up each way per request: the core wakes a parked
// M to run the reader, and the reader's reply wakes the core from poll(2),
// each a context switch, and on a CPU shared by the core and the
// application each with the scheduler's delays.
//
// A core on the Go scheduler's threads (ThreadsShared) is an ordinary
// goroutine that waits for its queues and doorbell through Go's network
// poller (one epoll set per core, registered with it). When it wakes a
// reader and goes back to wait, the same thread runs the reader next: a
// goroutine switch, not a thread wake-up; the reader's reply makes the
// core's epoll set ready, which the scheduler finds while it looks for
// work. The cores are not pinned and do not spin, and they take no P of
// their own: GOMAXPROCS is the CPU count, as for any Go program. More Ps
// than CPUs cost more than they gave: the collector's dedicated mark
// worker takes a whole P for each mark phase, and with a P beyond the
// CPUs the kernel time-slices that worker against the goroutine serving a
// request. One net/http connection over AF_XDP on one CPU had a p99 of
// 1.2-1.9 ms with the extra P and 0.3-0.4 ms without it, and served 1.4x
// the requests; net.Conn echo 1.2x, a bulk upload 1.17x. (The P was
// added when a bulk upload without it fell from 480 to 25 MB/s; that
// measurement was taken while the ring pool still reallocated a 4 MiB
// ring per segment, fixed in the same change, and does not reproduce.)
// A handler that computes for longer than Go's preemption interval
// (10 ms) on every P delays the cores as it delays every other goroutine.
type Threads int

const (
	// ThreadsAuto starts pinned and moves to shared threads when
	// ShareThreads is called (sockets' goroutine-facing API does).
	ThreadsAuto Threads = iota
	// ThreadsPinned keeps each core on its own thread; ShareThreads
	// does nothing.
	ThreadsPinned
	// ThreadsShared runs the cores on the Go scheduler's threads from
	// the start; they are not pinned (Pin is ignored, and CPUs counts
	// the cores only).
	ThreadsShared
)

// String names the mode as the serve command's --threads flag takes it.
func (t Threads) String() string {
	switch t {
	case ThreadsAuto:
		return "auto"
	case ThreadsPinned:
		return "pinned"
	case ThreadsShared:
		return "shared"
	}
	return fmt.Sprintf("Threads(%d)", int(t))
}

// ParseThreads parses a Threads name ("auto", "pinned", "shared").
func ParseThreads(s string) (Threads, error) {
	for _, t := range []Threads{ThreadsAuto, ThreadsPinned, ThreadsShared} {
		if s == t.String() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: threads %q: want auto, pinned or shared", ErrInvalidConfig, s)
}

// Errors of Start and of the control plane. Match them with errors.Is.
var (
	// ErrInvalidConfig: Start was given a configuration it cannot run.
	ErrInvalidConfig = errors.New("core: invalid config")
	// ErrStopped: the runtime is stopping or stopped.
	ErrStopped = errors.New("core: runtime stopped")
	// ErrMailboxFull: the core's ring for other goroutines is full; the
	// caller may retry.
	ErrMailboxFull = errors.New("core: mailbox full")
	// ErrNoSuchCore: a core index outside 0..NumCores-1.
	ErrNoSuchCore = errors.New("core: no such core")
)

// plan is a checked Config with defaults filled in.
type plan struct {
	Config
	cpus   []int   // per core; -1 when not pinned
	queues [][]int // per core: the queue indexes it owns
	spin   time.Duration
}

func (c Config) plan() (*plan, error) {
	if c.NIC == nil {
		return nil, fmt.Errorf("%w: no NIC", ErrInvalidConfig)
	}
	if c.StackConfig == nil {
		return nil, fmt.Errorf("%w: no StackConfig", ErrInvalidConfig)
	}
	nq := c.NIC.NumQueues()
	if nq < 1 {
		return nil, fmt.Errorf("%w: NIC %s has no queues", ErrInvalidConfig, c.NIC.Name())
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Budget, DefaultBudget)
	def(&c.MailboxBudget, DefaultMailboxBudget)
	def(&c.PeerRing, DefaultPeerRing)
	def(&c.SharedRing, DefaultSharedRing)
	def(&c.MaxForwardsInFlight, DefaultMaxForwardsInFlight)
	def(&c.MaxCallsInFlight, DefaultMaxCallsInFlight)
	if c.LocalPorts == (rss.PortRange{}) {
		c.LocalPorts = rss.DefaultPortRange
	}
	if c.LocalPorts.First == 0 || c.LocalPorts.Last < c.LocalPorts.First {
		return nil, fmt.Errorf("%w: local ports %d-%d: want a range of ports from 1 up", ErrInvalidConfig, c.LocalPorts.First, c.LocalPorts.Last)
	}
	if c.Clock == nil {
		c.Clock = nicq.SystemClock{}
	}
	switch {
	case c.Budget < 1, c.MailboxBudget < 1, c.PeerRing < 1, c.SharedRing < 1, c.MaxForwardsInFlight < 1:
		return nil, fmt.Errorf("%w: Budget %d, MailboxBudget %d, PeerRing %d, SharedRing %d and MaxForwardsInFlight %d must be positive",
			ErrInvalidConfig, c.Budget, c.MailboxBudget, c.PeerRing, c.SharedRing, c.MaxForwardsInFlight)
	case c.MaxCallsInFlight < 1:
		return nil, fmt.Errorf("%w: MaxCallsInFlight %d must be positive", ErrInvalidConfig, c.MaxCallsInFlight)
	case c.Threads < ThreadsAuto || c.Threads > ThreadsShared:
		return nil, fmt.Errorf("%w: %v is not a thread mode", ErrInvalidConfig, c.Threads)
	case c.Cores < 0:
		return nil, fmt.Errorf("%w: %d cores", ErrInvalidConfig, c.Cores)
	case c.CPUs != nil && c.Cores != 0 && c.Cores != len(c.CPUs):
		return nil, fmt.Errorf("%w: %d cores but %d CPUs", ErrInvalidConfig, c.Cores, len(c.CPUs))
	}
	p := &plan{spin: c.SpinWindow}
	if p.spin == 0 {
		p.spin = DefaultSpinWindow
	}
	switch {
	case c.CPUs != nil:
		c.Cores = len(c.CPUs)
		p.cpus = append([]int(nil), c.CPUs...)
	case c.Cores == 0:
		c.Cores = nq
		set, err := affinity.AllowedCPUs()
		if err != nil {
			return nil, fmt.Errorf("core: choose the number of cores: %w", err)
		}
		c.Cores = max(1, min(nq, set.Count()))
	}
	if c.Cores > nq {
		return nil, fmt.Errorf("%w: %d cores for the %d queues of NIC %s: a core needs a queue", ErrInvalidConfig, c.Cores, nq, c.NIC.Name())
	}
	if p.cpus == nil && c.Pin && c.Threads != ThreadsShared {
		cpus, err := planCPUs(c.Cores, c.Interface, c.NIC.Name())
		if err != nil {
			return nil, fmt.Errorf("core: pin %d cores: %w", c.Cores, err)
		}
		p.cpus = cpus
	}
	if p.cpus == nil {
		p.cpus = make([]int, c.Cores)
		for i := range p.cpus {
			p.cpus[i] = -1
		}
	} else {
		seen := map[int]bool{}
		for i, cpu := range p.cpus {
			if cpu < 0 || seen[cpu] {
				return nil, fmt.Errorf("%w: core %d on CPU %d: CPUs must be distinct and non-negative", ErrInvalidConfig, i, cpu)
			}
			seen[cpu] = true
		}
	}
	if c.Threads == ThreadsShared {
		// Cores on shared threads are not pinned: CPUs said only how
		// many there are.
		for i := range p.cpus {
			p.cpus[i] = -1
		}
	}
	p.queues = make([][]int, c.Cores)
	for q := range nq {
		p.queues[q%c.Cores] = append(p.queues[q%c.Cores], q)
	}
	p.Config = c
	return p, nil
}

// planCPUs asks affinity.Plan for n CPUs near the NIC: the named interface,
// else the NIC's own name if sysfs knows it, else anywhere.
func planCPUs(n int, iface, nicName string) ([]int, error) {
	if iface != "" {
		return affinity.Plan(n, iface)
	}
	cpus, err := affinity.Plan(n, nicName)
	if errors.Is(err, affinity.ErrNoSuchInterface) {
		return affinity.Plan(n, "")
	}
	return cpus, err
}
