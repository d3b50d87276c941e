package congestion

import "testing"

// renoAt returns a NewReno in congestion avoidance at 20 segments: slow
// start to 40, a loss with 40 segments in flight, recovery over.
func renoAt20(t *testing.T) *NewReno {
	t.Helper()
	var r NewReno
	r.Init(mss)
	slowStartTo(t, &r, 40)
	r.OnCongestion(40 * mss)
	r.OnRecoveryExit()
	if r.Cwnd() != 20*mss || r.Ssthresh() != 20*mss || r.InSlowStart() {
		t.Fatalf("after loss at 40 segments: cwnd %d ssthresh %d, want %d for both", r.Cwnd(), r.Ssthresh(), 20*mss)
	}
	return &r
}

func TestNewRenoAvoidanceAddsOneMSSPerRoundTrip(t *testing.T) {
	for _, ackSegs := range []int{1, 2} {
		r := renoAt20(t)
		now := int64(0)
		for round := 1; round <= 30; round++ {
			now = ackWindow(r, ackSegs*mss, now, 50*ms)
			if want := (20 + round) * mss; r.Cwnd() != want {
				t.Fatalf("ACK every %d: cwnd after %d round trips %d, want %d", ackSegs, round, r.Cwnd(), want)
			}
		}
	}
	// Odd-sized ACKs: a window's worth of bytes (here 20 segments in 73
	// ACKs of 400 bytes) is still one MSS.
	r := renoAt20(t)
	for range 73 {
		r.OnAck(400, r.Cwnd(), 0, 0)
	}
	if r.Cwnd() != 21*mss {
		t.Errorf("73 ACKs of 400 bytes (29200 >= cwnd 29200): cwnd %d, want %d", r.Cwnd(), 21*mss)
	}
	r.OnAck(400, r.Cwnd(), 0, 0)
	if r.Cwnd() != 21*mss {
		t.Errorf("the next 400 bytes grew cwnd again to %d", r.Cwnd())
	}
}

func TestNewRenoHalvesFlightOnCongestion(t *testing.T) {
	for _, tc := range []struct{ inFlight, want int }{
		{40 * mss, 20 * mss},     // FlightSize/2
		{40*mss + 1, 20 * mss},   // rounded down
		{25 * mss, 18250},        // 36500/2, not cwnd/2: flight, not window
		{3 * mss, 2 * mss},       // 2190 < 2*MSS
		{0, 2 * mss},             // nothing in flight
		{33 * mss, 33 * mss / 2}, // 24090
	} {
		var r NewReno
		r.Init(mss)
		slowStartTo(t, &r, 40)
		r.OnCongestion(tc.inFlight)
		if r.Ssthresh() != tc.want || r.Cwnd() != tc.want {
			t.Errorf("loss with %d in flight: cwnd %d ssthresh %d, want %d", tc.inFlight, r.Cwnd(), r.Ssthresh(), tc.want)
		}
	}
}

func TestNewRenoReducesOncePerRecoveryAndDeflatesOnExit(t *testing.T) {
	var r NewReno
	r.Init(mss)
	slowStartTo(t, &r, 40)
	r.OnCongestion(40 * mss)
	r.OnCongestion(20 * mss) // a second loss in the same window
	if r.Cwnd() != 20*mss || r.Ssthresh() != 20*mss {
		t.Fatalf("second OnCongestion in recovery: cwnd %d ssthresh %d, want %d", r.Cwnd(), r.Ssthresh(), 20*mss)
	}
	r.OnRecoveryExit()
	if r.Cwnd() != r.Ssthresh() || r.Cwnd() != 20*mss {
		t.Fatalf("recovery exit: cwnd %d, want ssthresh %d", r.Cwnd(), 20*mss)
	}
	// After recovery a new loss reduces again: 20 segments in flight.
	r.OnCongestion(20 * mss)
	if r.Cwnd() != 10*mss {
		t.Errorf("loss after recovery: cwnd %d, want %d", r.Cwnd(), 10*mss)
	}
	// An RTO during recovery ends it; the exit that follows must not lift
	// the loss window of 1 MSS back to ssthresh.
	r.OnRTO(10 * mss)
	r.OnRecoveryExit()
	if r.Cwnd() != mss {
		t.Errorf("OnRecoveryExit after an RTO moved cwnd to %d, want %d", r.Cwnd(), mss)
	}
}

