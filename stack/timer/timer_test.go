package timer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// recorder is a set of timers whose callbacks append their index to fired.
type recorder struct {
	timers []Timer
	fired  []int
}

func newRecorder(n int) *recorder {
	r := &recorder{timers: make([]Timer, n)}
	for i := range r.timers {
		i := i
		r.timers[i].Init(func(*Timer) { r.fired = append(r.fired, i) })
	}
	return r
}

func (r *recorder) take() []int {
	f := r.fired
	r.fired = nil
	return f
}

func TestTimerNeverFiresBeforeItsDeadlineAndAtMostOneTickAfter(t *testing.T) {
	w := New(0, time.Millisecond)
	r := newRecorder(2)
	w.Schedule(&r.timers[0], 1500_000) // 1.5 ms: fires at the 2 ms boundary
	w.Schedule(&r.timers[1], 3*ms)     // on a boundary: fires at 3 ms
	if n := w.Advance(1999_999); n != 0 {
		t.Fatalf("fired %d before 2 ms", n)
	}
	if n := w.Advance(2 * ms); n != 1 || !slices.Equal(r.take(), []int{0}) {
		t.Fatalf("at 2 ms: fired %d", n)
	}
	if n := w.Advance(3*ms - 1); n != 0 {
		t.Fatalf("fired %d 1 ns before the 3 ms deadline", n)
	}
	if n := w.Advance(3 * ms); n != 1 || !slices.Equal(r.take(), []int{1}) {
		t.Fatalf("at 3 ms: fired %d", n)
	}
	if w.Len() != 0 || r.timers[0].Pending() || r.timers[1].Pending() {
		t.Fatal("timers still pending after firing")
	}
}

func TestTimerScheduledInThePastFiresAtTheNextTick(t *testing.T) {
	w := New(0, time.Millisecond)
	w.Advance(10*ms + 400_000) // 10.4 ms
	r := newRecorder(1)
	w.Schedule(&r.timers[0], 2*ms)
	if n := w.Advance(10*ms + 999_999); n != 0 {
		t.Fatalf("fired within the current tick")
	}
	if n := w.Advance(11 * ms); n != 1 {
		t.Fatalf("did not fire at the next tick")
	}
}

