package core

import (
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
	"golang.org/x/sys/unix"
)

// bigFrameSize holds the largest IPv4 datagram, or a driver's largest
// frame (a 64 KiB TCP segment taken whole, with its Ethernet header and a
// VLAN tag), behind the default headroom: the size of the buffers a core
// copies forwarded datagrams into when they do not fit its queue's frames.
const bigFrameSize = nicq.MaxLargeFrameLen + nicq.DefaultHeadroom

// bigBuffers is how many such buffers a core keeps, made on first use.
const bigBuffers = 2

// sleepRetry caps a sleep while the core holds work that only time clears:
// frames its queue refused, or messages a peer's full ring refused.
const sleepRetry = time.Millisecond

// core is one core of a runtime: one goroutine on one OS thread, its
// queues, its stack and its mailbox. Every field is the core's own: other
// goroutines reach it only through the mailbox, the doorbell and the
// published counters.
type core struct {
	_   [cacheLine]byte // the core writes its fields all the time: keep them off its neighbours' lines
	rt  *Runtime
	id  int
	n   int // cores in the runtime
	cpu int // -1 when not pinned

	queues []nicq.Queue
	// readsToLook: per queue, whether Recv costs a system call even when
	// nothing waits (nicq.ReadsToLook); an answer window skips those.
	readsToLook []bool
	txq         nicq.Queue
	pool        *nicq.Pool // the stack's pool: the first queue's
	big         *nicq.Pool // large copies of forwarded datagrams, made on first use
	st          *stack.Stack
	clock       nicq.Clock
	// iclock is the stack's clock: the time read once at the start of each
	// loop iteration, so the stack's many reads (every segment, timer and
	// write) cost a load instead of a clock read each.
	iclock iterationClock

	mbox  *mailbox
	peers []*mailbox // every core's mailbox, by core (read-only, shared)
	bell  *msgring.Doorbell
	polls pollSet // the queues' wait descriptors, then the doorbell

	rx          []*nicq.Buf
	mboxBudget  int
	spin        time.Duration
	maxInFlight int

	// Cross-core state.
	inFlight   int         // own buffers forwarded and not yet returned
	backlog    [][]message // per peer: messages its full ring refused, in order
	backlogged int         // total length of backlog
	notify     []bool      // per peer: ring its doorbell at the end of the iteration
	// syscalls counts the core's own system calls (waits, doorbell
	// reads), published with its queues' in the Syscalls metric.
	syscalls  uint64
	notifyAny bool
	drained   []int // per source (peers, then the shared ring): messages in this Drain
	settling  bool  // stopping: no more forwards or replication

	neigh neighbourCache // entries learned from the wire, re-sent to the others

	calls callState // cross-core calls (calls.go)

	counters        Counters
	pub             *Published
	forwardNoBuffer uint64 // forwarded datagrams dropped here for want of a buffer

	// idling: the core is in a stretch of iterations that found no
	// work, which has had idleOwn ns of its own time (see lookAway).
	idling    bool
	idleOwn   int64
	idleSince int64 // monotonic ns when the stretch began
	lastLook  int64 // monotonic ns of the stretch's last look
	busySince int64 // core clock ns when the current busy stretch began (shared threads), 0 when idle
	// answerSince is when a core on shared threads began to wait for the
	// answer to frames it delivered (0: no answer expected; answerArmed:
	// not yet idle since); see sharedAnswerWindow.
	answerSince int64
	answerLooks int
	handedOff   bool // AwaitAnswer was called in this iteration

	err error // first failure of a system call, reported by Stop
	tid int   // the core's thread (while on its own), for tests
	// shared says the core runs on the Go scheduler's threads (Threads);
	// shareFailed that it tried to move there and could not (it stays on
	// its own thread). origCPUs is its thread's CPU set before pinning,
	// given back when it leaves the thread.
	shared, shareFailed bool
	pinned              bool
	origCPUs            unix.CPUSet

	// Bound once, so the loop passes them without allocating.
	send         func([]*nicq.Buf) int
	onMsg        func(int, message)
	userNeighbr  func(ip [4]byte, mac header.MAC)
	userNeighbr6 func(ip [16]byte, mac header.MAC)
	_            [cacheLine]byte
}

