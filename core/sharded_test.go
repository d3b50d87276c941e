package core

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/stack"
)

// tally is the per-core state of the tests: a core's own counts, touched
// only on that core.
type tally struct {
	core  int
	tid   int // the thread it was built on
	sum   uint64
	calls uint64
}

// add is a call's argument: who asks, and what to add.
type add struct {
	from  int
	delta uint64
	next  int // calls left in a chain (TestCallChainsAcrossCoresUnderRace)
}

// added is a call's result: the tally's sum after the add, and where it ran.
type added struct {
	sum       uint64
	core, tid int
}

func serveAdd(t *tally, a *add, r *added) {
	t.sum += a.delta
	t.calls++
	r.sum, r.core, r.tid = t.sum, t.core, threadID()
}

// startCalls starts a runtime of two cores on a mem NIC, pinned to two
// CPUs when the process has them, and builds a tally per core.
func startCalls(t testing.TB, tweak func(*Config)) (*Runtime, *Sharded[tally]) {
	t.Helper()
	w := newWire(t, 2)
	rt := start(t, w.NIC(0), addrA, func(cfg *Config) {
		cfg.Cores = 2
		if set, err := affinity.AllowedCPUs(); err == nil && set.Count() >= 2 {
			cfg.Pin = true
		}
		if tweak != nil {
			tweak(cfg)
		}
	})
	sh, err := NewSharded(ctxT(t), rt, func(core int) *tally { return &tally{core: core, tid: threadID()} })
	if err != nil {
		t.Fatal(err)
	}
	return rt, sh
}

// onCore runs fn on core and waits for it.
func onCore(t testing.TB, rt *Runtime, core int, fn func()) {
	t.Helper()
	if err := rt.DoWait(ctxT(t), core, func(*stack.Stack) { fn() }); err != nil {
		t.Fatal(err)
	}
}

func TestShardedBuildsEachValueOnItsCore(t *testing.T) {
	rt, sh := startCalls(t, nil)
	for c := range sh.NumCores() {
		if got := sh.Local(c); got.core != c || got.tid != rt.cores[c].tid {
			t.Errorf("core %d: value of core %d built on thread %d, want thread %d", c, got.core, got.tid, rt.cores[c].tid)
		}
	}
}

