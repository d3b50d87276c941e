package stack

import (
	"fmt"
	"testing"
)

// TestTCPScriptBurstPushMarksEachGSOSizedPacket: as Linux, a burst is cut
// into the packets Linux's GSO would make (tcp_tso_autosize: about a
// millisecond at the pacing rate, at least two segments) and PSH ends
// each packet of two or more segments, besides the segment that ends the
// write. With DisableBurstPush only the end of the write has it.
func TestTCPScriptBurstPushMarksEachGSOSizedPacket(t *testing.T) {
	flight := func(flags ...string) []step {
		var s []step
		for i, f := range flags {
			s = append(s, out(ms(200), tseg{f: f, seq: 1 + int64(i)*1000, ack: 1, n: 1000}))
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		rtt     int // ms, of the handshake
		peerWin int
		disable bool
		want    []string // the flags of the burst of 1000-byte segments
	}{
		// 100 ms: 10 segments per 100 ms, twice that in slow start, is
		// far less than two segments a millisecond: packets of two.
		{"slow path: packets of two", 100, 0, false, []string{".", "P.", ".", "P.", ".", "P.", ".", "P.", ".", "P."}},
		// The peer's window cuts the burst after three: a packet of two,
		// then one of a single segment, which has no PSH.
		{"an odd burst ends with a packet of one", 100, 3000, false, []string{".", "P.", "."}},
		// 1 ms: the whole burst fits one packet; PSH at its end only.
		{"fast path: one packet", 1, 0, false, []string{".", ".", ".", ".", ".", ".", ".", ".", ".", "P."}},
		{"disabled", 100, 0, true, []string{".", ".", ".", ".", ".", ".", ".", ".", ".", "."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, func(c *Config) { c.TCP.DisableBurstPush = tc.disable })
			h.listen()
			if tc.peerWin != 0 {
				h.peerWin = uint16(tc.peerWin)
			}
			h.run(steps([]step{
				in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
				out(0, tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
				in(ms(tc.rtt), tseg{f: ".", seq: 1, ack: 1}),
				do(ms(200), write(15000)), // more than the burst: no write ends in it
			}, flight(tc.want...), []step{
				do(ms(200), func(h *tcpScript) {
					if got := h.conn.Unsent(); got != 15000 {
						h.t.Fatalf("%d bytes unacknowledged, want 15000", got)
					}
				}),
			}))
		})
	}
	// The end of a write is pushed whatever the packet.
	t.Run("end of write", func(t *testing.T) {
		for _, n := range []int{1, 2, 3} {
			t.Run(fmt.Sprint(n, " segments"), func(t *testing.T) {
				h := newTCPScript(t, func(c *Config) { c.TCP.DisableBurstPush = true })
				h.listen()
				var want []string
				for i := range n {
					want = append(want, map[bool]string{true: "P.", false: "."}[i == n-1])
				}
				h.run(steps(scriptMSS1000(), []step{do(ms(200), write(n*1000))}, flight(want...)))
			})
		}
	})
}

// TestTCPScriptBurstPushNotOnResentData: after a timeout the segments that
// go again are not cut into GSO-sized packets (Linux resends segment by
// segment): only the end of the write carries PSH.
func TestTCPScriptBurstPushNotOnResentData(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(4000)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
		out(ms(200), tseg{f: ".", seq: 2001, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 3001, ack: 1, n: 1000}),
		// The tail loss probe after 2*SRTT, then the timeout (RTO 300 ms
		// after the probe) resends the first segment.
		out(ms(400), tseg{f: "P.", seq: 3001, ack: 1, n: 1000}),
		out(ms(700), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		// Its ACK doubles the window: two segments go again, then two.
		in(ms(710), tseg{f: ".", seq: 1, ack: 1001}),
		out(ms(710), tseg{f: ".", seq: 1001, ack: 1, n: 1000}),
		out(ms(710), tseg{f: ".", seq: 2001, ack: 1, n: 1000}),
		in(ms(720), tseg{f: ".", seq: 1, ack: 3001}),
		out(ms(720), tseg{f: "P.", seq: 3001, ack: 1, n: 1000}),
		in(ms(730), tseg{f: ".", seq: 1, ack: 4001}),
		none(ms(2000)),
	}))
}
