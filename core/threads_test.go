package core

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
	"golang.org/x/sys/unix"
)

// echoRound sends one datagram from each of ports client ports of b to a's
// echo server and waits for every reply.
func echoRound(t *testing.T, cl *client, a *Runtime, ports int) {
	t.Helper()
	before := cl.replies.Load()
	for i := range ports {
		cl.send(t, i, 1, 64)
	}
	cl.waitReplies(t, before+int64(ports), a)
}

// TestSharedThreadsServe runs both ends of the wire with their cores on
// the Go scheduler's threads from the start: the cores wait through Go's
// network poller, answer on the core RSS picks, and wake for their timers
// (ARP's resolution and retries run on them); they add no P to GOMAXPROCS.
func TestSharedThreadsServe(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	w := newWire(t, 2)
	shared := func(c *Config) { c.Threads = ThreadsShared }
	a := start(t, w.NIC(0), addrA, shared)
	b := start(t, w.NIC(1), addrB, shared)
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d with two runtimes of two cores on shared threads, want %d", got, before)
	}
	for _, rt := range []*Runtime{a, b} {
		if m := rt.ThreadMode(); m != ThreadsShared {
			t.Fatalf("ThreadMode %v, want shared", m)
		}
	}
	srv := serveEcho(t, a)
	cl := newClient(t, b, 16)
	echoRound(t, cl, a, 16)
	// Idle long enough that every core sleeps in the poller, then again:
	// a sleeping core must wake for its queue.
	time.Sleep(20 * time.Millisecond)
	echoRound(t, cl, a, 16)
	for c := range a.NumCores() {
		if srv.served[c].Load() == 0 {
			t.Errorf("core %d served nothing; RSS spreads 16 ports over both", c)
		}
		cc := a.CoreCounters(c)
		if n := cc.Get(AnswerWaits); n != 0 {
			t.Errorf("core %d waited %d times for an answer; its handlers answer as they run, and it should sleep", c, n)
		}
		if cc.Get(IdleSleeps) == 0 || cc.Get(Wakeups) == 0 {
			t.Errorf("core %d: %d sleeps, %d wake-ups; a core on shared threads sleeps in the poller and wakes from it",
				c, cc.Get(IdleSleeps), cc.Get(Wakeups))
		}
	}
	if bad := cl.bad.Load(); bad != 0 {
		t.Fatalf("%d replies carried another port's payload", bad)
	}
}

// TestShareThreadsMovesPinnedCores starts pinned cores (ThreadsAuto) and
// moves them with ShareThreads: they go on serving, count the move, give
// back the Ps Start added, and their threads are unpinned and unlocked.
// A thread still locked to a goroutine dies with it, so a core thread that
// outlives the stopped runtime was handed back to the Go scheduler.
func TestShareThreadsMovesPinnedCores(t *testing.T) {
	requireTwoCPUs(t)
	before := runtime.GOMAXPROCS(0)
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	w := newWire(t, 2)
	a := start(t, w.NIC(0), addrA, func(c *Config) { c.Pin = true })
	b := start(t, w.NIC(1), addrB, nil)
	if m := a.ThreadMode(); m != ThreadsPinned {
		t.Fatalf("ThreadMode %v before ShareThreads, want pinned", m)
	}
	if got := runtime.GOMAXPROCS(0); got != before+4 {
		t.Fatalf("GOMAXPROCS %d with two pinned runtimes of two cores, want %d", got, before+4)
	}
	srv := serveEcho(t, a)
	cl := newClient(t, b, 16)
	echoRound(t, cl, a, 16)
	var tids []int
	for _, c := range a.cores {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(c.tid, &set); err != nil {
			t.Fatal(err)
		}
		if set.Count() != 1 || !set.IsSet(c.cpu) {
			t.Fatalf("core %d's thread runs on %v, want only its CPU %d", c.id, affinity.ListCPUs(set), c.cpu)
		}
		tids = append(tids, c.tid)
	}

	time.Sleep(20 * time.Millisecond) // the cores sleep: ShareThreads must wake them
	if err := a.ShareThreads(); err != nil {
		t.Fatal(err)
	}
	if m := a.ThreadMode(); m != ThreadsShared {
		t.Fatalf("ThreadMode %v after ShareThreads, want shared", m)
	}
	if got := runtime.GOMAXPROCS(0); got != before+2 {
		t.Errorf("GOMAXPROCS %d after one runtime shared its threads, want %d (the pinned one's two)", got, before+2)
	}
	for _, tid := range tids {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			t.Fatal(err)
		}
		if set != orig {
			t.Errorf("thread %d runs on %v after ShareThreads, want the set it had before pinning, %v",
				tid, affinity.ListCPUs(set), affinity.ListCPUs(orig))
		}
	}
	waitFor(t, 2*time.Second, func() string { return "every core to count its move" }, func() bool {
		for c := range a.NumCores() {
			if a.CoreCounters(c).Get(ThreadMoves) != 1 {
				return false
			}
		}
		return true
	})
	echoRound(t, cl, a, 16)
	time.Sleep(20 * time.Millisecond)
	echoRound(t, cl, a, 16)
	for c := range a.NumCores() {
		if srv.served[c].Load() == 0 {
			t.Errorf("core %d served nothing", c)
		}
	}
	if err := a.ShareThreads(); err != nil {
		t.Errorf("a second ShareThreads: %v", err)
	}
	if got := runtime.GOMAXPROCS(0); got != before+2 {
		t.Errorf("GOMAXPROCS %d after a second ShareThreads, want %d", got, before+2)
	}

	stop(t, a)
	time.Sleep(10 * time.Millisecond)
	for _, tid := range tids {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); errors.Is(err, os.ErrNotExist) {
			t.Errorf("core thread %d ended with its goroutine: it was still locked to it", tid)
		}
	}
	if got := runtime.GOMAXPROCS(0); got != before+2 {
		t.Errorf("GOMAXPROCS %d after the shared runtime stopped, want %d (the pinned one's two remain)", got, before+2)
	}
}