func newCore(rt *Runtime, id int, mboxes []*mailbox, bell *msgring.Doorbell, reasons int) *core {
	p := rt.plan
	c := &core{
		rt:          rt,
		id:          id,
		n:           p.Cores,
		cpu:         p.cpus[id],
		clock:       p.Clock,
		mbox:        mboxes[id],
		peers:       mboxes,
		bell:        bell,
		rx:          make([]*nicq.Buf, p.Budget),
		mboxBudget:  p.MailboxBudget,
		spin:        p.spin,
		maxInFlight: p.MaxForwardsInFlight,
		backlog:     make([][]message, p.Cores),
		notify:      make([]bool, p.Cores),
		drained:     make([]int, p.Cores+1),
		counters:    *NewCounters(reasons),
		pub:         NewPublished(reasons),
	}
	fds := make([]int, 0, len(p.queues[id])+1)
	for _, qi := range p.queues[id] {
		q := p.NIC.Queue(qi)
		c.queues = append(c.queues, q)
		r, ok := q.(nicq.ReadsToLook)
		c.readsToLook = append(c.readsToLook, ok && r.ReadsToLook())
		fds = append(fds, q.WaitFD())
	}
	c.txq = c.queues[0]
	c.pool = c.txq.Pool()
	c.polls = newPollSet(append(fds, bell.Fd()))
	c.polls.recheck = c.workPending
	c.calls.init(p.Cores, p.MaxCallsInFlight)
	for peer := range c.backlog {
		if peer != id {
			// Returns to a peer never exceed its forwards in flight, calls
			// and replies the calls in flight each way; the rest is room
			// for replication messages.
			c.backlog[peer] = make([]message, 0, c.maxInFlight+2*c.calls.limit+replicationBacklog)
		}
	}
	c.send = c.txq.Send
	c.onMsg = c.onMessage
	return c
}

// replicationBacklog is the room per peer for replication messages that
// found the peer's ring full.
const replicationBacklog = 64

