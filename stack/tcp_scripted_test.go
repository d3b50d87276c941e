package stack

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// Scripted TCP tests (tcp_script_test.go's harness): each reads like a
// packetdrill script. Times are milliseconds from the script's start;
// "in" is a segment from the peer, "out" one the stack must send then.

// wantClosed asserts the connection left the table with err (nil: an
// orderly close) and told its handler.
func wantClosed(err error) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.t.Helper()
		c := h.conn
		if c.State() != "CLOSED" || !errors.Is(c.Err(), err) || c.Err() != nil && err == nil {
			h.t.Fatalf("%s: %s with %v, want CLOSED with %v", h.rel(h.now()), c.State(), c.Err(), err)
		}
		if len(h.events) == 0 || h.events[len(h.events)-1] != TCPEventClosed {
			h.t.Fatalf("%s: events %v, want the last to be closed", h.rel(h.now()), h.events)
		}
		if n := h.s.TCPConnCount(); n != 0 {
			h.t.Fatalf("%s: %d connections in the table", h.rel(h.now()), n)
		}
	}
}

func wantStat(name string, get func(*TCPStats) uint64, want uint64) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.t.Helper()
		if got := get(h.s.TCPStats()); got != want {
			h.t.Fatalf("%s: %s = %d, want %d", h.rel(h.now()), name, got, want)
		}
	}
}

func challengeACKs(s *TCPStats) uint64 { return s.ChallengeACKs }

// RFC 5961 3.2: an RST whose sequence number is exactly RCV.NXT resets
// the connection, in every synchronized state that can be reset, without
// an answer.
func TestTCPScriptRSTAtRcvNxtResets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup []step
		rst   tseg
		err   error
	}{
		{"ESTABLISHED, RST", nil, tseg{f: "R", seq: 1}, ErrConnectionReset},
		{"ESTABLISHED, RST|ACK", nil, tseg{f: "R.", seq: 1, ack: 1}, ErrConnectionReset},
		{"after data, RST at the new RCV.NXT", []step{
			in(ms(150), tseg{f: "P.", seq: 1, ack: 1, n: 100}),
			out(ms(150), tseg{f: ".", seq: 1, ack: 101}), // the first data: a quick ACK
		}, tseg{f: "R", seq: 101}, ErrConnectionReset},
		{"CLOSE-WAIT", []step{
			in(ms(150), tseg{f: "F.", seq: 1, ack: 1}),
			out(ms(150), tseg{f: ".", seq: 1, ack: 2}),
		}, tseg{f: "R", seq: 2}, ErrConnectionReset},
		{"FIN-WAIT-1", []step{
			do(ms(150), closeConn),
			out(ms(150), tseg{f: "F.", seq: 1, ack: 1}),
		}, tseg{f: "R", seq: 1}, ErrConnectionReset},
		{"LAST-ACK (an orderly end)", []step{
			in(ms(150), tseg{f: "F.", seq: 1, ack: 1}),
			out(ms(150), tseg{f: ".", seq: 1, ack: 2}),
			do(ms(160), closeConn),
			out(ms(160), tseg{f: "F.", seq: 1, ack: 2}),
		}, tseg{f: "R", seq: 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			h.run(steps(scriptMSS1000(), tc.setup, []step{
				in(ms(200), tc.rst),
				do(ms(200), wantClosed(tc.err)),
				none(ms(5000)),
			}))
		})
	}
}