// TestThreadsPinnedStayPinned: ShareThreads does nothing to a runtime
// started with ThreadsPinned.
func TestThreadsPinnedStayPinned(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	w := newWire(t, 1)
	a := start(t, w.NIC(0), addrA, func(c *Config) { c.Threads = ThreadsPinned })
	if err := a.ShareThreads(); err != nil {
		t.Fatal(err)
	}
	if m := a.ThreadMode(); m != ThreadsPinned {
		t.Errorf("ThreadMode %v, want pinned", m)
	}
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Errorf("GOMAXPROCS %d, want %d: a pinned core keeps the P Start added", got, before+1)
	}
	if n := a.CoreCounters(0).Get(ThreadMoves); n != 0 {
		t.Errorf("%d thread moves, want 0", n)
	}
}

func TestParseThreads(t *testing.T) {
	for _, m := range []Threads{ThreadsAuto, ThreadsPinned, ThreadsShared} {
		got, err := ParseThreads(m.String())
		if err != nil || got != m {
			t.Errorf("ParseThreads(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseThreads("spinning"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ParseThreads(spinning): %v, want ErrInvalidConfig", err)
	}
	w := newWire(t, 1)
	_, err := Start(Config{NIC: w.NIC(0), Threads: Threads(7), StackConfig: func(int) stack.Config {
		return stack.Config{Addr: prefixA}
	}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Start with Threads(7): %v, want ErrInvalidConfig", err)
	}
}

// TestSharedThreadsSleepAndWakeWithoutAllocating: cores on shared threads
// that sleep in Go's network poller between requests and wake for each
// (a doorbell, then the queue) allocate nothing per round.
func TestSharedThreadsSleepAndWakeWithoutAllocating(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and the mkstackdebug buffer checks allocate")
	}
	w := newWire(t, 1)
	shared := func(c *Config) { c.Threads = ThreadsShared }
	a := start(t, w.NIC(0), addrA, shared)
	b := start(t, w.NIC(1), addrB, shared)
	serveEcho(t, a)
	cl := newClient(t, b, 1)
	echoRound(t, cl, a, 1) // ARP
	payload := make([]byte, 64)
	port := clientBase
	payload[0], payload[1] = byte(port>>8), byte(port)
	send := func(*stack.Stack) { cl.eps[0][0].SendTo(payload, addrA, echoPort) }
	round := func() {
		want := cl.replies.Load() + 1
		if err := b.Do(0, send); err != nil {
			t.Fatal(err)
		}
		for cl.replies.Load() < want {
			time.Sleep(50 * time.Microsecond)
		}
	}
	for range 200 {
		round()
	}
	sleeps0 := a.CoreCounters(0).Get(IdleSleeps)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const rounds = 2000
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&m1)
	mallocs := m1.Mallocs - m0.Mallocs
	t.Logf("%d mallocs over %d rounds", mallocs, rounds)
	if mallocs > 20 {
		t.Fatalf("%d heap allocations over %d rounds of sleep and wake-up", mallocs, rounds)
	}
	waitFor(t, time.Second, func() string { return "the server core's sleeps to be published" }, func() bool {
		return a.CoreCounters(0).Get(IdleSleeps)-sleeps0 >= rounds/2
	})
}

