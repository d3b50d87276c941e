package congestion

import "testing"

// bottleneck is a path that holds bdp segments (its bandwidth-delay
// product, no queue) with a fixed round-trip time: a round in which a
// flow's window exceeds bdp loses a segment.
type bottleneck struct {
	bdp int   // segments
	rtt int64 // ns
}

// run drives one flow over the path for rounds round trips, each either a
// round of ACKs for the full window or, if the window exceeds the path, a
// round of fast recovery (loss found, window reduced, recovery over at the
// end of the round). It returns the window at the start of each round and
// the rounds that lost.
func (p bottleneck) run(cc Controller, rounds int) (windows []int, losses []int) {
	now := int64(0)
	for r := range rounds {
		w := cc.Cwnd()
		windows = append(windows, w)
		if w > p.bdp*mss {
			losses = append(losses, r)
			cc.OnCongestion(w)
			now += p.rtt
			cc.OnRecoveryExit()
			continue
		}
		now = ackWindow(cc, mss, now, p.rtt)
	}
	return windows, losses
}

// stats are the mean, minimum and maximum of windows, in segments.
func stats(windows []int) (mean, lo, hi float64) {
	lo, hi = segs(windows[0]), segs(windows[0])
	for _, w := range windows {
		s := segs(w)
		mean += s
		lo, hi = min(lo, s), max(hi, s)
	}
	return mean / float64(len(windows)), lo, hi
}

// steadyState drops the windows up to and including the second loss: slow
// start overshoots the path and its first reductions are not the cycle.
func steadyState(t *testing.T, windows, losses []int) []int {
	t.Helper()
	if len(losses) < 4 {
		t.Fatalf("only %d losses in %d rounds", len(losses), len(windows))
	}
	return windows[losses[1]+1:]
}

func TestBottleneckNewRenoSawtooth(t *testing.T) {
	// 100 segments in flight fill the path. A loss at L > 100 segments
	// halves the window to L/2, which then grows one segment per round
	// until it passes 100 again: a sawtooth from BDP/2 to just over BDP,
	// averaging 3/4 BDP = 75, one loss every 51 or 52 rounds (50 or 51 of
	// growth from just over 50, one of recovery).
	p := bottleneck{bdp: 100, rtt: 20 * ms}
	var r NewReno
	r.Init(mss)
	windows, losses := p.run(&r, 1200)
	mean, lo, hi := stats(steadyState(t, windows, losses))
	t.Logf("NewReno: mean %.2f min %.2f max %.2f segments, %d losses", mean, lo, hi, len(losses))
	if lo < 50 || lo > 51 {
		t.Errorf("sawtooth bottom %.2f segments, want BDP/2 = 50 (to 51)", lo)
	}
	if hi <= 100 || hi > 101 {
		t.Errorf("sawtooth top %.2f segments, want just above BDP = 100", hi)
	}
	if mean < 74 || mean > 76 {
		t.Errorf("mean window %.2f segments, want 3/4 BDP = 75", mean)
	}
	for i := 3; i < len(losses); i++ {
		if gap := losses[i] - losses[i-1]; gap < 51 || gap > 52 {
			t.Errorf("rounds between losses %d and %d: %d, want 51 or 52", i-1, i, gap)
		}
	}
}

func TestBottleneckCubicKeepsWindowNearBDP(t *testing.T) {
	// The same path for CUBIC: a loss just above 100 segments reduces to
	// 70 (beta 0.7), and the concave curve climbs back and lingers near
	// W_max. Its mean lies between Reno's 3/4 BDP and BDP: the concave
	// profile alone averages 100 - 0.4*K^3/4 = 92.5 segments over [0, K]
	// (K^3 = 75), fast convergence (plateaus at 85) pulls it lower.
	for _, rtt := range []int64{20 * ms, 100 * ms} {
		p := bottleneck{bdp: 100, rtt: rtt}
		var c Cubic
		c.Init(mss)
		windows, losses := p.run(&c, 1200)
		mean, lo, hi := stats(steadyState(t, windows, losses))
		t.Logf("CUBIC, RTT %d ms: mean %.2f min %.2f max %.2f segments, %d losses", rtt/ms, mean, lo, hi, len(losses))
		if lo < 69.9 || lo > 71 {
			t.Errorf("RTT %d ms: lowest window %.2f segments, want 0.7 BDP = 70", rtt/ms, lo)
		}
		if hi <= 100 || hi > 101.5 {
			t.Errorf("RTT %d ms: highest window %.2f segments, want just above BDP = 100", rtt/ms, hi)
		}
		if mean < 80 || mean > 95 {
			t.Errorf("RTT %d ms: mean window %.2f segments, want 80 to 95 (0.8 to 0.95 BDP)", rtt/ms, mean)
		}
	}
}
