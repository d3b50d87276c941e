package core

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/stack"
)

// cacheLine pads fields that different cores write apart (two 64-byte
// lines, as x86 prefetches them in pairs).
const cacheLine = 128

// Runtime is a running set of cores over one NIC. Its methods are for
// application goroutines and the control plane; they are safe for
// concurrent use.
type Runtime struct {
	// Read by every core on every iteration, written once by Stop: on a
	// cache line of their own, away from what application goroutines
	// write on each call.
	_    [cacheLine]byte
	stop atomic.Bool // cores leave their loops and settle
	// shareAsked tells the cores to move to shared threads
	// (ShareThreads); read by every loop turn of a core on its own
	// thread, so it lives on this read-mostly line.
	shareAsked atomic.Bool
	cores      []*core
	flowOwner  stack.FlowOwnerFunc
	flowOwner6 stack.FlowOwner6Func
	epoch      time.Time
	_          [cacheLine]byte

	addedProcs atomic.Int32 // by Start to GOMAXPROCS, taken back when the cores are done

	// A core reports its move to shared threads (or why it could not)
	// with moveDone; the last to report closes allMoved.
	movesMu   sync.Mutex
	moved     int
	moveErrs  []error
	allMoved  chan struct{}
	shareMu   sync.Mutex  // serialises ShareThreads
	sharedNow atomic.Bool // every core has moved

	closing atomic.Bool  // Do refuses new calls
	doers   atomic.Int64 // Do calls between their check of closing and their enqueue
	_       [cacheLine]byte
	settled atomic.Int32 // cores that stopped forwarding
	running atomic.Int32 // core goroutines (and a Stop ringing them) not yet gone

	callsSettled atomic.Int32 // stopping cores with no call in flight

	plan   *plan
	mboxes []*mailbox   // by core, read-only: what application goroutines send to
	rooms  []roomSignal // by core: goroutines waiting for room in its mailbox
	// fullErrs and stoppedErrs are the errors call returns, by core,
	// made once: a caller that retries a full mailbox per request must not
	// format an error each time.
	fullErrs, stoppedErrs []error
	pubs                  []*Published // by core, read-only: what they read counters from
	reasons               []string
	collector             *Collector

	begin, abort chan struct{} // closed when every core is set up, or one failed
	done         chan struct{} // closed when the last core has gone
	stopOnce     sync.Once
}

// Start starts cfg.Cores cores, each on its own goroutine locked to its own
// OS thread (and pinned to its CPU if asked), with its queues, its stack
// and its mailbox, and returns once every stack is built, has queued its
// announcement (a gratuitous ARP) and has run cfg.OnStart. If any core
// cannot start (its CPU cannot be pinned, its stack config is invalid),
// Start stops the others and returns the errors.
func Start(cfg Config) (*Runtime, error) {
	p, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	rt, err := newRuntime(p)
	if err != nil {
		return nil, err
	}
	if !cfg.KeepGOMAXPROCS && p.Threads != ThreadsShared {
		rt.addedProcs.Store(int32(len(rt.cores)))
		addProcs(len(rt.cores))
	}
	ready := make(chan error, len(rt.cores))
	rt.running.Store(int32(len(rt.cores)))
	for _, c := range rt.cores {
		go c.main(ready)
	}
	var errs []error
	for range rt.cores {
		if err := <-ready; err != nil {
			errs = append(errs, err)
		}
	}
	if errs != nil {
		close(rt.abort)
		<-rt.done
		return nil, fmt.Errorf("core: start: %w", errors.Join(errs...))
	}
	close(rt.begin)
	return rt, nil
}

