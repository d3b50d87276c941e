package stack

import (
	"fmt"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// FuzzTCPSegmentInEveryState drives a connection into one of the TCP
// states (or none: LISTEN), then delivers a fuzzed segment (flags,
// sequence and acknowledgment numbers near the connection's, window,
// option bytes, payload) twice, wrapped in valid Ethernet and IPv4
// headers with correct checksums so that it reaches TCP. The stack must
// not panic, its invariants must hold after each segment and after its
// timers have run, everything it sends must be well-formed, it must
// still complete a fresh handshake, and once every connection is gone
// every buffer must be back in the pool.

// tcpFuzzStates are the states FuzzTCPSegmentInEveryState can start from.
var tcpFuzzStates = []struct {
	name  string
	setup func(h *tcpScript)
}{
	{"LISTEN", func(h *tcpScript) {}},
	{"SYN-SENT", func(h *tcpScript) {
		h.dial(TCPConnOptions{})
	}},
	{"SYN-RECEIVED", func(h *tcpScript) {
		h.inject(&tseg{f: "S", opts: synOpts(1000, "ws7", "sack")})
	}},
	{"ESTABLISHED", func(h *tcpScript) {
		fuzzEstablish(h)
	}},
	{"FIN-WAIT-1", func(h *tcpScript) {
		fuzzEstablish(h)
		h.conn.Close()
	}},
	{"FIN-WAIT-2", func(h *tcpScript) {
		fuzzEstablish(h)
		h.conn.Close()
		h.inject(&tseg{f: ".", seq: 1, ack: 3002})
	}},
	{"CLOSE-WAIT", func(h *tcpScript) {
		fuzzEstablish(h)
		h.inject(&tseg{f: "F.", seq: 1, ack: 1001, n: 1500})
	}},
	{"CLOSING", func(h *tcpScript) {
		fuzzEstablish(h)
		h.conn.CloseWrite() // Close would answer the data with a reset
		h.inject(&tseg{f: "F.", seq: 1, ack: 1001, n: 1500})
	}},
	{"LAST-ACK", func(h *tcpScript) {
		fuzzEstablish(h)
		h.inject(&tseg{f: "F.", seq: 1, ack: 1001, n: 1500})
		h.conn.Close()
	}},
	{"TIME-WAIT", func(h *tcpScript) {
		fuzzEstablish(h)
		h.conn.Close()
		h.inject(&tseg{f: "F.", seq: 1, ack: 3002})
	}},
}

// fuzzEstablish opens a connection with every option (timestamps added
// by the script), with 3000 bytes of the stack's in flight (1000
// acknowledged, the rest SACKed in part) and 500 bytes of the peer's held
// beyond a hole.
func fuzzEstablish(h *tcpScript) {
	h.autoTS = true
	h.inject(&tseg{f: "S", opts: synOpts(1000, "ws7", "sack")})
	h.n.clock.Advance(50 * time.Millisecond)
	h.s.Advance()
	h.inject(&tseg{f: ".", seq: 1, ack: 1})
	if h.conn == nil {
		h.t.Fatal("no connection")
	}
	h.conn.Write(pattern(3000))
	h.capture()
	h.inject(&tseg{f: ".", seq: 1, ack: 1001, sack: [][2]int64{{2001, 2501}}})
	h.inject(&tseg{f: ".", seq: 1001, ack: 1001, n: 500})
}

func FuzzTCPSegmentInEveryState(f *testing.F) {
	for st := range tcpFuzzStates {
		for _, fl := range []header.TCPFlags{header.TCPFlagACK, header.TCPFlagRST, header.TCPFlagSYN,
			header.TCPFlagFIN | header.TCPFlagACK, header.TCPFlagSYN | header.TCPFlagACK} {
			f.Add(uint8(st), uint8(fl), int32(0), int32(0), uint16(1000), []byte{}, []byte{})
		}
		f.Add(uint8(st), uint8(header.TCPFlagACK|header.TCPFlagPSH), int32(0), int32(500), uint16(0), []byte{}, []byte("data"))
	}
	f.Fuzz(func(t *testing.T, state, flags uint8, seqOff, ackOff int32, wnd uint16, opts, payload []byte) {
		checkTCPSegmentInState(t, int(state)%len(tcpFuzzStates), header.TCPFlags(flags), seqOff, ackOff, wnd, opts, payload)
	})
}

func checkTCPSegmentInState(t *testing.T, state int, flags header.TCPFlags, seqOff, ackOff int32, wnd uint16, opts, payload []byte) {
	h := newTCPScript(t, func(c *Config) {
		c.TCP.MSL = time.Second
		c.TCP.MaxRTO = 2 * time.Second
		c.TCP.MaxRetries = 3
		c.TCP.ReceiveBuffer = 16 << 10
		c.TCP.SendBuffer = 16 << 10
	})
	h.listen()
	st := tcpFuzzStates[state]
	st.setup(h)
	h.sent = nil
	if c := h.conn; c != nil && c.State() != st.name {
		t.Fatalf("setup reached %s, not %s", c.State(), st.name)
	}
	checkTCPInvariants(t, h.s)

	// The fuzzed segment, near the connection's sequence space.
	seq, ack := h.peerISN+uint32(seqOff), uint32(ackOff)
	if c := h.conn; c != nil {
		seq, ack = c.rcvNxt+uint32(seqOff), c.sndUna+uint32(ackOff)
	}
	if len(opts) > header.TCPMaximumOptionsSize {
		opts = opts[:header.TCPMaximumOptionsSize]
	}
	opts = append(opts[:len(opts):len(opts)], make([]byte, (4-len(opts)%4)%4)...)
	if len(payload) > 1400 {
		payload = payload[:1400]
	}
	for range 2 {
		h.injectRaw(h.peerPort, seq, ack, flags, wnd, opts, payload)
		checkTCPInvariants(t, h.s)
		h.advanceTo(h.now() + int64(time.Millisecond))
	}
	// Let every timer that matters run out.
	h.advanceTo(h.now() + int64(2*time.Minute))
	checkTCPInvariants(t, h.s)
	h.sent = nil

	// A fresh handshake from another port completes.
	h.autoTS = false
	h.conn = nil
	h.peerPort, h.local = 6000, scriptPort
	h.newIncarnation(0x77770000)
	h.inject(&tseg{f: "S", opts: synOpts(1200)})
	if len(h.sent) != 1 || h.sent[0].f.Flags != header.TCPFlagSYN|header.TCPFlagACK || h.sent[0].f.AckNumber != h.peerISN+1 {
		var got []string
		for _, g := range h.sent {
			got = append(got, h.format(g))
		}
		t.Fatalf("fresh SYN answered with %q", got)
	}
	h.sent = nil
	h.inject(&tseg{f: "P.", seq: 1, ack: 1, n: 10})
	if h.conn == nil || h.conn.State() != "ESTABLISHED" || h.conn.Buffered() != 10 {
		t.Fatal("the fresh handshake did not complete")
	}
	checkTCPInvariants(t, h.s)

	// Every connection gone, every buffer back.
	h.s.ShutdownTCP(true)
	h.capture()
	h.advanceTo(h.now() + int64(time.Second))
	if n := h.s.TCPConnCount(); n != 0 {
		t.Fatalf("%d connections after an abortive shutdown", n)
	}
	checkTCPInvariants(t, h.s)
	if n := h.pool.InUse(); n != 0 {
		t.Fatalf("%d buffers leaked", n)
	}
}

// checkTCPInvariants checks every connection of s for consistency.
func checkTCPInvariants(t *testing.T, s *Stack) {
	t.Helper()
	tb := &s.tcp
	var est, tw uint64
	synRcvd := map[*TCPListener]int{}
	for id, c := range tb.conns {
		where := fmt.Sprintf("connection %d->%d in %s", id.remotePort, id.localPort, c.state)
		if c.id != id || c.t != tb {
			t.Fatalf("%s: filed under another tuple or table", where)
		}
		switch c.state {
		case tcpClosed:
			t.Fatalf("%s: closed but in the table", where)
		case tcpEstablished:
			est++
		case tcpTimeWait:
			tw++
		case tcpSynReceived:
			if c.listener != nil {
				synRcvd[c.listener]++
			}
		}
		if !seqLEQ(c.sndUna, c.sndNxt) || !seqLEQ(c.sndNxt, c.sndMax) {
			t.Fatalf("%s: sndUna %d sndNxt %d sndMax %d out of order", where, c.sndUna, c.sndNxt, c.sndMax)
		}
		// In flight: the bytes of the send ring, our SYN and our FIN.
		if n := int(c.sndMax - c.sndUna); n > c.sndBuf.len()+2 {
			t.Fatalf("%s: %d bytes in flight, %d in the send ring", where, n, c.sndBuf.len())
		}
		for _, r := range []*byteRing{&c.sndBuf, &c.rcvBuf} {
			if r.n < 0 || r.n > r.bound() || r.head < 0 || r.head >= max(len(r.buf), 1) {
				t.Fatalf("%s: ring n %d head %d of %d", where, r.n, r.head, len(r.buf))
			}
		}
		if c.nOOO < 0 || c.nOOO > tb.cfg.MaxOutOfOrder || c.nSacked < 0 || c.nSacked > len(c.sb.sacked) {
			t.Fatalf("%s: %d out-of-order ranges, %d SACKed", where, c.nOOO, c.nSacked)
		}
		sb := c.sb
		if sb == nil {
			if c.nOOO != 0 || c.nSacked != 0 || c.nUndo != 0 {
				t.Fatalf("%s: %d out-of-order, %d SACKed, %d undo ranges and no scoreboard", where, c.nOOO, c.nSacked, c.nUndo)
			}
			sb = new(tcpScoreboard)
		}
		prev := c.rcvNxt
		for i, r := range sb.ooo[:c.nOOO] {
			if !seqLT(r.start, r.end) || (i == 0 && !seqLT(prev, r.start)) || (i > 0 && !seqLT(prev, r.start)) {
				t.Fatalf("%s: out-of-order ranges %v (rcvNxt %d)", where, sb.ooo[:c.nOOO], c.rcvNxt)
			}
			prev = r.end
		}
		if c.nUndo < 0 || c.nUndo > maxUndoRanges || c.frto > 2 || c.frtoSend < 0 || c.dsackOn && (!c.sackOK || !seqLT(c.dsack.start, c.dsack.end)) {
			t.Fatalf("%s: %d undo ranges, F-RTO step %d (%d to send), D-SACK %v %v", where, c.nUndo, c.frto, c.frtoSend, c.dsackOn, c.dsack)
		}
		for i, r := range sb.undo[:c.nUndo] {
			if !seqLT(r.start, r.end) || i > 0 && !seqLT(sb.undo[i-1].end, r.start) {
				t.Fatalf("%s: retransmitted ranges %v", where, sb.undo[:c.nUndo])
			}
		}
		if c.oooBytes() > c.rcvBuf.free() {
			t.Fatalf("%s: out-of-order data reaches %d bytes past the %d free", where, c.oooBytes(), c.rcvBuf.free())
		}
		prev = c.sndUna
		for _, r := range sb.sacked[:c.nSacked] {
			if !seqLT(r.start, r.end) || seqLT(r.start, prev) || seqGT(r.end, c.sndMax) {
				t.Fatalf("%s: scoreboard %v (sndUna %d sndMax %d)", where, sb.sacked[:c.nSacked], c.sndUna, c.sndMax)
			}
			prev = r.end
		}
		if c.sndMSS < 64 || c.cc.Cwnd() <= 0 || c.rto <= 0 {
			t.Fatalf("%s: MSS %d cwnd %d RTO %d", where, c.sndMSS, c.cc.Cwnd(), c.rto)
		}
	}
	st := &tb.stats
	if st.Established != est || st.TimeWait != tw {
		t.Fatalf("gauges: %d established, %d in TIME-WAIT; the table has %d and %d", st.Established, st.TimeWait, est, tw)
	}
	for _, l := range tb.listeners {
		if l.synCount != synRcvd[l] {
			t.Fatalf("listener %d counts %d in SYN-RECEIVED, the table has %d", l.port, l.synCount, synRcvd[l])
		}
	}
	for _, in := range s.TCPConnections(nil) {
		if in.Unacked < 0 || in.Unsent < 0 || in.Buffered < 0 || in.RcvWnd < 0 || in.SndWnd < 0 || in.Cwnd <= 0 || in.RTO <= 0 {
			t.Fatalf("connection info %+v", in)
		}
	}
}

// TestTCPSegmentInEveryStateSmoke runs the fuzz body over a fixed set of
// segments in every state, so the ordinary test run covers it too.
func TestTCPSegmentInEveryStateSmoke(t *testing.T) {
	for st := range tcpFuzzStates {
		for _, tc := range []struct {
			flags    header.TCPFlags
			seq, ack int32
			opts     []byte
			n        int
		}{
			{header.TCPFlagACK, 0, 0, nil, 0},
			{header.TCPFlagACK | header.TCPFlagPSH, 0, 0, nil, 100},
			{header.TCPFlagACK, 1000, 0, nil, 100},
			{header.TCPFlagRST, 0, 0, nil, 0},
			{header.TCPFlagRST | header.TCPFlagACK, 5, 0, nil, 0},
			{header.TCPFlagSYN, 0, 0, []byte{2, 4, 0, 10}, 0},
			{header.TCPFlagSYN | header.TCPFlagACK, 0, 1, nil, 0},
			{header.TCPFlagFIN | header.TCPFlagACK, 0, 3000, nil, 10},
			{header.TCPFlagACK, 0, 2000, []byte{1, 1, 5, 10, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 0},
			{0xff, -1, -1, []byte{8, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0}, 1},
		} {
			t.Run(fmt.Sprintf("%s/%v/%d", tcpFuzzStates[st].name, tc.flags, tc.seq), func(t *testing.T) {
				checkTCPSegmentInState(t, st, tc.flags, tc.seq, tc.ack, 1000, tc.opts, pattern(tc.n))
			})
		}
	}
}
