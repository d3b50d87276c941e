package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// Params is one point as a system runs it.
type Params struct {
	Workload Workload
	Cores    int
	// CPUs pins core i (server and client side both) to CPUs[i]; nil
	// means not pinned.
	CPUs []int
	// Flows per core (connections or UDP flows).
	Flows            int
	Duration, Warmup time.Duration
	// Transactions, if positive, runs until that many are done instead
	// of for Duration (no warm-up).
	Transactions uint64
	// Rate, if positive, paces the load at that many transactions per
	// second for the whole point (the fixed-rate mode): each flow's
	// transactions are due at fixed times, and a transaction's latency
	// counts from when it was due, not from when it was sent, so a server
	// that falls behind is seen to (no coordinated omission). For the
	// streams it is bytes per second, all flows together: each flow
	// writes a StreamChunk when it is due.
	Rate float64
	// IPv6 runs the point over IPv6 (Spec.IPv6; only for systems that
	// TakesIPv6).
	IPv6 bool
	// MTU is Spec.MTU.
	MTU int
	// RuntimeCounts, set by a system whose server is an mkstack runtime,
	// reads its counters, so a point can say how many wake-ups and
	// system calls a transaction cost it (Point.WakeupsPerTxn).
	RuntimeCounts func() RuntimeCounts
	// Idle is the idle-connection mode (Spec.Idle): RunConn opens the
	// connections, one exchange each, and measures the memory they hold.
	Idle bool
	// IdleSettle is Spec.IdleSettle.
	IdleSettle time.Duration
	// Progress, if set, is called about once a second while the point
	// is measured with the time measured so far and the rate since the
	// last call.
	Progress func(elapsed time.Duration, rate float64)
}

// System runs points of one stack through one API.
type System interface {
	Run(ctx context.Context, p Params) (Point, error)
}

// SystemFunc adapts a function to System.
type SystemFunc func(ctx context.Context, p Params) (Point, error)

// Run calls f.
func (f SystemFunc) Run(ctx context.Context, p Params) (Point, error) { return f(ctx, p) }

// unavailable is a system that cannot run here.
func unavailable(name, why string) System {
	return SystemFunc(func(context.Context, Params) (Point, error) {
		return Point{}, fmt.Errorf("%s: %w: %s", name, ErrNotAvailable, why)
	})
}

// flowSlot is one flow's tally: one writer for the histogram (the flow's
// goroutine or the core its handlers run on); the counters are atomic so
// the driver can read them live. Padded so flows do not share a line.
type flowSlot struct {
	n, errs atomic.Uint64
	hist    Histogram
	// due is when the flow's next transaction is due (meter.now time),
	// in the fixed-rate mode; the flow's one writer owns it.
	due int64
	_   [64]byte
}

// meter measures a point: flows count transactions into their slots and
// record latencies while measuring is set; the driver (window) reads the
// counters at the ends of the measured window.
type meter struct {
	p         Params
	measuring atomic.Bool
	stopping  atomic.Bool
	slots     []flowSlot
	quota     uint64 // per flow, in transactions mode
	left      atomic.Int64
	total     atomic.Uint64 // every flow's transactions, in transactions mode
	finished  chan struct{}
	epoch     time.Time
	// interval is each flow's time between transactions (a stream's
	// between chunks) in the fixed-rate mode (0: as fast as the flow can
	// go).
	interval int64
}

func newMeter(p Params, slots int) *meter {
	m := &meter{p: p, slots: make([]flowSlot, slots), finished: make(chan struct{}), epoch: time.Now()}
	if p.Rate > 0 && slots > 0 {
		// A stream's rate is in bytes: each flow's unit of pacing is a
		// chunk.
		per := 1.0
		if p.Workload.Stream() {
			per = StreamChunk
		}
		m.interval = max(1, int64(float64(slots)*per*1e9/p.Rate))
		// Spread the flows' schedules over one interval so the load
		// comes evenly, not in a burst of every flow at once.
		for i := range m.slots {
			m.slots[i].due = int64(i) * m.interval / int64(slots)
		}
	}
	if p.Transactions > 0 {
		flows := uint64(p.Cores * p.Flows)
		m.quota = (p.Transactions + flows - 1) / flows
		m.left.Store(int64(flows))
		m.measuring.Store(true)
	}
	return m
}

// now is the monotonic time in nanoseconds since the meter was made.
func (m *meter) now() int64 { return int64(time.Since(m.epoch)) }

