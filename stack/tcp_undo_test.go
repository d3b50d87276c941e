package stack

import (
	"testing"

	"github.com/mkstack/mkstack/stack/congestion"
	"github.com/mkstack/mkstack/stack/header"
)

func dsacksSent(s *TCPStats) uint64 { return s.DSACKsSent }

// RFC 2883: the ACK for a duplicate segment carries the duplicate range as
// its first SACK block, then the usual ones: a segment wholly below
// RCV.NXT (answered at once), one partly below (the D-SACK rides on the
// delayed ACK of its new bytes), one that repeats out-of-order data (the
// block holding it follows the D-SACK), and an in-order one that runs into
// out-of-order data.
func TestTCPScriptDSACKReportsDuplicates(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.QuickACKs = -1 })
	h.listen()
	d := func(at int, seq int64, n int) step { return in(ms(at), tseg{f: ".", seq: seq, ack: 1, n: n}) }
	h.run(steps(passiveOpen(synOpts(1000, "sack"), synOpts(1460, "sack")), []step{
		d(200, 1, 1000),
		d(210, 1001, 1000),
		out(ms(210), tseg{f: ".", seq: 1, ack: 2001, opts: noOpts}),
		// Wholly a duplicate: an ACK at once, with the D-SACK.
		d(300, 1, 1000),
		out(ms(300), tseg{f: ".", seq: 1, ack: 2001, sack: [][2]int64{{1, 1001}}}),
		do(ms(300), wantStat("D-SACKs sent", dsacksSent, 1)),
		// Half a duplicate: 1501:2001 is reported on the delayed ACK.
		d(400, 1501, 1000),
		none(ms(439)),
		out(ms(440), tseg{f: ".", seq: 1, ack: 2501, sack: [][2]int64{{1501, 2001}}}),
		// Out of order, then again: D-SACK, then the block holding it.
		d(500, 3501, 1000),
		out(ms(500), tseg{f: ".", seq: 1, ack: 2501, sack: [][2]int64{{3501, 4501}}}),
		d(510, 3501, 1000),
		out(ms(510), tseg{f: ".", seq: 1, ack: 2501, sack: [][2]int64{{3501, 4501}, {3501, 4501}}}),
		// In order, running 200 bytes into the held range.
		d(520, 2501, 1200),
		out(ms(520), tseg{f: ".", seq: 1, ack: 4501, sack: [][2]int64{{3501, 3701}}}),
		// Reported once: the next ACK has no SACK option.
		d(600, 4501, 1000),
		d(610, 5501, 1000),
		out(ms(610), tseg{f: ".", seq: 1, ack: 6501, opts: noOpts}),
		do(ms(610), wantStat("D-SACKs sent", dsacksSent, 4)),
	}))
}

// With timestamps the option space holds three SACK blocks: the D-SACK,
// the block holding it, and one more.
func TestTCPScriptDSACKFitsWithTimestamps(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.QuickACKs = -1 })
	h.autoTS = true
	h.listen()
	d := func(at int, seq int64) step { return in(ms(at), tseg{f: ".", seq: seq, ack: 1, n: 1000}) }
	tsOpts := &header.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamps: true, TSEcr: 1000}
	h.run(steps(passiveOpen(synOpts(1000, "sack"), tsOpts), []step{
		d(200, 2001),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, sack: [][2]int64{{2001, 3001}}}),
		d(201, 4001),
		out(ms(201), tseg{f: ".", seq: 1, ack: 1, sack: [][2]int64{{4001, 5001}, {2001, 3001}}}),
		d(202, 6001),
		out(ms(202), tseg{f: ".", seq: 1, ack: 1, sack: [][2]int64{{6001, 7001}, {2001, 3001}, {4001, 5001}}}),
		d(203, 4001),
		out(ms(203), tseg{f: ".", seq: 1, ack: 1, sack: [][2]int64{{4001, 5001}, {4001, 5001}, {2001, 3001}}}),
		do(ms(203), wantStat("D-SACKs sent", dsacksSent, 1)),
	}))
}

// Without SACK permitted no D-SACK is sent.
func TestTCPScriptNoDSACKWithoutSACK(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.QuickACKs = -1 })
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		in(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		in(ms(210), tseg{f: ".", seq: 1001, ack: 1, n: 1000}),
		out(ms(210), tseg{f: ".", seq: 1, ack: 2001, opts: noOpts}),
		in(ms(300), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(300), tseg{f: ".", seq: 1, ack: 2001, opts: noOpts}),
		do(ms(300), wantStat("D-SACKs sent", dsacksSent, 0)),
	}))
}