// newRuntime builds the cores, their mailboxes and doorbells, without
// starting them.
func newRuntime(p *plan) (*Runtime, error) {
	rt := &Runtime{
		plan:     p,
		epoch:    time.Now(),
		begin:    make(chan struct{}),
		abort:    make(chan struct{}),
		done:     make(chan struct{}),
		allMoved: make(chan struct{}),
	}
	rt.reasons = dropReasonNames()
	if cfg := p.NIC.RSS(); cfg != nil {
		n := p.Cores
		rt.flowOwner = func(protocol uint8, src, dst [4]byte, srcPort, dstPort uint16) int {
			return cfg.QueueIPv4Flow(rss.Proto(protocol), src, dst, srcPort, dstPort) % n
		}
		rt.flowOwner6 = func(protocol uint8, src, dst [16]byte, srcPort, dstPort uint16) int {
			return cfg.QueueIPv6Flow(rss.Proto(protocol), src, dst, srcPort, dstPort) % n
		}
	}
	pubs := make([]*Published, p.Cores)
	mboxes := make([]*mailbox, p.Cores)
	bells := make([]*msgring.Doorbell, p.Cores)
	for i := range p.Cores {
		bell, err := msgring.NewDoorbell()
		if err != nil {
			for _, b := range bells[:i] {
				b.Close()
			}
			return nil, fmt.Errorf("core: core %d: %w", i, err)
		}
		bells[i] = bell
		mboxes[i] = msgring.NewMailbox[message](msgring.MailboxConfig{
			Owner: i, Cores: p.Cores, PeerRing: p.PeerRing, SharedCap: p.SharedRing, Batch: 32,
		}, bell)
	}
	for i := range p.Cores {
		c := newCore(rt, i, mboxes, bells[i], len(rt.reasons))
		rt.cores = append(rt.cores, c)
		pubs[i] = c.pub
	}
	rt.mboxes, rt.pubs = mboxes, pubs
	rt.rooms = make([]roomSignal, p.Cores)
	for i := range p.Cores {
		rt.rooms[i].init()
		rt.fullErrs = append(rt.fullErrs, fmt.Errorf("core: call on core %d: %w", i, ErrMailboxFull))
		rt.stoppedErrs = append(rt.stoppedErrs, fmt.Errorf("core: call on core %d: %w", i, ErrStopped))
	}
	rt.collector = NewCollector(pubs, p.cpus, rt.reasons)
	callPubs := make([]*callsPublished, p.Cores)
	for i, c := range rt.cores {
		callPubs[i] = c.calls.pub
	}
	rt.collector.setCalls(callPubs)
	return rt, nil
}

// dropReasonNames names the drop counters of every core: the stack's
// reasons, then the NIC queue's prefixed with "nic_".
func dropReasonNames() []string {
	names := stack.DropReasonNames()
	for r := range nicq.NumDropReasons {
		names = append(names, "nic_"+r.String())
	}
	return names
}

// mono is the runtime's monotonic clock in nanoseconds, for spin windows.
func (rt *Runtime) mono() int64 { return int64(time.Since(rt.epoch)) }

// procsMu serialises the read-modify-write of GOMAXPROCS by runtimes
// starting and stopping at once.
var procsMu sync.Mutex

// addProcs changes GOMAXPROCS by n (see Config.KeepGOMAXPROCS).
func addProcs(n int) {
	if n == 0 {
		return
	}
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)+n))
}

// giveBackProc takes back one of the Ps Start added, for a core that left
// its own thread: a core on the Go scheduler's threads is one goroutine
// among the application's and needs no P of its own (see Threads).
func (rt *Runtime) giveBackProc() {
	for {
		n := rt.addedProcs.Load()
		if n == 0 {
			return
		}
		if rt.addedProcs.CompareAndSwap(n, n-1) {
			addProcs(-1)
			return
		}
	}
}

// exit is the last thing a core goroutine (or Stop, which counts itself
// while it rings the doorbells) does; the last one out closes the
// doorbells and says the runtime is done.
func (rt *Runtime) exit() {
	if rt.running.Add(-1) == 0 {
		rt.closeDoorbells()
		addProcs(-int(rt.addedProcs.Swap(0)))
		close(rt.done)
	}
}

func (rt *Runtime) closeDoorbells() {
	for _, c := range rt.cores {
		c.bell.Close()
	}
}

// NumCores returns the number of cores.
func (rt *Runtime) NumCores() int { return len(rt.cores) }

