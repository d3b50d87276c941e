package stack

import "testing"

// The handshake's retransmissions have their own limits (Linux's
// tcp_syn_retries 6 and tcp_synack_retries 5), not the data's 15.

// TestTCPScriptSYNGivesUpAfterSixRetransmissions: an unanswered SYN goes
// again at 1, 3, 7, 15, 31 and 63 s; the connection ends with
// ErrConnectionTimeout when the sixth retransmission's timeout expires:
// at 123 s, its 64 s capped at MaxRTO (60 s). Linux, whose cap is 120 s,
// gives up at 127 s.
func TestTCPScriptSYNGivesUpAfterSixRetransmissions(t *testing.T) {
	h := newTCPScript(t, nil)
	s := []step{do(0, func(h *tcpScript) { h.dial(TCPConnOptions{}) })}
	for _, at := range []int{0, 1000, 3000, 7000, 15000, 31000, 63000} {
		s = append(s, out(ms(at), tseg{f: "S", seq: 0}))
	}
	h.run(append(s,
		do(ms(122999), wantState("SYN-SENT")),
		do(ms(123000), wantClosed(ErrConnectionTimeout)),
		none(ms(1000000)),
	))
}

// TestTCPScriptSYNACKGivesUpAfterFiveRetransmissions: a SYN-ACK never
// acknowledged goes again at 1, 3, 7, 15 and 31 s, and the embryonic
// connection leaves the table (and the SYN queue) at 63 s.
func TestTCPScriptSYNACKGivesUpAfterFiveRetransmissions(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	s := []step{in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)})}
	for _, at := range []int{0, 1000, 3000, 7000, 15000, 31000} {
		s = append(s, out(ms(at), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}))
	}
	h.run(append(s,
		do(ms(62999), func(h *tcpScript) {
			if n := h.s.TCPConnCount(); n != 1 || h.l.synCount != 1 {
				h.t.Fatalf("%d connections, SYN queue %d: want 1 and 1", n, h.l.synCount)
			}
		}),
		do(ms(63000), func(h *tcpScript) {
			if n := h.s.TCPConnCount(); n != 0 || h.l.synCount != 0 {
				h.t.Fatalf("%d connections, SYN queue %d: want 0 and 0", n, h.l.synCount)
			}
		}),
		none(ms(1000000)),
	))
}

// TestTCPScriptRTORestartsAtThreeSecondsAfterAHandshakeTimeout: a
// handshake whose SYN (or SYN-ACK) timed out has no RTT sample (Karn), so
// the data's RTO is re-initialized to 3 s (RFC 6298 5.7), not left at the
// handshake's backed-off value (2 s after one timeout, 8 s after three).
func TestTCPScriptRTORestartsAtThreeSecondsAfterAHandshakeTimeout(t *testing.T) {
	t.Run("SYN-ACK once", func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.listen()
		synack := tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}
		h.run([]step{
			in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
			out(0, synack),
			out(ms(1000), synack),
			in(ms(1100), tseg{f: ".", seq: 1, ack: 1}),
			do(ms(2000), write(100)),
			out(ms(2000), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
			none(ms(4999)),
			out(ms(5000), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
			in(ms(5100), tseg{f: ".", seq: 1, ack: 101}),
		})
	})
	t.Run("SYN three times", func(t *testing.T) {
		h := newTCPScript(t, nil)
		syn := tseg{f: "S", seq: 0}
		h.run([]step{
			do(0, func(h *tcpScript) { h.dial(TCPConnOptions{}) }),
			out(0, syn),
			out(ms(1000), syn),
			out(ms(3000), syn),
			out(ms(7000), syn),
			in(ms(7100), tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1000)}),
			out(ms(7100), tseg{f: ".", seq: 1, ack: 1}),
			do(ms(7100), wantState("ESTABLISHED")),
			do(ms(8000), write(100)),
			out(ms(8000), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
			none(ms(10999)),
			out(ms(11000), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
			in(ms(11100), tseg{f: ".", seq: 1, ack: 101}),
		})
	})
}
