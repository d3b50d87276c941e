package congestion

// NewReno is Reno congestion control with NewReno's one reduction per
// recovery (RFC 5681, RFC 6582), counting bytes (RFC 3465). The zero value
// is ready for Init; embed it by value.
type NewReno struct {
	window
	// bytesAcked counts bytes acknowledged in congestion avoidance; each
	// time it reaches cwnd, cwnd grows by one MSS (RFC 3465 section 2.1).
	bytesAcked int
}

// Name returns "newreno".
func (r *NewReno) Name() string { return algorithmNames[AlgorithmNewReno] }

// Cwnd is the congestion window in bytes.
func (r *NewReno) Cwnd() int { return r.cwnd }

// Ssthresh is the slow start threshold in bytes.
func (r *NewReno) Ssthresh() int { return r.ssthresh }

// InSlowStart reports whether cwnd < ssthresh.
func (r *NewReno) InSlowStart() bool { return r.cwnd < r.ssthresh }

// Init starts the algorithm for segments of mss bytes: cwnd =
// InitialWindow(mss), ssthresh = InfiniteSsthresh.
func (r *NewReno) Init(mss int) {
	*r = NewReno{}
	r.init(mss)
}

// SetMSS changes the segment size, keeping cwnd and ssthresh the same
// number of segments.
func (r *NewReno) SetMSS(mss int) {
	if !r.validMSS(mss) {
		return
	}
	r.bytesAcked = rescale(r.bytesAcked, mss, r.mss)
	r.setMSS(mss)
}

// OnAck applies an ACK of acked new bytes that arrived with inFlight bytes
// outstanding: slow start below ssthresh, then one MSS per cwnd bytes
// acknowledged. It does nothing unless inFlight+MSS >= cwnd. srtt and now
// are not used by NewReno.
func (r *NewReno) OnAck(acked, inFlight int, srtt, now int64) {
	if acked <= 0 {
		return
	}
	r.backoff = false
	if !r.cwndLimited(inFlight) {
		return
	}
	if r.cwnd < r.ssthresh {
		if acked = r.slowStart(acked); acked == 0 {
			return
		}
	}
	r.bytesAcked += acked
	if r.bytesAcked >= r.cwnd {
		r.bytesAcked -= r.cwnd
		r.cwnd += r.mss
	}
}

// OnCongestion enters fast recovery: ssthresh = max(inFlight/2, 2*MSS)
// (RFC 5681 equation 4), cwnd = ssthresh. It is ignored while in recovery.
func (r *NewReno) OnCongestion(inFlight int) {
	if r.inRecovery {
		return
	}
	r.saveUndo()
	r.reduce(inFlight / 2)
	r.bytesAcked = 0
}

// OnRecoveryExit ends fast recovery: cwnd = ssthresh (RFC 6582 section 3.2
// step 3, option 2).
func (r *NewReno) OnRecoveryExit() {
	if !r.inRecovery {
		return
	}
	r.inRecovery = false
	r.cwnd = r.ssthresh
	r.bytesAcked = 0
}

// OnRTO applies a retransmission timeout: ssthresh = max(inFlight/2, 2*MSS)
// unless the previous event was an RTO too, cwnd = 1 MSS.
func (r *NewReno) OnRTO(inFlight int) {
	if !r.backoff {
		r.saveUndo()
		r.ssthresh = max(inFlight/2, 2*r.mss)
	}
	r.timeout()
	r.bytesAcked = 0
}

// OnSpuriousCongestion undoes the last reduction: cwnd and ssthresh return
// to their values before it if cwnd is still below its value then.
func (r *NewReno) OnSpuriousCongestion() {
	if r.undo() {
		r.bytesAcked = 0
	}
}