// AwaitAnswer tells core that the work it is doing has just woken an
// application goroutine whose answer comes back through it (a reader
// parked on a connection, as sockets' net.Conn has): a core on shared
// threads then looks for that answer for a moment, yielding to the
// goroutine, before it sleeps (see sharedAnswerWindow). Call it only on
// that core, from a handler or a function it runs; elsewhere it races.
func (rt *Runtime) AwaitAnswer(core int) { rt.cores[core].handedOff = true }

// CPUs returns the CPU each core is pinned to, -1 for a core that is not
// pinned (every core, once they run on shared threads).
func (rt *Runtime) CPUs() []int {
	cpus := append([]int(nil), rt.plan.cpus...)
	if rt.sharedNow.Load() {
		for i := range cpus {
			cpus[i] = -1
		}
	}
	return cpus
}

// Queues returns the indexes of the NIC queues core polls; it transmits on
// the first.
func (rt *Runtime) Queues(core int) []int { return append([]int(nil), rt.plan.queues[core]...) }

// FlowOwner returns the core whose queue receives packets of the flow (as
// they arrive: src is the remote end), as the cores' stacks compute it, or
// 0 when the NIC has no RSS configuration.
func (rt *Runtime) FlowOwner(protocol uint8, src, dst [4]byte, srcPort, dstPort uint16) int {
	if rt.flowOwner == nil {
		return 0
	}
	return rt.flowOwner(protocol, src, dst, srcPort, dstPort)
}

// FlowOwner6 is FlowOwner for IPv6 flows.
func (rt *Runtime) FlowOwner6(protocol uint8, src, dst [16]byte, srcPort, dstPort uint16) int {
	if rt.flowOwner6 == nil {
		return 0
	}
	return rt.flowOwner6(protocol, src, dst, srcPort, dstPort)
}

// Do runs fn on core's goroutine with its stack, between two loop
// iterations, and returns without waiting for it. Calls from one goroutine
// to one core run in the order they were made. fn must not block: the
// core's packets wait while it runs. It returns an error wrapping
// ErrNoSuchCore, ErrStopped or ErrMailboxFull (retry later) when fn was not
// queued. A core's own handlers may call Do, for another core or their own.
func (rt *Runtime) Do(core int, fn func(*stack.Stack)) error {
	return rt.call(core, fn, nil)
}

// DoWait runs fn on core like Do and waits until it has returned, or ctx
// is done (fn may then still run later). It must not be called from a
// core's goroutine (a handler or a function passed to Do): a core waiting
// for itself never returns, and one waiting for another stalls its own
// packets.
func (rt *Runtime) DoWait(ctx context.Context, core int, fn func(*stack.Stack)) error {
	done := make(chan struct{})
	if err := rt.call(core, fn, done); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("core: wait for a call on core %d: %w", core, ctx.Err())
	}
}