func TestTimersDueInTheSameTickFireInScheduleOrder(t *testing.T) {
	w := New(0, time.Millisecond)
	r := newRecorder(6)
	// Far timers first (they cascade down from level 2), then near ones
	// for the same tick, then a reschedule that moves 0 to the back.
	deadline := 5000 * ms
	w.Schedule(&r.timers[0], deadline)
	w.Schedule(&r.timers[1], deadline)
	w.Advance(4990 * ms)
	w.Schedule(&r.timers[2], deadline)
	w.Schedule(&r.timers[3], deadline-300_000) // same tick, earlier deadline
	w.Schedule(&r.timers[0], deadline)         // moved: now last
	w.Schedule(&r.timers[4], deadline+1)       // next tick
	w.Advance(6000 * ms)
	if got, want := r.take(), []int{1, 2, 3, 0, 4}; !slices.Equal(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
}

func TestTimerCascadesAcrossEveryLevelAndOverflow(t *testing.T) {
	// One timer in each level, one at the span's last tick (2^24-1), and
	// two past the span: one mid-slot, one on a span boundary.
	ticks := []int64{37, 64*5 + 3, 4096*7 + 64*2 + 1, 262144*9 + 4096 + 5, 1<<24*3 + 17, 1<<24 - 1, 1 << 25}
	w := New(0, time.Millisecond)
	r := newRecorder(len(ticks))
	for i, n := range ticks {
		w.Schedule(&r.timers[i], n*ms)
	}
	order := []int{0, 1, 2, 3, 5, 6, 4}
	for _, i := range order {
		n := ticks[i]
		if got := w.Advance((n-1)*ms + 999_999); got != 0 {
			t.Fatalf("before tick %d: fired %v", n, r.take())
		}
		if got := w.Advance(n * ms); got != 1 || r.take()[0] != i {
			t.Fatalf("at tick %d: fired %d, want timer %d", n, got, i)
		}
	}
}

func TestCallbackMayCancelATimerDueInTheSameTick(t *testing.T) {
	w := New(0, time.Millisecond)
	var a, b, c Timer
	var fired []string
	a.Init(func(*Timer) {
		fired = append(fired, "a")
		if !w.Cancel(&b) {
			t.Error("Cancel(b) from a's callback: b was not pending")
		}
	})
	b.Init(func(*Timer) { fired = append(fired, "b") })
	c.Init(func(*Timer) { fired = append(fired, "c") })
	w.Schedule(&a, 7*ms)
	w.Schedule(&b, 7*ms)
	w.Schedule(&c, 7*ms)
	w.Advance(100 * ms)
	if !slices.Equal(fired, []string{"a", "c"}) {
		t.Fatalf("fired %v, want [a c]", fired)
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d", w.Len())
	}
}

func TestPeriodicTimerReArmedFromItsCallbackKeepsCadenceInOneLongAdvance(t *testing.T) {
	w := New(0, time.Millisecond)
	var p Timer
	var at []int64
	p.Init(func(t *Timer) {
		at = append(at, w.Now())
		if !t.Pending() && len(at) < 1000 {
			w.Schedule(t, w.Now()+250*ms)
		}
	})
	w.Schedule(&p, 250*ms)
	if n := w.Advance(int64(time.Hour)); n != 1000 {
		t.Fatalf("fired %d times, want 1000", n)
	}
	for i, v := range at {
		if want := int64(i+1) * 250 * ms; v != want {
			t.Fatalf("firing %d at %d, want %d", i, v, want)
		}
	}
	if w.Now() != int64(time.Hour) {
		t.Fatalf("Now after Advance = %d", w.Now())
	}
}

func TestCallbackReschedulingItselfAtNowFiresOncePerTick(t *testing.T) {
	// A callback that re-arms for "now" must not spin inside Advance.
	w := New(0, time.Millisecond)
	var p Timer
	n := 0
	p.Init(func(t *Timer) { n++; w.Schedule(t, w.Now()) })
	w.Schedule(&p, 1*ms)
	w.Advance(10 * ms)
	if n != 10 {
		t.Fatalf("fired %d times over ticks 1..10, want 10", n)
	}
}

func TestAdvanceByHoursSkipsEmptySlots(t *testing.T) {
	w := New(0, time.Millisecond)
	r := newRecorder(1000)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range r.timers {
		w.Schedule(&r.timers[i], rng.Int64N(int64(10*time.Hour)))
	}
	fired := w.Advance(int64(10 * time.Hour))
	if fired != 1000 {
		t.Fatalf("fired %d, want 1000", fired)
	}
	// 36 million ticks went by; work is bounded by the occupied slots met
	// on the way: at most one step per timer per level, plus the overflow
	// visits (one per 2^24 ticks).
	if w.steps > 1000*Levels+3 {
		t.Fatalf("Advance did work at %d ticks for 1000 timers", w.steps)
	}
	w.steps = 0
	w.Advance(int64(100 * 365 * 24 * time.Hour))
	if w.steps != 0 {
		t.Fatalf("an idle century took %d steps", w.steps)
	}
}

func TestNextEventIsNeverAfterTheEarliestDeadline(t *testing.T) {
	w := New(0, time.Millisecond)
	if _, ok := w.NextEvent(); ok {
		t.Fatal("NextEvent on an empty wheel")
	}
	var a Timer
	a.Init(func(*Timer) {})
	w.Schedule(&a, 42*ms+1)
	if at, ok := w.NextEvent(); !ok || at != 43*ms {
		t.Fatalf("NextEvent = %d %v, want 43 ms", at, ok)
	}
	w.Schedule(&a, 10_000*ms)
	// Level 2: the cascade at 8192 ms comes first.
	if at, ok := w.NextEvent(); !ok || at > 10_000*ms || at != 8192*ms {
		t.Fatalf("NextEvent = %d, want 8192 ms", at)
	}
}

func TestAdvanceIgnoresTimeGoingBack(t *testing.T) {
	w := New(100*ms, time.Millisecond)
	r := newRecorder(1)
	w.Schedule(&r.timers[0], 50*ms) // before the start: next tick
	w.Advance(90 * ms)
	if w.Now() != 100*ms || !r.timers[0].Pending() {
		t.Fatal("Advance to the past moved the wheel")
	}
	if w.Advance(101*ms) != 1 {
		t.Fatal("timer before the start did not fire at the first tick")
	}
}

func TestCancelReportsWhetherPending(t *testing.T) {
	w := New(0, time.Millisecond)
	r := newRecorder(1)
	if w.Cancel(&r.timers[0]) {
		t.Fatal("Cancel of an idle timer returned true")
	}
	w.Schedule(&r.timers[0], 5*ms)
	if !w.Cancel(&r.timers[0]) || r.timers[0].Pending() || w.Len() != 0 {
		t.Fatal("Cancel of a pending timer")
	}
	if w.Advance(10*ms) != 0 {
		t.Fatal("a cancelled timer fired")
	}
}

// TestWheelMatchesSortedReference drives the wheel and a plain reference
// (the pending set, fired by (tick, schedule order)) with the same random
// operations, including operations done from inside callbacks, and checks
// that every firing is the one the reference expects, at the tick it
// expects.
func TestWheelMatchesSortedReference(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, 100000) })
	}
}

