package stack

import "testing"

// TestTCPScriptTailLossProbeResendsABareFINAlone: the probe resends the
// last segment sent (RFC 8985 7.3); when that was our FIN on its own, the
// probe is the FIN alone, not the last data again (as Linux). Sending the
// FIN restarted the probe's timer (RFC 8985 7.2).
func TestTCPScriptTailLossProbeResendsABareFINAlone(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(2000)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
		do(ms(210), closeConn),
		out(ms(210), tseg{f: "F.", seq: 2001, ack: 1}),
		// 2*SRTT after the FIN: the probe.
		none(ms(409)),
		out(ms(410), tseg{f: "F.", seq: 2001, ack: 1}),
		in(ms(420), tseg{f: ".", seq: 1, ack: 2002}),
		do(ms(420), wantState("FIN-WAIT-2")),
		do(ms(420), wantStat("tail loss probes", func(s *TCPStats) uint64 { return s.TailLossProbes }, 1)),
	}))
}

// TestTCPScriptTailLossProbeRestartKeepsTheTimeout: new data restarts an
// armed probe, but not past the timeout the first segment started (RFC
// 6298 5.1): when the restarted probe would come after it, the probe goes
// when the timeout would, in its place (RFC 8985 7.2: PTO =
// TCP_RTO_expiration() - Now()).
func TestTCPScriptTailLossProbeRestartKeepsTheTimeout(t *testing.T) {
	h := newTCPScript(t, nil)
	h.lopts.NoDelay = true
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		// SRTT 100 ms, RTO 300 ms: the timeout is due at 500 (and the
		// probe of one segment, 2*SRTT and a delayed ACK of 200 ms, would
		// be later: it goes at 500).
		do(ms(200), write(1000)),
		out(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 1000}),
		// More data at 350: the probe (two segments: 2*SRTT) would now be
		// due at 550, after the timeout.
		do(ms(350), write(1000)),
		out(ms(350), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
		none(ms(499)),
		// The probe, at the timeout's time: the last segment again.
		out(ms(500), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
		do(ms(500), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 0)),
		do(ms(500), wantStat("tail loss probes", func(s *TCPStats) uint64 { return s.TailLossProbes }, 1)),
		in(ms(510), tseg{f: ".", seq: 1, ack: 2001}),
		none(ms(2000)),
	}))
}
