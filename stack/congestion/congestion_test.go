package congestion

import (
	"errors"
	"flag"
	"testing"
)

func TestInitialWindowPerRFC6928(t *testing.T) {
	// IW = min(10*MSS, max(2*MSS, 14600)), worked by hand:
	for _, tc := range []struct{ mss, want int }{
		{536, 5360},     // min(5360, max(1072, 14600)=14600) = 5360
		{1000, 10000},   // min(10000, 14600) = 10000
		{1460, 14600},   // min(14600, 14600) = 14600
		{1500, 14600},   // min(15000, 14600) = 14600
		{4000, 14600},   // min(40000, max(8000, 14600)) = 14600
		{8000, 16000},   // min(80000, max(16000, 14600)) = 16000
		{8960, 17920},   // min(89600, max(17920, 14600)) = 17920
		{65495, 130990}, // min(654950, max(130990, 14600)) = 130990
	} {
		if got := InitialWindow(tc.mss); got != tc.want {
			t.Errorf("InitialWindow(%d) = %d, want %d", tc.mss, got, tc.want)
		}
	}
}

func TestInitStartsSlowStartAtInitialWindow(t *testing.T) {
	for _, cc := range controllers() {
		if cc.Cwnd() != 14600 || cc.Ssthresh() != InfiniteSsthresh || !cc.InSlowStart() {
			t.Errorf("%s after Init: cwnd %d ssthresh %d slow start %v, want 14600, %d, true",
				cc.Name(), cc.Cwnd(), cc.Ssthresh(), cc.InSlowStart(), InfiniteSsthresh)
		}
		// Init again starts over from any state.
		cc.OnRTO(cc.Cwnd())
		cc.Init(536)
		if cc.Cwnd() != 5360 || cc.Ssthresh() != InfiniteSsthresh {
			t.Errorf("%s after re-Init(536): cwnd %d ssthresh %d, want 5360, %d",
				cc.Name(), cc.Cwnd(), cc.Ssthresh(), InfiniteSsthresh)
		}
	}
}

func TestByNameAcceptsKnownNamesAndListsThemOnError(t *testing.T) {
	for name, want := range map[string]Algorithm{
		"cubic": AlgorithmCubic, "CUBIC": AlgorithmCubic,
		"newreno": AlgorithmNewReno, "NewReno": AlgorithmNewReno,
	} {
		got, err := ByName(name)
		if err != nil || got != want {
			t.Errorf("ByName(%q) = %v, %v; want %v, nil", name, got, err, want)
		}
	}
	_, err := ByName("bbr")
	if !errors.Is(err, ErrUnknownAlgorithm) {
		t.Fatalf("ByName(bbr) error %v does not match ErrUnknownAlgorithm", err)
	}
	const msg = `congestion: unknown algorithm "bbr" (valid: cubic, newreno)`
	if err.Error() != msg {
		t.Errorf("ByName(bbr) error %q, want %q", err, msg)
	}
}

func TestAlgorithmWorksAsFlagValue(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var a Algorithm
	fs.TextVar(&a, "cc", AlgorithmCubic, "congestion control")
	if err := fs.Parse([]string{"-cc", "newreno"}); err != nil || a != AlgorithmNewReno {
		t.Fatalf("-cc newreno: got %v, %v", a, err)
	}
	if err := a.UnmarshalText([]byte("vegas")); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("UnmarshalText(vegas) = %v, want ErrUnknownAlgorithm", err)
	}
	if b, err := AlgorithmCubic.MarshalText(); err != nil || string(b) != "cubic" {
		t.Errorf("MarshalText(cubic) = %q, %v", b, err)
	}
	if _, err := Algorithm(9).MarshalText(); err == nil {
		t.Errorf("MarshalText(Algorithm(9)) succeeded")
	}
	if s := Algorithm(9).String(); s != "Algorithm(9)" {
		t.Errorf("Algorithm(9).String() = %q", s)
	}
}

func TestSelectPointsIntoAlgorithms(t *testing.T) {
	var s Algorithms
	if cc := s.Select(AlgorithmCubic); cc != Controller(&s.Cubic) || cc.Name() != "cubic" {
		t.Errorf("Select(cubic) = %v (%s), want &s.Cubic", cc, cc.Name())
	}
	if cc := s.Select(AlgorithmNewReno); cc != Controller(&s.NewReno) || cc.Name() != "newreno" {
		t.Errorf("Select(newreno) = %v (%s), want &s.NewReno", cc, cc.Name())
	}
	if cc := s.Select(Algorithm(200)); cc != Controller(&s.Cubic) {
		t.Errorf("Select(200) = %v, want the default, &s.Cubic", cc)
	}
	cc := s.Select(AlgorithmNewReno)
	cc.Init(mss)
	if s.NewReno.Cwnd() != 14600 {
		t.Errorf("Init through the Controller did not reach the embedded NewReno")
	}
}

func TestSlowStartDoublesPerRoundTrip(t *testing.T) {
	// One ACK per segment and one per two segments (delayed ACKs, which
	// ABC's L = 2*MSS still counts in full) both double the window per
	// round trip: 10, 20, 40, 80 segments.
	for _, ackSegs := range []int{1, 2} {
		for _, cc := range controllers() {
			now := int64(0)
			for round, want := range []int{20, 40, 80} {
				now = ackWindow(cc, ackSegs*mss, now, 100*ms)
				if cc.Cwnd() != want*mss || !cc.InSlowStart() {
					t.Errorf("%s, ACK every %d: cwnd after round %d = %.2f segments (slow start %v), want %d",
						cc.Name(), ackSegs, round+1, segs(cc.Cwnd()), cc.InSlowStart(), want)
				}
			}
		}
	}
}

