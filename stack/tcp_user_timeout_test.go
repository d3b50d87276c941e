package stack

import (
	"testing"
	"time"
)

// Scripted tests of the user timeout (RFC 5482, Linux's TCP_USER_TIMEOUT:
// TCPConnOptions.UserTimeout, TCPListenOptions.UserTimeout,
// SetUserTimeout). The handshake of scriptMSS1000 measures an RTT of
// 100 ms: SRTT 100 ms, RTO 300 ms.

func userTimeout(d time.Duration) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.t.Helper()
		h.conn.SetUserTimeout(d)
		if got := h.conn.UserTimeout(); got != d {
			h.t.Fatalf("UserTimeout() = %v after SetUserTimeout(%v)", got, d)
		}
	}
}

// A user timeout shorter than MaxRetries' bound ends the connection once
// it has passed since the first retransmission by the timer, and the timer
// after a retransmission is shortened to expire then: the timeout at 1.8 s
// comes before the backed-off one (2.6 s) would. No reset is sent.
func TestTCPScriptUserTimeoutEndsRetransmissions(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	data := tseg{f: "P.", seq: 1, ack: 1, n: 100}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(100), userTimeout(time.Second)),
		do(ms(200), write(100)),
		out(ms(200), data),
		out(ms(500), data),  // the tail loss probe, at the RTO
		out(ms(800), data),  // the first retransmission by the timer: the user timeout runs from here
		out(ms(1400), data), // +600
		do(ms(1799), wantState("ESTABLISHED")),
		do(ms(1800), wantClosed(ErrConnectionTimeout)),
		do(ms(1800), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 2)),
		none(ms(60000)),
	}))
}

// A user timeout replaces MaxRetries, so it may also allow more
// retransmissions than MaxRetries (2 here, which would end the connection
// at 2.6 s).
func TestTCPScriptUserTimeoutOutlastsMaxRetries(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.MaxRetries = 2 })
	h.lopts.UserTimeout = 5 * time.Second // inherited by the accepted connection
	h.listen()
	data := tseg{f: "P.", seq: 1, ack: 1, n: 100}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(100), func(h *tcpScript) {
			if got := h.conn.UserTimeout(); got != 5*time.Second {
				h.t.Fatalf("accepted connection's UserTimeout() = %v, want the listener's 5s", got)
			}
		}),
		do(ms(200), write(100)),
		out(ms(200), data),
		out(ms(500), data),  // probe
		out(ms(800), data),  // the user timeout runs from here: until 5.8 s
		out(ms(1400), data), // +600
		out(ms(2600), data), // +1200: MaxRetries would have ended it here
		out(ms(5000), data), // +2400
		do(ms(5799), wantState("ESTABLISHED")),
		do(ms(5800), wantClosed(ErrConnectionTimeout)), // the timer shortened from +4800 to the user timeout
		none(ms(60000)),
	}))
}

// An ACK of new data starts the user timeout over: the retransmissions
// after it are a new run.
func TestTCPScriptUserTimeoutRestartsOnProgress(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(100), userTimeout(time.Second)),
		do(ms(200), write(200)),
		out(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 200}),
		out(ms(500), tseg{f: "P.", seq: 1, ack: 1, n: 200}),    // probe
		out(ms(800), tseg{f: "P.", seq: 1, ack: 1, n: 200}),    // run 1 from 800: until 1.8 s
		in(ms(1300), tseg{f: ".", seq: 1, ack: 101}),           // half of it arrived
		out(ms(1700), tseg{f: "P.", seq: 101, ack: 1, n: 100}), // a probe: 2*SRTT + 200 ms after the ACK
		do(ms(1800), wantState("ESTABLISHED")),                 // run 1 would have ended here
		out(ms(2300), tseg{f: "P.", seq: 101, ack: 1, n: 100}), // RTO (600 ms, backed off) after it: run 2 from here
		do(ms(3299), wantState("ESTABLISHED")),
		do(ms(3300), wantClosed(ErrConnectionTimeout)), // shortened from +1200
		none(ms(60000)),
	}))
}