// begin returns the start of flow i's next transaction (a stream's next
// chunk): now, or in the fixed-rate mode the time it is due (which may
// still be ahead: a non-blocking flow sends only once due(i) has passed,
// a blocking one calls wait). A flow that is late starts its overdue
// transactions back to back, each as soon as the one before is done, and
// never one before it is due. Only the flow's writer calls it.
func (m *meter) begin(i int) int64 {
	if m.interval == 0 {
		return m.now()
	}
	s := &m.slots[i]
	start := s.due
	s.due += m.interval
	return start
}

// due returns when flow i's next transaction is due, in the fixed-rate
// mode; 0 (always due) otherwise.
func (m *meter) due(i int) int64 {
	if m.interval == 0 {
		return 0
	}
	return m.slots[i].due
}

// paced reports whether the point runs in the fixed-rate mode.
func (m *meter) paced() bool { return m.interval > 0 }

// wait starts flow i's next transaction for a blocking flow: in the
// fixed-rate mode it sleeps until the transaction is due, or until the
// meter stops (a stream's chunks at a low rate can be seconds apart). It
// returns the transaction's start for done.
func (m *meter) wait(i int) int64 {
	start := m.begin(i)
	for {
		d := start - m.now()
		if d <= 0 || m.stopping.Load() {
			return start
		}
		time.Sleep(min(time.Duration(d), waitSlice))
	}
}

// waitSlice is the longest a blocking flow sleeps without looking at
// the meter's stop.
const waitSlice = 50 * time.Millisecond

// done counts one transaction of flow i that started at start (m.now) and
// reports whether the flow should start another.
func (m *meter) done(i int, start int64) bool {
	s := &m.slots[i]
	n := s.n.Add(1)
	if m.measuring.Load() {
		s.hist.Record(time.Duration(m.now() - start))
	}
	if m.quota > 0 {
		switch t := m.total.Add(1); t {
		case CallgrindFrom(m.p.Transactions):
			callgrindZero()
		case m.p.Transactions:
			callgrindDump()
		}
	}
	if m.quota > 0 && n == m.quota {
		if m.left.Add(-1) == 0 {
			close(m.finished)
		}
		return false
	}
	return !m.stopping.Load()
}

// add counts n bytes (or transactions without latency) for slot i.
func (m *meter) add(i int, n uint64) { m.slots[i].n.Add(n) }

// fail counts a failed transaction of flow i.
func (m *meter) fail(i int) { m.slots[i].errs.Add(1) }

// stop tells the flows to start nothing new.
func (m *meter) stop() { m.stopping.Store(true) }

// moveWait bounds the wait for a point's first transaction.
const moveWait = 3 * time.Second

// moved returns the transactions (or chunks) the flows have done.
func (m *meter) moved() uint64 {
	var n uint64
	for i := range m.slots {
		n += m.slots[i].n.Load()
	}
	return n
}

// RuntimeCounts are an mkstack runtime's counters a point reports per
// transaction: its cores' wake-ups from sleep (core.Wakeups) and the
// system calls made for them (core.Syscalls).
type RuntimeCounts struct{ Wakeups, Syscalls uint64 }

type snapshot struct {
	rc      RuntimeCounts
	rcOK    bool
	n, errs uint64
	at      time.Time
	gc      uint32
	cpu     time.Duration
	// machine is the busy time of every CPU of the machine
	// (/proc/stat), ok false where it cannot be read.
	machine   time.Duration
	machineOK bool
	// gomaxprocs is read at the snapshot, as core.Start changes it.
	gomaxprocs int
}

