package stack

import (
	"testing"
	"time"
)

// Connections the application closed end on their own, whatever the
// peer does (TCPConn.Close).

func finWait2Timeouts(s *TCPStats) uint64 { return s.FinWait2Timeouts }
func zeroWindowAborts(s *TCPStats) uint64 { return s.ZeroWindowAborts }
func abortOnData(s *TCPStats) uint64      { return s.AbortOnData }

// TestTCPScriptFinWait2OfAClosedConnectionTimesOut: a peer that
// acknowledges our FIN and never sends its own holds a closed connection
// in FIN-WAIT-2 for FinWait2Timeout (60 s, Linux's tcp_fin_timeout), not
// forever; no segment goes when it ends. A connection only half closed
// (CloseWrite) waits as long as the application wants: its time starts
// at Close.
func TestTCPScriptFinWait2OfAClosedConnectionTimesOut(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.listen()
		h.run(steps(scriptMSS1000(), []step{
			do(ms(200), closeConn),
			out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
			in(ms(300), tseg{f: ".", seq: 1, ack: 2}),
			do(ms(300), wantState("FIN-WAIT-2")),
			// A segment from the peer does not restart the time.
			in(ms(30000), tseg{f: ".", seq: 1, ack: 2}),
			do(ms(60299), wantState("FIN-WAIT-2")),
			do(ms(60300), wantClosed(ErrConnectionTimeout)),
			do(ms(60300), wantStat("FIN-WAIT-2 timeouts", finWait2Timeouts, 1)),
			none(ms(200000)),
		}))
	})
	t.Run("CloseWrite", func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.listen()
		h.run(steps(scriptMSS1000(), []step{
			do(ms(200), func(h *tcpScript) { h.conn.CloseWrite() }),
			out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
			in(ms(300), tseg{f: ".", seq: 1, ack: 2}),
			do(ms(600000), wantState("FIN-WAIT-2")),
			do(ms(600000), closeConn),
			do(ms(659999), wantState("FIN-WAIT-2")),
			do(ms(660000), wantClosed(ErrConnectionTimeout)),
		}))
	})
}

// TestTCPScriptDataAfterCloseIsAnsweredWithAReset: once the application
// has closed, nobody reads what arrives: new data gets a reset (RFC 1122
// 4.2.2.13, Linux's TCPAbortOnData) numbered from the segment's ACK, and
// the connection ends, in FIN-WAIT-1 and in FIN-WAIT-2. A half-closed
// connection (CloseWrite) still takes data.
func TestTCPScriptDataAfterCloseIsAnsweredWithAReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		ack  int64 // the data's ACK: of our FIN (FIN-WAIT-2) or not
	}{
		{"FIN-WAIT-1", 1},
		{"FIN-WAIT-2", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			h.run(steps(scriptMSS1000(), []step{
				do(ms(200), closeConn),
				out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
				in(ms(210), tseg{f: "P.", seq: 1, ack: tc.ack, n: 100}),
				out(ms(210), tseg{f: "R", seq: tc.ack}),
				do(ms(210), wantClosed(ErrConnectionReset)),
				do(ms(210), wantStat("aborts on data", abortOnData, 1)),
				none(ms(5000)),
			}))
		})
	}
	t.Run("CloseWrite", func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.listen()
		h.run(steps(scriptMSS1000(), []step{
			do(ms(200), func(h *tcpScript) { h.conn.CloseWrite() }),
			out(ms(200), tseg{f: "F.", seq: 1, ack: 1}),
			in(ms(210), tseg{f: "P.", seq: 1, ack: 2, n: 100}),
			out(ms(210), tseg{f: ".", seq: 2, ack: 101}),
			do(ms(210), wantState("FIN-WAIT-2")),
		}))
	})
}

// zeroWindowOpen is a passive open whose peer offers a zero window, then
// 1000 bytes written at 200 ms: they wait, and the persist timer probes
// at RTO (300 ms) with backoff.
func zeroWindowOpen() []step {
	return []step{
		in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		in(ms(100), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}),
		do(ms(200), write(1000)),
	}
}

