package timer

import (
	"testing"
	"time"
)

// BenchmarkTimerScheduleCancel arms a retransmission-like timer 200 ms out
// and cancels it, the common life of an RTO that an ACK beats.
func BenchmarkTimerScheduleCancel(b *testing.B) {
	w := New(0, time.Millisecond)
	var t Timer
	t.Init(func(*Timer) {})
	b.ReportAllocs()
	for b.Loop() {
		w.Schedule(&t, 200*ms)
		w.Cancel(&t)
	}
}

// BenchmarkTimerReschedule moves a pending timer, as each new ACK re-arms
// the RTO, among 10000 other pending timers.
func BenchmarkTimerReschedule(b *testing.B) {
	w := New(0, time.Millisecond)
	others := make([]Timer, 10000)
	for i := range others {
		others[i].Init(func(*Timer) {})
		w.Schedule(&others[i], int64(i)*ms)
	}
	var t Timer
	t.Init(func(*Timer) {})
	b.ReportAllocs()
	d := int64(0)
	for b.Loop() {
		d++
		w.Schedule(&t, (200+d%3000)*ms)
	}
}

// BenchmarkTimerAdvanceIdle advances one tick at a time over 10000 pending
// keepalive-like timers two hours out: the cost of the poll loop's timer
// step when nothing is due.
func BenchmarkTimerAdvanceIdle(b *testing.B) {
	w := New(0, time.Millisecond)
	ts := make([]Timer, 10000)
	for i := range ts {
		ts[i].Init(func(*Timer) {})
		w.Schedule(&ts[i], int64(2*time.Hour)+int64(i)*ms)
	}
	b.ReportAllocs()
	now := int64(0)
	for b.Loop() {
		now += ms
		if now >= int64(time.Hour) {
			b.StopTimer()
			w.Init(0, time.Millisecond) // forget the timers, start over
			for i := range ts {
				ts[i] = Timer{}
				ts[i].Init(func(*Timer) {})
				w.Schedule(&ts[i], int64(2*time.Hour)+int64(i)*ms)
			}
			now = ms
			b.StartTimer()
		}
		w.Advance(now)
	}
}

// BenchmarkTimerScheduleFire schedules a timer for the next tick and
// advances to fire it: the delayed-ACK path.
func BenchmarkTimerScheduleFire(b *testing.B) {
	w := New(0, time.Millisecond)
	var t Timer
	t.Init(func(*Timer) {})
	b.ReportAllocs()
	now := int64(0)
	for b.Loop() {
		w.Schedule(&t, now+ms)
		now += ms
		w.Advance(now)
	}
}
