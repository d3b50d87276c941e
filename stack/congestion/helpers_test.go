package congestion

import (
	"math"
	"testing"
)

// Test units: a 1460-byte segment and milliseconds in nanoseconds.
const (
	mss = 1460
	ms  = int64(1e6)
)

// controllers returns a fresh, initialised instance of each algorithm.
func controllers() []Controller {
	cs := []Controller{&Cubic{}, &NewReno{}}
	for _, c := range cs {
		c.Init(mss)
	}
	return cs
}

// ackWindow acknowledges the window cc has at the call, in ACKs of ackSize
// bytes (the last one smaller if need be), spread evenly over rtt from now,
// with the sender keeping the window full (inFlight = cwnd as each ACK
// arrives). It returns the time at the end of the round.
func ackWindow(cc Controller, ackSize int, now, rtt int64) int64 {
	w := cc.Cwnd()
	n := (w + ackSize - 1) / ackSize
	for i := range n {
		a := min(ackSize, w-i*ackSize)
		cc.OnAck(a, cc.Cwnd(), rtt, now+int64(i+1)*rtt/int64(n))
	}
	return now + rtt
}

// slowStartTo grows cc from its initial window to exactly segs segments by
// one-segment ACKs in slow start (each adds one MSS).
func slowStartTo(t *testing.T, cc Controller, segs int) {
	t.Helper()
	for cc.Cwnd() < segs*mss {
		cc.OnAck(mss, cc.Cwnd(), 0, 0)
	}
	if cc.Cwnd() != segs*mss {
		t.Fatalf("%s: slow start reached cwnd %d, want %d", cc.Name(), cc.Cwnd(), segs*mss)
	}
}

// segs is a window in segments.
func segs(bytes int) float64 { return float64(bytes) / mss }

// near reports whether got is within tol of want.
func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }
