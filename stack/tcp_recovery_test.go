package stack

import (
	"testing"
	"unsafe"

	"github.com/mkstack/mkstack/stack/congestion"
)

// Loss recovery as Linux does it where the RFCs leave a choice: the
// packetdrill scripts of gtests/net/tcp (fast_recovery/prr-ss-*,
// limited_transmit/*) replayed in the scripted harness, with the times
// scaled by ten (a 100 ms RTT).

// wantWindows asserts the congestion window and slow start threshold.
func wantWindows(cwnd, ssthresh int) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.t.Helper()
		if c := h.conn; c.cc.Cwnd() != cwnd || c.cc.Ssthresh() != ssthresh {
			h.t.Fatalf("%s: cwnd %d, ssthresh %d; want %d and %d", h.rel(h.now()), c.cc.Cwnd(), c.cc.Ssthresh(), cwnd, ssthresh)
		}
	}
}

// sackOpen is a passive open with a peer offering MSS 1000 and SACK.
func sackOpen() []step { return passiveOpen(synOpts(1000, "sack"), synOpts(1460, "sack")) }

// initialFlight is the initial window of 10 segments sent at 200 ms.
func initialFlight() []step {
	var flight []step
	for i := range 10 {
		flight = append(flight, out(ms(200), tseg{f: burstFlags(i), seq: 1 + int64(i)*1000, ack: 1, n: 1000}))
	}
	return flight
}

// sackACK is the peer's ACK of ack with SACK blocks.
func sackACK(at int, ack int64, sack ...[2]int64) step {
	return in(ms(at), tseg{f: ".", seq: 1, ack: ack, sack: sack})
}

func data(at int, f string, seq int64) step {
	return out(ms(at), tseg{f: f, seq: seq, ack: 1, n: 1000})
}

// The ACK that ends a reordering covers segments the peer had already
// reported (SACKed, or counted by a duplicate ACK): slow start counts only
// the one newly delivered, cwnd 10 -> 11, and two segments go, not three
// (limited_transmit/limited-transmit-{sack,no-sack}.pkt).
func TestTCPScriptSlowStartCountsOnlyNewlyDeliveredData(t *testing.T) {
	for _, sack := range []bool{true, false} {
		name := "no SACK"
		if sack {
			name = "SACK"
		}
		t.Run(name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			open, blocks := scriptMSS1000(), [][][2]int64{{{1001, 2001}}, {{1001, 3001}}}
			if sack {
				open = sackOpen()
			} else {
				blocks = [][][2]int64{nil, nil}
			}
			h.run(steps(open, []step{do(ms(200), write(15000))}, initialFlight(), []step{
				// Limited transmit: a new segment for each duplicate ACK.
				sackACK(310, 1, blocks[0]...),
				data(310, ".", 10001),
				sackACK(320, 1, blocks[1]...),
				data(320, ".", 11001),
				// It was reordering: 1:1001 is all that is new.
				sackACK(330, 3001),
				do(ms(330), wantWindows(11000, congestion.InfiniteSsthresh)),
				data(330, ".", 12001),
				data(330, "P.", 13001),
				none(ms(340)),
				// Two new segments: cwnd 13, 9 in flight, the last 1000.
				sackACK(350, 5001),
				data(350, "P.", 14001),
				sackACK(370, 15001),
				do(ms(370), wantStat("fast retransmits", func(s *TCPStats) uint64 { return s.FastRetransmits }, 0)),
			}))
		})
	}
}