func TestNewRenoRTOSetsLossWindow(t *testing.T) {
	for _, tc := range []struct{ inFlight, wantSsthresh int }{
		{40 * mss, 20 * mss},
		{2 * mss, 2 * mss}, // max(1460, 2920)
	} {
		var r NewReno
		r.Init(mss)
		slowStartTo(t, &r, 40)
		r.OnRTO(tc.inFlight)
		if r.Cwnd() != mss || r.Ssthresh() != tc.wantSsthresh || !r.InSlowStart() {
			t.Errorf("RTO with %d in flight: cwnd %d ssthresh %d, want %d and %d, slow start",
				tc.inFlight, r.Cwnd(), r.Ssthresh(), mss, tc.wantSsthresh)
		}
	}
}

func TestNewRenoRepeatedRTOHoldsSsthresh(t *testing.T) {
	var r NewReno
	r.Init(mss)
	slowStartTo(t, &r, 40)
	r.OnRTO(40 * mss)
	r.OnRTO(mss) // the retransmission timed out too
	if r.Ssthresh() != 20*mss || r.Cwnd() != mss {
		t.Fatalf("second RTO: ssthresh %d cwnd %d, want %d and %d", r.Ssthresh(), r.Cwnd(), 20*mss, mss)
	}
	r.OnAck(mss, mss, 0, 0) // new data acknowledged: the backoff is over
	r.OnRTO(10 * mss)
	if r.Ssthresh() != 5*mss {
		t.Errorf("RTO after an ACK: ssthresh %d, want %d", r.Ssthresh(), 5*mss)
	}
}

func TestNewRenoUndoRestoresWindow(t *testing.T) {
	var r NewReno
	r.Init(mss)
	slowStartTo(t, &r, 40)
	r.OnCongestion(40 * mss)
	r.OnSpuriousCongestion()
	if r.Cwnd() != 40*mss || r.Ssthresh() != InfiniteSsthresh || !r.InSlowStart() {
		t.Fatalf("undo: cwnd %d ssthresh %d, want %d and infinite", r.Cwnd(), r.Ssthresh(), 40*mss)
	}
	r.OnRecoveryExit() // recovery ended with the undo
	r.OnSpuriousCongestion()
	if r.Cwnd() != 40*mss {
		t.Fatalf("exit and second undo after undo: cwnd %d, want %d", r.Cwnd(), 40*mss)
	}
	// An undo of a spurious RTO.
	r.OnRTO(40 * mss)
	r.OnSpuriousCongestion()
	if r.Cwnd() != 40*mss || r.Ssthresh() != InfiniteSsthresh {
		t.Fatalf("undo of RTO: cwnd %d ssthresh %d", r.Cwnd(), r.Ssthresh())
	}
	// Too late: the window has grown back past its old value.
	r.OnCongestion(40 * mss)
	r.OnRecoveryExit()
	now := int64(0)
	for r.Cwnd() <= 40*mss {
		now = ackWindow(&r, mss, now, 10*ms)
	}
	w := r.Cwnd()
	r.OnSpuriousCongestion()
	if r.Cwnd() != w || r.Ssthresh() != 20*mss {
		t.Errorf("late undo changed cwnd %d -> %d, ssthresh to %d", w, r.Cwnd(), r.Ssthresh())
	}
}

func TestSetMSSKeepsSegments(t *testing.T) {
	for _, cc := range controllers() {
		slowStartTo(t, cc, 40)
		cc.SetMSS(1000)
		if cc.Cwnd() != 40000 || cc.Ssthresh() != InfiniteSsthresh {
			t.Errorf("%s: SetMSS(1000) at 40 segments: cwnd %d ssthresh %d, want 40000, infinite", cc.Name(), cc.Cwnd(), cc.Ssthresh())
		}
		cc.OnCongestion(40000) // ssthresh 20000 (NewReno) or 28000 (CUBIC)
		ss := cc.Ssthresh()
		cc.SetMSS(500)
		if cc.Ssthresh() != ss/2 || cc.Cwnd() != ss/2 {
			t.Errorf("%s: SetMSS(500): cwnd %d ssthresh %d, want %d", cc.Name(), cc.Cwnd(), cc.Ssthresh(), ss/2)
		}
		cc.SetMSS(0) // ignored
		if cc.Cwnd() != ss/2 {
			t.Errorf("%s: SetMSS(0) changed cwnd to %d", cc.Name(), cc.Cwnd())
		}
		// Slow start now counts in 500-byte segments.
		cc.OnRTO(cc.Cwnd())
		if cc.Cwnd() != 500 {
			t.Errorf("%s: RTO after SetMSS(500): cwnd %d, want 500", cc.Name(), cc.Cwnd())
		}
	}
}