func dsackUndos(s *TCPStats) uint64 { return s.DSACKUndos }
func eifelUndos(s *TCPStats) uint64 { return s.EifelUndos }

// A fast retransmit made for reordering, not loss: the original of the
// first segment arrives late, the full ACK ends the recovery at the
// reduced window, and the peer's D-SACK of the retransmission (the only
// one) shows the reduction was spurious: cwnd and ssthresh are back to
// their values before it (RFC 3708).
func TestTCPScriptDSACKUndoesSpuriousFastRetransmit(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(sackOpen(), []step{do(ms(200), write(10000))}, initialFlight(), []step{
		sackACK(300, 1, [2]int64{1001, 2001}),
		sackACK(310, 1, [2]int64{1001, 3001}),
		sackACK(320, 1, [2]int64{1001, 4001}),
		data(320, ".", 1),
		do(ms(320), wantWindows(7000, 7000)),
		sackACK(330, 10001),
		do(ms(330), wantWindows(7000, 7000)),
		do(ms(330), wantStat("D-SACK undos", dsackUndos, 0)),
		// The retransmission of 1:1001 arrived too: a D-SACK below the ACK.
		sackACK(340, 10001, [2]int64{1, 1001}),
		do(ms(340), wantWindows(10000, congestion.InfiniteSsthresh)),
		do(ms(340), wantStat("D-SACK undos", dsackUndos, 1)),
		do(ms(340), wantStat("D-SACKs received", func(s *TCPStats) uint64 { return s.DSACKsReceived }, 1)),
		// The window is the one from before: ten segments go at once.
		do(ms(400), write(10000)),
		out(ms(400), tseg{f: ".", seq: 10001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: "P.", seq: 11001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: ".", seq: 12001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: "P.", seq: 13001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: ".", seq: 14001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: "P.", seq: 15001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: ".", seq: 16001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: "P.", seq: 17001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: ".", seq: 18001, ack: 1, n: 1000}),
		out(ms(400), tseg{f: "P.", seq: 19001, ack: 1, n: 1000}),
	}))
}

// A D-SACK that reports data never retransmitted (the network duplicated
// an original) undoes nothing: the retransmission itself was needed.
func TestTCPScriptDSACKOfAnOriginalUndoesNothing(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(sackOpen(), []step{do(ms(200), write(10000))}, initialFlight(), []step{
		sackACK(300, 1, [2]int64{1001, 2001}),
		sackACK(310, 1, [2]int64{1001, 3001}),
		sackACK(320, 1, [2]int64{1001, 4001}),
		data(320, ".", 1),
		// 5001:6001 arrived twice, within the SACKed range.
		sackACK(325, 1, [2]int64{5001, 6001}, [2]int64{1001, 7001}),
		sackACK(330, 10001),
		do(ms(330), wantWindows(7000, 7000)),
		do(ms(330), wantStat("D-SACK undos", dsackUndos, 0)),
	}))
}

// tsOpen is a passive open with a peer offering MSS 1000 and timestamps
// (autoTS): segments carry 988 bytes.
func tsOpen(h *tcpScript) []step {
	h.autoTS = true
	return passiveOpen(synOpts(1000), &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 1000})
}

// ackEchoing has the peer acknowledge ack, echoing *ecr as its TSecr.
func ackEchoing(ack int64, ecr *uint32) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.inject(&tseg{f: ".", seq: 1, ack: ack, opts: &header.TCPOptions{HasTimestamps: true, TSVal: h.peerTS, TSEcr: *ecr}})
	}
}

// Eifel (RFC 3522) after a timeout: the first ACK after the timer's
// retransmission echoes the TSval of the original transmission, so the
// original arrived and the timeout was spurious: the window before it
// comes back, and the timer's go-back-N does not resend the rest. An ACK
// echoing the retransmission's TSval undoes nothing.
func TestTCPScriptEifelUndoesSpuriousRTO(t *testing.T) {
	for _, spurious := range []bool{true, false} {
		name := "echoes the original"
		if !spurious {
			name = "echoes the retransmission"
		}
		t.Run(name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			var orig uint32
			win, undos := []int{9880, congestion.InfiniteSsthresh}, uint64(1)
			// Undone, nothing more goes: the originals of 989:2965 are
			// there. Otherwise the timer's go-back-N goes on.
			tail := []step{none(ms(800)), in(ms(810), tseg{f: ".", seq: 1, ack: 2965})}
			if !spurious {
				win, undos = []int{1976, 2074}, 0
				tail = []step{out(ms(750), tseg{f: ".", seq: 989, ack: 1, n: 988}), out(ms(750), tseg{f: "P.", seq: 1977, ack: 1, n: 988})}
			}
			h.run(steps(tsOpen(h), []step{
				do(ms(200), write(3*988)),
				out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 988}),
				out(ms(200), tseg{f: "P.", seq: 989, ack: 1, n: 988}),
				out(ms(200), tseg{f: "P.", seq: 1977, ack: 1, n: 988}),
				do(ms(200), func(h *tcpScript) { orig = h.lastTS }),
				// The tail loss probe (2*SRTT), then the timeout (RTO 300 ms).
				out(ms(400), tseg{f: "P.", seq: 1977, ack: 1, n: 988}),
				out(ms(700), tseg{f: ".", seq: 1, ack: 1, n: 988}),
				do(ms(700), wantWindows(988, 2074)),
				do(ms(750), func(h *tcpScript) {
					if !spurious {
						orig = h.lastTS
					}
				}),
				do(ms(750), ackEchoing(989, &orig)),
				do(ms(750), wantWindows(win[0], win[1])),
				do(ms(750), wantStat("Eifel undos", eifelUndos, undos)),
			}, tail))
		})
	}
}

// Eifel after a fast retransmit (without SACK, so no D-SACK): three
// duplicate ACKs for reordering, then the ACK that covers the
// retransmitted segment echoes its original's TSval.
func TestTCPScriptEifelUndoesSpuriousFastRetransmit(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var orig uint32
	var flight []step
	for i := range 10 {
		flight = append(flight, out(ms(200), tseg{f: burstFlags(i), seq: 1 + int64(i)*988, ack: 1, n: 988}))
	}
	h.run(steps(tsOpen(h), []step{do(ms(200), write(9880))}, flight, []step{
		do(ms(200), func(h *tcpScript) { orig = h.lastTS }),
		in(ms(300), tseg{f: ".", seq: 1, ack: 1}),
		in(ms(310), tseg{f: ".", seq: 1, ack: 1}),
		in(ms(320), tseg{f: ".", seq: 1, ack: 1}),
		out(ms(320), tseg{f: ".", seq: 1, ack: 1, n: 988}),
		do(ms(320), wantWindows(6916, 6916)),
		do(ms(330), ackEchoing(4941, &orig)), // a partial ACK: the first after the retransmission
		// Back to 9880, and slow start goes on from there with this ACK.
		do(ms(330), wantWindows(9880+2*988, congestion.InfiniteSsthresh)),
		do(ms(330), wantStat("Eifel undos", eifelUndos, 1)),
		in(ms(340), tseg{f: ".", seq: 1, ack: 9881}),
		do(ms(340), wantStat("fast retransmits", func(s *TCPStats) uint64 { return s.FastRetransmits }, 1)),
	}))
}

// The episode's retransmitted ranges: merged when adjacent, split by a
// D-SACK inside one, undone only when none is left; a range sent twice,
// or too many, leave D-SACK out of it.
func TestTCPUndoRangesTakeDSACKs(t *testing.T) {
	type op struct {
		rexmit     bool // else a D-SACK
		start, end uint32
	}
	for _, tc := range []struct {
		name string
		ops  []op
		undo bool
	}{
		{"adjacent, both reported", []op{{true, 0, 1000}, {true, 1000, 2000}, {false, 0, 1000}, {false, 1000, 2000}}, true},
		{"adjacent, one reported", []op{{true, 0, 1000}, {true, 1000, 2000}, {false, 1000, 2000}}, false},
		{"split then both halves", []op{{true, 0, 3000}, {false, 1000, 2000}, {false, 0, 1000}, {false, 2000, 3000}}, true},
		{"holes in any order", []op{{true, 5000, 6000}, {true, 1000, 2000}, {true, 3000, 4000}, {false, 3000, 4000}, {false, 5000, 6000}, {false, 1000, 2000}}, true},
		{"one D-SACK over all", []op{{true, 1000, 2000}, {true, 3000, 4000}, {false, 0, 9000}}, true},
		{"sent twice", []op{{true, 0, 1000}, {true, 0, 1000}, {false, 0, 1000}}, false},
		{"an original reported", []op{{true, 0, 1000}, {false, 5000, 6000}}, false},
		{"no retransmission", []op{{false, 0, 1000}}, false},
		{"too many ranges", func() []op {
			var ops []op
			for i := range uint32(maxUndoRanges + 1) {
				ops = append(ops, op{true, i * 2000, i*2000 + 1000})
			}
			return append(ops, op{false, 0, 100000})
		}(), false},
	} {
		c := &TCPConn{t: &tcpTable{}}
		c.cc = c.algs.Select(0)
		c.cc.Init(1000)
		c.cc.OnCongestion(10000)
		c.startUndo(false)
		for _, o := range tc.ops {
			if o.rexmit {
				c.noteRetransmit(o.start, int(o.end-o.start))
				continue
			}
			seg := &tcpSegment{ack: 100000}
			seg.opts.NumSACKBlocks = 1
			seg.opts.SACKBlocks[0] = header.SACKBlock{Left: o.start, Right: o.end}
			if !isDSACK(seg) {
				t.Fatalf("%s: %v is not taken as a D-SACK", tc.name, o)
			}
			c.takeDSACK(seg)
		}
		if got := c.t.stats.DSACKUndos == 1; got != tc.undo {
			t.Errorf("%s: undone %v, want %v (ranges %v)", tc.name, got, tc.undo, undoRanges(c))
		}
	}
}

