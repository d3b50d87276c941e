package congestion

import "math"

// CUBIC constants (RFC 9438 section 4.1).
const (
	cubicC    = 0.4 // segments per second cubed
	betaCubic = 0.7
	// alphaCubic is the Reno-friendly additive increase, segments per
	// window of ACKs, for the same average window as AIMD(1, 0.5).
	alphaCubic = 3 * (1 - betaCubic) / (1 + betaCubic)
	// fastConvergence is the factor on W_max when a loss comes below the
	// previous W_max (section 4.7).
	fastConvergence = (1 + betaCubic) / 2
)

// Cubic is CUBIC congestion control (RFC 9438) with the standard slow start
// (RFC 5681 with RFC 3465 byte counting). The zero value is ready for Init;
// embed it by value.
type Cubic struct {
	window
	curve
	undoCurve curve // curve before the last reduction
}

// curve is CUBIC's own state, in RFC 9438's units: segments and seconds,
// except the times, which are the caller's nanoseconds.
type curve struct {
	wMax      float64 // W_max, segments
	k         float64 // K, seconds
	cwndPrior float64 // cwnd when ssthresh was last set, segments
	wEst      float64 // W_est, the Reno-friendly estimate, segments

	inEpoch    bool  // a congestion avoidance stage is under way
	epochStart int64 // t_epoch, ns, moved on by application-limited time
	lastAck    int64 // time of the previous ACK of the epoch, ns
	// lastLimited reports whether the previous ACK of the epoch found the
	// sender cwnd-limited.
	lastLimited bool
	// resetCurve makes the next epoch start with K = 0 and W_max =
	// cwnd_epoch, as after an RTO (section 4.8).
	resetCurve bool

	// frac is the fraction of a byte of cwnd growth not yet in cwnd.
	frac float64
}

// Name returns "cubic".
func (c *Cubic) Name() string { return algorithmNames[AlgorithmCubic] }

// Cwnd is the congestion window in bytes.
func (c *Cubic) Cwnd() int { return c.cwnd }

// Ssthresh is the slow start threshold in bytes.
func (c *Cubic) Ssthresh() int { return c.ssthresh }

// InSlowStart reports whether cwnd < ssthresh.
func (c *Cubic) InSlowStart() bool { return c.cwnd < c.ssthresh }

// Init starts the algorithm for segments of mss bytes: cwnd =
// InitialWindow(mss), ssthresh = InfiniteSsthresh, no W_max yet.
func (c *Cubic) Init(mss int) {
	*c = Cubic{}
	c.init(mss)
}

// SetMSS changes the segment size, keeping cwnd and ssthresh the same
// number of segments. The curve, in segments, is unchanged.
func (c *Cubic) SetMSS(mss int) {
	if !c.validMSS(mss) {
		return
	}
	c.frac = 0
	c.setMSS(mss)
}

// segments is cwnd in segments, with the fraction not yet in cwnd.
func (c *Cubic) segments() float64 {
	return (float64(c.cwnd) + c.frac) / float64(c.mss)
}

// wCubic is W_cubic(t) in segments for t seconds into the epoch (RFC 9438
// equation 1).
func (c *curve) wCubic(t float64) float64 {
	d := t - c.k
	return cubicC*d*d*d + c.wMax
}

// seconds converts nanoseconds to seconds.
func seconds(ns int64) float64 { return float64(ns) / 1e9 }

// OnAck applies an ACK of acked new bytes that arrived with inFlight bytes
// outstanding at time now, with the connection's smoothed RTT srtt (0 if
// none yet): slow start below ssthresh, the CUBIC curve above it. It does
// nothing to cwnd unless inFlight+MSS >= cwnd, and time during which the
// sender was not cwnd-limited does not count into the curve's t.
func (c *Cubic) OnAck(acked, inFlight int, srtt, now int64) {
	if acked <= 0 {
		return
	}
	c.backoff = false
	limited := c.cwndLimited(inFlight)
	if c.inEpoch {
		// Section 4.2: t excludes application-limited periods. The
		// time since the previous ACK counts only if the sender was
		// cwnd-limited at both ends of it; otherwise the epoch start
		// moves on by as much.
		if !limited || !c.lastLimited {
			if d := now - c.lastAck; d > 0 {
				c.epochStart += d
			}
		}
		c.lastAck, c.lastLimited = now, limited
	}
	if !limited {
		return
	}
	if c.cwnd < c.ssthresh {
		if acked = c.slowStart(acked); acked == 0 {
			return
		}
	}
	c.avoid(acked, srtt, now)
}

