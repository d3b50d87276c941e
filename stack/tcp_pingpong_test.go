package stack

import "testing"

// TestTCPScriptPingPongDelaysTheACKOfARequestForTheReply: once the
// connection has answered a request within the delayed-ACK time (Linux's
// interactive mode), the ACK of the next request read by the application
// does not go alone: it waits for the reply and rides on it. A reply that
// comes too late leaves the ACK to the timer, and the connection goes back
// to acknowledging a pushed segment as soon as it is read.
func TestTCPScriptPingPongDelaysTheACKOfARequestForTheReply(t *testing.T) {
	h := newTCPScript(t, nil)
	h.onEvent = func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventReadable {
			c.Discard(c.Buffered()) // the application reads every request at once
		}
	}
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		// Not interactive yet: the read request is acknowledged at once.
		in(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 101}),
		// The reply comes within the delayed-ACK time: interactive.
		do(ms(210), write(50)),
		out(ms(210), tseg{f: "P.", seq: 1, ack: 101, n: 50}),
		// The next request's ACK waits for the reply and rides on it.
		in(ms(300), tseg{f: "P.", seq: 101, ack: 51, n: 100}),
		none(ms(305)),
		do(ms(305), write(50)),
		out(ms(305), tseg{f: "P.", seq: 51, ack: 201, n: 50}),
		// A request whose reply is late: the timer sends the ACK at 40 ms,
		in(ms(400), tseg{f: "P.", seq: 201, ack: 101, n: 100}),
		out(ms(440), tseg{f: ".", seq: 101, ack: 301}),
		// and the next request read is acknowledged at once again.
		in(ms(500), tseg{f: "P.", seq: 301, ack: 101, n: 100}),
		out(ms(500), tseg{f: ".", seq: 101, ack: 401}),
		none(ms(600)),
	}))
}