// Proportional Rate Reduction (RFC 9937) while the pipe is above ssthresh:
// 7 segments per 10 delivered, counted in whole segments as Linux does.
// ssthresh is 0.7 of the flight without the two segments limited transmit
// sent (RFC 5681 3.2 step 2): 7000, not 8400.
func TestTCPScriptPRRSendsInProportionAboveSsthresh(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(sackOpen(), []step{do(ms(200), write(20000))}, initialFlight(), []step{
		// 1:1001 is lost.
		sackACK(300, 1, [2]int64{1001, 2001}),
		data(300, ".", 10001),
		sackACK(310, 1, [2]int64{1001, 3001}),
		data(310, ".", 11001),
		sackACK(320, 1, [2]int64{1001, 4001}),
		do(ms(320), wantWindows(7000, 7000)),
		data(320, ".", 1), // pipe 8000 > 7000: ceil(0.7) = 1 segment
		sackACK(330, 1, [2]int64{1001, 5001}),
		data(330, ".", 12001), // ceil(1.4) = 2 in all
		sackACK(340, 1, [2]int64{1001, 6001}),
		data(340, ".", 13001), // ceil(2.1) = 3
		sackACK(350, 1, [2]int64{1001, 7001}),
		none(ms(359)), // ceil(2.8) = 3: nothing
		// The pipe is down to ssthresh (7000): nothing goes beyond it,
		// then one segment per segment delivered.
		sackACK(360, 1, [2]int64{1001, 8001}),
		none(ms(369)),
		sackACK(370, 1, [2]int64{1001, 9001}),
		data(370, ".", 14001),
		sackACK(380, 1, [2]int64{1001, 10001}),
		data(380, ".", 15001),
		// The retransmission arrives: recovery ends with cwnd = ssthresh,
		// 4000 bytes in flight.
		sackACK(420, 12001),
		do(ms(420), wantWindows(7000, 7000)),
		data(420, ".", 16001),
		data(420, "P.", 17001),
		data(420, ".", 18001),
		do(ms(420), wantStat("retransmits", func(s *TCPStats) uint64 { return s.Retransmits }, 1)),
	}))
}

// PRR below ssthresh (fast_recovery/prr-ss-30pkt-lost-1_4-11_16.pkt):
// segments 1-4 and 11-16 are lost. A segment goes per segment delivered
// (PRR-CRB), two when an ACK moves sndUna without showing a new loss
// (PRR-SSRB), and a hole whose retransmission was lost too goes again.
func TestTCPScriptPRRSlowStartsBackToSsthresh(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(sackOpen(), []step{do(ms(200), write(20000))}, initialFlight(), []step{
		sackACK(300, 1, [2]int64{4001, 5001}),
		data(300, ".", 10001),
		sackACK(320, 1, [2]int64{4001, 6001}),
		data(320, ".", 11001),
		// Three duplicate ACKs: recovery, ssthresh 7000, pipe 5000.
		sackACK(340, 1, [2]int64{4001, 7001}),
		do(ms(340), wantWindows(7000, 7000)),
		data(340, ".", 1),
		sackACK(360, 1, [2]int64{4001, 8001}),
		data(360, ".", 1001),
		sackACK(380, 1, [2]int64{4001, 9001}),
		data(380, ".", 2001),
		sackACK(400, 1, [2]int64{4001, 10001}),
		data(400, ".", 3001),
		// No hole left to resend: new data, one for one.
		sackACK(420, 1, [2]int64{4001, 11001}),
		data(420, ".", 12001),
		sackACK(440, 1, [2]int64{4001, 12001}),
		data(440, ".", 13001),
		// sndUna moves, no new loss: one segment more.
		sackACK(540, 1001, [2]int64{4001, 12001}),
		data(540, ".", 14001),
		data(540, "P.", 15001),
		// 1001:2001 was lost again: it goes first, then new data.
		sackACK(560, 1001, [2]int64{2001, 12001}),
		data(560, ".", 1001),
		data(560, ".", 16001),
		// The pipe is back at ssthresh: one for one.
		sackACK(580, 1001, [2]int64{2001, 13001}),
		data(580, ".", 17001),
		sackACK(600, 1001, [2]int64{2001, 14001}),
		data(600, ".", 18001),
		do(ms(600), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 0)),
	}))
}

// An ACK reordered behind a later one, its acknowledgment number below
// sndUna, still counts for the data its SACK blocks newly report
// (fast_recovery/prr-ss-ack-below-snd_una-cubic.pkt).
func TestTCPScriptPRRCountsSACKsOfAnOldACK(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(sackOpen(), []step{do(ms(200), write(10000))}, initialFlight(), []step{
		// 1:1001, 4001:5001 and 7001:8001 are lost; 3001:4001 is late.
		sackACK(300, 1, [2]int64{1001, 2001}),
		sackACK(300, 1, [2]int64{1001, 3001}),
		sackACK(300, 1, [2]int64{1001, 3001}, [2]int64{8001, 9001}),
		data(300, ".", 1),
		// sndUna moves to 4001 and no new loss shows: two delivered and
		// one more, three holes (below the highest SACK, so lost).
		sackACK(420, 4001, [2]int64{8001, 9001}),
		data(420, ".", 4001),
		data(420, ".", 5001),
		data(420, ".", 6001),
		do(ms(420), write(10000)),
		none(ms(439)),
		// The old ACK SACKs two of them: two more segments go.
		sackACK(440, 3001, [2]int64{5001, 7001}),
		data(440, ".", 7001),
		data(440, ".", 10001),
	}))
}

