package stack

import (
	"fmt"
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// Scripted tests of connection establishment: TIME-WAIT reuse, SYN
// cookies, option negotiation.

// as switches the script to a new peer port (a new connection).
func as(port uint16) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.peerPort = port
		h.newIncarnation(scriptPeerISN)
	}
}

// toTimeWait closes the stack's side first and takes it to TIME-WAIT:
// steps from 200 ms to 250 ms.
func toTimeWait() []step {
	return []step{
		do(ms(200), closeConn),
		out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
		in(ms(250), tseg{f: "F.", seq: 1, ack: 2}),
		out(ms(250), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(250), wantState("TIME-WAIT")),
	}
}

// A SYN for a tuple in TIME-WAIT starts a new connection when its
// sequence number is beyond the old connection's (RFC 9293 3.6.1, RFC
// 6191); an older or equal one gets a challenge ACK and changes nothing.
func TestTCPScriptTimeWaitReusedByNewerSYN(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var oldISS uint32
	h.run(steps(scriptMSS1000(), toTimeWait(), []step{
		in(ms(300), tseg{f: "S", seq: -1000}),
		out(ms(300), tseg{f: ".", seq: 2, ack: 2}),
		// RCV.NXT: not beyond it. (A challenge ACK goes at most every
		// InvalidACKInterval.)
		in(ms(800), tseg{f: "S", seq: 2}),
		out(ms(800), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(800), wantState("TIME-WAIT")),
		do(ms(900), func(h *tcpScript) {
			oldISS = h.iss
			h.newIncarnation(scriptPeerISN + 100000)
		}),
		in(ms(900), tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(ms(900), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		do(ms(900), func(h *tcpScript) {
			// The ISN clock moved 900 ms (4 µs a tick): the new
			// incarnation starts beyond the old one's sequence space.
			if d := h.iss - oldISS; d != 900_000/4 {
				h.t.Fatalf("new ISS %d after the old one, want 225000", d)
			}
			if tw := h.s.TCPStats().TimeWait; tw != 0 || h.s.TCPConnCount() != 1 {
				h.t.Fatalf("TIME-WAIT gauge %d, %d connections", tw, h.s.TCPConnCount())
			}
		}),
		in(ms(950), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(950), wantState("ESTABLISHED")),
		in(ms(960), tseg{f: "P.", seq: 1, ack: 1, n: 10}),
		out(ms(960), tseg{f: ".", seq: 1, ack: 11}), // the first data: a quick ACK
	}))
}

// With timestamps the newer SYN is the one with the newer TSval (RFC
// 6191), whatever its sequence number; one with an older TSval is an old
// duplicate (PAWS) and is answered with an ACK.
func TestTCPScriptTimeWaitReusedBySYNWithNewerTimestamp(t *testing.T) {
	h := newTCPScript(t, nil)
	h.autoTS = true
	h.listen()
	tsOpts := &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 1000}
	h.run(steps(passiveOpen(synOpts(1000), tsOpts), toTimeWait(), []step{
		// Beyond the old sequence space but with an old timestamp.
		do(ms(300), func(h *tcpScript) { h.peerTS = 500 }),
		in(ms(300), tseg{f: "S", seq: int64(scriptPeerISN + 100000), abs: true}),
		out(ms(300), tseg{f: ".", seq: 2, ack: 2}),
		do(ms(300), wantState("TIME-WAIT")),
		// Behind it, with a newer timestamp.
		do(ms(400), func(h *tcpScript) {
			h.peerTS = 2000
			h.newIncarnation(scriptPeerISN - 100000)
		}),
		in(ms(400), tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(ms(400), tseg{f: "S.", seq: 0, ack: 1, win: 65535,
			opts: &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 2000}}),
		in(ms(450), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(450), wantState("ESTABLISHED")),
	}))
}

// A SYN flood: bare SYNs fill the listener's SYN queue; the next SYN is
// answered with a SYN cookie and no state; the ACK that returns a valid
// cookie makes an ESTABLISHED connection (with the MSS the cookie
// encoded), and one with a bad cookie gets a reset.
func TestTCPScriptSYNFloodFallsBackToSYNCookies(t *testing.T) {
	h := newTCPScript(t, nil)
	h.lopts.SYNQueue = 4
	h.listen()
	stat := func(name string, f func(*TCPStats) uint64, want uint64) step {
		return do(ms(100), wantStat(name, f, want))
	}
	conns := func(want int) func(h *tcpScript) {
		return func(h *tcpScript) {
			h.t.Helper()
			if n := h.s.TCPConnCount(); n != want {
				h.t.Fatalf("%d connections, want %d", n, want)
			}
		}
	}
	var flood []step
	for i := range 4 {
		flood = append(flood,
			do(0, as(uint16(5000+i))),
			in(0, tseg{f: "S", seq: 0}),
			out(0, tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1460)}))
	}
	var cookie uint32
	h.run(steps(flood, []step{
		do(0, conns(4)),
		do(ms(100), as(5004)),
		in(ms(100), tseg{f: "S", seq: 0, opts: synOpts(1400)}),
		out(ms(100), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		stat("cookies sent", func(s *TCPStats) uint64 { return s.SYNCookiesSent }, 1),
		do(ms(100), conns(4)), // no state kept
		do(ms(100), func(h *tcpScript) {
			cookie = h.iss
			if mss, ok := h.s.tcp.checkCookie(h.tuple(5004), scriptPeerISN, cookie); !ok || cookieMSS[mss] != 1400 {
				h.t.Fatalf("cookie %#x: valid %v, MSS %d", cookie, ok, cookieMSS[mss])
			}
		}),
		// The SYN again: the same cookie, still no state.
		in(ms(150), tseg{f: "S", seq: 0, opts: synOpts(1400)}),
		out(ms(150), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		// The ACK with the cookie, and data.
		in(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 5}),
		do(ms(200), wantState("ESTABLISHED")),
		do(ms(200), conns(5)),
		do(ms(200), wantStat("cookies valid", func(s *TCPStats) uint64 { return s.SYNCookiesValid }, 1)),
		do(ms(200), wantStat("passive opens", func(s *TCPStats) uint64 { return s.PassiveOpens }, 5)),
		do(ms(200), func(h *tcpScript) {
			if h.conn.sndMSS != 1400 || h.conn.Buffered() != 5 || h.l.synCount != 4 {
				h.t.Fatalf("MSS %d, %d bytes buffered, SYN queue %d", h.conn.sndMSS, h.conn.Buffered(), h.l.synCount)
			}
		}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 6}), // the first data: a quick ACK
		do(ms(250), write(1000)),
		out(ms(250), tseg{f: "P.", seq: 1, ack: 6, n: 1000}),
		in(ms(260), tseg{f: ".", seq: 6, ack: 1001}),
		// A wrong cookie: a reset, and nothing made.
		do(ms(300), as(5005)),
		in(ms(300), tseg{f: "S", seq: 0}),
		out(ms(300), tseg{f: "S.", seq: 0, ack: 1}),
		in(ms(310), tseg{f: ".", seq: 1, ack: 2}),
		out(ms(310), tseg{f: "R", seq: 2}),
		do(ms(310), conns(5)),
		do(ms(310), func(h *tcpScript) {
			if d := h.s.Stats().Drops[DropTCPBadCookie]; d != 1 {
				h.t.Fatalf("%d bad-cookie drops", d)
			}
		}),
		// (The four half-open connections would retransmit their
		// SYN-ACKs at 1 s.)
	}))
}