func zeroWindowProbe(at int) step { return out(ms(at), tseg{f: ".", seq: 0, ack: 1}) }

// TestTCPScriptZeroWindowProbesAreBounded: zero-window probes the peer
// does not answer end the connection after MaxRetries of them (Linux:
// icsk_probes_out against tcp_retries2); probes it answers keep the
// connection open however long its window stays shut (RFC 9293 3.8.6.1,
// RFC 1122 MUST-67), unless the application has closed it: then the
// probing ends once its interval has backed off to MaxRTO, or after 8
// unanswered probes, whichever comes first (Linux's tcp_orphan_retries,
// RFC 6429).
func TestTCPScriptZeroWindowProbesAreBounded(t *testing.T) {
	t.Run("unanswered", func(t *testing.T) {
		h := newTCPScript(t, func(c *Config) { c.TCP.MaxRetries = 3 })
		h.listen()
		h.run(steps(zeroWindowOpen(), []step{
			zeroWindowProbe(500),
			zeroWindowProbe(1100),
			zeroWindowProbe(2300),
			do(ms(4699), wantState("ESTABLISHED")),
			do(ms(4700), wantClosed(ErrConnectionTimeout)),
			do(ms(4700), wantStat("zero-window aborts", zeroWindowAborts, 1)),
			none(ms(100000)),
		}))
	})
	t.Run("answered", func(t *testing.T) {
		h := newTCPScript(t, func(c *Config) { c.TCP.MaxRetries = 3; c.TCP.MaxRTO = 4 * time.Second })
		h.listen()
		s := zeroWindowOpen()
		at := 500
		for i := range 10 {
			s = append(s, zeroWindowProbe(at), in(ms(at+1), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}))
			at += min(300<<(i+1), 4000)
		}
		h.run(steps(s, []step{do(ms(at-1), wantState("ESTABLISHED"))}))
	})
	t.Run("answered after Close", func(t *testing.T) {
		h := newTCPScript(t, func(c *Config) { c.TCP.MaxRTO = 4 * time.Second })
		h.listen()
		s := zeroWindowOpen()
		s = append(s, do(ms(200), closeConn))
		at := 500
		for i := range 4 {
			s = append(s, zeroWindowProbe(at), in(ms(at+1), tseg{f: ".", seq: 1, ack: 1, win: zeroWin}))
			at += min(300<<(i+1), 4000)
		}
		// The next interval would be 4.8 s, past MaxRTO: the end.
		h.run(steps(s, []step{
			do(ms(at-1), wantState("FIN-WAIT-1")),
			do(ms(at), wantClosed(ErrConnectionTimeout)),
			do(ms(at), wantStat("zero-window aborts", zeroWindowAborts, 1)),
			none(ms(100000)),
		}))
	})
	// Unanswered after Close: with MaxRTO far above the probe interval
	// (and no user timeout, MaxRetries left at 15), the end comes at the
	// probe due after the 8th unanswered one (orphanProbes), with no 9th
	// probe sent.
	t.Run("unanswered after Close", func(t *testing.T) {
		h := newTCPScript(t, func(c *Config) { c.TCP.MaxRTO = time.Hour })
		h.listen()
		s := zeroWindowOpen()
		s = append(s, do(ms(200), closeConn))
		at := 500
		for i := range 8 { // the documented 8, not orphanProbes
			s = append(s, zeroWindowProbe(at))
			at += 300 << (i + 1)
		}
		// at is when the 9th probe would be due: 153.5 s, its interval
		// (76.8 s) still far below MaxRTO.
		h.run(steps(s, []step{
			do(ms(at-1), wantState("FIN-WAIT-1")),
			do(ms(at), wantClosed(ErrConnectionTimeout)),
			do(ms(at), wantStat("zero-window aborts", zeroWindowAborts, 1)),
			none(ms(at + 1000000)),
		}))
	})
}