// avoid is congestion avoidance for acked bytes (section 4.2 to 4.5).
func (c *Cubic) avoid(acked int, srtt, now int64) {
	mss := float64(c.mss)
	cwnd := c.segments()
	if !c.inEpoch {
		c.startEpoch(cwnd, now)
	}
	t := seconds(now - c.epochStart)
	segs := float64(acked) / mss

	// Reno-friendly estimate (section 4.3, equation 4, in bytes acked).
	alpha := alphaCubic
	if c.wEst >= c.cwndPrior {
		alpha = 1
	}
	c.wEst += alpha * segs / cwnd

	next := cwnd
	if c.wCubic(t) < c.wEst {
		// Reno-friendly region.
		next = max(cwnd, c.wEst)
	} else {
		// Concave (cwnd < W_max) or convex region: the same rule.
		target := min(max(c.wCubic(t+seconds(srtt)), cwnd), 1.5*cwnd)
		next = cwnd + (target-cwnd)/cwnd*segs
	}
	bytes := next * mss
	// W_est and target exceed cwnd by at most the segments acked, but the
	// conversion to int must not overflow whatever the caller passed.
	bytes = min(bytes, InfiniteSsthresh)
	c.cwnd = int(bytes)
	c.frac = bytes - float64(c.cwnd)
}

// startEpoch begins a congestion avoidance stage at a window of cwnd
// segments (section 4.2: t_epoch, cwnd_epoch, K; section 4.3: W_est).
func (c *Cubic) startEpoch(cwnd float64, now int64) {
	c.inEpoch = true
	c.epochStart, c.lastAck, c.lastLimited = now, now, true
	if c.resetCurve || c.wMax <= cwnd {
		// After an RTO (section 4.8), or with no saturation point above
		// the window: the plateau is where the window is, K = 0.
		c.wMax, c.k = cwnd, 0
	} else {
		c.k = math.Cbrt((c.wMax - cwnd) / cubicC)
	}
	c.resetCurve = false
	c.wEst = cwnd
}

// OnCongestion enters fast recovery (section 4.6, 4.7): W_max = cwnd, or
// 0.85*cwnd if cwnd is below the previous W_max (fast convergence);
// ssthresh = max(0.7*inFlight, 2*MSS); cwnd = ssthresh. The next ACK after
// recovery starts a new epoch. It is ignored while in recovery.
func (c *Cubic) OnCongestion(inFlight int) {
	if c.inRecovery {
		return
	}
	c.save()
	cwnd := c.segments()
	if cwnd < c.wMax {
		c.wMax = cwnd * fastConvergence
	} else {
		c.wMax = cwnd
	}
	c.cwndPrior = cwnd
	c.reduce(beta(inFlight))
	c.inEpoch, c.resetCurve, c.frac = false, false, 0
}

// beta is inFlight*beta_cubic in whole bytes.
func beta(inFlight int) int {
	return int(int64(inFlight) * 7 / 10)
}

// OnRecoveryExit ends fast recovery: cwnd = ssthresh. The next ACK starts
// the congestion avoidance epoch.
func (c *Cubic) OnRecoveryExit() {
	if !c.inRecovery {
		return
	}
	c.inRecovery = false
	c.cwnd = c.ssthresh
	c.inEpoch, c.frac = false, 0
}

// OnRTO applies a retransmission timeout (section 4.8): ssthresh =
// max(0.7*inFlight, 2*MSS) unless the previous event was an RTO too, cwnd
// = 1 MSS; the next epoch starts with K = 0 and W_max = cwnd_epoch.
func (c *Cubic) OnRTO(inFlight int) {
	if !c.backoff {
		c.save()
		c.cwndPrior = c.segments()
		c.ssthresh = max(beta(inFlight), 2*c.mss)
		c.resetCurve = true
	}
	c.timeout()
	c.inEpoch, c.frac = false, 0
}

// save records the state before a reduction (section 4.9).
func (c *Cubic) save() {
	c.saveUndo()
	c.undoCurve = c.curve
}

// OnSpuriousCongestion undoes the last reduction (section 4.9): if cwnd is
// still below its value before it, cwnd, ssthresh, cwnd_prior, W_max, K,
// t_epoch and W_est return to their values then.
func (c *Cubic) OnSpuriousCongestion() {
	if c.undo() {
		c.curve = c.undoCurve
		c.frac = 0
	}
}