func TestCallServesOnTargetCoreAndContinuesOnCaller(t *testing.T) {
	rt, sh := startCalls(t, nil)
	type outcome struct {
		res      added
		doneTid  int
		doneCore int
	}
	got := make(chan outcome, 1)
	call := NewCall(sh, serveAdd, func(a *add, r *added) {
		got <- outcome{res: *r, doneTid: threadID(), doneCore: a.from}
	})
	onCore(t, rt, 0, func() {
		if err := call.Go(0, 1, add{from: 0, delta: 5}); err != nil {
			t.Error(err)
		}
	})
	select {
	case o := <-got:
		if o.res.core != 1 || o.res.tid != rt.cores[1].tid {
			t.Errorf("served by core %d on thread %d, want core 1 on thread %d", o.res.core, o.res.tid, rt.cores[1].tid)
		}
		if o.doneTid != rt.cores[0].tid {
			t.Errorf("continuation ran on thread %d, want core 0's thread %d", o.doneTid, rt.cores[0].tid)
		}
		if o.res.sum != 5 {
			t.Errorf("sum %d, want 5", o.res.sum)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no continuation")
	}
	waitFor(t, 5*time.Second, func() string { return "published call counters" }, func() bool {
		return rt.CallCounters(0).Sent[1] == 1 && rt.CallCounters(1).Received[0] == 1
	})
}

func TestCallToOwnCoreRunsInlineBeforeSendReturns(t *testing.T) {
	rt, sh := startCalls(t, nil)
	var order []string
	call := NewCall(sh, func(tl *tally, a *add, r *added) {
		order = append(order, "serve")
		serveAdd(tl, a, r)
	}, func(a *add, r *added) { order = append(order, "done") })
	onCore(t, rt, 1, func() {
		r, err := call.Reserve(1, 1)
		if err != nil {
			t.Error(err)
			return
		}
		r.Arg = add{from: 1, delta: 2}
		call.Send(r)
		order = append(order, "returned")
	})
	if strings.Join(order, ",") != "serve,done,returned" {
		t.Fatalf("order %v, want serve, done, returned", order)
	}
	waitFor(t, 5*time.Second, func() string { return "inline counted" }, func() bool {
		c := rt.CallCounters(1)
		return c.Sent[1] == 1 && c.Received[1] == 1
	})
}

// TestCallsBeyondTheBoundAreRefusedAndWaitersWakeOnCompletion fills the
// bound of calls in flight from core 0 to core 1 inside one function on
// core 0 (no reply can arrive meanwhile), checks that the next call is
// refused and counted, then that a queued waiter runs once replies come
// back, and that every accepted call completed.
func TestCallsBeyondTheBoundAreRefusedAndWaitersWakeOnCompletion(t *testing.T) {
	const limit = 4
	rt, sh := startCalls(t, func(cfg *Config) { cfg.MaxCallsInFlight = limit })
	var completed atomic.Int64
	call := NewCall(sh, serveAdd, func(*add, *added) { completed.Add(1) })
	woke := make(chan int, 1)
	//lint:ignore S1021 the function refers to w, so w must exist first
	var w *Waiter
	w = NewWaiter(func() {
		// On core 0, with room: the refused call goes now.
		if err := call.Go(0, 1, add{delta: 100}); err != nil {
			t.Errorf("call after wake-up: %v", err)
		}
		woke <- rt.cores[0].calls.inFlight[1]
	})
	accepted := 0
	onCore(t, rt, 0, func() {
		for {
			err := call.Go(0, 1, add{delta: 1})
			if errors.Is(err, ErrBusy) {
				break
			}
			if err != nil {
				t.Error(err)
				return
			}
			accepted++
		}
		if !rt.WhenRoom(0, 1, w) {
			t.Error("WhenRoom found room at the bound")
		}
		if rt.WhenRoom(0, 0, w) || !w.Queued() {
			t.Error("a call to self is never refused; the waiter stays queued for core 1")
		}
	})
	if accepted != limit {
		t.Fatalf("accepted %d calls, want the bound %d", accepted, limit)
	}
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter never woke")
	}
	waitFor(t, 5*time.Second, func() string { return "every accepted call completed" }, func() bool { return completed.Load() == limit+1 })
	var sum uint64
	onCore(t, rt, 1, func() { sum = sh.Local(1).sum })
	if sum != limit+100 {
		t.Fatalf("core 1's sum %d, want %d: an accepted call was lost", sum, limit+100)
	}
	waitFor(t, 5*time.Second, func() string { return "back-pressure counted" }, func() bool {
		c := rt.CallCounters(0)
		return c.Busy[1] == 1 && c.HighWater[1] == limit && c.Sent[1] == limit+1 && c.InFlight[1] == 0
	})
}

func TestWaiterCancelLeavesTheQueue(t *testing.T) {
	rt, sh := startCalls(t, func(cfg *Config) { cfg.MaxCallsInFlight = 1 })
	ran := make(chan struct{}, 2)
	call := NewCall(sh, serveAdd, nil)
	a, b := NewWaiter(func() { ran <- struct{}{} }), NewWaiter(func() { t.Error("cancelled waiter ran") })
	onCore(t, rt, 0, func() {
		if err := call.Go(0, 1, add{delta: 1}); err != nil {
			t.Error(err)
		}
		rt.WhenRoom(0, 1, b)
		rt.WhenRoom(0, 1, a)
		b.Cancel()
		if b.Queued() || !a.Queued() {
			t.Error("Cancel: wrong waiter left the queue")
		}
	})
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter never woke")
	}
}