// main is the core's goroutine.
func (c *core) main(ready chan<- error) {
	defer c.rt.exit()
	defer c.polls.close()
	// A core on its own thread keeps it until it moves to shared threads
	// (moveToSharedThreads gives a pinned thread its CPU set back first)
	// or the goroutine ends: a pinned thread must die with the goroutine
	// (see affinity.Pin), and an unpinned one costs nothing more.
	if c.rt.plan.Threads != ThreadsShared {
		runtime.LockOSThread()
	}
	if err := c.setup(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	select {
	case <-c.rt.begin:
	case <-c.rt.abort:
		return
	}
	for !c.rt.stop.Load() {
		if c.shareDue() {
			c.moveToSharedThreads()
		}
		c.iterate()
	}
	c.settle()
}

// setup pins the core and builds its stack, on the core's own thread, so
// the stack's memory is first touched where it will be used.
func (c *core) setup() error {
	if c.rt.plan.Threads == ThreadsShared {
		if err := c.polls.share(); err != nil {
			return fmt.Errorf("core %d: wait through Go's network poller: %w", c.id, err)
		}
		c.shared, c.spin = true, -1
	} else if c.cpu >= 0 {
		if err := unix.SchedGetaffinity(0, &c.origCPUs); err != nil {
			return fmt.Errorf("core %d: read the thread's CPU set: %w", c.id, err)
		}
		if err := affinity.Pin(c.cpu); err != nil {
			return fmt.Errorf("core %d: %w", c.id, err)
		}
		c.pinned = true
	}
	c.tid = threadID()
	for _, q := range c.queues {
		q.Pool().Claim()
	}
	p := c.rt.plan
	sc := p.StackConfig(c.id)
	sc.Core = c.id
	c.iclock.now = c.clock.Now()
	sc.Clock = &c.iclock
	sc.Pool = c.pool
	if sc.MAC == (header.MAC{}) {
		sc.MAC = header.MAC(p.NIC.MAC())
	}
	if sc.MTU == 0 {
		sc.MTU = p.NIC.MTU()
	}
	if p.NIC.Features()&nicq.FeatureTSO != 0 && !p.NoTSO {
		sc.TSO = true
	}
	if p.NIC.Features()&nicq.FeatureTxChecksum != 0 && !p.NoTSO {
		sc.TxChecksumOffload = true
	}
	if p.NIC.Features()&nicq.FeatureMultiBuffer != 0 {
		sc.LargeFrames = true
	}
	c.userNeighbr = sc.OnNeighbour
	sc.OnNeighbour = c.onNeighbour
	c.userNeighbr6 = sc.OnNeighbour6
	sc.OnNeighbour6 = c.onNeighbour6
	sc.OnDuplicateAddress6 = chainHook(sc.OnDuplicateAddress6, func(a [16]byte) {
		c.toOthers(func(s *stack.Stack) { s.WithdrawAddress6(a) })
	})
	sc.OnRouter6 = chainHook2(sc.OnRouter6, func(r [16]byte, life time.Duration) {
		c.toOthers(func(s *stack.Stack) { s.LearnRouter6(r, life) })
	})
	if sc.TCP.ISNKey == ([16]byte{}) {
		// RFC 6528: a secret per boot. Every core may share one key (the
		// tuples differ); each core draws its own, which is as good.
		if _, err := cryptorand.Read(sc.TCP.ISNKey[:]); err != nil {
			return fmt.Errorf("core %d: isn key: %w", c.id, err)
		}
	}
	if sc.TCP.Ports == nil {
		if cfg := p.NIC.RSS(); cfg != nil {
			// Active opens take ports whose replies hash to this core's
			// first queue, so a connection never leaves its core.
			seed := binary.LittleEndian.Uint64(sc.TCP.ISNKey[:8])
			ports, err := rss.NewPortAllocator(cfg, rss.ProtoTCP, c.queues[0].Index(), p.LocalPorts, rand.NewPCG(seed, uint64(c.id)))
			if err != nil {
				return fmt.Errorf("core %d: local ports: %w", c.id, err)
			}
			sc.TCP.Ports = ports
		}
	}
	sc.FlowOwner = c.rt.flowOwner
	sc.FlowOwner6 = c.rt.flowOwner6
	if sc.FlowOwner != nil && c.n > 1 {
		sc.Forward = c.forward
	} else {
		sc.Forward = nil
	}
	st, err := stack.New(sc)
	if err != nil {
		return fmt.Errorf("core %d: %w", c.id, err)
	}
	c.st = st
	cfg := st.Config()
	c.neigh.init(cfg.MaxNeighbours, cfg.NeighbourTTL, c.clock.Now(), c.n)
	st.Start()
	if p.OnStart != nil {
		p.OnStart(st)
	}
	c.publish()
	return nil
}

// iterate is one turn of the loop: receive a budgeted burst from each
// queue into the stack, drain the mailbox, run due timers, transmit, then
// publish the counters, or go idle if there was nothing to do.
func (c *core) iterate() {
	c.iclock.now = c.clock.Now()
	if c.busySince != 0 && c.iclock.now-c.busySince >= int64(sharedBusyYield) {
		c.yieldBusy()
	}
	began := c.iclock.now
	work := 0
	// While an answer window is open the answer comes through the
	// mailbox: a queue whose empty look is a read waits for the window's
	// end (at most sharedAnswerWindow), as frames wait for a coalesced
	// interrupt.
	answering := c.answerSince > 0
	for i, q := range c.queues {
		if answering && c.readsToLook[i] {
			continue
		}
		if n := q.Recv(c.rx); n > 0 {
			c.st.Input(c.rx[:n])
			clear(c.rx[:n])
			work += n
		}
	}
	work += c.drain()
	if c.backlogged > 0 {
		c.pushBacklog()
	}
	c.st.Advance()
	// Neighbour refreshes are due every half TTL (seconds): a look at the
	// clock every 64th iteration is enough. (A sleep ends by the refresh
	// time, and the iterations after it reach the next 64th at once.)
	if c.neigh.every != 0 && len(c.neigh.entries) > 0 && (c.counters.Values[Polls]&63 == 0 || c.neigh.cursor >= 0) {
		if now := c.clock.Now(); c.neigh.due(now) {
			c.refreshNeighbours(now)
		}
	}
	sent := 0
	if c.st.PendingOutput() > 0 {
		sent = c.st.Flush(c.send)
		work += sent
	}
	if c.notifyAny {
		c.ringPeers()
	}
	if c.shared {
		switch {
		case c.handedOff:
			c.answerSince = answerArmed
		case sent > 0:
			c.answerSince = 0
		}
	}
	c.handedOff = false
	c.counters.Values[Polls]++
	if work > 0 {
		if c.idling {
			c.endIdle()
		}
		c.publish()
		if c.shared && c.busySince == 0 {
			c.busySince = began
		}
		return
	}
	c.busySince = 0
	c.idle()
}

// sharedBusyYield is how long a core on shared threads runs bursts back to
// back before it lets the application's goroutines run. A core that always
// finds work (a flood, a bulk stream) never blocks, and Go preempts a
// running goroutine only after 10 ms, so without the yield the goroutines
// behind it on the same P (net/http's, on a one-CPU server) would wait that
// long; Linux bounds its receive softirq the same way (2 ms, then
// ksoftirqd). The yield comes between bursts, so a burst's work is the
// finest grain, and costs one scheduler round per 100 µs of work.
const sharedBusyYield = 100 * time.Microsecond

func (c *core) yieldBusy() {
	c.counters.Values[BusyYields]++
	c.busySince = 0
	runtime.Gosched()
	c.iclock.now = c.clock.Now()
}

// sharedAnswerWindow is how long a core on shared threads keeps looking
// for work, yielding to the application's goroutines between looks, after
// it woke a goroutine whose answer comes back through it (AwaitAnswer, as
// sockets calls for a parked reader) and before anything went out: the
// answer comes within microseconds. Only then: a look that finds nothing
// keeps the P from the poller's other goroutines (Go polls the network
// only when its run queues are empty), so a core whose handlers answered
// themselves, or that took in bulk data, sleeps at once. The reader runs
// on the core's own P as soon as the core yields, so its answer finds the
// core awake: no doorbell to write, no epoll set to wait on and read, no
// deadline to arm. One net.Conn echo connection over AF_XDP spent four
// polls, two epoll waits, a doorbell write and read and a transmit kick
// per round trip without it. The window closes when something is sent or
// it runs out, so an idle core still sleeps at once and a slow handler
// costs at most this much of looking.
const sharedAnswerWindow = 20 * time.Microsecond

// answerArmed in core.answerSince: a goroutine was woken for its answer
// (AwaitAnswer), and the window opens at the next idle iteration.
const answerArmed = -1

// maxAnswerLooks bounds an answer window by iterations as well as time:
// a look costs well over 20 ns, so on a real clock the time ends it first.
const maxAnswerLooks = 1000

// idle keeps polling for the spin window, yielding the CPU between looks
// (for a core on shared threads, its answer window), then sleeps.
func (c *core) idle() {
	if c.answerSince != 0 {
		if c.answerSince == answerArmed {
			// The window opens when the receiving iteration is over:
			// this iteration began after it.
			c.answerSince, c.answerLooks = c.iclock.now, 0
		}
		// The count bounds the window under a clock that does not move
		// (a test's virtual clock).
		if c.iclock.now-c.answerSince < int64(sharedAnswerWindow) && c.answerLooks < maxAnswerLooks {
			c.answerLooks++
			c.counters.Values[AnswerWaits]++
			runtime.Gosched()
			return
		}
		c.answerSince = 0
	}
	if c.spin > 0 {
		now := c.rt.mono()
		if !c.idling {
			c.idling, c.idleOwn, c.idleSince = true, 0, now
		} else if d := now - c.lastLook; d < lookAway {
			c.idleOwn += d
		}
		c.lastLook = now
		if c.idleOwn < int64(c.spin) && now-c.idleSince < spinWallFactor*int64(c.spin) {
			// Between looks the CPU goes to whatever else wants it
			// (the application's threads, a load generator, the
			// kernel's work): a look costs a system call more, and a
			// core that shares its CPU spins only in time nobody else
			// wanted. Raw: the thread keeps its P, as while spinning.
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			return
		}
	}
	blocked := c.sleep()
	if c.idling {
		// A sleep is the stretch's own time, however long.
		now := c.rt.mono()
		c.idleOwn += now - c.lastLook
		c.lastLook = now
	}
	if !blocked && c.shared {
		// Work is due but not here yet (a frame the wire delays, a
		// timer at this very moment): a core on shared threads yields
		// rather than hold a P the application's goroutines need.
		runtime.Gosched()
	}
}

// lookAway: a look (a yield and a poll of the queues, a microsecond or
// two) that took longer than this gave the CPU to another thread, and the
// time is not the idle stretch's own.
const lookAway = int64(10 * time.Microsecond)

// spinWallFactor bounds a spin window in wall time, at this many times
// its own time: on a CPU that other threads keep busy, a core with no
// work still sleeps within a millisecond or so, instead of taking a look
// at every turn the scheduler gives it.
const spinWallFactor = 20

// endIdle ends an idle stretch on finding work, and counts it as a hit
// (within the spin window) or a miss.
func (c *core) endIdle() {
	c.idling = false
	own := c.idleOwn
	if d := c.rt.mono() - c.lastLook; d < lookAway {
		own += d
	}
	if own <= int64(c.spin) {
		c.counters.Values[SpinHits]++
	} else {
		c.counters.Values[SpinMisses]++
	}
}

// sleep blocks until a queue or the doorbell has work or the stack's next
// timer is due, and reports whether it blocked (false: its re-check found
// work or a timer due). It announces the sleep on every queue and the doorbell
// first and then looks again, so a frame or message that arrives in
// between either is seen by the look or finds the core announced and
// wakes it.
func (c *core) sleep() (blocked bool) {
	for _, q := range c.queues {
		q.PrepareWait()
	}
	c.bell.PrepareSleep()
	if c.workPending() {
		c.cancelSleep()
		return false
	}
	timeout := time.Duration(-1)
	at, ok := c.st.NextTimer()
	if c.neigh.every != 0 && len(c.neigh.entries) > 0 && (!ok || c.neigh.next < at) {
		at, ok = c.neigh.next, true
	}
	if ok {
		d := time.Duration(at - c.clock.Now())
		if d <= 0 {
			c.cancelSleep()
			return false
		}
		timeout = d
	}
	if (c.backlogged > 0 || c.st.PendingOutput() > 0) && (timeout < 0 || timeout > sleepRetry) {
		timeout = sleepRetry
	}
	c.counters.Values[IdleSleeps]++
	c.syscalls++ // the wait
	// Published with this sleep counted: a core that sleeps until the
	// next frame would otherwise show one sleep fewer all that while.
	c.publish()
	n, err := c.polls.wait(timeout)
	c.bell.CancelSleep()
	if c.polls.ready(len(c.queues)) {
		// After a wake from Go's poller, which does not say which
		// descriptor was ready, every eventfd is read: one left
		// readable (reading only those a producer was counted as
		// writing) kept the nested epoll set waking the core without
		// work, and the demo's four shared cores served a quarter of
		// their rate.
		c.bell.Clear()
		c.syscalls++
	}
	for i, q := range c.queues {
		if c.polls.ready(i) {
			q.ClearWait()
		} else {
			q.CancelWait()
		}
	}
	if err != nil {
		// A closed descriptor (the NIC closed under a running core) would
		// otherwise spin: note it and slow down.
		if c.err == nil {
			c.err = fmt.Errorf("core %d: wait for work: %w", c.id, err)
		}
		time.Sleep(sleepRetry)
		return true
	}
	if n > 0 {
		c.counters.Values[Wakeups]++
	}
	c.counters.Values[SharedWaitMisses] = c.polls.misses
	return true
}

// shareDue reports whether ShareThreads asked the cores to move to shared
// threads and this one has not (nor failed to).
func (c *core) shareDue() bool {
	return !c.shared && !c.shareFailed && c.rt.shareAsked.Load()
}

// moveToSharedThreads moves the core from its own thread onto the Go
// scheduler's (Threads): it waits through Go's network poller from now
// on, gives a pinned thread back the CPU set it had, unlocks it, and stops
// spinning (a spinning goroutine would hold a P the application's
// goroutines need). If the poller cannot take its descriptors the core
// stays where it is and ShareThreads reports why.
func (c *core) moveToSharedThreads() {
	if err := c.polls.share(); err != nil {
		c.shareFailed = true
		c.rt.moveDone(fmt.Errorf("core %d: wait through Go's network poller: %w", c.id, err))
		return
	}
	if c.pinned {
		if err := affinity.Unpin(&c.origCPUs); err != nil {
			// The thread would go back to Go's pool bound to one CPU:
			// keep it, and the goroutine, to the end.
			c.polls.close()
			c.shareFailed = true
			c.rt.moveDone(fmt.Errorf("core %d: %w", c.id, err))
			return
		}
		c.pinned = false
	}
	runtime.UnlockOSThread() // main's lock
	c.shared, c.spin = true, -1
	c.counters.Values[ThreadMoves]++
	c.rt.moveDone(nil)
}

func (c *core) cancelSleep() {
	c.bell.CancelSleep()
	for _, q := range c.queues {
		q.CancelWait()
	}
}

// workPending is sleep's re-check after it announced the sleep: whether
// there is work the announcement may have come too late for.
func (c *core) workPending() bool {
	return c.rt.stop.Load() || c.mbox.Pending() || c.queuesPending() || c.shareDue()
}

func (c *core) queuesPending() bool {
	for _, q := range c.queues {
		if q.Pending() {
			return true
		}
	}
	return false
}

// drain delivers up to the mailbox budget of messages and notes the fullest
// ring it found.
func (c *core) drain() int {
	n := c.mbox.Drain(c.mboxBudget, c.onMsg)
	if n == 0 {
		return 0
	}
	if r := &c.rt.rooms[c.id]; r.waiters.Load() > 0 {
		r.wake()
	}
	c.counters.Values[MailboxMessages] += uint64(n)
	hw := c.counters.Values[RingHighWater]
	for src, k := range c.drained {
		if k == 0 {
			continue
		}
		// What this drain took plus what is still there: the ring's
		// depth when the drain began, give or take what arrived since.
		depth := k
		if src == c.n {
			depth += c.mbox.Shared().Len()
		} else {
			depth += c.mbox.From(src).Len()
		}
		hw = max(hw, uint64(depth))
		c.drained[src] = 0
	}
	c.counters.Values[RingHighWater] = hw
	return n
}

// onMessage handles one message from core from (msgring.FromShared for an
// application goroutine).
func (c *core) onMessage(from int, m message) {
	if from == msgring.FromShared {
		c.drained[c.n]++
	} else {
		c.drained[from]++
	}
	switch m.kind {
	case msgForward:
		c.counters.Values[ForwardsReceived]++
		if c.settling {
			c.sendHome(from, m.buf)
			return
		}
		cp := c.copyIn(m.buf)
		c.sendHome(from, m.buf)
		if cp != nil {
			c.st.InputForwarded(cp)
		}
	case msgReturn:
		m.buf.Free()
		c.inFlight--
	case msgNeighbour:
		c.st.LearnNeighbour([4]byte(m.ip[:4]), m.mac)
	case msgNeighbour6:
		c.st.LearnNeighbour6(m.ip, m.mac)
	case msgCall:
		m.fn(c.st)
		if m.done != nil {
			close(m.done)
		}
	case msgCallRequest:
		c.serveCall(from, m.call)
	case msgCallReply:
		c.completeCall(from, m.call)
	}
}

// copyIn copies a forwarded datagram into a buffer of this core's own, with
// its metadata, or returns nil (counted) when there is none.
func (c *core) copyIn(b *nicq.Buf) *nicq.Buf {
	n := b.Len()
	var cp *nicq.Buf
	if n <= c.pool.FrameSize()-c.pool.Headroom() {
		cp = c.pool.Get()
	} else {
		cp = c.bigBuf()
	}
	if cp == nil {
		c.forwardNoBuffer++
		return nil
	}
	if n > cp.Tailroom() {
		cp.Free()
		c.forwardNoBuffer++
		return nil
	}
	copy(cp.Append(n), b.Bytes())
	cp.Hash, cp.RxQueue, cp.Flags, cp.RxTime = b.Hash, b.RxQueue, b.Flags, b.RxTime
	return cp
}

func (c *core) bigBuf() *nicq.Buf {
	if c.big == nil {
		p, err := nicq.NewPool(nicq.PoolConfig{Name: fmt.Sprintf("core%d/forwarded", c.id), Buffers: bigBuffers, FrameSize: bigFrameSize})
		if err != nil {
			return nil
		}
		p.Claim()
		c.big = p
	}
	return c.big.Get()
}

// forward is the stack's Forward hook: hand b, a datagram of this core's
// pools, to core to, within the bound on forwards in flight.
func (c *core) forward(to int, b *nicq.Buf) bool {
	if c.settling || to == c.id || to < 0 || to >= c.n || c.inFlight >= c.maxInFlight {
		c.counters.Values[ForwardDrops]++
		return false
	}
	if !c.peers[to].From(c.id).Enqueue(message{kind: msgForward, buf: b}) {
		c.counters.Values[ForwardDrops]++
		return false
	}
	c.inFlight++
	c.counters.Values[ForwardedPackets]++
	c.markNotify(to)
	return true
}

// sendHome returns a forwarded buffer to the core whose pool it is. It
// never fails: what the peer's ring refuses waits in the backlog, which
// has room for every buffer the peer may have forwarded.
func (c *core) sendHome(owner int, b *nicq.Buf) {
	c.sendTo(owner, message{kind: msgReturn, buf: b})
}

// onNeighbour is the stack's OnNeighbour hook: replicate the entry to every
// other core.
func (c *core) onNeighbour(ip [4]byte, mac header.MAC) {
	if c.userNeighbr != nil {
		c.userNeighbr(ip, mac)
	}
	if c.settling || c.n == 1 {
		return
	}
	c.neigh.learn(neighbourAddr{v4: ip}, mac)
	c.replicate(neighbourAddr{v4: ip}, mac)
}

// toOthers runs fn on every other core's stack: for what a stack learns
// rarely (a duplicate address, a router) and the others must know too.
// It allocates, which these rare events may.
func (c *core) toOthers(fn func(*stack.Stack)) {
	if c.settling {
		return
	}
	for peer := range c.n {
		if peer != c.id && c.rt.Do(peer, fn) != nil {
			c.counters.Values[ReplicationDrops]++
		}
	}
}

// chainHook returns a hook that calls the application's hook, if any, then
// the runtime's.
func chainHook[A any](user, rt func(A)) func(A) {
	if user == nil {
		return rt
	}
	return func(a A) { user(a); rt(a) }
}

// chainHook2 is chainHook for hooks of two arguments.
func chainHook2[A, B any](user, rt func(A, B)) func(A, B) {
	if user == nil {
		return rt
	}
	return func(a A, b B) { user(a, b); rt(a, b) }
}

// onNeighbour6 is onNeighbour for the stack's IPv6 neighbour cache
// (OnNeighbour6).
func (c *core) onNeighbour6(ip [16]byte, mac header.MAC) {
	if c.userNeighbr6 != nil {
		c.userNeighbr6(ip, mac)
	}
	if c.settling || c.n == 1 {
		return
	}
	c.neigh.learn(neighbourAddr{v6: ip, is6: true}, mac)
	c.replicate(neighbourAddr{v6: ip, is6: true}, mac)
}

// sendTo puts m on peer's ring from this core, or in the backlog behind
// what already waits there. Replication messages are refused when the
// backlog's room for them is used up; returns, calls and replies always
// fit.
func (c *core) sendTo(peer int, m message) bool {
	bl := c.backlog[peer]
	if len(bl) == 0 && c.peers[peer].From(c.id).Enqueue(m) {
		c.markNotify(peer)
		return true
	}
	if m.replication() && len(bl) >= cap(bl)-c.maxInFlight-2*c.calls.limit {
		return false
	}
	if len(bl) == cap(bl) {
		panic(fmt.Sprintf("core %d: backlog to core %d overflows (%d messages): more buffers away than forwards in flight", c.id, peer, len(bl)))
	}
	c.backlog[peer] = append(bl, m)
	c.backlogged++
	return true
}

// pushBacklog moves what it can of the backlog onto the peers' rings.
func (c *core) pushBacklog() {
	for peer, bl := range c.backlog {
		if len(bl) == 0 {
			continue
		}
		k := c.peers[peer].From(c.id).EnqueueBatch(bl)
		if k == 0 {
			continue
		}
		rest := copy(bl, bl[k:])
		clear(bl[rest:])
		c.backlog[peer] = bl[:rest]
		c.backlogged -= k
		c.markNotify(peer)
	}
}

func (c *core) markNotify(peer int) {
	c.notify[peer] = true
	c.notifyAny = true
}

// ringPeers wakes the peers this iteration sent to: one atomic load each
// while they are awake.
func (c *core) ringPeers() {
	for peer, ring := range c.notify {
		if ring {
			c.peers[peer].Notify()
			c.notify[peer] = false
		}
	}
	c.notifyAny = false
}

// publish refreshes the counters from the stack and the queues and
// publishes them.
func (c *core) publish() {
	v := &c.counters.Values
	d := c.counters.Drops
	nicDrops := d[stack.NumDropReasons:]
	clear(nicDrops)
	var rxp, rxb, txp, txb uint64
	sys := c.syscalls + c.polls.polls + c.bell.Wakeups()
	for _, q := range c.queues {
		qc := q.Counters()
		sys += qc.Syscalls
		rxp += qc.RxPackets
		rxb += qc.RxBytes
		txp += qc.TxPackets
		txb += qc.TxBytes
		for r, x := range qc.Drops {
			nicDrops[r] += x
		}
	}
	v[RxPackets], v[RxBytes], v[TxPackets], v[TxBytes] = rxp, rxb, txp, txb
	v[Syscalls] = sys
	if c.st != nil {
		st := c.st.Stats()
		copy(d, st.Drops[:])
		v[IPv6PacketsOut], v[NeighbourSolicitsSent], v[NeighbourAdvertsSent] = st.IPv6PacketsOut, st.NeighbourSolicitsSent, st.NeighbourAdvertsSent
		v[ICMPErrorsDelivered], v[DuplicateAddresses6] = st.ICMPErrorsDelivered, st.DuplicateAddresses6
		t := c.st.TCPStats()
		v[TCPActiveOpens], v[TCPPassiveOpens], v[TCPRetransmits] = t.ActiveOpens, t.PassiveOpens, t.Retransmits
		v[TCPEstablished], v[TCPTimeWait] = t.Established, t.TimeWait
		v[TCPSYNCookiesSent], v[TCPSYNCookiesValid], v[TCPSYNQueueDrops] = t.SYNCookiesSent, t.SYNCookiesValid, t.SYNQueueDrops
		v[TCPChallengeACKs], v[TCPResetsSent] = t.ChallengeACKs, t.ResetsSent
		v[TCPConnections] = uint64(c.st.TCPConnCount())
		v[TCPRingBytes], v[TCPFinWait2Timeouts], v[TCPZeroWindowAborts] = t.RingBytes, t.FinWait2Timeouts, t.ZeroWindowAborts
		v[TCPAbortOnData], v[TCPTimeWaitRecycled], v[TCPTxQueueWaits] = t.AbortOnData, t.TimeWaitRecycled, t.TxQueueWaits
		v[TCPInvalidACKsSkipped], v[TCPChallengeACKsOverBudget], v[TCPCookieACKsNoOverflow] = t.InvalidACKsSkipped, t.ChallengeACKsOverBudget, t.CookieACKsNoOverflow
		v[TCPMemoryPressure] = t.MemoryPressure
		v[TCPDSACKsSent], v[TCPDSACKsReceived] = t.DSACKsSent, t.DSACKsReceived
		v[TCPDSACKUndos], v[TCPEifelUndos], v[TCPFRTOUndos] = t.DSACKUndos, t.EifelUndos, t.FRTOUndos
	}
	d[stack.DropNoBuffer] += c.forwardNoBuffer
	c.pub.Publish(&c.counters)
	c.calls.publish()
}

// settle stops the core once the runtime is stopping. It takes no more
// frames and makes no more forwards, but keeps draining its mailbox until
// every core has stopped forwarding, every forwarded packet it received
// has gone home and every buffer it forwarded has come back, so that no
// buffer is left at a core that is not its owner. Calls still queued run.
func (c *core) settle() {
	c.settling = true
	c.dropReplicationBacklog()
	c.st.Flush(c.send)
	c.rt.settled.Add(1)
	for {
		c.iclock.now = c.clock.Now()
		if !c.calls.settled && c.calls.total == 0 {
			// It makes no more calls: once every core says so, no call
			// or reply is left in any ring or backlog.
			c.calls.settled = true
			c.rt.callsSettled.Add(1)
		}
		all := c.rt.settled.Load() == int32(c.n) && c.rt.callsSettled.Load() == int32(c.n)
		n := c.mbox.Drain(c.mboxBudget, c.onMsg)
		if c.backlogged > 0 {
			c.pushBacklog()
		}
		if c.notifyAny {
			c.ringPeers()
		}
		if all && n == 0 && c.backlogged == 0 && c.inFlight == 0 {
			break
		}
		if n == 0 {
			c.bell.PrepareSleep()
			if c.mbox.Pending() {
				c.bell.CancelSleep()
				continue
			}
			if _, err := c.bell.Wait(sleepRetry); err != nil && c.err == nil {
				c.err = fmt.Errorf("core %d: settle: %w", c.id, err)
			}
		}
	}
	c.st.Flush(c.send)
	clear(c.drained)
	c.publish()
}

// dropReplicationBacklog keeps only returns, calls and replies in the
// backlog: a peer that has settled may leave before a replication message
// reaches it.
func (c *core) dropReplicationBacklog() {
	for peer, bl := range c.backlog {
		kept := bl[:0]
		for _, m := range bl {
			if !m.replication() {
				kept = append(kept, m)
			}
		}
		clear(bl[len(kept):])
		c.backlogged -= len(bl) - len(kept)
		c.backlog[peer] = kept
	}
}

// iterationClock is a clock that reads what its core last set: the core's
// own clock at the start of the current loop iteration. Only the core
// reads and sets it.
type iterationClock struct{ now int64 }

// Now returns the time of the current loop iteration.
func (c *iterationClock) Now() int64 { return c.now }
