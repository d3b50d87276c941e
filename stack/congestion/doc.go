// Package congestion owns TCP congestion window algorithms: CUBIC (RFC 9438)
// and NewReno (RFC 5681, RFC 6582). It is window arithmetic only: it does
// no I/O, keeps no clock, starts nothing and allocates nothing. It must not
// detect loss, count duplicate ACKs, keep a SACK scoreboard or decide when
// recovery starts and ends: the TCP connection owns all of that and tells
// the algorithm what happened, one event at a time.
//
// # Units
//
// Windows (cwnd, ssthresh, acked and in-flight amounts) are bytes, as int.
// Times are nanoseconds, as int64, read by the caller from the stack's
// monotonic clock and passed in (now, srtt). Inside, CUBIC works in
// segments and seconds, as RFC 9438 writes its formulas, in float64; the
// window it hands back is whole bytes, the fraction carried to the next ACK.
// The results are deterministic for a given sequence of calls on a given
// platform.
//
// # Shape
//
// Cubic and NewReno are plain value types with pointer methods; both
// implement Controller. A connection embeds them by value (Algorithms holds
// one of each) and points a Controller at the one it uses, so choosing an
// algorithm at run time costs neither an allocation nor a map. Init must be
// called before any other method; it may be called again to start over.
// Algorithm and ByName turn configuration strings into a choice.
//
// # Events
//
//	Init(mss)                 cwnd = InitialWindow(mss) (RFC 6928), ssthresh = InfiniteSsthresh
//	OnAck(acked, inFlight, srtt, now)
//	                          an ACK of new data outside fast recovery:
//	                          slow start or congestion avoidance
//	OnCongestion(inFlight)    loss found by duplicate ACKs or SACK; the
//	                          connection enters fast recovery
//	OnRecoveryExit()          a full ACK ends that recovery: cwnd = ssthresh
//	OnRTO(inFlight)           the retransmission timer expired: cwnd = 1 MSS
//	OnSpuriousCongestion()    the last reduction was spurious: undo it
//	                          (see "Undo" below for who finds that out)
//	SetMSS(mss)               the segment size changed (path MTU)
//
// inFlight is FlightSize (RFC 5681): the bytes outstanding when the event
// happened, for OnAck before the ACK is applied.
//
// # Slow start
//
// While cwnd < ssthresh, each ACK grows cwnd by the bytes it acknowledges,
// at most L = 2*MSS (Appropriate Byte Counting, RFC 3465), and at most
// L = 1*MSS in the slow start that follows an RTO, where one cumulative ACK
// can cover much retransmitted data (RFC 3465 section 2.3). Slow start
// stops at ssthresh; bytes of the same ACK beyond it go to congestion
// avoidance. CUBIC uses this standard slow start (RFC 9438 section 4.10
// allows it); HyStart++ is not implemented.
//
// # Growing only a window in use
//
// An ACK grows cwnd only if the sender was limited by cwnd when the ACK
// arrived, which this package takes as
//
//	inFlight + MSS >= cwnd
//
// that is, less than one full segment of the window was left unused. An
// application-limited or receive-window-limited sender (RFC 7661's
// non-validated case) keeps its cwnd but does not raise it, so a later
// burst is not sent at a window the path never carried. The
// non-validated-phase decay of RFC 7661 and restart after idle (RFC 5681
// section 4.1) are left to the connection.
//
// # NewReno
//
// Congestion avoidance counts acknowledged bytes (RFC 3465 section 2.1,
// RFC 5681 section 3.1): each time they reach cwnd, cwnd grows by one MSS,
// so a window's worth of ACKs adds one MSS per round trip. Loss sets
// ssthresh = max(FlightSize/2, 2*MSS) (RFC 5681 equation 4) and cwnd =
// ssthresh; an RTO sets cwnd = 1 MSS. Window inflation by duplicate ACKs
// during fast recovery (RFC 6582 section 3.2 steps 2 to 4) is recovery
// bookkeeping and stays with the connection; this package's cwnd is never
// inflated, so OnRecoveryExit's deflation is cwnd = ssthresh (step 3,
// option 2).
//
// # CUBIC
//
// W_cubic(t) = C*(t-K)^3 + W_max segments, with C = 0.4, beta_cubic = 0.7
// and K = cbrt((W_max - cwnd_epoch)/C) seconds; t is the time since the
// epoch began, the first ACK of the congestion avoidance stage. Each ACK
// moves cwnd by (target - cwnd)/cwnd per acknowledged segment, fractions
// included, where target is W_cubic(t + RTT) held within [cwnd, 1.5*cwnd]
// (section 4.2). RTT is the smoothed RTT (SRTT, RFC 6298), as section 4.2
// asks: the caller passes its own estimate, 0 before the first sample
// (target is then W_cubic(t)). The Reno-friendly estimate W_est grows by
// alpha_cubic = 3*(1-beta)/(1+beta) segments per window of ACKs, 1 once it
// passes cwnd_prior (section 4.3); while W_cubic(t) < W_est, cwnd follows
// W_est. Loss sets ssthresh = 0.7*FlightSize, cwnd = ssthresh (at least
// 2*MSS) and W_max = cwnd before the reduction, or 0.85 of it when it is
// below the previous W_max (fast convergence, section 4.7). An RTO sets
// the same ssthresh and cwnd = 1 MSS, and the next epoch starts with K = 0
// and W_max = cwnd_epoch (section 4.8).
//
// t excludes application-limited periods (section 4.2): the time between
// two ACKs counts only if the sender was cwnd-limited at both, so an idle
// or application-limited spell neither grows cwnd nor moves the curve on.
//
// Fast convergence is always on; ECN reductions (cwnd down to 1 MSS rather
// than 2) are not yet offered.
//
// # Undo
//
// OnSpuriousCongestion restores the variables saved before the last
// reduction (section 4.9) if cwnd is still below what it was then; NewReno
// restores its cwnd and ssthresh the same way. Either way the algorithm's
// recovery is over. This package's tests check the arithmetic.
//
// The stack's TCP calls it (stack/tcp_undo.go) when one of three
// detectors finds that the last reduction, by fast recovery or by the
// retransmission timer, was made for a loss that did not happen:
//
//   - D-SACK (RFC 2883, RFC 3708): the peer reported by D-SACK every
//     range retransmitted since the reduction, so it had received each
//     one already (Linux's undo_retrans). Counted as
//     TCPStats.DSACKUndos, mkstack_tcp_dsack_undos_total.
//   - Eifel (RFC 3522), with timestamps: the first ACK of new data after
//     the first retransmission echoes a TSval older than that
//     retransmission's, so it answers the original (Linux's
//     tcp_packet_delayed). Counted as TCPStats.EifelUndos,
//     mkstack_tcp_eifel_undos_total.
//   - F-RTO (RFC 5682 2.1, the basic algorithm), after a timeout only:
//     the first ACK covers the retransmission and not all that was
//     outstanding, two new segments go instead of retransmissions, and
//     the next ACK covers data sent only once. Counted as
//     TCPStats.FRTOUndos, mkstack_tcp_frto_undos_total.
//
// The connection then leaves fast recovery (and PRR) itself; after a
// timeout it does not resend the rest of its go-back-N. Nothing else calls
// OnSpuriousCongestion. Not done: RFC 5682's SACK-enhanced F-RTO (section
// 3; the basic algorithm runs with SACK too), Linux's undo on a partial
// ACK that still leaves retransmissions out (the connection leaves
// recovery at once), and the adaptation of the reordering degree after an
// undo.
//
// # Repeated timeouts
//
// When OnRTO comes again with no OnAck in between, the same segment timed
// out again: ssthresh is held (RFC 5681 section 3.1), cwnd stays 1 MSS.
//
// # Figures
//
// One ACK in steady congestion avoidance (a 50 ms path of 1000 segments,
// a loss at each peak), amd64, 2 shared vCPUs (Oxide Turin-like), Go 1.26;
// no method allocates (TestNoAllocations checks all of them):
//
//	$ go test -run '^$' -bench . -count=3 ./stack/congestion/
//	BenchmarkCubicOnAck-2     33-36 ns/op   0 B/op   0 allocs/op
//	BenchmarkNewRenoOnAck-2   3.5-6 ns/op   0 B/op   0 allocs/op
//
// Sizes: Cubic 192 bytes (half of it the state kept for undo), NewReno 56,
// Algorithms 248.
package congestion
