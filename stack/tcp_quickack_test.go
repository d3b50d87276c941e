package stack

import "testing"

// TestTCPScriptQuickACKsAtTheStartAndAfterASilence: when data starts to
// flow, each segment is acknowledged at once, 16 of them (Linux's quickack
// mode), and only then does the delayed ACK apply; a peer that resumes
// after a silence longer than the RTO gets quick ACKs again.
func TestTCPScriptQuickACKsAtTheStartAndAfterASilence(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var s []step
	seq := int64(1)
	// One full segment a millisecond: without quick ACKs only every
	// second one would be acknowledged at once.
	for i := range 16 {
		s = append(s,
			in(ms(200+i), tseg{f: ".", seq: seq, ack: 1, n: 1000}),
			out(ms(200+i), tseg{f: ".", seq: 1, ack: seq + 1000}))
		seq += 1000
	}
	s = append(s,
		// The quick ACKs are spent: the next segment waits.
		in(ms(216), tseg{f: ".", seq: seq, ack: 1, n: 1000}),
		none(ms(255)),
		out(ms(256), tseg{f: ".", seq: 1, ack: seq + 1000}),
		// A silence longer than the RTO (300 ms after the handshake's
		// 100 ms sample): quick ACKs again.
		in(ms(700), tseg{f: ".", seq: seq + 1000, ack: 1, n: 1000}),
		out(ms(700), tseg{f: ".", seq: 1, ack: seq + 2000}),
		in(ms(701), tseg{f: ".", seq: seq + 2000, ack: 1, n: 1000}),
		out(ms(701), tseg{f: ".", seq: 1, ack: seq + 3000}),
		in(ms(702), tseg{f: ".", seq: seq + 3000, ack: 1, n: 1000}),
		out(ms(702), tseg{f: ".", seq: 1, ack: seq + 4000}),
		none(ms(1000)),
	)
	h.run(steps(scriptMSS1000(), s))
}

// TestTCPScriptQuickACKsAreBoundByHalfTheWindow: as in Linux, there are at
// most as many quick ACKs as half the receive window holds segments (and
// at least 2); none at all with QuickACKs negative.
func TestTCPScriptQuickACKsAreBoundByHalfTheWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		quick int // the QuickACKs setting
		acked int // how many segments are acknowledged at once
	}{
		{"default", 0, 4}, // 8 KiB window / (2 * 1000)
		{"at most QuickACKs", 3, 3},
		{"off", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, func(c *Config) { c.TCP.ReceiveBuffer = 8192; c.TCP.QuickACKs = tc.quick })
			h.listen()
			var s []step
			seq := int64(1)
			for i := range tc.acked {
				s = append(s,
					in(ms(200+10*i), tseg{f: ".", seq: seq, ack: 1, n: 1000}),
					out(ms(200+10*i), tseg{f: ".", seq: 1, ack: seq + 1000}))
				seq += 1000
			}
			at := 200 + 10*tc.acked
			s = append(s,
				in(ms(at), tseg{f: ".", seq: seq, ack: 1, n: 1000}),
				out(ms(at+40), tseg{f: ".", seq: 1, ack: seq + 1000}), // delayed
				none(ms(at+100)))
			h.run(steps([]step{
				in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
				out(0, tseg{f: "S.", seq: 0, ack: 1, win: 8192, opts: synOpts(1460)}),
				in(ms(100), tseg{f: ".", seq: 1, ack: 1}),
			}, s))
		})
	}
}
