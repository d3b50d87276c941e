package stack

import (
	"testing"
	"time"
)

// Scripted tests of the TCP timers and loss recovery.

// The RTO timeline (RFC 6298, RFC 8985): the handshake measured an RTT of
// 100 ms, so SRTT = 100 ms, RTTVAR = 50 ms and RTO = 300 ms. A lone
// segment that is never acknowledged is probed once (TLP): 2*SRTT + the
// peer's worst-case delayed ACK (200 ms) is after the timeout, so the
// probe goes at the timeout, in its place (RFC 8985 7.2). It is then
// retransmitted at RTO after the probe, 2*RTO, 4*RTO after that, ...
// capped at MaxRTO (4 s here); after MaxRetries (6) retransmissions the
// next expiry ends the connection with ErrConnectionTimeout, and no reset
// is sent.
func TestTCPScriptRTOBackoffTimelineAndGiveUp(t *testing.T) {
	h := newTCPScript(t, func(c *Config) {
		c.TCP.MaxRTO = 4 * time.Second
		c.TCP.MaxRetries = 6
	})
	h.listen()
	data := tseg{f: "P.", seq: 1, ack: 1, n: 100}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(100)),
		out(ms(200), data),
		out(ms(500), data),   // tail loss probe: 200 + RTO (before 200 + 2*100 + 200)
		out(ms(800), data),   // RTO 300 ms after the probe
		out(ms(1400), data),  // +600
		out(ms(2600), data),  // +1200
		out(ms(5000), data),  // +2400
		out(ms(9000), data),  // +4000: capped
		out(ms(13000), data), // +4000, the 6th RTO retransmission
		do(ms(13000), wantState("ESTABLISHED")),
		do(ms(16999), wantState("ESTABLISHED")),
		do(ms(17000), wantClosed(ErrConnectionTimeout)),
		do(ms(17000), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 6)),
		do(ms(17000), wantStat("TLPs", func(s *TCPStats) uint64 { return s.TailLossProbes }, 1)),
		none(ms(60000)),
	}))
}

// Retransmission timeouts in the handshake: the SYN-ACK goes again at the
// initial RTO (1 s), 2 s and 4 s after, and the ACK that finally comes
// completes the connection (Karn: no RTT sample from it).
func TestTCPScriptSYNACKRetransmitsWithBackoff(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	synack := tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}
	h.run([]step{
		in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(0, synack),
		out(ms(1000), synack),
		out(ms(3000), synack),
		out(ms(7000), synack),
		in(ms(7100), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(7100), wantState("ESTABLISHED")),
		do(ms(7100), func(h *tcpScript) {
			if h.conn.SRTT() != 0 {
				h.t.Fatalf("SRTT %d from a retransmitted SYN-ACK (Karn)", h.conn.SRTT())
			}
		}),
		none(ms(20000)),
	})
}

// Fast retransmit (RFC 5681 3.2) after exactly three duplicate ACKs, with
// limited transmit (RFC 3042) sending one new segment for each of the
// first two.
func TestTCPScriptFastRetransmitAfterThreeDuplicateACKs(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var flight []step
	for i := range 10 { // the initial window: 10 segments
		flight = append(flight, out(ms(200), tseg{f: burstFlags(i), seq: 1 + int64(i)*1000, ack: 1, n: 1000}))
	}
	dup := tseg{f: ".", seq: 1, ack: 1}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(12000)),
	}, flight, []step{
		// The first segment is lost; each later one brings a duplicate ACK.
		in(ms(300), dup),
		out(ms(300), tseg{f: ".", seq: 10001, ack: 1, n: 1000}), // limited transmit
		in(ms(301), dup),
		out(ms(301), tseg{f: "P.", seq: 11001, ack: 1, n: 1000}), // limited transmit
		in(ms(302), dup),
		out(ms(302), tseg{f: ".", seq: 1, ack: 1, n: 1000}), // fast retransmit
		do(ms(302), wantStat("fast retransmits", func(s *TCPStats) uint64 { return s.FastRetransmits }, 1)),
		in(ms(303), dup),
		in(ms(304), dup),
		in(ms(400), tseg{f: ".", seq: 1, ack: 12001}),
		none(ms(5000)),
		do(ms(5000), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 0)),
		do(ms(5000), wantStat("retransmits", func(s *TCPStats) uint64 { return s.Retransmits }, 1)),
	}))
}

