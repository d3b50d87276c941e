package msgring_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mkstack/mkstack/msgring"
)

func newDoorbell(t *testing.T) *msgring.Doorbell {
	t.Helper()
	d, err := msgring.NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDoorbellRingWhileAwakeMakesNoSystemCall(t *testing.T) {
	d := newDoorbell(t)
	for i := 0; i < 1000; i++ {
		d.Ring()
	}
	if d.Wakeups() != 0 {
		t.Fatalf("Wakeups = %d after ringing an awake consumer", d.Wakeups())
	}
	// Nothing pending: a short Wait times out.
	d.PrepareSleep()
	d.CancelSleep()
	d.PrepareSleep()
	woken, err := d.Wait(10 * time.Millisecond)
	if err != nil || woken {
		t.Fatalf("Wait with no ring = %v, %v; want timeout", woken, err)
	}
}

func TestDoorbellWakesSleepingConsumerOnce(t *testing.T) {
	d := newDoorbell(t)
	d.PrepareSleep()
	if !d.Asleep() {
		t.Fatal("Asleep false after PrepareSleep")
	}
	for i := 0; i < 5; i++ {
		d.Ring() // only the first finds it asleep
	}
	if d.Wakeups() != 1 {
		t.Fatalf("Wakeups = %d, want 1", d.Wakeups())
	}
	woken, err := d.Wait(time.Second)
	if err != nil || !woken {
		t.Fatalf("Wait = %v, %v; want woken", woken, err)
	}
	// The wake-up was consumed: the next sleep times out.
	d.PrepareSleep()
	if woken, _ := d.Wait(5 * time.Millisecond); woken {
		t.Fatal("second Wait woke without a ring")
	}
}

// TestDoorbellNeverLosesAWakeUp runs a producer that sends in bursts with
// random pauses, so the consumer keeps falling asleep. The consumer follows
// the documented protocol; a Wait that times out while a message is in the
// ring means a wake-up was lost.
func TestDoorbellNeverLosesAWakeUp(t *testing.T) {
	requireTwoCPUs(t)
	d := newDoorbell(t)
	r := msgring.NewRing[uint64](16)
	total := uint64(20_000)
	if testing.Short() || raceEnabled {
		total = 3_000
	}
	run := newCrossRun()
	run.pinned(1, func() {
		rng := rand.New(rand.NewPCG(7, 8))
		for seq := uint64(0); seq < total && !run.aborted(); {
			if r.Enqueue(seq) {
				seq++
				d.Ring()
			}
			if rng.IntN(64) == 0 {
				time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
			}
		}
	})
	run.pinned(0, func() {
		want := uint64(0)
		for want < total && !run.aborted() {
			if v, ok := r.Dequeue(); ok {
				if v != want {
					run.fail("got " + itoa(v) + ", want " + itoa(want))
					return
				}
				want++
				continue
			}
			d.PrepareSleep()
			if r.Len() > 0 {
				d.CancelSleep()
				continue
			}
			woken, err := d.Wait(2 * time.Second)
			if err != nil {
				run.fail(err.Error())
				return
			}
			if !woken && r.Len() > 0 {
				run.fail("consumer slept through a non-empty ring: lost wake-up at seq " + itoa(want))
				return
			}
		}
	})
	run.wait(t)
	if d.Sleeps() == 0 || d.Wakeups() == 0 {
		t.Fatalf("sleeps=%d wakeups=%d: the test did not exercise sleeping", d.Sleeps(), d.Wakeups())
	}
	t.Logf("%d messages, %d sleeps, %d wake-ups", total, d.Sleeps(), d.Wakeups())
}

func TestDoorbellWaitDoesNotAllocate(t *testing.T) {
	skipAllocsUnderRace(t)
	d := newDoorbell(t)
	allocs := testing.AllocsPerRun(100, func() {
		d.PrepareSleep()
		d.Ring()
		d.Wait(time.Second)
	})
	if allocs != 0 {
		t.Fatalf("ring and wait allocate %.1f times per run", allocs)
	}
}
