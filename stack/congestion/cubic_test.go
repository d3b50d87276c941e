package congestion

import (
	"math"
	"testing"
)

// kFor100 is K for W_max = 100 segments after a reduction to 70, by hand:
// cbrt(100*(1-0.7)/0.4) = cbrt(75) = 4.2172 s (4.2172^3 = 75.001).
const kFor100 = 4.2172

// wCubicFor100 is RFC 9438 equation 1 for that epoch, in segments, t in
// seconds: 0.4*(t-K)^3 + 100.
func wCubicFor100(t float64) float64 {
	return 0.4*math.Pow(t-kFor100, 3) + 100
}

// cubicAfterLossAt100 returns a Cubic that slow-started to 100 segments,
// lost with all of them in flight and left recovery: cwnd 70 segments.
func cubicAfterLossAt100(t *testing.T) *Cubic {
	t.Helper()
	var c Cubic
	c.Init(mss)
	slowStartTo(t, &c, 100)
	c.OnCongestion(100 * mss)
	c.OnRecoveryExit()
	return &c
}

func TestCubicReducesToSeventyPercent(t *testing.T) {
	c := cubicAfterLossAt100(t)
	// 0.7 * 146000 bytes = 102200 = 70 segments.
	if c.Cwnd() != 70*mss || c.Ssthresh() != 70*mss || c.InSlowStart() {
		t.Fatalf("loss at 100 segments: cwnd %d ssthresh %d, want %d for both", c.Cwnd(), c.Ssthresh(), 70*mss)
	}
	if c.wMax != 100 {
		t.Errorf("W_max %v segments, want 100", c.wMax)
	}
	// The epoch starts at the first ACK after recovery.
	c.OnAck(mss, c.Cwnd(), 200*ms, 10_000*ms)
	if !near(c.k, kFor100, 0.001) || c.epochStart != 10_000*ms {
		t.Errorf("K %v s, epoch start %d; want %v s at %d", c.k, c.epochStart, kFor100, 10_000*ms)
	}
	// Flight size, not cwnd, sets ssthresh: 50 segments in flight of a
	// window of 100 give 35.
	var d Cubic
	d.Init(mss)
	slowStartTo(t, &d, 100)
	d.OnCongestion(50 * mss)
	if d.Ssthresh() != 35*mss || d.Cwnd() != 35*mss {
		t.Errorf("loss with 50 segments in flight: cwnd %d ssthresh %d, want %d", d.Cwnd(), d.Ssthresh(), 35*mss)
	}
	// Never below 2 segments.
	d.OnRecoveryExit()
	d.OnCongestion(mss)
	if d.Ssthresh() != 2*mss || d.Cwnd() != 2*mss {
		t.Errorf("loss with 1 segment in flight: cwnd %d ssthresh %d, want %d", d.Cwnd(), d.Ssthresh(), 2*mss)
	}
}