func TestSlowStartCountsAtMostTwoSegmentsPerACK(t *testing.T) {
	for _, cc := range controllers() {
		// A stretch ACK for 8 segments grows cwnd by L = 2 MSS.
		cc.OnAck(8*mss, cc.Cwnd(), 0, 0)
		if cc.Cwnd() != 12*mss {
			t.Errorf("%s: stretch ACK of 8 segments: cwnd %.2f segments, want 12", cc.Name(), segs(cc.Cwnd()))
		}
		// A part-segment ACK counts its bytes.
		cc.OnAck(100, cc.Cwnd(), 0, 0)
		if cc.Cwnd() != 12*mss+100 {
			t.Errorf("%s: ACK of 100 bytes: cwnd %d, want %d", cc.Name(), cc.Cwnd(), 12*mss+100)
		}
		// After an RTO, L = 1 MSS: one ACK covering 4 retransmitted
		// segments grows the loss window of 1 MSS to 2.
		cc.OnRTO(12 * mss)
		cc.OnAck(4*mss, cc.Cwnd(), 0, 0)
		if cc.Cwnd() != 2*mss {
			t.Errorf("%s: ACK of 4 segments after RTO: cwnd %.2f segments, want 2", cc.Name(), segs(cc.Cwnd()))
		}
	}
}

func TestSlowStartStopsAtSsthresh(t *testing.T) {
	for _, cc := range controllers() {
		slowStartTo(t, cc, 40)
		cc.OnRTO(40 * mss) // ssthresh 20 segments (NewReno), 28 (CUBIC)
		ss := cc.Ssthresh()
		for cc.InSlowStart() {
			cc.OnAck(mss, cc.Cwnd(), 0, 0)
		}
		if cc.Cwnd() != ss {
			t.Errorf("%s: slow start ended at cwnd %d, want ssthresh %d", cc.Name(), cc.Cwnd(), ss)
		}
	}
	// Bytes of the ACK that crosses ssthresh carry into congestion
	// avoidance: NewReno at 19.5 segments under an ssthresh of 20 takes
	// 2 segments, uses half a segment to reach 20 and counts 1.5 towards
	// the next MSS.
	var r NewReno
	r.Init(mss)
	slowStartTo(t, &r, 40)
	r.OnRTO(40 * mss)
	for r.Cwnd() < 19*mss {
		r.OnAck(mss, r.Cwnd(), 0, 0)
	}
	r.afterRTO = false // so ABC allows 2 MSS in one ACK
	r.OnAck(mss/2, r.Cwnd(), 0, 0)
	r.OnAck(2*mss, r.Cwnd(), 0, 0)
	if r.Cwnd() != 20*mss || r.bytesAcked != mss+mss/2 {
		t.Errorf("crossing ssthresh: cwnd %d bytesAcked %d, want %d and %d", r.Cwnd(), r.bytesAcked, 20*mss, mss+mss/2)
	}
}

func TestNoGrowthWhenNotCwndLimited(t *testing.T) {
	for _, cc := range controllers() {
		// Slow start: 8 segments in flight of a 10-segment window leave 2
		// unused, so no growth; 9 in flight leave one: growth.
		cc.OnAck(mss, 8*mss, 0, 0)
		if cc.Cwnd() != 10*mss {
			t.Errorf("%s: slow start ACK with 8 of 10 segments in flight grew cwnd to %.2f", cc.Name(), segs(cc.Cwnd()))
		}
		cc.OnAck(mss, 9*mss, 0, 0)
		if cc.Cwnd() != 11*mss {
			t.Errorf("%s: slow start ACK with 9 of 10 segments in flight: cwnd %.2f, want 11", cc.Name(), segs(cc.Cwnd()))
		}
		// Congestion avoidance: rounds of ACKs for an application that
		// keeps only half the window in flight.
		slowStartTo(t, cc, 40)
		cc.OnCongestion(40 * mss)
		cc.OnRecoveryExit()
		w := cc.Cwnd()
		now := int64(0)
		for range 50 {
			for range w / 2 / mss {
				now += ms
				cc.OnAck(mss, w/2, 50*ms, now)
			}
		}
		if cc.Cwnd() != w {
			t.Errorf("%s: 50 application-limited round trips moved cwnd from %d to %d", cc.Name(), w, cc.Cwnd())
		}
	}
}

func TestNoAllocations(t *testing.T) {
	var s Algorithms
	for _, a := range []Algorithm{AlgorithmCubic, AlgorithmNewReno} {
		cc := s.Select(a)
		cc.Init(mss)
		now := int64(0)
		allocs := testing.AllocsPerRun(100, func() {
			for range 200 {
				now += ms
				cc.OnAck(mss, cc.Cwnd(), 20*ms, now)
			}
			cc.OnCongestion(cc.Cwnd())
			cc.OnRecoveryExit()
			for range 200 {
				now += ms
				cc.OnAck(mss, cc.Cwnd(), 20*ms, now)
			}
			cc.OnRTO(cc.Cwnd())
			cc.OnSpuriousCongestion()
			cc.SetMSS(1400)
			cc.SetMSS(mss)
			_ = cc.Cwnd() + cc.Ssthresh()
			_ = cc.InSlowStart()
			_ = cc.Name()
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run of events, want 0", a, allocs)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		b, _ := ByName("newreno")
		_ = s.Select(b)
	}); allocs != 0 {
		t.Errorf("ByName and Select: %v allocations, want 0", allocs)
	}
}