// A cookie carries Window Scale and SACK-permitted through the
// timestamp (when the SYN has one): the connection it makes scales the
// peer's window and takes SACK blocks.
func TestTCPScriptSYNCookieCarriesOptionsInTheTimestamp(t *testing.T) {
	h := newTCPScript(t, nil)
	h.lopts.SYNQueue = 1
	h.listen()
	h.run([]step{
		do(0, as(5000)),
		in(0, tseg{f: "S", seq: 0}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1460)}),
		do(ms(100), as(5001)),
		do(ms(100), func(h *tcpScript) { h.autoTS = true }),
		in(ms(100), tseg{f: "S", seq: 0, win: 1000, opts: synOpts(1300, "ws7", "sack")}),
		// Window Scale 7: for the default ReceiveBufferMax, 4 MiB.
		out(ms(100), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: &header.TCPOptions{HasMSS: true, MSS: 1460,
			HasWindowScale: true, WindowScale: 7, SACKPermitted: true, HasTimestamps: true, TSEcr: 1000}}),
		in(ms(200), tseg{f: ".", seq: 1, ack: 1, win: 1000}),
		do(ms(200), wantState("ESTABLISHED")),
		do(ms(200), func(h *tcpScript) {
			c := h.conn
			if !c.wsOK || c.sndShift != 7 || c.rcvShift != 7 || !c.sackOK || !c.tsOK || c.sndMSS != 1300 || c.sndWnd != 1000<<7 {
				h.t.Fatalf("cookie connection: ws %v %d/%d sack %v ts %v mss %d wnd %d",
					c.wsOK, c.sndShift, c.rcvShift, c.sackOK, c.tsOK, c.sndMSS, c.sndWnd)
			}
		}),
		// Out-of-order data gets a SACK block.
		in(ms(300), tseg{f: ".", seq: 101, ack: 1, win: 1000, n: 100}),
		out(ms(300), tseg{f: ".", seq: 1, ack: 1, win: (131072 - 0) >> 7, sack: [][2]int64{{101, 201}}}),
	})
}