// Two duplicate ACKs are not a loss: no retransmission until the third.
func TestTCPScriptTwoDuplicateACKsDoNotRetransmit(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	dup := tseg{f: ".", seq: 1, ack: 1}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(3000)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}), // the end of a GSO-sized packet
		out(ms(200), tseg{f: "P.", seq: 2001, ack: 1, n: 1000}), // the end of the write
		in(ms(250), dup),
		in(ms(251), dup),
		none(ms(399)),
		// The tail loss probe resends the last segment. (Its timer was
		// armed once the burst had left, three segments in flight: 2*SRTT,
		// 200 ms, without the allowance for a delayed ACK of one segment.)
		out(ms(400), tseg{f: "P.", seq: 2001, ack: 1, n: 1000}),
		in(ms(450), tseg{f: ".", seq: 1, ack: 3001}),
		do(ms(450), wantStat("fast retransmits", func(s *TCPStats) uint64 { return s.FastRetransmits }, 0)),
		none(ms(5000)),
	}))
}

// SACK (RFC 2018, RFC 6675): three segments of one flight are lost; the
// SACK blocks of the duplicate ACKs let the sender repair all three holes
// before any retransmission is acknowledged: one round trip, no timeout.
func TestTCPScriptSACKRepairsSeveralLossesInOneRoundTrip(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var flight []step
	for i := range 10 {
		flight = append(flight, out(ms(200), tseg{f: burstFlags(i), seq: 1 + int64(i)*1000, ack: 1, n: 1000}))
	}
	a := func(at int, ack int64, sack ...[2]int64) step {
		return in(ms(at), tseg{f: ".", seq: 1, ack: ack, sack: sack})
	}
	h.run(steps(passiveOpen(synOpts(1000, "sack"), synOpts(1460, "sack")), []step{
		do(ms(200), write(10000)),
	}, flight, []step{
		// Segments 2, 5 and 8 (1001, 4001, 7001) are lost.
		a(300, 1001),
		a(301, 1001, [2]int64{2001, 3001}),
		a(302, 1001, [2]int64{2001, 4001}),
		a(303, 1001, [2]int64{5001, 6001}, [2]int64{2001, 4001}),
		// Three duplicate ACKs, more than 2 segments SACKed: recovery,
		// ssthresh 6300 (0.7 of the 9000 bytes in flight). The pipe,
		// 4000 bytes, is below it: PRR (RFC 9937) sends as much as each
		// ACK reports delivered, one segment.
		out(ms(303), tseg{f: ".", seq: 1001, ack: 1, n: 1000}),
		a(304, 1001, [2]int64{5001, 7001}, [2]int64{2001, 4001}),
		out(ms(304), tseg{f: ".", seq: 4001, ack: 1, n: 1000}),
		a(305, 1001, [2]int64{8001, 9001}, [2]int64{5001, 7001}, [2]int64{2001, 4001}),
		out(ms(305), tseg{f: ".", seq: 7001, ack: 1, n: 1000}),
		a(306, 1001, [2]int64{8001, 10001}, [2]int64{5001, 7001}, [2]int64{2001, 4001}),
		// The retransmissions arrive.
		a(400, 4001, [2]int64{8001, 10001}, [2]int64{5001, 7001}),
		a(401, 7001, [2]int64{8001, 10001}),
		a(402, 10001),
		none(ms(5000)),
		do(ms(5000), wantStat("SACK recoveries", func(s *TCPStats) uint64 { return s.SACKRecoveries }, 1)),
		do(ms(5000), wantStat("retransmits", func(s *TCPStats) uint64 { return s.Retransmits }, 3)),
		do(ms(5000), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 0)),
	}))
}

