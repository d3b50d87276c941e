package nicq_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
)

func TestVirtualClockMovesOnlyForwardAndOnlyWhenTold(t *testing.T) {
	c := nicq.NewVirtualClock(1000)
	first := c.Now()
	if first != 1000 || c.Now() != first {
		t.Fatalf("Now() = %d, want 1000 until advanced", c.Now())
	}
	if got := c.Advance(5 * time.Microsecond); got != 6000 || c.Now() != 6000 {
		t.Fatalf("Advance(5us) = %d, Now %d; want 6000", got, c.Now())
	}
	if got := c.Advance(-time.Second); got != 6000 {
		t.Fatalf("Advance(-1s) = %d, want 6000 (the clock never goes back)", got)
	}
	if got := c.Set(5000); got != 6000 {
		t.Fatalf("Set(5000) = %d, want 6000 (the clock never goes back)", got)
	}
	if got := c.Set(9000); got != 9000 || c.Now() != 9000 {
		t.Fatalf("Set(9000) = %d, Now %d", got, c.Now())
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				c.Advance(1)
			}
		})
	}
	wg.Wait()
	if c.Now() != 13000 {
		t.Fatalf("after 4000 concurrent Advance(1): %d, want 13000", c.Now())
	}
}

func TestSystemClockReadsUnixTimeAndNeverGoesBack(t *testing.T) {
	var c nicq.Clock = nicq.SystemClock{}
	before := time.Now().UnixNano()
	prev := c.Now()
	for range 1000 {
		now := c.Now()
		if now < prev {
			t.Fatalf("SystemClock went back from %d to %d", prev, now)
		}
		prev = now
	}
	after := time.Now().UnixNano()
	if d := prev - after; d > int64(time.Second) || before-prev > int64(time.Second) {
		t.Fatalf("SystemClock reads %d, wall clock between %d and %d", prev, before, after)
	}
}