func TestCubicFollowsCubicCurve(t *testing.T) {
	// A 200 ms path, long enough that the Reno-friendly estimate (0.53
	// segments per round trip from 70) stays below the curve for the 9 s
	// looked at, so cwnd is the cubic alone.
	const rtt = 200 * ms
	c := cubicAfterLossAt100(t)
	const start = 1000 * ms
	now := start
	type sample struct{ t, w float64 }
	var samples []sample
	for now < start+9000*ms {
		now = ackWindow(c, mss, now, rtt)
		samples = append(samples, sample{seconds(now - c.epochStart), segs(c.Cwnd())})
	}
	for _, s := range samples {
		// Within a quarter segment (and 1%) of equation 1 everywhere.
		if want := wCubicFor100(s.t); !near(s.w, want, math.Max(0.25, want/100)) {
			t.Errorf("t = %.2f s: cwnd %.2f segments, equation 1 gives %.2f", s.t, s.w, want)
		}
	}
	// At t = K the window is back at W_max = 100, within 3%.
	at := func(sec float64) float64 {
		for _, s := range samples {
			if s.t >= sec {
				return s.w
			}
		}
		t.Fatalf("no sample at %v s", sec)
		return 0
	}
	if w := at(kFor100); !near(w, 100, 3) {
		t.Errorf("cwnd at t = K: %.2f segments, want 100 within 3%%", w)
	}
	// Concave before K: the growth of each second is smaller than that of
	// the second before. Convex after: larger.
	grow := func(from float64) float64 { return at(from+1) - at(from) }
	for _, from := range []float64{0.2, 1.2, 2.2} {
		if g0, g1 := grow(from), grow(from+1); !(g1 < g0) {
			t.Errorf("not concave: growth %.2f over [%v,%v] s, then %.2f", g0, from, from+1, g1)
		}
	}
	for _, from := range []float64{4.6, 5.6, 6.6} {
		if g0, g1 := grow(from), grow(from+1); !(g1 > g0) || g0 < 0 {
			t.Errorf("not convex: growth %.2f over [%v,%v] s, then %.2f", g0, from, from+1, g1)
		}
	}
	// The plateau: one second around K adds under one segment
	// (0.4*(0.5^3+0.5^3) = 0.1 by equation 1).
	if g := at(kFor100+0.5) - at(kFor100-0.5); g < 0 || g > 1 {
		t.Errorf("growth over [K-0.5, K+0.5] %.2f segments, want under 1", g)
	}
}

func TestCubicTargetIsAtMostOneAndAHalfWindows(t *testing.T) {
	// The first ACK starts the epoch at 0 (and, W_cubic(0) being the
	// window, puts it in the Reno-friendly region: 70 + 0.529/70 =
	// 70.0076 segments). One second on, W_cubic(1) = 86.7 is above W_est,
	// and with an SRTT of 10 s W_cubic(t+RTT) = 0.4*(11-4.2172)^3+100 =
	// 225 segments, beyond 1.5*cwnd: each segment acked adds half a
	// segment, so 70 ACKs add 35.
	c := cubicAfterLossAt100(t)
	c.OnAck(mss, c.Cwnd(), 10_000*ms, 0)
	for range 70 {
		c.OnAck(mss, c.Cwnd(), 10_000*ms, 1000*ms)
	}
	if w := segs(c.Cwnd()); !near(w, 105.0076, 0.001) {
		t.Errorf("one window with a far target: cwnd %.4f segments, want 105.0076", w)
	}
}

func TestCubicRenoFriendlyRegionWithShortRTT(t *testing.T) {
	// W_max = 20 segments on a 10 ms path. K = cbrt(20*0.3/0.4) =
	// cbrt(15) = 2.466 s, so after 100 round trips (1 s) the curve is at
	// 0.4*(1-2.466)^3 + 20 = 18.74 segments. W_est (RFC 9438 equation 4)
	// grows from 14 by alpha = 3*0.3/1.7 = 0.529 segments per round trip
	// until it reaches cwnd_prior = 20, after (20-14)/0.529 = 11.33 round
	// trips, then by 1: 20 + (100-11.33) = 108.67 segments.
	const rtt = 10 * ms
	var c Cubic
	c.Init(mss)
	slowStartTo(t, &c, 20)
	c.OnCongestion(20 * mss)
	c.OnRecoveryExit()
	now := int64(0)
	for range 100 {
		now = ackWindow(&c, mss, now, rtt)
	}
	const renoEstimate, curve = 108.67, 18.74
	w := segs(c.Cwnd())
	// Each ACK adds alpha/cwnd with cwnd growing within the round, a
	// little less than alpha per round: allow one segment.
	if w < renoEstimate-1 {
		t.Errorf("cwnd after 100 round trips of 10 ms: %.2f segments, want >= the Reno estimate %.2f", w, renoEstimate)
	}
	if w > renoEstimate+1 || w < 5*curve {
		t.Errorf("cwnd %.2f segments: not the Reno-friendly window (estimate %.2f, curve %.2f)", w, renoEstimate, curve)
	}
}

