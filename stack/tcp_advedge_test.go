package stack

import "testing"

// TestTCPScriptDataWithinThePreviouslyOfferedEdgeIsTaken: with window
// scale 7 the window is advertised in 128-byte units, so as RCV.NXT moves
// by less than a unit the edge rounds back (RCV.NXT 101: edge 131 045;
// RCV.NXT 201: edge 131 017). A peer may still send up to the edge it was
// offered, and those bytes are taken (here out of order, SACKed), not
// dropped as beyond the window (RFC 9293 3.8.6: a receiver should not
// shrink its window).
func TestTCPScriptDataWithinThePreviouslyOfferedEdgeIsTaken(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var before uint64
	h.run(steps(passiveOpen(synOpts(1000, "sack", "ws7"), synOpts(1460, "sack", "ws7")), []step{
		in(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 101, win: 1023}),
		in(ms(300), tseg{f: "P.", seq: 101, ack: 1, n: 100}),
		out(ms(300), tseg{f: ".", seq: 1, ack: 201, win: 1022}),
		do(ms(400), func(h *tcpScript) { before = drops(h.s, DropTCPOutOfWindow) }),
		// Bytes 131 017 to 131 044: past the edge of the last ACK, inside the
		// one before.
		in(ms(400), tseg{f: "P.", seq: 131017, ack: 1, n: 28}),
		out(ms(400), tseg{f: ".", seq: 1, ack: 201, sack: [][2]int64{{131017, 131045}}}),
		do(ms(400), func(h *tcpScript) {
			if d := drops(h.s, DropTCPOutOfWindow) - before; d != 0 {
				h.t.Fatalf("%d segments dropped as out of window", d)
			}
		}),
	}))
}