// Option negotiation on a passive open: the SYN-ACK carries only what the
// SYN offered (and always MSS); the connection then uses what was agreed.
func TestTCPScriptOptionNegotiationPassive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		syn    *header.TCPOptions
		ts     bool
		synack *header.TCPOptions
		mss    int // payload of a full segment the stack sends
		mss6   int // the same over IPv6, if not mss
		win    int // the stack's window field once established
		check  func(c *TCPConn) error
	}{
		// Without an MSS option the send MSS is 536 over IPv4, 1220 over
		// IPv6 (RFC 9293 3.7.1, MUST-15).
		{"no options", &header.TCPOptions{}, false, synOpts(1460), 536, 1220, 65535, nil},
		{"MSS", synOpts(1000), false, synOpts(1460), 1000, 0, 65535, nil},
		{"tiny MSS is raised to 64", synOpts(10), false, synOpts(1460), 64, 0, 65535, nil},
		// Our scale is 7, for the default ReceiveBufferMax (4 MiB); the
		// window starts at the default ReceiveBuffer (128 KiB). Over IPv6
		// the peer's 1460 is more than our 1440.
		{"window scale", synOpts(1460, "ws7"), false, synOpts(1460, "ws7"), 1460, 1440, (131072 - 10) >> 7,
			func(c *TCPConn) error {
				if c.sndWnd != 65535<<7 {
					return fmt.Errorf("send window %d, want the peer's 65535<<7", c.sndWnd)
				}
				return nil
			}},
		{"window scale above 14 is 14", synOpts(1460, "ws15"), false, synOpts(1460, "ws7"), 1460, 1440, (131072 - 10) >> 7,
			func(c *TCPConn) error {
				if c.sndShift != 14 {
					return fmt.Errorf("shift %d", c.sndShift)
				}
				return nil
			}},
		{"SACK", synOpts(1460, "sack"), false, synOpts(1460, "sack"), 1460, 1440, 65535,
			func(c *TCPConn) error {
				if !c.sackOK {
					return fmt.Errorf("no SACK")
				}
				return nil
			}},
		{"timestamps", synOpts(1460), true, &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 1000}, 1448, 1428, 65535, nil},
		{"all", synOpts(1460, "ws7", "sack"), true, &header.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7,
			SACKPermitted: true, HasTimestamps: true, TSEcr: 1000}, 1448, 1428, (131072 - 10) >> 7, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			if h.v6 && tc.mss6 != 0 {
				tc.mss = tc.mss6
			}
			h.lopts.NoDelay = true
			h.autoTS = tc.ts
			h.listen()
			ackOpts := noOpts
			if tc.ts {
				ackOpts = &header.TCPOptions{HasTimestamps: true, TSEcr: 1000}
			}
			tail := min(100, tc.mss/2)
			h.run(steps(passiveOpen(tc.syn, tc.synack), []step{
				in(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 10}),
				out(ms(200), tseg{f: ".", seq: 1, ack: 11, win: tc.win, opts: ackOpts}), // a quick ACK
				do(ms(300), write(2*tc.mss+tail)),
				out(ms(300), tseg{f: ".", seq: 1, ack: 11, n: tc.mss}),
				out(ms(300), tseg{f: "P.", seq: 1 + int64(tc.mss), ack: 11, n: tc.mss}), // the end of a GSO-sized packet
				out(ms(300), tseg{f: "P.", seq: 1 + 2*int64(tc.mss), ack: 11, n: tail}),
				in(ms(400), tseg{f: ".", seq: 11, ack: 2*int64(tc.mss) + int64(tail) + 1}),
				do(ms(400), func(h *tcpScript) {
					if tc.check != nil {
						if err := tc.check(h.conn); err != nil {
							h.t.Fatal(err)
						}
					}
				}),
			}))
		})
	}
}