// TestSharedWaitIsCapped: a core on shared threads never waits longer
// than sharedWaitCap, even with no timer (a wake-up the poller never
// delivers then costs at most the cap), and a descriptor that becomes
// ready wakes it at once.
func TestSharedWaitIsCapped(t *testing.T) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	p := newPollSet([]int{efd})
	if err := p.share(); err != nil {
		t.Fatal(err)
	}
	defer p.close()
	start := time.Now()
	n, err := p.wait(-1)
	if took := time.Since(start); err != nil || n != 0 || took < sharedWaitCap/2 || took > sharedWaitCap+time.Second {
		t.Fatalf("an idle wait with no timeout: %d ready, %v, after %v; want 0 after about %v", n, err, took, sharedWaitCap)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()
	start = time.Now()
	n, err = p.wait(-1)
	if took := time.Since(start); err != nil || n != 1 || !p.ready(0) || took > sharedWaitCap/2 {
		t.Fatalf("a wait the descriptor ends: %d ready, %v, after %v; want 1 at once", n, err, took)
	}
	if p.misses != 0 {
		t.Errorf("%d misses counted where the poller woke the wait", p.misses)
	}
}

// TestSharedCoreYieldsWhenBusy: a core on shared threads that always finds
// work lets the application's goroutines run every sharedBusyYield. With
// one P, a goroutine whose timer falls due while the core works through
// 10 ms of datagrams runs after the burst at hand (64 datagrams, 1.3 ms),
// well before the core is through the backlog, not at Go's 10 ms
// preemption or after the backlog.
func TestSharedCoreYieldsWhenBusy(t *testing.T) {
	if raceEnabled {
		t.Skip("timing under the race detector says nothing")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const perDatagram = 20 * time.Microsecond
	w := newWire(t, 1)
	var handled atomic.Int64
	a := start(t, w.NIC(0), addrA, func(c *Config) {
		c.Threads = ThreadsShared
		c.OnStart = func(s *stack.Stack) {
			s.BindUDP(9, stack.UDPOptions{Handler: func(*stack.UDPEndpoint, []byte, [4]byte, uint16) {
				for start := time.Now(); time.Since(start) < perDatagram; {
				}
				handled.Add(1)
			}})
		}
	})
	frame := frametest.UDP4{SrcMAC: [6]byte{2, 0, 0, 0, 0, 2}, DstMAC: [6]byte{2, 0, 0, 0, 0, 1}, Src: addrB, Dst: addrA, SrcPort: 4000, DstPort: 9, Payload: make([]byte, 22)}.Frame()
	q := w.NIC(1).Queue(0)
	bufs := make([]*nicq.Buf, 64)
	queued := 0
	for queued < mem.DefaultRingSize {
		k := q.Pool().GetBatch(bufs[:min(len(bufs), mem.DefaultRingSize-queued)])
		for _, b := range bufs[:k] {
			copy(b.Append(len(frame)), frame)
		}
		took := q.Send(bufs[:k])
		nicq.FreeAll(bufs[took:k])
		queued += took
		if took < k {
			break // the core's receive ring is full
		}
	}
	if queued < mem.DefaultRingSize {
		t.Fatalf("the wire took %d datagrams, want %d (%v of work)", queued, mem.DefaultRingSize, mem.DefaultRingSize*perDatagram)
	}
	// This goroutine blocks now, and the core starts on the backlog.
	const nap = time.Millisecond
	due := time.Now().Add(nap)
	type woke struct {
		late time.Duration
		left int64
	}
	ran := make(chan woke)
	go func() {
		time.Sleep(nap)
		ran <- woke{time.Since(due), int64(queued) - handled.Load()}
	}()
	w0 := <-ran
	got, left := w0.late, w0.left
	// Judged by the work the core did before the goroutine ran, not by
	// the clock: on a loaded machine the kernel may hold the whole
	// process back for milliseconds, core and goroutine alike. Due after
	// 50 datagrams, it runs after the core's first burst or two (64
	// each); without the yield it ran after the whole backlog.
	if left < int64(queued)/2 {
		t.Errorf("a goroutine due 1 ms into the core's %d-datagram backlog ran %v late, with only %d datagrams still to handle", queued, got, left)
	}
	waitFor(t, 5*time.Second, func() string { return fmt.Sprintf("the backlog to be handled (%d of %d)", handled.Load(), queued) }, func() bool { return handled.Load() == int64(queued) })
	if n := a.CoreCounters(0).Get(BusyYields); n == 0 {
		t.Errorf("%d busy yields through %v of back-to-back work", n, time.Duration(queued)*perDatagram)
	}
	t.Logf("%d datagrams queued; the goroutine ran %v late with %d still to handle", queued, got, left)
}

// TestSharedCoreWaitsForTheAnswer: a core on shared threads that woke a
// goroutine for its answer (AwaitAnswer) yields instead of sleeping, so
// the answer comes while it is awake and needs no doorbell. Here a
// goroutine answers each datagram through Do, as a net.Conn writer's
// reply travels.
func TestSharedCoreWaitsForTheAnswer(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w := newWire(t, 1)
	shared := func(c *Config) { c.Threads = ThreadsShared }
	a := startGoroutineEcho(t, w.NIC(0), 1)
	b := start(t, w.NIC(1), addrB, shared)
	cl := newClient(t, b, 1)
	echoRound(t, cl, a, 1) // ARP resolved both ways
	const rounds = 200
	bell := a.cores[0].bell
	rings, waits := bell.Wakeups(), a.CoreCounters(0).Get(AnswerWaits)
	cl.budget.Store(rounds)
	before := cl.replies.Load()
	cl.send(t, 0, 1, 64)
	cl.waitReplies(t, before+rounds+1, a)
	rings = bell.Wakeups() - rings
	waits = a.CoreCounters(0).Get(AnswerWaits) - waits
	if rings > rounds/4 || waits == 0 {
		t.Errorf("%d round trips: the answers rang the core's doorbell %d times, and it waited for an answer %d times; want rings under %d", rounds, rings, waits, rounds/4)
	}
	t.Logf("%d round trips: %d doorbell rings, %d answer waits", rounds, rings, waits)

	// Between the round trips the core slept in Go's poller, and only a
	// wait that ran out looked at its descriptors with poll(2).
	var polls, misses uint64
	if err := a.DoWait(ctxT(t), 0, func(*stack.Stack) {
		polls, misses = a.cores[0].polls.polls, a.cores[0].polls.misses
	}); err != nil {
		t.Fatal(err)
	}
	sleeps := a.CoreCounters(0).Get(IdleSleeps)
	if sleeps < rounds || polls > misses+sleeps/100 {
		t.Errorf("%d sleeps made %d polls (%d waits ran out with work); want at least %d sleeps and a poll only for a wait that ran out", sleeps, polls, misses, rounds)
	}
}

// TestSharedCoresMissNoWakeUp: cores on shared threads, both ends, with
// the answers coming from goroutines, run thousands of round trips and
// never wait out sharedWaitCap for a wake-up the poller dropped. rc.Read
// forgets a readiness the poller recorded before it, so work that came
// between a core's re-check and its park was found only at the cap.
func TestSharedCoresMissNoWakeUp(t *testing.T) {
	requireTwoCPUs(t)
	w := newWire(t, 2)
	a := startGoroutineEcho(t, w.NIC(0), 2)
	b := start(t, w.NIC(1), addrB, func(c *Config) { c.Threads = ThreadsShared })
	const ports = 8
	cl := newClient(t, b, ports)
	echoRound(t, cl, a, ports)
	rounds := int64(40000)
	if testing.Short() {
		rounds = 10000
	}
	cl.budget.Store(rounds)
	before := cl.replies.Load()
	began := time.Now()
	for i := range ports {
		cl.send(t, i, 1, 64)
	}
	cl.waitReplies(t, before+rounds+ports, a)
	took := time.Since(began)
	var misses uint64
	for _, r := range []*Runtime{a, b} {
		for c := range r.NumCores() {
			misses += r.CoreCounters(c).Get(SharedWaitMisses)
		}
	}
	if misses != 0 {
		t.Errorf("%d round trips on 8 flows took %v, and cores found work only when a wait ran out %d times", rounds, took, misses)
	}
	t.Logf("%d round trips on 8 flows: %v", rounds, took)
}

// startGoroutineEcho starts a runtime on shared threads whose UDP echo
// port hands each datagram to one of answerers goroutines (calling
// AwaitAnswer), which sends the reply through Do: the path of a net.Conn
// reader's answer.
func startGoroutineEcho(t *testing.T, nic nicq.NIC, answerers int) *Runtime {
	t.Helper()
	type request struct {
		ep   *stack.UDPEndpoint
		p    []byte
		from [4]byte
		port uint16
		core int
	}
	requests := make(chan request, 256)
	var rt atomic.Pointer[Runtime]
	a := start(t, nic, addrA, func(c *Config) {
		c.Threads = ThreadsShared
		c.OnStart = func(s *stack.Stack) {
			core := s.Config().Core
			s.BindUDP(echoPort, stack.UDPOptions{Handler: func(ep *stack.UDPEndpoint, p []byte, from [4]byte, port uint16) {
				select {
				case requests <- request{ep, append([]byte(nil), p...), from, port, core}:
					rt.Load().AwaitAnswer(core)
				default:
					t.Error("the answering goroutines fell 256 requests behind")
				}
			}})
		}
	})
	rt.Store(a)
	// The goroutines end with the test; the channel stays open, since a
	// datagram still on the wire may reach the handler after that.
	done := make(chan struct{})
	for range answerers {
		go func() {
			for {
				select {
				case r := <-requests:
					a.Do(r.core, func(*stack.Stack) { r.ep.SendTo(r.p, r.from, r.port) })
				case <-done:
					return
				}
			}
		}()
	}
	t.Cleanup(func() { close(done) })
	return a
}

// lookingNIC wraps a NIC so that its queues count their Recv calls and say
// whether an empty look costs a read (nicq.ReadsToLook), as a TAP's does.
type lookingNIC struct {
	nicq.NIC
	reads bool
	recvs *atomic.Int64
}

func (n lookingNIC) Queue(i int) nicq.Queue { return lookingQueue{n.NIC.Queue(i), n.reads, n.recvs} }

type lookingQueue struct {
	nicq.Queue
	reads bool
	recvs *atomic.Int64
}

func (q lookingQueue) Recv(bufs []*nicq.Buf) int { q.recvs.Add(1); return q.Queue.Recv(bufs) }
func (q lookingQueue) ReadsToLook() bool         { return q.reads }

// TestAnswerWindowSkipsQueuesThatReadToLook: while a core on shared threads
// waits for its application's answer, it looks at its mailbox again and
// again; a queue whose empty look is a system call (a TAP's read) is left
// alone for those looks, one whose look is free (a ring in memory) is not.
// The same round trips as TestSharedCoreWaitsForTheAnswer, counting the
// receive calls per answer wait either way.
func TestAnswerWindowSkipsQueuesThatReadToLook(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	perWait := map[bool]float64{}
	for _, reads := range []bool{false, true} {
		var recvs atomic.Int64
		w := newWire(t, 1)
		a := startGoroutineEcho(t, lookingNIC{w.NIC(0), reads, &recvs}, 1)
		b := start(t, w.NIC(1), addrB, func(c *Config) { c.Threads = ThreadsShared })
		cl := newClient(t, b, 1)
		echoRound(t, cl, a, 1)
		const rounds = 200
		r0, w0 := recvs.Load(), a.CoreCounters(0).Get(AnswerWaits)
		cl.budget.Store(rounds)
		before := cl.replies.Load()
		cl.send(t, 0, 1, 64)
		cl.waitReplies(t, before+rounds+1, a)
		waits := a.CoreCounters(0).Get(AnswerWaits) - w0
		if waits == 0 {
			t.Fatalf("reads to look %v: no answer waits in %d round trips", reads, rounds)
		}
		perWait[reads] = float64(recvs.Load()-r0) / float64(waits)
		t.Logf("reads to look %v: %d receive calls over %d answer waits", reads, recvs.Load()-r0, waits)
	}
	// Each wait is one look, which calls Recv on a queue whose look is
	// free and skips one that reads: one receive call fewer per wait.
	if perWait[false]-perWait[true] < 0.8 {
		t.Errorf("receive calls per answer wait: %.2f for a queue that reads to look, %.2f for one that does not; want about one fewer", perWait[true], perWait[false])
	}
}