func TestReleaseGivesBackTheRoom(t *testing.T) {
	rt, sh := startCalls(t, func(cfg *Config) { cfg.MaxCallsInFlight = 1 })
	call := NewCall(sh, serveAdd, nil)
	onCore(t, rt, 0, func() {
		r, err := call.Reserve(0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call.Reserve(0, 1); !errors.Is(err, ErrBusy) {
			t.Errorf("second reserve: %v, want ErrBusy", err)
		}
		call.Release(r)
		r, err = call.Reserve(0, 1)
		if err != nil {
			t.Errorf("reserve after release: %v", err)
			return
		}
		call.Release(r)
	})
	if _, err := call.Reserve(0, 2); !errors.Is(err, ErrNoSuchCore) {
		t.Errorf("reserve for core 2 of 2: %v, want ErrNoSuchCore", err)
	}
}

func TestWaitRunsOnTargetFromAGoroutine(t *testing.T) {
	rt, sh := startCalls(t, nil)
	call := NewCall(sh, serveAdd, func(*add, *added) { t.Error("Wait ran the continuation") })
	for i := range 10 {
		var r added
		if err := call.Wait(ctxT(t), i%2, &add{delta: 3}, &r); err != nil {
			t.Fatal(err)
		}
		if r.core != i%2 || r.tid != rt.cores[i%2].tid {
			t.Fatalf("served by core %d thread %d, want core %d thread %d", r.core, r.tid, i%2, rt.cores[i%2].tid)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context either refuses the call or waits for it: it
	// never returns while the core may still write the result.
	var r added
	if err := call.Wait(ctx, 0, &add{delta: 1}, &r); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
	if err := call.Wait(ctxT(t), 5, &add{}, &r); !errors.Is(err, ErrNoSuchCore) {
		t.Fatalf("Wait on core 5: %v, want ErrNoSuchCore", err)
	}
	waitFor(t, 5*time.Second, func() string { return "calls from app counted" }, func() bool {
		return rt.CallCounters(0).Received[2] >= 5 && rt.CallCounters(1).Received[2] == 5
	})
	stop(t, rt)
	if err := call.Wait(ctxT(t), 0, &add{}, &r); !errors.Is(err, ErrStopped) {
		t.Fatalf("Wait after Stop: %v, want ErrStopped", err)
	}
}

// TestCallChainsAcrossCoresUnderRace runs chains of calls both ways at
// once, each continuation making the next call of its chain, with rings
// small enough that calls and replies wait in the backlogs, and checks
// that every call arrived exactly once. Run it with -race.
func TestCallChainsAcrossCoresUnderRace(t *testing.T) {
	const chains, length = 64, 200
	rt, sh := startCalls(t, func(cfg *Config) {
		cfg.PeerRing = 8
		cfg.MaxCallsInFlight = 32
	})
	var finished atomic.Int64
	var refused [2]int // per calling core, touched on that core only
	var call *Call[tally, add, added]
	waiters := [2]*Waiter{}
	pending := [2][]add{} // chains refused, per calling core
	resume := func(core int) {
		for len(pending[core]) > 0 {
			a := pending[core][0]
			if err := call.Go(core, 1-core, a); err != nil {
				rt.WhenRoom(core, 1-core, waiters[core])
				return
			}
			pending[core] = pending[core][1:]
		}
	}
	for c := range 2 {
		waiters[c] = NewWaiter(func() { resume(c) })
	}
	call = NewCall(sh, serveAdd, func(a *add, r *added) {
		if a.next == 0 {
			finished.Add(1)
			return
		}
		next := add{from: a.from, delta: a.delta, next: a.next - 1}
		if err := call.Go(a.from, 1-a.from, next); err != nil {
			refused[a.from]++
			pending[a.from] = append(pending[a.from], next)
			rt.WhenRoom(a.from, 1-a.from, waiters[a.from])
		}
	})
	for c := range 2 {
		if err := rt.Do(c, func(*stack.Stack) {
			for range chains {
				a := add{from: c, delta: 1, next: length - 1}
				if err := call.Go(c, 1-c, a); err != nil {
					pending[c] = append(pending[c], a)
					rt.WhenRoom(c, 1-c, waiters[c])
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, func() string { return "chains finished" }, func() bool { return finished.Load() == 2*chains })
	for c := range 2 {
		var got tally
		onCore(t, rt, c, func() { got = *sh.Local(c) })
		if got.calls != chains*length || got.sum != chains*length {
			t.Errorf("core %d served %d calls summing %d, want %d", c, got.calls, got.sum, chains*length)
		}
	}
	waitFor(t, 5*time.Second, func() string { return "counters" }, func() bool {
		c0, c1 := rt.CallCounters(0), rt.CallCounters(1)
		return c0.Sent[1] == chains*length && c1.Received[0] == chains*length && c0.HighWater[1] <= 32
	})
	t.Logf("refused (back-pressure) %d and %d", refused[0], refused[1])
}

// TestStopCompletesCallsInFlight stops the runtime while chains of calls
// run both ways, each continuation making the next call until the runtime
// refuses it: every accepted call is served and its continuation runs
// before the cores leave.
func TestStopCompletesCallsInFlight(t *testing.T) {
	rt, sh := startCalls(t, func(cfg *Config) { cfg.PeerRing = 4 })
	var completed, accepted, stopped atomic.Int64
	var call *Call[tally, add, added]
	call = NewCall(sh, serveAdd, func(a *add, _ *added) {
		completed.Add(1)
		switch err := call.Go(a.from, 1-a.from, *a); {
		case err == nil:
			accepted.Add(1)
		case errors.Is(err, ErrStopped):
			stopped.Add(1)
		}
	})
	for c := range 2 {
		onCore(t, rt, c, func() {
			for range 100 {
				if call.Go(c, 1-c, add{from: c, delta: 1}) == nil {
					accepted.Add(1)
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	stop(t, rt)
	if stopped.Load() == 0 || completed.Load() != accepted.Load() {
		t.Fatalf("%d calls accepted, %d completed, %d refused by the stop", accepted.Load(), completed.Load(), stopped.Load())
	}
	if s0, s1 := sh.Local(0).calls, sh.Local(1).calls; int64(s0+s1) != accepted.Load() {
		t.Fatalf("served %d+%d calls of %d", s0, s1, accepted.Load())
	}
	t.Logf("%d calls before the stop", accepted.Load())
}

// TestCallsInSteadyStateDoNotAllocate makes rounds of cross-core and
// inline calls from core 0 and counts the heap allocations of the whole
// process per round.
func TestCallsInSteadyStateDoNotAllocate(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and the mkstackdebug buffer checks allocate")
	}
	const perRound = 100
	rt, sh := startCalls(t, nil)
	var call *Call[tally, add, added]
	left := 0
	round := make(chan struct{}, 1)
	call = NewCall(sh, serveAdd, func(a *add, r *added) {
		if left--; left == 0 {
			round <- struct{}{}
		}
	})
	kick := func(*stack.Stack) {
		left = perRound
		for i := range perRound {
			if err := call.Go(0, i%2, add{delta: 1}); err != nil {
				panic(err)
			}
		}
	}
	run := func() {
		if err := rt.Do(0, kick); err != nil {
			panic(err)
		}
		<-round
	}
	for range 50 {
		run() // warm up: slots, backlogs, the published counters
	}
	allocs := testing.AllocsPerRun(200, run)
	t.Logf("%.2f allocations per round of %d calls", allocs, perRound)
	if allocs > 0 {
		t.Fatalf("%.2f heap allocations per round of %d calls: calls allocate", allocs, perRound)
	}
}

func TestWaitInSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and the mkstackdebug buffer checks allocate")
	}
	rt, sh := startCalls(t, nil)
	_ = rt
	call := NewCall(sh, serveAdd, nil)
	ctx := context.Background()
	var a add
	var r added
	run := func() {
		a.delta = 1
		if err := call.Wait(ctx, 1, &a, &r); err != nil {
			panic(err)
		}
	}
	for range 20 {
		run()
	}
	if allocs := testing.AllocsPerRun(200, run); allocs > 0 {
		t.Fatalf("%.2f heap allocations per Wait", allocs)
	}
}

func TestCallCountersInTheRuntimesCollector(t *testing.T) {
	rt, sh := startCalls(t, func(cfg *Config) { cfg.CPUs = nil; cfg.Pin = false })
	call := NewCall(sh, serveAdd, nil)
	onCore(t, rt, 0, func() {
		for range 3 {
			call.Go(0, 1, add{delta: 1})
		}
		call.Go(0, 0, add{delta: 1})
	})
	var r added
	if err := call.Wait(ctxT(t), 1, &add{}, &r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() string { return "published" }, func() bool {
		c0, c1 := rt.CallCounters(0), rt.CallCounters(1)
		return c1.Received[0] == 3 && c1.Received[2] == 1 && c0.Sent[1] == 3 && c0.Received[0] == 1 && c0.HighWater[1] == 3 && c0.InFlight[1] == 0
	})
	reg := prometheus.NewRegistry()
	if err := rt.Register(reg); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP mkstack_calls_received_total Cross-core calls the peer (a core, or app for application goroutines) made to this core.
# TYPE mkstack_calls_received_total counter
mkstack_calls_received_total{core="0",cpu="any",peer="0"} 1
mkstack_calls_received_total{core="0",cpu="any",peer="1"} 0
mkstack_calls_received_total{core="0",cpu="any",peer="app"} 0
mkstack_calls_received_total{core="1",cpu="any",peer="0"} 3
mkstack_calls_received_total{core="1",cpu="any",peer="1"} 0
mkstack_calls_received_total{core="1",cpu="any",peer="app"} 1
# HELP mkstack_calls_sent_total Cross-core calls this core made to the peer core (peer = core: calls run inline).
# TYPE mkstack_calls_sent_total counter
mkstack_calls_sent_total{core="0",cpu="any",peer="0"} 1
mkstack_calls_sent_total{core="0",cpu="any",peer="1"} 3
mkstack_calls_sent_total{core="1",cpu="any",peer="0"} 0
mkstack_calls_sent_total{core="1",cpu="any",peer="1"} 0
# HELP mkstack_calls_in_flight_high_water Most calls this core had in flight to the peer core at once.
# TYPE mkstack_calls_in_flight_high_water gauge
mkstack_calls_in_flight_high_water{core="0",cpu="any",peer="0"} 0
mkstack_calls_in_flight_high_water{core="0",cpu="any",peer="1"} 3
mkstack_calls_in_flight_high_water{core="1",cpu="any",peer="0"} 0
mkstack_calls_in_flight_high_water{core="1",cpu="any",peer="1"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"mkstack_calls_received_total", "mkstack_calls_sent_total", "mkstack_calls_in_flight_high_water"); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// BenchmarkCrossCoreCalls measures calls from core 0 to core 1 and back,
// in rounds of 100 in flight, per call.
func BenchmarkCrossCoreCalls(b *testing.B) {
	const perRound = 100
	rt, sh := startCalls(b, nil)
	var call *Call[tally, add, added]
	left := 0
	round := make(chan struct{}, 1)
	call = NewCall(sh, serveAdd, func(*add, *added) {
		if left--; left == 0 {
			round <- struct{}{}
		}
	})
	kick := func(*stack.Stack) {
		left = perRound
		for range perRound {
			if err := call.Go(0, 1, add{delta: 1}); err != nil {
				panic(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := rt.Do(0, kick); err != nil {
			b.Fatal(err)
		}
		<-round
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRound), "ns/call")
}