// Option negotiation on an active open: the stack offers everything;
// what the SYN-ACK leaves out is off.
func TestTCPScriptOptionNegotiationActive(t *testing.T) {
	// Window Scale 7: for the default ReceiveBufferMax, 4 MiB.
	offer := &header.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true, HasTimestamps: true}
	for _, tc := range []struct {
		name    string
		synack  *header.TCPOptions
		ts      bool
		win     int
		ackOpts *header.TCPOptions
		mss     int
		mss6    int // over IPv6, if not mss
	}{
		// Without an MSS option: 536 over IPv4, 1220 over IPv6 (RFC 9293
		// 3.7.1, MUST-15).
		{"peer without options", &header.TCPOptions{}, false, 65535, noOpts, 536, 1220},
		{"peer with MSS only", synOpts(1000), false, 65535, noOpts, 1000, 0},
		{"peer with everything", synOpts(1000, "ws3", "sack"), true, 131072 >> 7, &header.TCPOptions{HasTimestamps: true, TSEcr: 1000}, 988, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			if h.v6 && tc.mss6 != 0 {
				tc.mss = tc.mss6
			}
			h.run([]step{
				do(0, func(h *tcpScript) { h.dial(TCPConnOptions{NoDelay: true}) }),
				out(0, tseg{f: "S", seq: 0, win: 65535, opts: offer}),
				do(ms(50), func(h *tcpScript) { h.autoTS = tc.ts }),
				in(ms(50), tseg{f: "S.", seq: 0, ack: 1, opts: tc.synack}),
				out(ms(50), tseg{f: ".", seq: 1, ack: 1, win: tc.win, opts: tc.ackOpts}),
				do(ms(50), wantState("ESTABLISHED")),
				do(ms(100), write(tc.mss+10)),
				out(ms(100), tseg{f: ".", seq: 1, ack: 1, n: tc.mss}),
				out(ms(100), tseg{f: "P.", seq: 1 + int64(tc.mss), ack: 1, n: 10}),
				in(ms(150), tseg{f: ".", seq: 1, ack: int64(tc.mss) + 11}),
			})
		})
	}
}
