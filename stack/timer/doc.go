// Package timer owns the per-core timer wheel: every timeout a stack keeps
// (retransmission, delayed ACK, persist, keepalive, TIME_WAIT, ARP entry
// expiry, fragment reassembly) is a Timer on the one Wheel of its core.
//
// # Shape
//
// A Wheel is a hierarchical timing wheel (Varghese and Lauck) of Levels
// levels of Slots slots. Level 0 slots are one tick wide, level k slots
// 64^k ticks wide; with 4 levels and a 1 ms tick the wheel spans 2^24 ticks,
// about 4.6 hours. A timer goes to the level of the highest 6-bit group in
// which its expiry tick differs from the current tick, in the slot that
// group names; later timers wait in an overflow list. When the current tick
// reaches the start of an occupied slot of level k > 0, the timers in it move
// down ("cascade") to the level their remaining distance asks for, so a
// timer cascades at most once per level. Each level keeps a 64-bit
// occupancy bitmap, so Advance finds the next slot with work by a trailing-
// zero count and jumps straight to it: advancing hours at once costs the
// number of occupied slots on the way, not the number of ticks.
//
// Timers are intrusive: a Timer is a small struct the owner embeds (in a TCP
// connection, an ARP entry), linked into a doubly linked slot list, so
// Schedule, Cancel and moving a pending timer are O(1) and allocate nothing.
// The callback is a function value set once by Init.
//
// # Time
//
// A Wheel has no clock of its own. Its owner calls Advance(now) with the
// time read from the stack's injected clock; Advance runs the callbacks of
// the timers that came due. All times are nanoseconds on that clock (an
// int64, like time.Duration). Time is cut into ticks counted from the start
// time given to Init. A timer whose deadline is d fires at the first tick
// boundary at or after d: never before its deadline, and at most one tick
// after it, if Advance is called that often. A timer scheduled for a
// deadline at or before the current tick fires at the next tick.
//
// Timers that fire in the same tick fire in the order they were last
// scheduled; in particular timers with equal deadlines fire in schedule
// order. Rescheduling a pending timer moves it and counts as scheduling it
// anew.
//
// Callbacks run inside Advance and may Schedule and Cancel any timer,
// including the one firing; a timer is no longer pending when its callback
// runs. While a callback runs, Wheel.Now reports the time of the tick being
// fired, so a periodic timer that re-arms at Now()+period keeps its cadence
// across a long Advance.
//
// # Rules of use
//
// A Wheel belongs to one goroutine: no locks, no goroutines, no atomics. A
// Timer is on at most one Wheel; use the same Wheel for Schedule and Cancel.
// Advance must not be called from a callback.
package timer