type refTimer struct {
	pending bool
	when    uint64
	seq     uint64
}

type model struct {
	t       *testing.T
	rng     *rand.Rand
	w       *Wheel
	timers  []Timer
	ref     []refTimer
	tick    int64
	origin  int64
	cur     uint64 // the reference's current tick
	seq     uint64
	target  uint64
	firings int
}

func runModel(t *testing.T, seed uint64, ops int) {
	m := &model{t: t, rng: rand.New(rand.NewPCG(seed, 99))}
	m.tick = []int64{ms, 1000, 3 * ms, 7}[seed%4]
	m.origin = m.rng.Int64N(1<<40) - 1<<39
	m.w = New(m.origin, time.Duration(m.tick))
	n := 48
	m.timers = make([]Timer, n)
	m.ref = make([]refTimer, n)
	for i := range m.timers {
		i := i
		m.timers[i].Init(func(tm *Timer) { m.fire(i, tm) })
	}
	now := m.origin
	for op := 0; op < ops; op++ {
		switch k := m.rng.IntN(10); {
		case k < 5:
			m.schedule(m.rng.IntN(n), now)
		case k < 7:
			m.cancel(m.rng.IntN(n))
		default:
			now += m.delta()
			m.advance(now)
		}
		if op%97 == 0 {
			m.check()
		}
	}
	now += int64(1<<28) * m.tick
	m.advance(now)
	m.check()
	if m.w.Len() != 0 {
		t.Fatalf("%d timers left after a long final advance", m.w.Len())
	}
	t.Logf("%d firings", m.firings)
}

// delta returns a random distance in ticks, spread over every level.
func (m *model) delta() int64 {
	var ticks int64
	switch m.rng.IntN(8) {
	case 0:
		ticks = 0
	case 1, 2:
		ticks = m.rng.Int64N(3)
	case 3:
		ticks = m.rng.Int64N(64)
	case 4:
		ticks = m.rng.Int64N(4096)
	case 5:
		ticks = m.rng.Int64N(1 << 18)
	case 6:
		ticks = m.rng.Int64N(1 << 24)
	default:
		ticks = m.rng.Int64N(1 << 27)
	}
	return ticks*m.tick + m.rng.Int64N(m.tick)
}

func (m *model) schedule(i int, now int64) {
	deadline := now + m.delta()
	if m.rng.IntN(10) == 0 {
		deadline = now - m.rng.Int64N(100*m.tick)
	}
	m.w.Schedule(&m.timers[i], deadline)
	when := uint64(0)
	if deadline > m.origin {
		d := deadline - m.origin
		when = uint64((d + m.tick - 1) / m.tick)
	}
	if when <= m.cur {
		when = m.cur + 1
	}
	m.seq++
	m.ref[i] = refTimer{pending: true, when: when, seq: m.seq}
}

func (m *model) cancel(i int) {
	got := m.w.Cancel(&m.timers[i])
	if want := m.ref[i].pending; got != want {
		m.t.Fatalf("Cancel(%d) = %v, reference says pending=%v", i, got, want)
	}
	m.ref[i].pending = false
}