// RFC 2883 4: the first block is a D-SACK when below the cumulative ACK
// or within the second block; otherwise it is an ordinary SACK block.
func TestTCPIsDSACK(t *testing.T) {
	for _, tc := range []struct {
		blocks [][2]uint32
		want   bool
	}{
		{[][2]uint32{{100, 200}}, true},    // below ack 1000
		{[][2]uint32{{900, 1100}}, false},  // across it
		{[][2]uint32{{2000, 3000}}, false}, // an ordinary block
		{[][2]uint32{{2000, 2500}, {2000, 3000}}, true},
		{[][2]uint32{{2000, 3500}, {2000, 3000}}, false},
		{[][2]uint32{{200, 100}}, false}, // empty or reversed
		{nil, false},
	} {
		seg := &tcpSegment{ack: 1000}
		for i, b := range tc.blocks {
			seg.opts.SACKBlocks[i] = header.SACKBlock{Left: b[0], Right: b[1]}
			seg.opts.NumSACKBlocks = i + 1
		}
		if got := isDSACK(seg); got != tc.want {
			t.Errorf("%v: isDSACK %v, want %v", tc.blocks, got, tc.want)
		}
	}
}

func frtoUndos(s *TCPStats) uint64 { return s.FRTOUndos }

// F-RTO (RFC 5682 2.1), without timestamps or SACK: the first ACK after
// the timer's retransmission covers just it, so two new segments go
// instead of more retransmissions; the next ACK covers data sent once, so
// the timeout was spurious and the window from before it comes back. A
// duplicate ACK there instead means the loss was real: the timer's
// go-back-N resumes.
func TestTCPScriptFRTO(t *testing.T) {
	for _, spurious := range []bool{true, false} {
		name := "spurious"
		if !spurious {
			name = "real loss"
		}
		t.Run(name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			tail := []step{
				in(ms(800), tseg{f: ".", seq: 1, ack: 3001}),
				do(ms(800), wantWindows(10000, congestion.InfiniteSsthresh)),
				do(ms(800), wantStat("F-RTO undos", frtoUndos, 1)),
				in(ms(850), tseg{f: ".", seq: 1, ack: 5001}),
			}
			if !spurious {
				tail = []step{
					in(ms(800), tseg{f: ".", seq: 1, ack: 1001}),
					out(ms(800), tseg{f: ".", seq: 1001, ack: 1, n: 1000}),
					out(ms(800), tseg{f: ".", seq: 2001, ack: 1, n: 1000}),
					// cwnd 2000, and a segment more for the duplicate ACK
					// (limited transmit): within RFC 5682 3a's 3*MSS.
					out(ms(800), tseg{f: ".", seq: 3001, ack: 1, n: 1000}),
					do(ms(800), wantWindows(2000, 2100)),
					do(ms(800), wantStat("F-RTO undos", frtoUndos, 0)),
				}
			}
			h.run(steps(scriptMSS1000(), []step{
				do(ms(200), write(3000)),
				out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
				out(ms(200), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
				out(ms(200), tseg{f: "P.", seq: 2001, ack: 1, n: 1000}),
				out(ms(400), tseg{f: "P.", seq: 2001, ack: 1, n: 1000}), // the tail loss probe
				out(ms(700), tseg{f: ".", seq: 1, ack: 1, n: 1000}),     // the timeout
				do(ms(700), wantWindows(1000, 2100)),
				do(ms(710), write(2000)), // waits: the window is full
				in(ms(750), tseg{f: ".", seq: 1, ack: 1001}),
				out(ms(750), tseg{f: ".", seq: 3001, ack: 1, n: 1000}),
				out(ms(750), tseg{f: "P.", seq: 4001, ack: 1, n: 1000}),
			}, tail))
		})
	}
}

// undoRanges are c's retransmitted ranges for undo.
func undoRanges(c *TCPConn) []seqRange {
	if c.sb == nil {
		return nil
	}
	return c.sb.undo[:c.nUndo]
}