// A zero window (RFC 9293 3.8.6.1): data waits, the persist timer probes
// at RTO, 2*RTO, 4*RTO, ... (each answered with the window still closed),
// and when the window opens the data flows at once.
func TestTCPScriptZeroWindowPersistProbesThenDataFlows(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	probe := tseg{f: ".", seq: 0, ack: 1}
	shut := tseg{f: ".", seq: 1, ack: 1, win: zeroWin}
	h.run([]step{
		in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		in(ms(100), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}),
		do(ms(200), write(1000)),
		none(ms(499)),
		out(ms(500), probe), // RTO = 300 ms
		in(ms(510), shut),
		out(ms(1100), probe), // +600
		in(ms(1110), shut),
		out(ms(2300), probe), // +1200
		in(ms(2310), shut),
		out(ms(4700), probe), // +2400
		// This answer is lost; the probes go on.
		out(ms(9500), probe), // +4800
		in(ms(9510), tseg{f: ".", seq: 1, ack: 1, win: 4000}),
		out(ms(9510), tseg{f: "P.", seq: 1, ack: 1, n: 1000}),
		in(ms(9610), tseg{f: ".", seq: 1, ack: 1001, win: 3000}),
		do(ms(9610), wantStat("persist probes", func(s *TCPStats) uint64 { return s.PersistProbes }, 5)),
		none(ms(30000)),
		do(ms(30000), wantState("ESTABLISHED")),
	})
}

// Keepalive (RFC 9293 3.8.4): after KeepAliveIdle without a segment a
// probe (SEQ=SND.UNA-1); an answer restarts the idle time; after
// KeepAliveProbes unanswered probes KeepAliveInterval apart the
// connection times out.
func TestTCPScriptKeepAliveProbesAndGiveUp(t *testing.T) {
	h := newTCPScript(t, func(c *Config) {
		c.TCP.KeepAliveIdle = 10 * time.Second
		c.TCP.KeepAliveInterval = time.Second
		c.TCP.KeepAliveProbes = 3
	})
	h.lopts.KeepAlive = true
	h.listen()
	probe := tseg{f: ".", seq: 0, ack: 1}
	h.run(steps(scriptMSS1000(), []step{
		none(ms(10099)),
		out(ms(10100), probe),
		in(ms(10200), tseg{f: ".", seq: 1, ack: 1}),
		none(ms(20199)),
		out(ms(20200), probe),
		out(ms(21200), probe),
		out(ms(22200), probe),
		do(ms(23199), wantState("ESTABLISHED")),
		do(ms(23200), wantClosed(ErrConnectionTimeout)),
		do(ms(23200), wantStat("keepalive probes", func(s *TCPStats) uint64 { return s.KeepAliveProbes }, 4)),
		none(ms(60000)),
	}))
}

// A connection without KeepAlive sends nothing however long it idles.
func TestTCPScriptNoKeepAliveByDefault(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.KeepAliveIdle = 10 * time.Second })
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		none(ms(100000)),
		do(ms(100000), wantState("ESTABLISHED")),
	}))
}

