package stack

import (
	"slices"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// Scripted tests of TCP hardening (issue 18): challenge ACK limits (RFC
// 5961 7, CVE-2016-5696), SYN cookie validation, RFC 6675's duplicate
// ACKs, the sequence number of an ACK beyond a shrunk window, and Karn's
// rule after a tail loss probe.

func statOf(f func(*TCPStats) uint64) func(h *tcpScript) uint64 {
	return func(h *tcpScript) uint64 { return f(h.s.TCPStats()) }
}

// A connection sends at most one ACK for invalid segments every
// InvalidACKInterval (500 ms, Linux's tcp_invalid_ratelimit): challenge
// ACKs for RSTs and SYNs, and duplicate ACKs for out-of-window segments
// without data. A segment with data is always answered.
func TestTCPScriptChallengeACKsAreRateLimitedPerConnection(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	skipped := statOf(func(s *TCPStats) uint64 { return s.InvalidACKsSkipped })
	h.run(steps(scriptMSS1000(), []step{
		in(ms(200), tseg{f: "R", seq: 10}),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1}),
		in(ms(210), tseg{f: "S", seq: 10}),
		in(ms(300), tseg{f: "R", seq: 20}),
		in(ms(400), tseg{f: ".", seq: 1 + 100000, ack: 1}), // beyond the window, no data
		in(ms(699), tseg{f: "R", seq: 30}),
		none(ms(699)),
		do(ms(699), func(h *tcpScript) {
			if n := skipped(h); n != 4 {
				h.t.Fatalf("%d invalid ACKs skipped, want 4", n)
			}
		}),
		// 500 ms after the last one that went.
		in(ms(700), tseg{f: "S", seq: 30}),
		out(ms(700), tseg{f: ".", seq: 1, ack: 1}),
		in(ms(710), tseg{f: ".", seq: 1 + 100000, ack: 1}),
		// A retransmission of data we have: answered whatever the rate.
		in(ms(720), tseg{f: "P.", seq: -99, ack: 1, n: 100}),
		out(ms(720), tseg{f: ".", seq: 1, ack: 1}),
		none(ms(1100)),
		do(ms(1100), wantStat("challenge ACKs", challengeACKs, 2)),
		do(ms(1100), wantState("ESTABLISHED")),
	}))
}

// RFC 5961 7 with CVE-2016-5696: the stack's challenge ACK budget is drawn
// anew each second in [limit/2, limit/2+limit), so the number an attacker
// gets back in a second does not tell what other connections took. With a
// fixed budget the count would be the same every second.
func TestTCPChallengeACKBudgetIsRandomPerSecond(t *testing.T) {
	const limit = 10
	counts := func(key byte) []int {
		h := newTCPScript(t, func(c *Config) {
			c.TCP.ChallengeACKsPerSecond = limit
			c.TCP.InvalidACKInterval = -1 // the global budget alone
			c.TCP.ISNKey[0] = key
		})
		h.listen()
		h.run(scriptMSS1000())
		var got []int
		for sec := 1; sec <= 10; sec++ {
			h.advanceTo(h.base + int64(sec)*int64(time.Second))
			for range 3 * limit {
				h.inject(&tseg{f: "R", seq: 10})
			}
			got = append(got, len(h.sent))
			h.sent = h.sent[:0]
		}
		for _, n := range got {
			if n < limit/2 || n >= limit/2+limit {
				t.Fatalf("key %d: %v challenge ACKs a second, want each in [%d, %d)", key, got, limit/2, limit/2+limit)
			}
		}
		return got
	}
	a := counts(1)
	same := true
	for _, n := range a[1:] {
		same = same && n == a[0]
	}
	if same {
		t.Fatalf("challenge ACKs a second: %v, a fixed budget", a)
	}
	if b := counts(2); slices.Equal(a, b) {
		t.Fatalf("two keys, the same budgets: %v", a)
	}
}

// One connection flooded with segments that earn challenge ACKs takes one
// of them per InvalidACKInterval from the stack's budget, not all of it:
// another connection still gets its challenge ACK in the same second.
func TestTCPScriptOneConnectionCannotSpendAnothersChallengeACKs(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TCP.ChallengeACKsPerSecond = 4 }) // 2 to 5 a second
	h.listen()
	sentTo := func(port uint16) int {
		n := 0
		for _, g := range h.sent {
			if g.f.DestinationPort == port && g.f.Flags == header.TCPFlagACK {
				n++
			}
		}
		return n
	}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(150), as(4001)),
		in(ms(150), tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(ms(150), tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1460)}),
		in(ms(160), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(1000), func(h *tcpScript) {
			// A new second; the flood on the first connection.
			for range 50 {
				h.inject(&tseg{f: "R", seq: 10, port: 4000})
			}
			if n := sentTo(4000); n != 1 {
				h.t.Fatalf("%d challenge ACKs to the flooded connection, want 1", n)
			}
			h.inject(&tseg{f: "R", seq: 10, port: 4001})
			if n := sentTo(4001); n != 1 {
				h.t.Fatalf("%d challenge ACKs to the other connection, want 1", n)
			}
			h.sent = h.sent[:0]
		}),
		do(ms(1000), wantStat("challenge ACKs", challengeACKs, 2)),
	}))
}