// A zero window the peer keeps closed while answering every probe keeps
// the connection open (RFC 9293 3.8.6.1, TestTCPScriptZeroWindowPersist...)
// unless it has a user timeout: then the connection ends once the window
// has stayed closed for it since the first probe (Linux's
// icsk_probes_tstamp), the last probe interval shortened to end then.
func TestTCPScriptUserTimeoutEndsAnsweredZeroWindowProbes(t *testing.T) {
	h := newTCPScript(t, nil)
	h.lopts.UserTimeout = 2 * time.Second
	h.listen()
	probe := tseg{f: ".", seq: 0, ack: 1}
	shut := tseg{f: ".", seq: 1, ack: 1, win: zeroWin}
	h.run([]step{
		in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		in(ms(100), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}),
		do(ms(200), write(1000)),
		out(ms(500), probe), // the first probe: the user timeout runs until 2.5 s
		in(ms(510), shut),
		out(ms(1100), probe), // +600
		in(ms(1110), shut),
		out(ms(2300), probe), // +1200
		in(ms(2310), shut),
		do(ms(2499), wantState("ESTABLISHED")),
		do(ms(2500), wantClosed(ErrConnectionTimeout)), // not a probe at +2400
		do(ms(2500), wantStat("zero-window aborts", func(s *TCPStats) uint64 { return s.ZeroWindowAborts }, 1)),
		none(ms(60000)),
	})
}

// A window that opens ends the zero-window run: a later closed window is
// timed anew.
func TestTCPScriptUserTimeoutZeroWindowRestartsWhenTheWindowOpens(t *testing.T) {
	h := newTCPScript(t, nil)
	h.lopts.UserTimeout = 2 * time.Second
	h.listen()
	probe := tseg{f: ".", seq: 0, ack: 1}
	h.run([]step{
		in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		in(ms(100), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}),
		do(ms(200), write(2000)),
		out(ms(500), probe), // run 1 from 500: until 2.5 s
		in(ms(510), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}),
		out(ms(1100), probe),
		// The window opens for one segment and closes again.
		in(ms(1110), tseg{f: ".", seq: 1, ack: 1, win: 1000}),
		out(ms(1110), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		in(ms(1210), tseg{f: ".", seq: 1, ack: 1001, win: zeroWin}),
		out(ms(1460), tseg{f: ".", seq: 1000, ack: 1}), // RTO 250 ms (a new RTT sample): run 2 from here, until 3.46 s
		in(ms(1470), tseg{f: ".", seq: 1, ack: 1001, win: zeroWin}),
		out(ms(1960), tseg{f: ".", seq: 1000, ack: 1}),
		in(ms(1970), tseg{f: ".", seq: 1, ack: 1001, win: zeroWin}),
		do(ms(2500), wantState("ESTABLISHED")), // run 1 would have ended here
		out(ms(2960), tseg{f: ".", seq: 1000, ack: 1}),
		in(ms(2970), tseg{f: ".", seq: 1, ack: 1001, win: zeroWin}),
		do(ms(3459), wantState("ESTABLISHED")),
		do(ms(3460), wantClosed(ErrConnectionTimeout)), // not a probe at +2000
		none(ms(60000)),
	})
}

// With keepalive, a user timeout decides when unanswered probes end the
// connection, instead of KeepAliveProbes (3 here, which would end it at
// 13.1 s): once the peer has been silent for it and a probe is out.
func TestTCPScriptUserTimeoutOverridesKeepAliveProbes(t *testing.T) {
	h := newTCPScript(t, func(c *Config) {
		c.TCP.KeepAliveIdle = 10 * time.Second
		c.TCP.KeepAliveInterval = time.Second
		c.TCP.KeepAliveProbes = 3
	})
	h.lopts.KeepAlive = true
	h.lopts.UserTimeout = 15 * time.Second
	h.listen()
	probe := tseg{f: ".", seq: 0, ack: 1}
	h.run(steps(scriptMSS1000(), []step{
		out(ms(10100), probe),
		out(ms(11100), probe),
		out(ms(12100), probe),
		out(ms(13100), probe), // KeepAliveProbes would have ended it here
		out(ms(14100), probe),
		do(ms(15099), wantState("ESTABLISHED")),
		do(ms(15100), wantClosed(ErrConnectionTimeout)), // silent for 15 s
		do(ms(15100), wantStat("keepalive probes", func(s *TCPStats) uint64 { return s.KeepAliveProbes }, 5)),
		none(ms(60000)),
	}))
}

// An active open with a user timeout gives up on the SYN once the user
// timeout has passed since the first SYN (after a retransmission), before
// SYNRetries would; the timer after the retransmission is shortened to
// expire then.
func TestTCPScriptUserTimeoutEndsSYNRetransmissions(t *testing.T) {
	h := newTCPScript(t, nil)
	h.run([]step{
		do(0, func(h *tcpScript) { h.dial(TCPConnOptions{UserTimeout: 2 * time.Second}) }),
		out(0, tseg{f: "S", seq: 0}),
		out(ms(1000), tseg{f: "S", seq: 0}),
		do(ms(1999), wantState("SYN-SENT")),
		do(ms(2000), wantClosed(ErrConnectionTimeout)), // not a SYN at 3 s
		none(ms(200000)),
	})
}