// RFC 5961 3.2: an RST in the window but not at RCV.NXT earns a challenge
// ACK (SEQ=SND.NXT, ACK=RCV.NXT) and the connection stays; an RST
// outside the window is dropped in silence. (Challenge ACKs of one
// connection go at most every InvalidACKInterval, 500 ms.)
func TestTCPScriptRSTInWindowGetsChallengeACKOutOfWindowIgnored(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		in(ms(200), tseg{f: "R", seq: 2}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, win: 65535, opts: noOpts}),
		in(ms(700), tseg{f: "R.", seq: 1 + 30000, ack: 1}),
		out(ms(700), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(700), wantState("ESTABLISHED")),
		do(ms(700), wantStat("challenge ACKs", challengeACKs, 2)),
		// Beyond the window, and behind RCV.NXT: nothing.
		in(ms(1220), tseg{f: "R", seq: 1 + 200000}),
		in(ms(1230), tseg{f: "R", seq: 0}),
		in(ms(1240), tseg{f: "R", seq: -5000}),
		none(ms(1300)),
		do(ms(1300), wantState("ESTABLISHED")),
		do(ms(1300), wantStat("challenge ACKs", challengeACKs, 2)),
		// The connection still works: data in, (quick) ACK out.
		in(ms(1400), tseg{f: "P.", seq: 1, ack: 1, n: 10}),
		out(ms(1400), tseg{f: ".", seq: 1, ack: 11}),
	}))
}

// The window an RST must fall in is the one the stack advertised: with a
// peer that did not offer Window Scale the stack advertises 65535 bytes
// even though its receive ring holds 128 KiB, and an RST (or any segment)
// past RCV.NXT+65535 is outside the window (RFC 9293 3.10.7.4; RFC 5961
// 3.2 drops such an RST silently).
func TestTCPScriptRSTBeyondTheAdvertisedWindowIsIgnored(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		in(ms(200), tseg{f: "R", seq: 1 + 65535}),
		in(ms(210), tseg{f: "R", seq: 1 + 100000}),
		none(ms(300)),
		do(ms(300), wantStat("challenge ACKs", challengeACKs, 0)),
		// The last byte of the window is still in it.
		in(ms(310), tseg{f: "R", seq: 1 + 65534}),
		out(ms(310), tseg{f: ".", seq: 1, ack: 1}),
	}))
}

// RFC 5961 4.2: a SYN in a synchronized state, in the window or not, gets
// a challenge ACK and changes nothing.
func TestTCPScriptSYNInSynchronizedStateGetsChallengeACK(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup []step
		state string
		seq   int64 // the stack's SND.NXT, relative
		ack   int64 // its RCV.NXT, relative
	}{
		{"ESTABLISHED", nil, "ESTABLISHED", 1, 1},
		{"CLOSE-WAIT", []step{
			in(ms(150), tseg{f: "F.", seq: 1, ack: 1}),
			out(ms(150), tseg{f: ".", seq: 1, ack: 2}),
		}, "CLOSE-WAIT", 1, 2},
		{"FIN-WAIT-2", []step{
			do(ms(150), closeConn),
			out(ms(150), tseg{f: "F.", seq: 1, ack: 1}),
			in(ms(160), tseg{f: ".", seq: 1, ack: 2}),
		}, "FIN-WAIT-2", 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			h.run(steps(scriptMSS1000(), tc.setup, []step{
				// (One challenge ACK every InvalidACKInterval at most.)
				in(ms(200), tseg{f: "S", seq: tc.ack + 5}), // in the window
				out(ms(200), tseg{f: ".", seq: tc.seq, ack: tc.ack}),
				in(ms(700), tseg{f: "S", seq: -1000000}), // far outside
				out(ms(700), tseg{f: ".", seq: tc.seq, ack: tc.ack}),
				in(ms(1200), tseg{f: "S.", seq: tc.ack, ack: tc.seq}),
				out(ms(1200), tseg{f: ".", seq: tc.seq, ack: tc.ack}),
				do(ms(1200), wantState(tc.state)),
				do(ms(1200), wantStat("challenge ACKs", challengeACKs, 3)),
				none(ms(2000)),
			}))
		})
	}
}