func TestCubicFastConvergence(t *testing.T) {
	const rtt = 200 * ms
	c := cubicAfterLossAt100(t)
	now := int64(0)
	for c.Cwnd() < 80*mss {
		now = ackWindow(c, mss, now, rtt)
	}
	// A second loss below W_max = 100: W_max = L*(1+0.7)/2 = 0.85*L.
	l := segs(c.Cwnd())
	c.OnCongestion(c.Cwnd())
	if !near(c.wMax, 0.85*l, 0.001) { // l leaves out cwnd's part of a byte
		t.Fatalf("loss at %.3f < W_max 100: W_max %.3f, want %.3f", l, c.wMax, 0.85*l)
	}
	c.OnRecoveryExit()
	// The new plateau: K = cbrt((0.85L - 0.7L)/0.4) = cbrt(0.375L); for L
	// near 80, cbrt(30) = 3.107 s, and cwnd is there near 0.85L = 68.
	k := math.Cbrt(0.375 * l)
	start := now
	for seconds(now-start) < k {
		now = ackWindow(c, mss, now, rtt)
	}
	if w := segs(c.Cwnd()); !near(w, 0.85*l, 0.03*0.85*l) {
		t.Errorf("cwnd at the new K = %.2f s: %.2f segments, want %.2f (0.85*%.2f)", k, w, 0.85*l, l)
	}
	// A loss above W_max sets W_max to the window itself.
	for c.Cwnd() < 75*mss {
		now = ackWindow(c, mss, now, rtt)
	}
	l = segs(c.Cwnd())
	c.OnCongestion(c.Cwnd())
	if !near(c.wMax, l, 0.001) {
		t.Errorf("loss at %.3f above W_max: W_max %.3f, want %.3f", l, c.wMax, l)
	}
}

func TestCubicRTOResetsEpoch(t *testing.T) {
	const rtt = 200 * ms
	c := cubicAfterLossAt100(t)
	now := int64(0)
	for seconds(now) < kFor100 {
		now = ackWindow(c, mss, now, rtt)
	}
	if w := segs(c.Cwnd()); !near(w, 100, 3) {
		t.Fatalf("cwnd at K %.2f, want about 100", w)
	}
	c.OnRTO(c.Cwnd())
	// ssthresh = 0.7 * 146000 bytes in flight (cwnd ~ 100 segments).
	if want := c.undoCwnd * 7 / 10; c.Ssthresh() != want || c.Cwnd() != mss {
		t.Fatalf("RTO with %d in flight: cwnd %d ssthresh %d, want %d and %d", c.undoCwnd, c.Cwnd(), c.Ssthresh(), mss, want)
	}
	ss := c.Ssthresh()
	// Slow start back to ssthresh, then the new epoch: K = 0 and W_max =
	// cwnd_epoch (RFC 9438 section 4.8).
	for c.InSlowStart() {
		now += ms
		c.OnAck(mss, c.Cwnd(), rtt, now)
	}
	now = ackWindow(c, mss, now, rtt)
	if c.k != 0 || c.wMax != segs(ss) {
		t.Errorf("epoch after RTO: K %v, W_max %.3f; want 0 and %.3f", c.k, c.wMax, segs(ss))
	}
	// One second on, the old curve (K = 4.2 s from 70) would be at 86.7
	// segments. The new one is flat (0.4*1^3 = 0.4 segments over W_max)
	// and W_est has added 0.529 per round trip: about 2.7 segments.
	for range 4 {
		now = ackWindow(c, mss, now, rtt)
	}
	if g := segs(c.Cwnd()) - segs(ss); g < 2 || g > 3.5 {
		t.Errorf("growth one second into the epoch after RTO: %.2f segments, want about 2.7", g)
	}
}