// Broadcast runs fn on every core, as Do does, and returns the errors of
// the cores where it could not be queued.
func (rt *Runtime) Broadcast(fn func(*stack.Stack)) error {
	var errs []error
	for i := range rt.cores {
		if err := rt.call(i, fn, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// BroadcastWait runs fn on every core and waits until every call has
// returned, or ctx is done. The calls run concurrently, one per core, so
// fn must touch only the stack it is given (or synchronize).
func (rt *Runtime) BroadcastWait(ctx context.Context, fn func(*stack.Stack)) error {
	dones := make([]chan struct{}, len(rt.cores))
	var errs []error
	for i := range rt.cores {
		done := make(chan struct{})
		if err := rt.call(i, fn, done); err != nil {
			errs = append(errs, err)
			continue
		}
		dones[i] = done
	}
	for i, done := range dones {
		if done == nil {
			continue
		}
		select {
		case <-done:
		case <-ctx.Done():
			return errors.Join(append(errs, fmt.Errorf("core: wait for a call on core %d: %w", i, ctx.Err()))...)
		}
	}
	return errors.Join(errs...)
}

// call queues fn on core's shared ring and rings its doorbell. The doers
// count and the closing flag are a Dekker pair with Stop: either Stop sees
// this call in progress and waits for it, or the call sees Stop and
// refuses, so no call is queued after the cores' last drain.
func (rt *Runtime) call(core int, fn func(*stack.Stack), done chan struct{}) error {
	if core < 0 || core >= len(rt.cores) {
		return fmt.Errorf("core: call on core %d of %d: %w", core, len(rt.cores), ErrNoSuchCore)
	}
	if fn == nil {
		return fmt.Errorf("%w: call with a nil function", ErrInvalidConfig)
	}
	rt.doers.Add(1)
	if rt.closing.Load() {
		rt.doers.Add(-1)
		return rt.stoppedErrs[core]
	}
	ok := rt.mboxes[core].Send(message{kind: msgCall, fn: fn, done: done})
	rt.doers.Add(-1)
	if !ok {
		return rt.fullErrs[core]
	}
	return nil
}

// DoOrWait runs fn on core as Do does, but when the core's mailbox is full
// it parks the calling goroutine until the core has drained some of it
// (or ctx is done, or the runtime stops) and tries again, instead of
// failing: the way for an application goroutine to queue work without
// spinning. It must not be called from a core's goroutine.
func (rt *Runtime) DoOrWait(ctx context.Context, core int, fn func(*stack.Stack)) error {
	for {
		err := rt.call(core, fn, nil)
		if err == nil || !errors.Is(err, ErrMailboxFull) {
			return err
		}
		r := &rt.rooms[core]
		// Take the channel the core will close, say we wait, then look
		// again: a drain before the count was raised left room for this
		// second try, one after it closes the channel taken.
		ch := r.ch.Load()
		r.waiters.Add(1)
		err = rt.call(core, fn, nil)
		if err == nil || !errors.Is(err, ErrMailboxFull) {
			r.waiters.Add(-1)
			return err
		}
		r.waits.Add(1)
		select {
		case <-*ch:
		case <-ctx.Done():
			r.waiters.Add(-1)
			return ctx.Err()
		case <-rt.done:
			r.waiters.Add(-1)
			return rt.stoppedErrs[core]
		}
		r.waiters.Add(-1)
	}
}

// roomSignal wakes the goroutines that found a core's mailbox full
// (DoOrWait). The core looks at waiters after each drain that took
// messages, an atomic load; only when some wait does it close the current
// channel and put a new one in its place.
type roomSignal struct {
	waiters atomic.Int32
	ch      atomic.Pointer[chan struct{}]
	waits   atomic.Uint64 // times a goroutine parked for room
	_       [cacheLine]byte
}

func (r *roomSignal) init() {
	ch := make(chan struct{})
	r.ch.Store(&ch)
}

// wake releases every goroutine waiting now; the core calls it.
func (r *roomSignal) wake() {
	ch := make(chan struct{})
	close(*r.ch.Swap(&ch))
}

// MailboxWaits is how many times an application goroutine parked because
// core's mailbox was full (DoOrWait).
func (rt *Runtime) MailboxWaits(core int) uint64 { return rt.rooms[core].waits.Load() }

// Counters returns the published counters of every core added up
// (RingHighWater is the largest of them). Each core publishes once per
// loop iteration that found work, and before it sleeps.
func (rt *Runtime) Counters() Counters {
	total := Counters{Drops: make([]uint64, len(rt.reasons))}
	for _, p := range rt.pubs {
		s := p.Snapshot()
		total.Merge(&s)
	}
	return total
}

// CoreCounters returns core's published counters.
func (rt *Runtime) CoreCounters(core int) Counters { return rt.pubs[core].Snapshot() }

// DropReasonNames names the entries of Counters.Drops: the stack's drop
// reasons, then the NIC queue's prefixed with "nic_".
func (rt *Runtime) DropReasonNames() []string { return append([]string(nil), rt.reasons...) }

// Collector returns a Prometheus collector of every core's counters,
// labelled by core and CPU.
func (rt *Runtime) Collector() *Collector { return rt.collector }

// Register registers the runtime's collector with reg.
func (rt *Runtime) Register(reg prometheus.Registerer) error {
	if err := reg.Register(rt.collector); err != nil {
		return fmt.Errorf("core: register metrics: %w", err)
	}
	return nil
}

// ShareThreads moves every core from its own thread onto the Go
// scheduler's threads (see Threads) and returns once each has moved, or
// the errors of those that could not (they stay on their own threads and
// go on working). Each core that moved gives back the P Start added for
// it (see Threads). It does nothing for a runtime started with ThreadsPinned or ThreadsShared;
// later calls return the first one's result. sockets' Listen, Dial and
// ListenPacket call it: an application that serves from goroutines wants
// its hand-offs to the cores to be goroutine switches. Like DoWait, it
// must not be called from a core's goroutine (a handler, or a function
// given to Do), which would wait for its own core.
func (rt *Runtime) ShareThreads() error {
	if rt.plan.Threads != ThreadsAuto {
		return nil
	}
	rt.shareMu.Lock()
	defer rt.shareMu.Unlock()
	if !rt.shareAsked.Load() {
		// As a call does: a Stop that has begun may close the doorbells
		// once the cores leave, so ring only while it has not.
		rt.doers.Add(1)
		if rt.closing.Load() {
			rt.doers.Add(-1)
			return ErrStopped
		}
		rt.shareAsked.Store(true)
		for _, c := range rt.cores {
			c.bell.Ring() // a sleeping core moves now, not at its next packet
		}
		rt.doers.Add(-1)
	}
	select {
	case <-rt.allMoved:
	case <-rt.done:
	}
	rt.movesMu.Lock()
	defer rt.movesMu.Unlock()
	if rt.moved < len(rt.cores) {
		return ErrStopped
	}
	if rt.moveErrs != nil {
		return fmt.Errorf("core: share threads: %w", errors.Join(rt.moveErrs...))
	}
	return nil
}

// moveDone records core's move to shared threads (err nil) or why it could
// not move. The last core to report lets ShareThreads return, so
// ShareThreads need not be waiting.
func (rt *Runtime) moveDone(err error) {
	rt.movesMu.Lock()
	defer rt.movesMu.Unlock()
	if err != nil {
		rt.moveErrs = append(rt.moveErrs, err)
	}
	if err == nil {
		rt.giveBackProc()
	}
	rt.moved++
	if rt.moved < len(rt.cores) {
		return
	}
	if rt.moveErrs == nil {
		rt.sharedNow.Store(true)
	}
	close(rt.allMoved)
}

// ThreadMode reports where the cores run now: ThreadsShared once they run
// on the Go scheduler's threads, ThreadsPinned while each has its own.
func (rt *Runtime) ThreadMode() Threads {
	if rt.plan.Threads == ThreadsShared || rt.sharedNow.Load() {
		return ThreadsShared
	}
	return ThreadsPinned
}

// Done is closed when every core has stopped.
func (rt *Runtime) Done() <-chan struct{} { return rt.done }

// Stop stops the runtime: new calls are refused, calls already queued run,
// every core leaves its loop, sends home the buffers of other cores it
// holds and gets its own back, flushes its stack's output, and exits; then
// the doorbells are closed. It returns nil once every core goroutine has
// finished, or the first error a core met while running (a failed wait),
// or ctx's error if ctx is done first (the cores still finish on their
// own; Done says when). Calling Stop again waits again. The NIC is not
// closed: it is the caller's.
func (rt *Runtime) Stop(ctx context.Context) error {
	rt.stopOnce.Do(func() {
		rt.closing.Store(true)
		for rt.doers.Load() != 0 {
			runtime.Gosched()
		}
		// Count Stop as running while it rings, so the doorbells stay
		// open until it is done with them.
		rt.running.Add(1)
		rt.stop.Store(true)
		for _, c := range rt.cores {
			c.bell.Ring()
		}
		rt.exit()
	})
	select {
	case <-rt.done:
		var errs []error
		for _, c := range rt.cores {
			errs = append(errs, c.err)
		}
		return errors.Join(errs...)
	case <-ctx.Done():
		return fmt.Errorf("core: stop: %w", ctx.Err())
	}
}