// cookieTuple is the tuple of a connection from the script's peer port.
func (h *tcpScript) cookieTuple(port uint16) tcpTuple {
	return h.tuple(port)
}

// An ACK is taken as a SYN cookie only within 2 minutes of the listener's
// SYN queue overflowing (Linux's tcp_synq_no_recent_overflow): before any
// overflow, or long after, an ACK carrying a cookie that would validate
// is a stray ACK and gets a reset.
func TestTCPScriptCookieACKNeedsARecentOverflow(t *testing.T) {
	h := newTCPScript(t, nil)
	h.lopts.SYNQueue = 1
	h.listen()
	cookieACK := func(port uint16) func(h *tcpScript) {
		return func(h *tcpScript) {
			h.peerPort = port
			cookie := h.s.tcp.makeCookie(h.cookieTuple(port), scriptPeerISN, 7)
			h.inject(&tseg{f: ".", seq: int64(scriptPeerISN + 1), ack: int64(cookie + 1), abs: true})
		}
	}
	var iss uint32 // of the half-open connection
	noOverflow := statOf(func(s *TCPStats) uint64 { return s.CookieACKsNoOverflow })
	h.run([]step{
		// No overflow yet: a reset, no connection.
		do(0, cookieACK(5000)),
		do(0, func(h *tcpScript) {
			if len(h.sent) != 1 || h.sent[0].f.Flags != header.TCPFlagRST || h.s.TCPConnCount() != 0 || noOverflow(h) != 1 {
				h.t.Fatalf("an unsolicited cookie ACK: %d segments sent, %d connections, %d counted", len(h.sent), h.s.TCPConnCount(), noOverflow(h))
			}
			h.sent = h.sent[:0]
		}),
		// The SYN queue overflows: one half-open connection, then a
		// cookie; the half-open one completes.
		do(ms(100), as(5001)),
		in(ms(100), tseg{f: "S", seq: 0}),
		out(ms(100), tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1460)}),
		do(ms(100), func(h *tcpScript) { iss = h.iss }),
		do(ms(100), as(5002)),
		in(ms(100), tseg{f: "S", seq: 0}),
		out(ms(100), tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1460)}),
		do(ms(100), wantStat("cookies sent", func(s *TCPStats) uint64 { return s.SYNCookiesSent }, 1)),
		do(ms(200), func(h *tcpScript) { h.peerPort, h.iss, h.issKnown = 5001, iss, true }),
		in(ms(200), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(200), wantState("ESTABLISHED")),
		// Within 2 minutes of it, a cookie is taken.
		do(ms(119_000), cookieACK(5003)),
		do(ms(119_000), func(h *tcpScript) {
			if len(h.sent) != 0 || h.s.TCPConnCount() != 2 {
				h.t.Fatalf("a cookie ACK 2 minutes after the overflow: %d segments sent, %d connections", len(h.sent), h.s.TCPConnCount())
			}
		}),
		// After, it is not, fresh as the cookie is.
		do(ms(121_000), cookieACK(5004)),
		do(ms(121_000), func(h *tcpScript) {
			if len(h.sent) != 1 || h.sent[0].f.Flags != header.TCPFlagRST || h.s.TCPConnCount() != 2 || noOverflow(h) != 2 {
				h.t.Fatalf("a cookie ACK long after the overflow: %d segments sent, %d connections, %d counted", len(h.sent), h.s.TCPConnCount(), noOverflow(h))
			}
			h.sent = h.sent[:0]
		}),
	})
}

// The cookie's MAC covers its MSS index: a genuine cookie with other
// MSS bits does not validate, so a forged ACK cannot choose the MSS.
func TestTCPCookieMACCoversTheMSSIndex(t *testing.T) {
	h := newTCPScript(t, nil)
	h.advanceTo(h.now() + int64(time.Second))
	tcp := &h.s.tcp
	id := h.cookieTuple(5000)
	for idx := range cookieMSS {
		cookie := tcp.makeCookie(id, scriptPeerISN, idx)
		if got, ok := tcp.checkCookie(id, scriptPeerISN, cookie); !ok || got != idx {
			t.Fatalf("MSS index %d: the genuine cookie: %d, %v", idx, got, ok)
		}
		for other := range cookieMSS {
			if other == idx {
				continue
			}
			forged := cookie&^(7<<24) | uint32(other)<<24
			if got, ok := tcp.checkCookie(id, scriptPeerISN, forged); ok {
				t.Fatalf("MSS index %d changed to %d: validates (MSS %d)", idx, other, cookieMSS[got])
			}
		}
	}
}

