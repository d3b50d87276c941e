package nicq

import (
	"sync/atomic"
	"time"
)

// Clock is where a driver reads time: nanoseconds since the Unix epoch on a
// scale that never goes backwards. Drivers stamp received frames and pcap
// records with it, and the mem driver times its delays and bandwidth limits
// with it. The runtime passes SystemClock; a test passes a VirtualClock and
// steps it, so that a run is a function of its inputs and seed alone.
//
// It has the shape of the stack's clock, so one value serves both.
type Clock interface {
	Now() int64
}

// SystemClock is the real clock: the wall-clock time at which the process
// started plus the monotonic time elapsed since, so it reads as Unix time
// (as pcap files want) but does not jump when the wall clock is set.
type SystemClock struct{}

var processStart = time.Now()

// Now returns the current time in nanoseconds since the Unix epoch.
func (SystemClock) Now() int64 {
	return processStart.UnixNano() + int64(time.Since(processStart))
}

// VirtualClock is a clock that moves only when told to. Any goroutine may
// read it; a test steps it with Advance or Set.
type VirtualClock struct {
	now atomic.Int64
}

// NewVirtualClock returns a virtual clock reading start.
func NewVirtualClock(start int64) *VirtualClock {
	c := &VirtualClock{}
	c.now.Store(start)
	return c
}

// Now returns the clock's time.
func (c *VirtualClock) Now() int64 { return c.now.Load() }

// Advance moves the clock forward by d (a negative d is ignored: the clock
// never goes back) and returns the new time.
func (c *VirtualClock) Advance(d time.Duration) int64 {
	if d < 0 {
		d = 0
	}
	return c.now.Add(int64(d))
}

// Set moves the clock to t if t is later than its time, and returns the
// clock's time.
func (c *VirtualClock) Set(t int64) int64 {
	for {
		now := c.now.Load()
		if t <= now {
			return now
		}
		if c.now.CompareAndSwap(now, t) {
			return t
		}
	}
}
