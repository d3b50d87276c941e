package stack

import (
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// TestTCPScriptTSRecentOnlyFromAnAcceptableACK: a segment dropped for its
// ACK (of data never sent, RFC 9293 3.10.7.4) is answered with an ACK but
// its timestamp is not recorded (RFC 7323 4.3, as Linux): a forged or
// stray segment with a far-future TSval would otherwise make PAWS drop the
// peer's real segments from then on.
func TestTCPScriptTSRecentOnlyFromAnAcceptableACK(t *testing.T) {
	h := newTCPScript(t, nil)
	h.autoTS = true
	h.listen()
	ecr := func(v uint32) *header.TCPOptions { return &header.TCPOptions{HasTimestamps: true, TSEcr: v} }
	h.run(steps(passiveOpen(synOpts(1000), &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 1000}), []step{
		do(ms(200), func(h *tcpScript) { h.peerTS = 200000 }),
		// ACK 9999: nothing of ours was sent beyond 1.
		in(ms(200), tseg{f: "F.", seq: 1, ack: 9999}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, opts: ecr(1000)}),
		do(ms(200), wantState("ESTABLISHED")),
		do(ms(210), func(h *tcpScript) { h.peerTS = 1001 }),
		// The peer's next real segment is not taken for an old duplicate.
		in(ms(210), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(210), tseg{f: ".", seq: 1, ack: 1001, opts: ecr(1001)}),
		do(ms(210), func(h *tcpScript) {
			if h.conn.Buffered() != 1000 {
				h.t.Fatalf("%d bytes buffered, want 1000", h.conn.Buffered())
			}
		}),
	}))
}

// TestTCPScriptResetCarriesTimestamps: with timestamps agreed, the RST of
// an abort carries them (RFC 7323 3.2's SHOULD; Linux does), echoing the
// peer's latest TSval.
func TestTCPScriptResetCarriesTimestamps(t *testing.T) {
	h := newTCPScript(t, nil)
	h.autoTS = true
	h.listen()
	var ackTS uint32
	h.run(steps(passiveOpen(synOpts(1000), &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 1000}), []step{
		do(ms(200), func(h *tcpScript) { h.peerTS = 1201 }),
		in(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1001, opts: &header.TCPOptions{HasTimestamps: true, TSEcr: 1201}}),
		do(ms(200), func(h *tcpScript) { ackTS = h.lastTS }),
		do(ms(1200), func(h *tcpScript) { h.conn.Abort() }),
		out(ms(1200), tseg{f: "R.", seq: 1, ack: 1001, opts: &header.TCPOptions{HasTimestamps: true, TSEcr: 1201}}),
		do(ms(1200), func(h *tcpScript) {
			if d := h.lastTS - ackTS; d != 1000 {
				h.t.Fatalf("the RST's TSval is %d ms after the ACK's, want 1000", d)
			}
		}),
	}))
}