// RFC 5961 5.2: an acceptable ACK lies in [SND.UNA-MAX.SND.WND, SND.NXT].
// An ACK of data never sent gets an ACK and is dropped with its data; an
// ACK older than the largest window the peer offered gets a challenge ACK
// and is dropped; an old ACK inside that range is fine and its data is
// taken.
func TestTCPScriptACKOutsideTheAcceptableRangeIsDropped(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	buffered := func(n int) func(h *tcpScript) {
		return func(h *tcpScript) {
			h.t.Helper()
			if b := h.conn.Buffered(); b != n {
				h.t.Fatalf("%s: %d bytes buffered, want %d", h.rel(h.now()), b, n)
			}
		}
	}
	h.run(steps(scriptMSS1000(), []step{
		// SND.UNA = SND.NXT = 1; the peer's window is 65535.
		in(ms(200), tseg{f: "P.", seq: 1, ack: 1 + 5000, n: 10}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(200), buffered(0)),
		do(ms(200), wantStat("challenge ACKs", challengeACKs, 0)),
		in(ms(210), tseg{f: "P.", seq: 1, ack: 1 - 65535 - 1, n: 10}),
		out(ms(210), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(210), buffered(0)),
		do(ms(210), wantStat("challenge ACKs", challengeACKs, 1)),
		// SND.UNA - MAX.SND.WND exactly: acceptable.
		in(ms(220), tseg{f: "P.", seq: 1, ack: 1 - 65535, n: 10}),
		out(ms(220), tseg{f: ".", seq: 1, ack: 11}), // the first data taken: a quick ACK
		do(ms(220), buffered(10)),
		do(ms(260), wantState("ESTABLISHED")),
	}))
}

// Both ends send a SYN at once (RFC 9293 figure 7): the stack answers the
// peer's SYN with a SYN-ACK on its own ISS; the peer's SYN-ACK is a SYN
// in SYN-RECEIVED and gets an ACK (RFC 5961 4.2), which is what completes
// the handshake for the peer; the peer's ACK completes it for the stack.
func TestTCPScriptSimultaneousOpen(t *testing.T) {
	h := newTCPScript(t, nil)
	h.run([]step{
		do(0, func(h *tcpScript) { h.dial(TCPConnOptions{}) }),
		out(0, tseg{f: "S", seq: 0, win: 65535, opts: &header.TCPOptions{HasMSS: true, MSS: 1460,
			HasWindowScale: true, WindowScale: 7, SACKPermitted: true, HasTimestamps: true}}), // 7: for ReceiveBufferMax
		in(ms(50), tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(ms(50), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		do(ms(50), wantState("SYN-RECEIVED")),
		in(ms(100), tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1000)}),
		out(ms(100), tseg{f: ".", seq: 1, ack: 1, win: 65535, opts: noOpts}),
		in(ms(150), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(150), wantState("ESTABLISHED")),
		do(ms(150), func(h *tcpScript) {
			if !slices.Equal(h.events, []TCPEvent{TCPEventEstablished}) {
				h.t.Fatalf("events %v", h.events)
			}
		}),
		do(ms(200), write(1000)),
		out(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 1000}),
		in(ms(250), tseg{f: ".", seq: 1, ack: 1001}),
		none(ms(3000)),
	})
}

// Both ends close at once: the FINs cross, the stack passes through
// CLOSING to TIME-WAIT, which lasts 2*MSL.
func TestTCPScriptSimultaneousClose(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.MSL = time.Second })
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), closeConn),
		out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
		in(ms(210), tseg{f: "F.", seq: 1, ack: 1}), // the peer's FIN, not acking ours
		out(ms(210), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(210), wantState("CLOSING")),
		in(ms(250), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(250), wantState("TIME-WAIT")),
		do(ms(2249), wantState("TIME-WAIT")),
		do(ms(2250), wantClosed(nil)),
	}))
}