// RFC 6675 2 and 5: an ACK that SACKs new data is a duplicate ACK even if
// it carries data (and changes the window): on a connection with data
// both ways the third such ACK starts the fast retransmit.
func TestTCPScriptSACKingACKsWithDataCountAsDuplicates(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	var flight []step
	for i := range 10 {
		flight = append(flight, out(ms(200), tseg{f: burstFlags(i), seq: 1 + int64(i)*1000, ack: 1, n: 1000}))
	}
	h.run(steps(passiveOpen(synOpts(1000, "sack"), synOpts(1460, "sack")), []step{
		do(ms(200), write(12000)),
	}, flight, []step{
		// The first segment is lost. The peer's ACKs carry data, and
		// SACK the segments that arrive; the third also opens the window.
		in(ms(300), tseg{f: "P.", seq: 1, ack: 1, n: 100, sack: [][2]int64{{1001, 2001}}}),
		out(ms(300), tseg{f: ".", seq: 10001, ack: 101, n: 1000}), // limited transmit
		in(ms(301), tseg{f: "P.", seq: 101, ack: 1, n: 100, sack: [][2]int64{{1001, 3001}}}),
		out(ms(301), tseg{f: "P.", seq: 11001, ack: 201, n: 1000}), // limited transmit
		in(ms(302), tseg{f: "P.", seq: 201, ack: 1, n: 100, win: 60000, sack: [][2]int64{{1001, 4001}}}),
		// The fast retransmit goes as the ACK is taken, before its data.
		out(ms(302), tseg{f: ".", seq: 1, ack: 201, n: 1000}),
		do(ms(302), wantStat("fast retransmits", func(s *TCPStats) uint64 { return s.FastRetransmits }, 1)),
		do(ms(302), wantStat("tail loss probes", func(s *TCPStats) uint64 { return s.TailLossProbes }, 0)),
		// Its data is acknowledged after the delayed-ACK time (the
		// connection is interactive: it sent within 40 ms of receiving).
		out(ms(342), tseg{f: ".", seq: 12001, ack: 301}),
		in(ms(400), tseg{f: ".", seq: 301, ack: 12001, win: 60000}),
		none(ms(5000)),
		do(ms(5000), wantStat("RTOs", func(s *TCPStats) uint64 { return s.RTOs }, 0)),
		do(ms(5000), wantStat("retransmits", func(s *TCPStats) uint64 { return s.Retransmits }, 1)),
	}))
}

// Linux's tcp_acceptable_seq: when the peer shrinks its window below what
// was already sent, a pure ACK (and a reset) carries the window's right
// edge, which the peer accepts, not SND.MAX beyond it.
func TestTCPScriptACKAfterAShrunkWindowCarriesTheWindowEnd(t *testing.T) {
	h := newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(5000)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
		out(ms(200), tseg{f: ".", seq: 2001, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 3001, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 4001, ack: 1, n: 1000}),
		// The peer takes the first segment and shrinks its window to
		// 1000 bytes: its right edge is 2001, below SND.MAX (5001).
		in(ms(250), tseg{f: ".", seq: 1, ack: 1001, win: 1000}),
		in(ms(260), tseg{f: "P.", seq: 1, ack: 1001, win: 1000, n: 10}),
		out(ms(260), tseg{f: ".", seq: 2001, ack: 11}),
		do(ms(270), func(h *tcpScript) { h.conn.Abort() }),
		out(ms(270), tseg{f: "R.", seq: 2001, ack: 11}),
	}))
}

// Karn's rule (RFC 6298 3) after a tail loss probe: the probe resent the
// timed segment, and its ACK may answer either transmission, so without
// timestamps it gives no RTT sample; with them, the echoed TSval says it
// answers the probe, and the sample is timed from the probe.
func TestTCPScriptTailLossProbeRetransmissionGivesNoRTTSample(t *testing.T) {
	wantSRTT := func(want time.Duration) func(h *tcpScript) {
		return func(h *tcpScript) {
			h.t.Helper()
			if got := time.Duration(h.conn.SRTT()); got != want {
				h.t.Fatalf("%s: SRTT %v, want %v", h.rel(h.now()), got, want)
			}
		}
	}
	t.Run("without timestamps", func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.listen()
		h.run(steps(scriptMSS1000(), []step{
			do(ms(100), wantSRTT(100*time.Millisecond)), // the handshake's sample
			do(ms(200), write(1000)),
			out(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 1000}),
			// The probe, at the timeout (SRTT+4*RTTVAR, 300 ms): sooner
			// than 2*SRTT and a delayed ACK.
			out(ms(500), tseg{f: "P.", seq: 1, ack: 1, n: 1000}),
			in(ms(550), tseg{f: ".", seq: 1, ack: 1001}),
			do(ms(550), wantSRTT(100*time.Millisecond)),
		}))
	})
	t.Run("with timestamps", func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.autoTS = true
		h.listen()
		tsOpts := &header.TCPOptions{HasMSS: true, MSS: 1460, HasTimestamps: true, TSEcr: 1000}
		h.run(steps(passiveOpen(synOpts(1000), tsOpts), []step{
			do(ms(200), write(988)),
			out(ms(200), tseg{f: "P.", seq: 1, ack: 1, n: 988}),
			out(ms(500), tseg{f: "P.", seq: 1, ack: 1, n: 988}),
			// The ACK echoes the probe's TSval: a 50 ms sample.
			in(ms(550), tseg{f: ".", seq: 1, ack: 989}),
			do(ms(550), wantSRTT((7*100*time.Millisecond+50*time.Millisecond)/8)),
		}))
	})
}
