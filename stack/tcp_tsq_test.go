package stack

import "testing"

// TestTCPScriptAFullTransmitQueueHoldsDataBackInsteadOfDroppingIt: with a
// transmit queue of 8 frames, a window of 10 segments does not fit; TCP
// stops while a quarter of the queue is left (for ACKs and others) and
// sends the rest as soon as the NIC has taken frames, in the same flush:
// all 10 leave at once, none is dropped at the queue, none is resent.
// Before, the 2 that did not fit were dropped (DropTxQueueFull), a loss
// TCP inflicted on itself.
func TestTCPScriptAFullTransmitQueueHoldsDataBackInsteadOfDroppingIt(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TxQueue = 8 })
	h.listen()
	var flight []step
	for i := range 10 {
		flight = append(flight, out(ms(200), tseg{f: burstFlags(i), seq: 1 + int64(i)*1000, ack: 1, n: 1000}))
	}
	h.run(steps(scriptMSS1000(), []step{do(ms(200), write(10000))}, flight, []step{
		in(ms(300), tseg{f: ".", seq: 1, ack: 10001}),
		do(ms(300), func(h *tcpScript) {
			if d := drops(h.s, DropTxQueueFull); d != 0 {
				h.t.Fatalf("%d frames dropped at the transmit queue", d)
			}
			if st := h.s.TCPStats(); st.TxQueueWaits == 0 || st.Retransmits != 0 {
				h.t.Fatalf("%d waits for the queue, %d retransmissions", st.TxQueueWaits, st.Retransmits)
			}
		}),
		none(ms(5000)),
	}))
}