// next returns the reference's next timer due by target, or -1.
func (m *model) next() int {
	best := -1
	for i, r := range m.ref {
		if !r.pending || r.when > m.target {
			continue
		}
		if best < 0 || r.when < m.ref[best].when || (r.when == m.ref[best].when && r.seq < m.ref[best].seq) {
			best = i
		}
	}
	return best
}

func (m *model) advance(now int64) {
	m.target = uint64((now - m.origin) / m.tick)
	m.w.Advance(now)
	if i := m.next(); i >= 0 {
		m.t.Fatalf("Advance to tick %d returned with timer %d (tick %d) unfired", m.target, i, m.ref[i].when)
	}
	m.cur = m.target
	if m.w.Now() != now {
		m.t.Fatalf("Now = %d after Advance(%d)", m.w.Now(), now)
	}
}

func (m *model) fire(i int, tm *Timer) {
	m.firings++
	want := m.next()
	if want != i {
		m.t.Fatalf("timer %d fired (ref tick %d, pending %v); want timer %d", i, m.ref[i].when, m.ref[i].pending, want)
	}
	if tm.Pending() {
		m.t.Fatalf("timer %d pending inside its callback", i)
	}
	m.cur = m.ref[i].when
	if got, wantNow := m.w.Now(), m.origin+int64(m.cur)*m.tick; got != wantNow {
		m.t.Fatalf("Now in callback = %d, want %d", got, wantNow)
	}
	m.ref[i].pending = false
	// From inside the callback: sometimes re-arm self, schedule or cancel
	// another.
	now := m.w.Now()
	switch m.rng.IntN(6) {
	case 0:
		m.schedule(i, now)
	case 1:
		m.schedule(m.rng.IntN(len(m.timers)), now)
	case 2:
		m.cancel(m.rng.IntN(len(m.timers)))
	}
}

func (m *model) check() {
	n := 0
	for i := range m.ref {
		if m.timers[i].Pending() != m.ref[i].pending {
			m.t.Fatalf("timer %d: Pending = %v, reference %v", i, m.timers[i].Pending(), m.ref[i].pending)
		}
		if m.ref[i].pending {
			n++
			if m.timers[i].when != m.ref[i].when {
				m.t.Fatalf("timer %d: tick %d, reference %d", i, m.timers[i].when, m.ref[i].when)
			}
		}
	}
	if m.w.Len() != n {
		m.t.Fatalf("Len = %d, reference %d", m.w.Len(), n)
	}
	if at, ok := m.w.NextEvent(); ok != (n > 0) {
		m.t.Fatalf("NextEvent ok = %v with %d pending", ok, n)
	} else if ok {
		earliest := uint64(1<<64 - 1)
		for _, r := range m.ref {
			if r.pending && r.when < earliest {
				earliest = r.when
			}
		}
		if e := m.origin + int64(earliest)*m.tick; at > e {
			m.t.Fatalf("NextEvent %d after the earliest timer at %d", at, e)
		}
	}
}

func TestScheduleAndCancelDoNotAllocate(t *testing.T) {
	w := New(0, time.Millisecond)
	var a Timer
	a.Init(func(*Timer) {})
	i := int64(0)
	n := testing.AllocsPerRun(1000, func() {
		i++
		w.Schedule(&a, i*7*ms)
		w.Schedule(&a, i*9*ms) // move
		w.Cancel(&a)
		w.Schedule(&a, i*ms)
		w.Advance(i * ms)
	})
	if n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}

func TestMisuseFailsLoudly(t *testing.T) {
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	w := New(0, time.Millisecond)
	var bare Timer
	mustPanic("Schedule without Init", func() { w.Schedule(&bare, ms) })
	var a Timer
	a.Init(func(*Timer) { w.Advance(10 * ms) })
	w.Schedule(&a, ms)
	mustPanic("Advance from a callback", func() { w.Advance(2 * ms) })
	var b Timer
	b.Init(func(*Timer) {})
	w2 := New(0, time.Millisecond)
	w2.Schedule(&b, ms)
	mustPanic("Init of a pending Timer", func() { b.Init(func(*Timer) {}) })
	mustPanic("zero tick", func() { New(0, 0) })
}