func TestCubicRepeatedRTOHoldsSsthresh(t *testing.T) {
	var c Cubic
	c.Init(mss)
	slowStartTo(t, &c, 100)
	c.OnRTO(100 * mss)
	c.OnRTO(mss)
	if c.Ssthresh() != 70*mss || c.Cwnd() != mss {
		t.Fatalf("second RTO: ssthresh %d cwnd %d, want %d and %d", c.Ssthresh(), c.Cwnd(), 70*mss, mss)
	}
	c.OnAck(mss, mss, 0, 0)
	c.OnRTO(10 * mss)
	if c.Ssthresh() != 7*mss {
		t.Errorf("RTO after an ACK: ssthresh %d, want %d", c.Ssthresh(), 7*mss)
	}
}

func TestCubicApplicationLimitedTimeDoesNotCount(t *testing.T) {
	const rtt = 200 * ms
	c := cubicAfterLossAt100(t)
	now := ackWindow(c, mss, 0, rtt) // the epoch starts
	w := c.Cwnd()
	// 10 s of an application keeping 10 segments in flight.
	for range 50 {
		now += rtt
		c.OnAck(mss, 10*mss, rtt, now)
	}
	if c.Cwnd() != w {
		t.Fatalf("application-limited ACKs moved cwnd %d -> %d", w, c.Cwnd())
	}
	// Then the flight drains and the connection is idle for 10 s more.
	for i := 9; i >= 0; i-- {
		now += ms
		c.OnAck(mss, (i+1)*mss, rtt, now)
	}
	now += 10_000 * ms
	// Full windows again for one second: the curve has run 1.2 s, not
	// 21 s (1.2 s is at 0.4*(1.2-4.2172)^3 + 100 = 89.0 segments).
	for range 5 {
		now = ackWindow(c, mss, now, rtt)
	}
	if w := segs(c.Cwnd()); !near(w, wCubicFor100(1.2), 1) {
		t.Errorf("after 1.2 s of window-limited sending around 20 s of others: cwnd %.2f segments, want %.2f", w, wCubicFor100(1.2))
	}
}

func TestCubicUndoRestoresCurve(t *testing.T) {
	const rtt = 200 * ms
	c := cubicAfterLossAt100(t)
	now := int64(0)
	for range 10 {
		now = ackWindow(c, mss, now, rtt)
	}
	before := *c
	c.OnCongestion(c.Cwnd())
	c.OnRecoveryExit()
	now = ackWindow(c, mss, now, rtt)
	c.OnSpuriousCongestion()
	if c.Cwnd() != before.Cwnd() || c.Ssthresh() != before.Ssthresh() ||
		c.wMax != before.wMax || c.k != before.k || c.epochStart != before.epochStart ||
		c.wEst != before.wEst || c.cwndPrior != before.cwndPrior {
		t.Fatalf("undo: state\n%+v\nwant\n%+v", c.curve, before.curve)
	}
	// The curve carries on as if no loss: one more round lands near
	// equation 1 at the time reached.
	now = ackWindow(c, mss, now, rtt)
	if tt, w := seconds(now-c.epochStart), segs(c.Cwnd()); !near(w, wCubicFor100(tt), 1) {
		t.Errorf("after undo, t = %.2f s: cwnd %.2f, want %.2f", tt, w, wCubicFor100(tt))
	}
	// A spurious RTO is undone the same way.
	before = *c
	c.OnRTO(c.Cwnd())
	c.OnAck(mss, c.Cwnd(), rtt, now+ms)
	c.OnSpuriousCongestion()
	if c.Cwnd() != before.Cwnd() || c.Ssthresh() != before.Ssthresh() || c.resetCurve || c.wMax != before.wMax {
		t.Errorf("undo of RTO: cwnd %d ssthresh %d resetCurve %v W_max %v; want %d %d false %v",
			c.Cwnd(), c.Ssthresh(), c.resetCurve, c.wMax, before.Cwnd(), before.Ssthresh(), before.wMax)
	}
}
