package timer

import (
	"math/bits"
	"time"
)

const (
	slotBits = 6
	// Slots is the number of slots in each level of a Wheel.
	Slots    = 1 << slotBits
	slotMask = Slots - 1
	// Levels is the number of levels of a Wheel. A Wheel spans
	// Slots^Levels ticks; later timers wait in an overflow list that is
	// revisited once per span.
	Levels = 4

	spanBits = Levels * slotBits
	// overflow is the index of the overflow list in Wheel.buckets.
	overflow = Levels * Slots
)

// A Timer is a callback to run at a deadline. Embed it in the structure it
// serves and call Init once before use. The zero Timer is not pending.
type Timer struct {
	next, prev *Timer
	fn         func(*Timer)
	deadline   int64  // as asked for, in clock nanoseconds
	when       uint64 // the tick at which it fires
	// bucket is 1 + the index of the list holding the timer in
	// Wheel.buckets, or 0 when the timer is not pending.
	bucket uint16
}

// Init sets the function to run when t fires. It must not be called while t
// is pending. Setting it once, at the owner's construction, is what keeps
// Schedule free of allocation: a method value such as conn.onRTO allocates
// when it is made, not when it is called.
func (t *Timer) Init(fn func(*Timer)) {
	if t.bucket != 0 {
		panic("timer: Init of a pending Timer")
	}
	t.fn = fn
}

// Pending reports whether t is scheduled and has not fired or been
// cancelled.
func (t *Timer) Pending() bool { return t.bucket != 0 }

// Deadline returns the deadline t was last scheduled for.
func (t *Timer) Deadline() int64 { return t.deadline }

type list struct{ head, tail *Timer }

// A Wheel is one core's set of timers. Use New, or Init on a Wheel embedded
// in its owner.
type Wheel struct {
	tick   uint64 // nanoseconds per tick
	origin int64  // the time of tick 0
	// cur is the current tick: every timer due at or before it has fired.
	cur uint64
	// now is the time of the last Advance, or of the tick being fired
	// while callbacks run.
	now int64
	// occupied has bit s of word k set when the list of level k, slot s is
	// not empty. Every occupied slot of level k is after cur's slot at that
	// level; that is what lets the next event be found by TrailingZeros64.
	occupied  [Levels]uint64
	buckets   [Levels*Slots + 1]list
	pending   int
	advancing bool
	// steps counts the ticks at which Advance did work (a cascade or a
	// firing); tests use it to check that empty ticks are skipped.
	steps uint64
}

// New returns a Wheel whose time starts at start (clock nanoseconds) and is
// cut into ticks of the given length.
func New(start int64, tick time.Duration) *Wheel {
	w := new(Wheel)
	w.Init(start, tick)
	return w
}

// Init makes w an empty Wheel starting at start with the given tick. Any
// timers pending on w are forgotten without running, and stay marked pending:
// only Init a Wheel that holds none.
func (w *Wheel) Init(start int64, tick time.Duration) {
	if tick <= 0 {
		panic("timer: tick must be positive")
	}
	*w = Wheel{tick: uint64(tick), origin: start, now: start}
}

// Now returns the wheel's time: that of the last Advance or, while a
// callback runs, that of the tick being fired.
func (w *Wheel) Now() int64 { return w.now }

// Tick returns the length of one tick.
func (w *Wheel) Tick() time.Duration { return time.Duration(w.tick) }

// Len returns the number of pending timers.
func (w *Wheel) Len() int { return w.pending }

// Schedule arranges for t to fire at deadline (clock nanoseconds): at the
// first tick boundary at or after it, or at the next tick if that boundary
// has passed. A pending t is moved. t must have been given its function by
// Init.
func (w *Wheel) Schedule(t *Timer, deadline int64) {
	if t.fn == nil {
		panic("timer: Schedule of a Timer without Init")
	}
	if t.bucket != 0 {
		w.unlink(t)
	} else {
		w.pending++
	}
	when := w.tickAtOrAfter(deadline)
	if when <= w.cur {
		when = w.cur + 1
	}
	t.deadline = deadline
	t.when = when
	w.place(t)
}

// Cancel stops t from firing and reports whether it was pending.
func (w *Wheel) Cancel(t *Timer) bool {
	if t.bucket == 0 {
		return false
	}
	w.unlink(t)
	w.pending--
	return true
}

// Advance moves the wheel's time to now and runs, in order, the callback of
// every timer that came due, including timers those callbacks schedule that
// come due by now. It returns the number of callbacks run. A now earlier than
// the wheel's time is ignored: the clock does not go back.
func (w *Wheel) Advance(now int64) int {
	if w.advancing {
		panic("timer: Advance called from a timer callback")
	}
	if now <= w.now {
		return 0
	}
	target := (uint64(now) - uint64(w.origin)) / w.tick
	fired := 0
	w.advancing = true
	for {
		e, ok := w.nextEvent()
		if !ok || e > target {
			break
		}
		w.cur = e
		w.now = w.timeOf(e)
		w.steps++
		fired += w.expire(e)
	}
	w.cur = target
	w.now = now
	w.advancing = false
	return fired
}

// NextEvent returns a time before which no timer fires, for an owner that
// wants to sleep until there is work: the start of the next slot that holds
// timers. It is exact when the earliest timer is within Slots ticks, and may
// be early (the moment its slot must cascade) when it is further. ok is false
// when no timer is pending.
func (w *Wheel) NextEvent() (at int64, ok bool) {
	e, ok := w.nextEvent()
	if !ok {
		return 0, false
	}
	return w.timeOf(e), true
}

// timeOf returns the clock time at which tick e starts.
func (w *Wheel) timeOf(e uint64) int64 {
	return w.origin + int64(e*w.tick)
}

// tickAtOrAfter returns the first tick whose start is at or after deadline.
func (w *Wheel) tickAtOrAfter(deadline int64) uint64 {
	if deadline <= w.origin {
		return 0
	}
	d := uint64(deadline) - uint64(w.origin)
	q := d / w.tick
	if d%w.tick != 0 {
		q++
	}
	return q
}

// place links t into the list its expiry tick t.when asks for, given cur.
func (w *Wheel) place(t *Timer) {
	var idx int
	if x := t.when ^ w.cur; x == 0 {
		// Due now: only a cascade does this, and the slot is fired
		// straight after it.
		idx = int(t.when & slotMask)
		w.occupied[0] |= 1 << idx
	} else if level := (bits.Len64(x) - 1) / slotBits; level < Levels {
		slot := int(t.when>>(level*slotBits)) & slotMask
		idx = level*Slots + slot
		w.occupied[level] |= 1 << slot
	} else {
		idx = overflow
	}
	l := &w.buckets[idx]
	t.next = nil
	t.prev = l.tail
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
	t.bucket = uint16(idx + 1)
}

// unlink removes t from its list; the caller keeps w.pending right.
func (w *Wheel) unlink(t *Timer) {
	idx := int(t.bucket - 1)
	l := &w.buckets[idx]
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.tail = t.prev
	}
	t.next, t.prev = nil, nil
	t.bucket = 0
	if l.head == nil && idx != overflow {
		w.occupied[idx/Slots] &^= 1 << (idx % Slots)
	}
}

// nextEvent returns the next tick at which a slot must be fired or
// cascaded. Every slot of level k lies inside cur's current slot of level
// k+1, so the first occupied slot of the lowest occupied level comes first.
func (w *Wheel) nextEvent() (uint64, bool) {
	for k := 0; k < Levels; k++ {
		if occ := w.occupied[k]; occ != 0 {
			shift := uint(k * slotBits)
			above := w.cur >> (shift + slotBits) << (shift + slotBits)
			return above | uint64(bits.TrailingZeros64(occ))<<shift, true
		}
	}
	if w.buckets[overflow].head != nil {
		return (w.cur>>spanBits + 1) << spanBits, true
	}
	return 0, false
}

// expire does the work of tick e, which is cur: brings down the timers
// whose slot starts at e and runs the ones due. At most one of the overflow
// list and the levels above 0 has a slot starting at e (a slot of level k
// starts where group k is non-zero and the groups below it are zero), and a
// cascade never fills a slot that starts at e, so the order of the checks
// does not matter.
func (w *Wheel) expire(e uint64) int {
	if e&(1<<spanBits-1) == 0 && w.buckets[overflow].head != nil {
		w.cascade(overflow)
	}
	for k := Levels - 1; k >= 1; k-- {
		shift := uint(k * slotBits)
		if e&(1<<shift-1) != 0 {
			continue
		}
		slot := int(e>>shift) & slotMask
		if w.occupied[k]&(1<<slot) != 0 {
			w.cascade(k*Slots + slot)
		}
	}
	slot := int(e & slotMask)
	l := &w.buckets[slot]
	fired := 0
	// Pop one at a time rather than detaching the list: a callback may
	// cancel a timer further down this same list.
	for l.head != nil {
		t := l.head
		w.unlink(t)
		w.pending--
		fired++
		t.fn(t)
	}
	return fired
}

// cascade re-places every timer of list idx relative to cur, keeping their
// order, so timers due in the same tick still fire in schedule order.
func (w *Wheel) cascade(idx int) {
	l := w.buckets[idx]
	w.buckets[idx] = list{}
	if idx != overflow {
		w.occupied[idx/Slots] &^= 1 << (idx % Slots)
	}
	for t := l.head; t != nil; {
		next := t.next
		w.place(t)
		t = next
	}
}
