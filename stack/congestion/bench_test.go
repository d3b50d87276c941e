package congestion

import "testing"

// benchmarkOnAck measures OnAck in steady state: one-segment ACKs of a
// full window on a 50 ms path that holds 1000 segments, with a loss (and
// recovery) each time the window passes it, so the window keeps cycling
// through congestion avoidance as on a long-lived bulk connection.
func benchmarkOnAck(b *testing.B, cc Controller) {
	const bdp = 1000 * mss
	const rtt = 50 * ms
	cc.Init(mss)
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		w := cc.Cwnd()
		now += rtt * mss / int64(w)
		cc.OnAck(mss, w, rtt, now)
		if w > bdp {
			cc.OnCongestion(w)
			cc.OnRecoveryExit()
		}
	}
}

// BenchmarkCubicOnAck is the cost of one ACK for CUBIC: curve, target
// and Reno-friendly estimate in float64.
func BenchmarkCubicOnAck(b *testing.B) { benchmarkOnAck(b, &Cubic{}) }

// BenchmarkNewRenoOnAck is the cost of one ACK for NewReno: byte counting.
func BenchmarkNewRenoOnAck(b *testing.B) { benchmarkOnAck(b, &NewReno{}) }