func (m *meter) snap() snapshot {
	s := snapshot{at: time.Now(), gomaxprocs: runtime.GOMAXPROCS(0)}
	for i := range m.slots {
		s.n += m.slots[i].n.Load()
		s.errs += m.slots[i].errs.Load()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.gc = ms.NumGC
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.machine, s.machineOK = MachineBusy()
	if m.p.RuntimeCounts != nil {
		s.rc, s.rcOK = m.p.RuntimeCounts(), true
	}
	return s
}

// setRuntimeCounts gives pt the runtime's wake-ups and system calls per
// transaction between two snapshots, of which share (1 for the measured
// window itself) fell in the window of pt.Count transactions.
func setRuntimeCounts(pt *Point, start, end snapshot, share float64) {
	if !start.rcOK || !end.rcOK || pt.Count == 0 {
		return
	}
	n := float64(pt.Count)
	pt.WakeupsPerTxn = float64(end.rc.Wakeups-start.rc.Wakeups) * share / n
	pt.SyscallsPerTxn = float64(end.rc.Syscalls-start.rc.Syscalls) * share / n
	pt.HasRuntimeCounts = true
}

// window runs the measured part of a point: a warm-up then Duration, or
// until the flows' quotas are done; it then tells the flows to stop and
// returns the point's figures (without latency: read that with latency
// once the flows are quiet).
func (m *meter) window(ctx context.Context) (Point, error) {
	p := m.p
	if p.Transactions == 0 {
		// The window opens once the load moves, within moveWait: a
		// flow whose first SYN or ARP a device lost retries after a
		// second, and a short window opened before that measured
		// nothing (a test's 300 ms window saw 0 transactions on TAP).
		for deadline := time.Now().Add(moveWait); m.moved() == 0 && time.Now().Before(deadline); {
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				m.stop()
				return Point{}, ctx.Err()
			}
		}
	}
	if p.Transactions == 0 && p.Warmup > 0 {
		select {
		case <-time.After(p.Warmup):
		case <-ctx.Done():
			m.stop()
			return Point{}, ctx.Err()
		}
	}
	start := m.snap()
	if p.Transactions > 0 {
		// The quotas count from the first transaction.
		start.n, start.errs = 0, 0
	}
	m.measuring.Store(true)
	var end snapshot
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var deadline <-chan time.Time
	if p.Transactions == 0 {
		t := time.NewTimer(p.Duration)
		defer t.Stop()
		deadline = t.C
	}
	prev := start
	for end.at.IsZero() {
		select {
		case <-ctx.Done():
			m.measuring.Store(false)
			m.stop()
			return Point{}, ctx.Err()
		case <-deadline:
			end = m.snap()
		case <-m.finished:
			end = m.snap()
		case now := <-tick.C:
			if p.Progress != nil {
				cur := m.snap()
				p.Progress(now.Sub(start.at), float64(cur.n-prev.n)/cur.at.Sub(prev.at).Seconds())
				prev = cur
			}
		}
	}
	m.measuring.Store(false)
	m.stop()
	secs := end.at.Sub(start.at).Seconds()
	pt := Point{
		Workload: p.Workload, Cores: p.Cores, CPUs: p.CPUs, Flows: p.Flows,
		Seconds: secs, Count: end.n - start.n, Unit: p.Workload.Unit(),
		GCCycles: end.gc - start.gc, CPUSeconds: (end.cpu - start.cpu).Seconds(),
		Errors: end.errs - start.errs, GOMAXPROCS: end.gomaxprocs, OfferedRate: p.Rate,
	}
	if start.machineOK && end.machineOK {
		// Busy time is the CPUs' time since boot less their idle time,
		// and the kernel brings a CPU's idle time up to date only at its
		// ticks and idle exits: over a short, light window the difference
		// can read a few ms below zero (seen: -48 ms in 0.7 s on two CPUs),
		// which is none measured.
		pt.MachineCPUSeconds = max(0, (end.machine - start.machine).Seconds())
	}
	pt.Rate = float64(pt.Count) / secs
	pt.PerCore = pt.Rate / float64(p.Cores)
	setRuntimeCounts(&pt, start, end, 1)
	return pt, nil
}

// latency merges the flows' histograms. Call it only once every flow has
// stopped recording (its goroutine ended, or its core has run a later
// call).
func (m *meter) latency() *Latency {
	if m.p.Workload.Stream() {
		return nil
	}
	var h Histogram
	for i := range m.slots {
		h.Merge(&m.slots[i].hist)
	}
	return h.Summary()
}

// CallgrindFrom is the transaction, of a point of n transactions
// (Params.Transactions), at which callgrindZero runs: the first fifth of
// the point warms up (connections, caches, the heap), the remaining
// n-CallgrindFrom(n) transactions are counted up to callgrindDump.
func CallgrindFrom(n uint64) uint64 { return max(n/5, 1) }

// callgrindZero and callgrindDump mark the counted part of a point in
// transactions mode. They do nothing; bench/callgrind.sh runs valgrind
// with --zero-before=*callgrindZero and --dump-before=*callgrindDump,
// so the instructions between them (every thread: both sides of the
// wire, the runtime, the scheduler) are those of the counted
// transactions, without start-up and shut-down.
//
//go:noinline
func callgrindZero() { callgrindMarks.Add(1) }

//go:noinline
func callgrindDump() { callgrindMarks.Add(1) }

var callgrindMarks atomic.Uint64