// newLoss tells an ACK that exposes a hole above the highest SACKed byte
// (not safe for PRR's extra segment) from one that only extends it.
func TestTCPNewLossSeesOnlyNewHoles(t *testing.T) {
	c := &TCPConn{sndUna: 1000, sb: new(tcpScoreboard)}
	c.sb.sacked[0], c.sb.sacked[1] = seqRange{2000, 3000}, seqRange{3000, 4000}
	c.nSacked = 2
	if c.newLoss(3000) {
		t.Error("a SACK extending the highest range: new loss")
	}
	if c.newLoss(4000) {
		t.Error("no SACK above the old highest byte: new loss")
	}
	c.sb.sacked[1] = seqRange{3500, 4000}
	if !c.newLoss(3000) {
		t.Error("a SACK beyond a gap above the old highest byte: no new loss")
	}
	c.nSacked = 1
	if !c.newLoss(1000) {
		t.Error("a first SACK above sndUna: no new loss")
	}
}

// Without SACK a duplicate ACK counts a segment delivered; the cumulative
// ACK after it counts the rest (at least a segment); outside recovery
// the credit goes with the run of duplicate ACKs, as Linux resets its
// count of them when sndUna moves.
func TestTCPDeliveredWithoutSACKCountsDuplicateACKs(t *testing.T) {
	c := &TCPConn{sndUna: 1, sndMax: 10001, sndMSS: 1000}
	for i, tc := range []struct {
		dupAcks, acked, want int
	}{
		{1, 0, 1000},    // a duplicate ACK
		{1, 3000, 2000}, // the ACK after it: 3000 less the 1000 counted
		{0, 1000, 1000}, // an ordinary ACK
		{1, 0, 1000},    // a new run
		{2, 0, 1000},
		{2, 1000, 1000}, // at least a segment
		{0, 2000, 2000}, // outside recovery what was left went with the run
	} {
		c.dupAcks = tc.dupAcks
		if tc.acked > 0 {
			c.sndUna += uint32(tc.acked)
		}
		if got := c.delivered(tc.acked, 0); got != tc.want {
			t.Errorf("step %d: delivered %d, want %d", i, got, tc.want)
		}
	}
}

// A connection that never saw loss carries no scoreboard, and TCPConn
// stays within the 1280-byte allocation class; one that holds an
// out-of-order range has one, which goes back to the table's free list
// when the connection is recycled and serves the next connection.
func TestScoreboardOnlyWhileRecoveryNeedsIt(t *testing.T) {
	if size := unsafe.Sizeof(TCPConn{}); size > 1280 {
		t.Errorf("TCPConn is %d bytes: past the 1280-byte size class", size)
	}
	m := tcpBenchPair(t, nil, echoServer)
	a := m.stacks[0]
	r := &rrClient{limit: 5}
	c, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	runUntil(m, func() bool { return r.done >= 5 }, 100)
	if r.done < 5 {
		t.Fatalf("%d exchanges", r.done)
	}
	for _, s := range m.stacks {
		for _, conn := range s.tcp.conns {
			if conn.sb != nil {
				t.Errorf("%v: a scoreboard without loss", conn.id)
			}
		}
	}
	c.storeOutOfOrder(&tcpSegment{seq: c.rcvNxt + 100, payload: make([]byte, 10)})
	if c.sb == nil || c.nOOO != 1 {
		t.Fatalf("an out-of-order range: scoreboard %v, %d ranges", c.sb != nil, c.nOOO)
	}
	sb := c.sb
	c.Abort()
	m.step()
	if free := a.tcp.freeScoreboards; len(free) != 1 || free[0] != sb {
		t.Fatalf("after the connection went: %d scoreboards free", len(free))
	}
	c2, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	c2.addSACKed(seqRange{c2.sndUna + 10, c2.sndUna + 20})
	if c2.sb != sb || len(a.tcp.freeScoreboards) != 0 {
		t.Error("the next connection did not take the free scoreboard")
	}
}