// Half close: after CloseWrite the stack's FIN goes, and the peer keeps
// sending; the data arrives and is acknowledged until the peer's FIN.
func TestTCPScriptHalfCloseThePeerKeepsSending(t *testing.T) {
	// Without quick ACKs, to see the ACK of every second segment and the
	// delayed ACK in FIN-WAIT-2 too.
	h := newTCPScript(t, func(c *Config) { c.TCP.MSL = time.Second; c.TCP.QuickACKs = -1 })
	h.listen()
	var got []byte
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), func(h *tcpScript) { h.conn.CloseWrite() }),
		out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
		do(ms(200), func(h *tcpScript) {
			if _, err := h.conn.Write([]byte("x")); !errors.Is(err, ErrConnectionClosed) {
				h.t.Fatalf("Write after CloseWrite: %v", err)
			}
		}),
		in(ms(250), tseg{f: ".", seq: 1, ack: 2}),
		do(ms(250), wantState("FIN-WAIT-2")),
		in(ms(300), tseg{f: ".", seq: 1, ack: 2, n: 1000}),
		in(ms(301), tseg{f: ".", seq: 1001, ack: 2, n: 1000}),
		out(ms(301), tseg{f: ".", seq: 2, ack: 2001}), // every second full segment
		in(ms(310), tseg{f: "P.", seq: 2001, ack: 2, n: 500}),
		out(ms(350), tseg{f: ".", seq: 2, ack: 2501}), // delayed ACK
		do(ms(360), func(h *tcpScript) { readAll(h.conn, &got) }),
		in(ms(400), tseg{f: "F.", seq: 2501, ack: 2}),
		out(ms(400), tseg{f: ".", seq: 2, ack: 2502}),
		do(ms(400), wantState("TIME-WAIT")),
		do(ms(400), func(h *tcpScript) {
			if len(got) != 2500 || !h.conn.PeerClosed() {
				h.t.Fatalf("read %d bytes, peer closed %v", len(got), h.conn.PeerClosed())
			}
			h.conn.Close()
		}),
		do(ms(2400), wantClosed(nil)),
	}))
}

// TIME-WAIT lasts 2*MSL from the last FIN; an RST does not cut it short
// (RFC 1337), whatever its sequence number; a retransmitted FIN is
// acknowledged again and restarts the wait.
func TestTCPScriptTimeWaitLasts2MSLAndIgnoresRST(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.MSL = time.Second })
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), closeConn),
		out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
		in(ms(250), tseg{f: "F.", seq: 1, ack: 2}),
		out(ms(250), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(250), wantState("TIME-WAIT")),
		do(ms(250), wantStat("TIME-WAIT gauge", func(s *TCPStats) uint64 { return s.TimeWait }, 1)),
		in(ms(500), tseg{f: "R", seq: 2}), // exactly RCV.NXT: RFC 1337
		in(ms(510), tseg{f: "R.", seq: 2, ack: 2}),
		none(ms(1000)),
		do(ms(1000), wantState("TIME-WAIT")),
		// The peer did not hear our ACK and sends its FIN again.
		in(ms(1250), tseg{f: "F.", seq: 1, ack: 2}),
		out(ms(1250), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(3249), wantState("TIME-WAIT")),
		do(ms(3250), wantClosed(nil)),
		do(ms(3250), wantStat("TIME-WAIT gauge", func(s *TCPStats) uint64 { return s.TimeWait }, 0)),
		// The tuple is free: a segment for it now gets a reset.
		in(ms(3300), tseg{f: ".", seq: 2, ack: 2}),
		out(ms(3300), tseg{f: "R", seq: 2}),
	}))
}

// A segment of many MSS in one frame (a driver hands a peer's TSO frame
// over whole) is acknowledged at once, as the two full-sized segments it
// stands for would be, not after the delayed-ACK timeout; a short one
// still waits for the timeout.
func TestTCPScriptLargeSegmentIsAcknowledgedAtOnce(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.QuickACKs = -1 })
	h.listen()
	var got []byte
	h.run(steps(scriptMSS1000(), []step{
		in(ms(300), tseg{f: ".", seq: 1, ack: 1, n: 20000}),
		out(ms(300), tseg{f: ".", seq: 1, ack: 20001}),
		in(ms(310), tseg{f: ".", seq: 20001, ack: 1, n: 500}),
		out(ms(350), tseg{f: ".", seq: 1, ack: 20501}), // delayed ACK
		do(ms(360), func(h *tcpScript) {
			readAll(h.conn, &got)
			if len(got) != 20500 {
				h.t.Fatalf("read %d bytes, want 20500", len(got))
			}
		}),
	}))
}