// Delayed ACK (RFC 9293 3.8.6.3, RFC 5681 4.2): every second full-sized
// segment is acknowledged at once, a lone one after DelayedACK (40 ms);
// an out-of-order segment at once, with a SACK block, and the segment
// that fills the hole at once too.
func TestTCPScriptDelayedACK(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.QuickACKs = -1 }) // the delayed ACK from the first segment
	h.listen()
	d := func(at int, seq int64) step { return in(ms(at), tseg{f: ".", seq: seq, ack: 1, n: 1000}) }
	h.run(steps(passiveOpen(synOpts(1000, "sack"), synOpts(1460, "sack")), []step{
		d(200, 1),
		none(ms(209)),
		d(210, 1001),
		out(ms(210), tseg{f: ".", seq: 1, ack: 2001}),
		d(300, 2001),
		none(ms(339)),
		out(ms(340), tseg{f: ".", seq: 1, ack: 3001}),
		d(400, 4001), // beyond a hole
		out(ms(400), tseg{f: ".", seq: 1, ack: 3001, sack: [][2]int64{{4001, 5001}}}),
		d(401, 6001), // a second hole: the newest block first
		out(ms(401), tseg{f: ".", seq: 1, ack: 3001, sack: [][2]int64{{6001, 7001}, {4001, 5001}}}),
		d(410, 3001), // fills the first hole
		out(ms(410), tseg{f: ".", seq: 1, ack: 5001, sack: [][2]int64{{6001, 7001}}}),
		d(420, 5001),
		out(ms(420), tseg{f: ".", seq: 1, ack: 7001, opts: noOpts}),
		do(ms(420), wantStat("delayed ACKs", func(s *TCPStats) uint64 { return s.DelayedACKs }, 1)),
		do(ms(420), func(h *tcpScript) {
			var got []byte
			readAll(h.conn, &got)
			if len(got) != 7000 {
				h.t.Fatalf("read %d bytes, want 7000", len(got))
			}
		}),
		none(ms(2000)),
	}))
}

// With the NIC's TSO, new data leaves in segments of several MSS (their
// checksums partial, for the NIC to cut them into segments of one MSS),
// sized as Linux's TSO autosizing would: on this path of 100 ms, two MSS
// each (at least 2, and about a millisecond of the rate). After the NIC's
// first segment is lost, limited transmit and the fast retransmit go one
// MSS at a time, as without TSO.
func TestTCPScriptTSOSendsLargeSegmentsAndRetransmitsOneMSS(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TSO = true })
	h.listen()
	dup := tseg{f: ".", seq: 1, ack: 1}
	var flight []step
	for i := range 5 { // the initial window, 10 segments, in 5 TSO segments
		flight = append(flight, out(ms(200), tseg{f: "P.", seq: 1 + int64(i)*2000, ack: 1, n: 2000}))
	}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(12000)),
	}, flight, []step{
		in(ms(300), dup),
		out(ms(300), tseg{f: ".", seq: 10001, ack: 1, n: 1000}), // limited transmit
		in(ms(301), dup),
		out(ms(301), tseg{f: "P.", seq: 11001, ack: 1, n: 1000}), // limited transmit
		in(ms(302), dup),
		out(ms(302), tseg{f: ".", seq: 1, ack: 1, n: 1000}), // fast retransmit
		in(ms(303), dup),
		in(ms(304), dup),
		in(ms(400), tseg{f: ".", seq: 1, ack: 12001}),
		none(ms(5000)),
		do(ms(5000), wantStat("retransmits", func(s *TCPStats) uint64 { return s.Retransmits }, 1)),
		do(ms(5000), wantStat("TSO segments", func(s *TCPStats) uint64 { return s.TSOSegmentsOut }, 5)),
		do(ms(5000), wantStat("segments cut from them", func(s *TCPStats) uint64 { return s.TSOSegmentsCut }, 10)),
	}))
	if len(h.tsoSizes) != 5 || h.tsoSizes[0] != 1000 || h.tsoSizes[4] != 1000 {
		t.Errorf("TSO segments sent with segment sizes %v, want 5 of 1000", h.tsoSizes)
	}
	// The NIC numbers each TSO segment's two pieces from its ID on, so the
	// stack's next packet skips the second: packets 1-5 after the SYN-ACK.
	if ids := h.ipIDs; len(ids) < 7 {
		t.Errorf("%d IPv4 packets sent; want the SYN-ACK, 5 TSO segments and more", len(ids))
	} else {
		for i := 2; i <= 6; i++ {
			if ids[i]-ids[i-1] != 2 {
				t.Errorf("IP IDs %v: a TSO segment of 2 pieces took %d IDs", ids[:7], ids[i]-ids[i-1])
				break
			}
		}
	}
}
