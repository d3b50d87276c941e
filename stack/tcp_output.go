package stack

import (
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

const (
	tcpFlagsRST    = header.TCPFlagRST
	tcpFlagsACK    = header.TCPFlagACK
	tcpFlagsSYN    = header.TCPFlagSYN
	tcpFlagsFIN    = header.TCPFlagFIN
	tcpFlagsPSH    = header.TCPFlagPSH
	tcpFlagsRSTACK = header.TCPFlagRST | header.TCPFlagACK
)

// segment builds a TCP segment of id with room for up to n bytes of
// payload after the options (if any) and returns the buffer and the
// payload to fill; send finishes it. The payload is n bytes unless the
// options leave less room in an MSS-sized segment (mss > 0 bounds
// options + payload).
//
// With Config.TSO, n may exceed one MSS: the segment then carries up to
// 64 KiB of IP packet in a TSO buffer, with SegmentSize set for the NIC
// to cut it; with no TSO buffer free it carries one MSS. With
// Config.LargeFrames, a segment too large for a buffer of the pool goes
// in a TSO buffer too, or, with none free, carries what a buffer of the
// pool holds.
func (t *tcpTable) segment(id tcpTuple, seq, ack uint32, flags header.TCPFlags, wnd uint16, opts *header.TCPOptions, n, mss int) (*nicq.Buf, []byte) {
	hl := header.TCPMinimumSize
	if opts != nil {
		hl += opts.EncodedLength()
	}
	var b *nicq.Buf
	if mss > 0 {
		per := mss - (hl - header.TCPMinimumSize)
		if n > per && t.s.cfg.TSO {
			if b = t.s.getTSOBuf(); b != nil {
				n = min(n, 0xffff-id.ipHeaderLen()-hl)
				b.SegmentSize = uint16(per)
			}
		}
		if b == nil {
			n = min(n, per)
		}
	}
	if b == nil && t.s.cfg.LargeFrames {
		if room := t.s.poolFrameRoom() - header.EthernetMinimumSize - id.ipHeaderLen() - hl; n > room {
			if b = t.s.getTSOBuf(); b == nil {
				n = max(room, 0)
			}
		}
	}
	if b == nil {
		if b = t.s.getBuf(); b == nil {
			return nil, nil
		}
	}
	seg := header.TCP(bufAppend(b, hl+n))
	seg.Encode(&header.TCPFields{
		SourcePort:      id.localPort,
		DestinationPort: id.remotePort,
		SequenceNumber:  seq,
		AckNumber:       ack,
		DataOffset:      hl,
		Flags:           flags,
		Window:          wnd,
	})
	if opts != nil {
		header.EncodeTCPOptions(seg[header.TCPMinimumSize:hl], opts)
	}
	return b, seg[hl:]
}

// send checksums the segment in b and hands it to IPv4 or IPv6 (with
// flowLabel, the connection's).
//
// A TSO segment (SegmentSize set) carries only the pseudo-header sum, for
// the NIC to complete per segment, and counts as the segments it is cut
// into; with Config.TxChecksumOffload every segment does.
func (t *tcpTable) send(id tcpTuple, b *nicq.Buf, flowLabel uint32) {
	seg := header.TCP(bufData(b))
	t.stats.SegmentsOut++
	if b.SegmentSize > 0 {
		pieces := tsoPieces(b)
		t.stats.SegmentsOut += uint64(pieces - 1)
		t.stats.TSOSegmentsOut++
		t.stats.TSOSegmentsCut += uint64(pieces)
	}
	var pseudo uint16
	if id.v6() {
		pseudo = checksum.PseudoHeaderIPv6(id.localAddr, id.remoteAddr, header.ProtocolTCP, uint32(len(seg)))
	} else {
		pseudo = checksum.PseudoHeaderIPv4(unmap4(id.localAddr), unmap4(id.remoteAddr), header.ProtocolTCP, uint16(len(seg)))
	}
	if b.SegmentSize > 0 || t.s.cfg.TxChecksumOffload {
		seg.SetChecksum(pseudo) // partial: the NIC completes it, or each piece
		b.Flags |= nicq.FlagL4ChecksumOffload
	} else {
		seg.SetChecksum(seg.ComputeChecksum(pseudo))
	}
	if id.v6() {
		t.s.sendIPv6(b, header.ProtocolTCP, id.localAddr, id.remoteAddr, flowLabel)
		return
	}
	t.s.sendIPv4DF(b, header.ProtocolTCP, unmap4(id.remoteAddr), true)
}

// tsoPieces is how many segments the NIC cuts the TSO segment in b (its
// TCP header first) into.
func tsoPieces(b *nicq.Buf) int {
	seg := header.TCP(bufData(b))
	size := int(b.SegmentSize)
	return (len(seg) - seg.DataOffset() + size - 1) / size
}

// sendReset answers a segment that belongs to no connection (RFC 9293
// 3.10.7.1): never a RST for a RST; if the segment had an ACK the RST takes
// its sequence number from it, so the sender accepts it; otherwise it
// carries sequence 0 and acknowledges everything the segment occupied.
func (t *tcpTable) sendReset(id tcpTuple, in *tcpSegment) {
	if in.flags&header.TCPFlagRST != 0 {
		return
	}
	var b *nicq.Buf
	if in.flags&header.TCPFlagACK != 0 {
		b, _ = t.segment(id, in.ack, 0, tcpFlagsRST, 0, nil, 0, 0)
	} else {
		b, _ = t.segment(id, 0, in.seq+in.seqLen(), tcpFlagsRSTACK, 0, nil, 0, 0)
	}
	if b == nil {
		return
	}
	t.stats.ResetsSent++
	t.send(id, b, t.flowLabel(&id))
}

// rcvWindow returns the window field to advertise: the receive ring's free
// space, scaled, never more than the field holds.
func (c *TCPConn) rcvWindow() uint16 {
	free := c.rcvBuf.free()
	if !c.synchronized() || !c.wsOK {
		return uint16(min(free, 0xffff))
	}
	return uint16(min(free>>c.rcvShift, 0xffff))
}

// rcvWindowBytes is a window field we advertise in bytes: scaled once
// both SYNs agreed on Window Scale.
func (c *TCPConn) rcvWindowBytes(wnd uint16) uint32 {
	if c.synchronized() && c.wsOK {
		return uint32(wnd) << c.rcvShift
	}
	return uint32(wnd)
}

// tsNow is our timestamp clock: milliseconds plus the connection's offset.
func (c *TCPConn) tsNow() uint32 { return uint32(c.t.s.now/1e6) + c.tsOffset }

// options returns the options of a non-SYN segment: timestamps, and SACK
// blocks while out-of-order data is held, after a D-SACK block when a
// duplicate is to be reported (RFC 2883 4: the duplicate range first).
func (c *TCPConn) options(o *header.TCPOptions) *header.TCPOptions {
	sack := c.sackOK && (c.nOOO > 0 || c.dsackOn)
	if !c.tsOK && !sack {
		return nil
	}
	*o = header.TCPOptions{}
	if c.tsOK {
		o.HasTimestamps, o.TSVal, o.TSEcr = true, c.tsNow(), c.tsRecent
	}
	if sack {
		limit := header.MaxSACKBlocks
		if c.tsOK {
			limit = 3
		}
		n := 0
		if c.dsackOn {
			o.SACKBlocks[0] = header.SACKBlock{Left: c.dsack.start, Right: c.dsack.end}
			n = 1
		}
		c.sackBlocks(o, n, limit)
	}
	return o
}

// emit builds a segment of the connection at seq with up to n payload
// bytes (fewer if its options need the room) and the current ACK and
// window.
func (c *TCPConn) emit(seq uint32, flags header.TCPFlags, n int) (*nicq.Buf, []byte) {
	var o header.TCPOptions
	wnd := c.rcvWindow()
	if c.synchronized() {
		edge := c.rcvNxt + c.rcvWindowBytes(wnd)
		if seqGT(edge, c.rcvAdvEdge) || seqLT(c.rcvAdvEdge, c.rcvNxt) {
			c.rcvAdvEdge = edge
		}
	}
	return c.t.segment(c.id, seq, c.rcvNxt, flags, wnd, c.options(&o), n, c.sndMSS)
}

// transmit sends a segment built by emit; as it carries our ACK, any owed
// ACK is paid.
func (c *TCPConn) transmit(b *nicq.Buf) {
	if c.quickACKs > 0 && (c.segsUnacked > 0 || c.ackNow) {
		c.quickACKs-- // one of the quick ACKs went (Linux's tcp_dec_quickack_mode)
	}
	c.lastAckSent = c.rcvNxt
	c.segsUnacked = 0
	c.ackNow, c.pushed = false, false
	if c.dsackOn {
		c.dsackOn = false // reported once (emit put it first)
		c.t.stats.DSACKsSent++
	}
	if c.delackTimer.Pending() {
		c.t.s.wheel.Cancel(&c.delackTimer)
	}
	c.t.send(c.id, b, c.flowLabel)
}

// sendACK acknowledges everything received so far, numbered by
// acceptableSeq.
func (c *TCPConn) sendACK() {
	if b, _ := c.emit(c.acceptableSeq(), tcpFlagsACK, 0); b != nil {
		c.transmit(b)
	}
}

// acceptableSeq is the sequence number of a segment without data (an ACK,
// a reset) that the peer will find in its window (RFC 9293 3.10.7.4), as
// Linux's tcp_acceptable_seq. It is sndMax, not sndNxt: after a timeout
// sndNxt goes back, and an ACK numbered below what the peer already
// received would be unacceptable to it, its acknowledgment unread; two
// ends that both went back would then never hear each other. But when the
// peer shrank its window below what was already sent (RFC 9293 3.8.6.2.2
// discourages it, does not forbid it), sndMax lies beyond its window and
// the right edge, sndUna+sndWnd, is used instead: its window may be zero,
// where only RCV.NXT is acceptable, and that is sndUna then. Up to a unit
// of the peer's window scale beyond the edge is still sndMax, as Linux
// allows for the peer rounding its window down (Linux measures the unit
// by its own scale, rcv_wscale; the rounding is the peer's, so this uses
// the peer's, sndShift). Before the handshake completes the window the
// SYN carried means nothing of the kind: sndMax.
func (c *TCPConn) acceptableSeq() uint32 {
	end := c.sndUna + c.sndWnd
	if !c.synchronized() || !seqLT(end, c.sndMax) || c.wsOK && c.sndMax-end < 1<<c.sndShift {
		return c.sndMax
	}
	return end
}

// sendProbe sends an ACK one byte below sndUna: the peer answers it with
// its current ACK and window whatever its state (zero-window probe and
// keepalive, as Linux does).
func (c *TCPConn) sendProbe() {
	if b, _ := c.emit(c.sndUna-1, tcpFlagsACK, 0); b != nil {
		c.transmit(b)
	}
}

// sendReset resets the connection (Abort, a full accept queue). With
// timestamps agreed it carries them, as RFC 7323 3.2 recommends (and
// Linux does), so a peer's PAWS check does not drop it.
func (c *TCPConn) sendReset() {
	var o *header.TCPOptions
	if c.tsOK {
		o = &header.TCPOptions{HasTimestamps: true, TSVal: c.tsNow(), TSEcr: c.tsRecent}
	}
	b, _ := c.t.segment(c.id, c.acceptableSeq(), c.rcvNxt, tcpFlagsRSTACK, 0, o, 0, 0)
	if b == nil {
		return
	}
	c.t.stats.ResetsSent++
	c.t.send(c.id, b, c.flowLabel)
}

// sendSYN sends (or resends) our SYN, or SYN-ACK in SYN-RECEIVED, with
// MSS, Window Scale, SACK-permitted and Timestamps (RFC 9293 3.7.1, RFC
// 7323 2.2, RFC 2018); a SYN-ACK carries only what the SYN offered.
func (c *TCPConn) sendSYN() {
	cfg := &c.t.cfg
	opts := header.TCPOptions{HasMSS: true, MSS: uint16(c.t.localMSS(c.id.v6()))}
	flags, ack := tcpFlagsSYN, uint32(0)
	if c.state == tcpSynReceived {
		flags |= tcpFlagsACK
		ack = c.rcvNxt
		opts.HasWindowScale, opts.WindowScale = c.wsOK, c.rcvShift
		opts.SACKPermitted = c.sackOK
		if c.tsOK {
			opts.HasTimestamps, opts.TSVal, opts.TSEcr = true, c.tsNow(), c.tsRecent
		}
	} else {
		opts.HasWindowScale, opts.WindowScale = true, c.rcvShift
		opts.SACKPermitted = !cfg.DisableSACK
		if !cfg.DisableTimestamps {
			opts.HasTimestamps, opts.TSVal = true, c.tsNow()
		}
	}
	b, _ := c.t.segment(c.id, c.iss, ack, flags, uint16(min(c.rcvBuf.free(), 0xffff)), &opts, 0, 0)
	if b == nil {
		c.armRTO()
		return
	}
	c.sndNxt, c.sndMax = c.iss+1, c.iss+1
	if c.retries == 0 && !c.rttTiming {
		c.rttTiming, c.rttSeq, c.rttStart = true, c.sndNxt, c.t.s.now
	}
	if c.retries == 0 {
		c.rexmitStart = c.t.s.now // the user timeout of an active open counts from the first SYN
	}
	c.lastAckSent = c.rcvNxt
	c.t.send(c.id, b, c.flowLabel)
	if c.retries > 0 {
		c.rearmRTO()
	} else {
		c.armRTO()
	}
}

// sendData sends up to n bytes from sequence number seq (at or above
// sndUna, with the bytes in the send ring); fin adds our FIN after them,
// push PSH (which the segment ending the last Write always carries).
// It returns how many bytes went (fewer than n when the segment's options
// needed the room, and then no FIN) and false when no buffer was free.
func (c *TCPConn) sendData(seq uint32, n int, fin, push bool) (sent int, finSent, ok bool) {
	flags := tcpFlagsACK
	if fin {
		flags |= tcpFlagsFIN
	}
	off := int(seq - c.sndUna)
	n = min(n, c.sndBuf.len()-off) // never past the data (the FIN is not a byte)
	if n > 0 && (push || off+n == c.sndBuf.len()) {
		flags |= tcpFlagsPSH // the end of the last Write, or of a GSO-sized packet
	}
	b, p := c.emit(seq, flags, n)
	if b == nil {
		return 0, false, false
	}
	if len(p) < n {
		header.TCP(bufData(b)).SetFlags(flags &^ (tcpFlagsFIN | tcpFlagsPSH))
		fin = false
	}
	c.sndBuf.peek(off, p)
	c.transmit(b)
	if seqLT(seq, c.sndMax) {
		c.noteRetransmit(seq, len(p)) // for the undo of a spurious reduction
	}
	return len(p), fin, true
}

// output sends what the windows allow from the send ring, then the FIN if
// the application closed and every byte has gone. In recovery, holes go
// before new data. A write of many segments leaves as one burst, and the
// retransmission timer (or tail loss probe) starts once the whole burst
// has gone: RFC 8985 7.2 times the probe by the flight after sending, so
// a burst is not probed as if its first segment were alone. New data
// (or our FIN) sent while a probe is armed restarts the probe, as RFC
// 8985 7.2 asks, but not the timeout behind it (RFC 6298 5.1).
func (c *TCPConn) output() {
	nxt, high := c.sndNxt, c.sndMax
	c.sendNew()
	switch {
	case c.sndNxt == nxt:
	case !c.rtoTimer.Pending():
		c.armRTO()
	case c.tlpArmed && seqGT(c.sndMax, high):
		c.armTimer(c.rtoAt)
	}
}

// sendNew is output's loop. Unless DisableBurstPush, it cuts the burst
// into the packets Linux's GSO would send (gsoSegs) and marks the last
// segment of each with PSH, as Linux does.
func (c *TCPConn) sendNew() {
	switch c.state {
	case tcpEstablished, tcpCloseWait, tcpFinWait1, tcpLastAck, tcpClosing:
	default:
		return
	}
	if c.inRecovery {
		for c.retransmitHole(false) {
		}
	}
	mss := c.dataMSS()
	segs := c.gsoSegs(mss)
	gso, pos := 0, 0 // the size of a GSO packet, and the segments of this one sent
	if !c.t.cfg.DisableBurstPush {
		gso = segs
	}
	tso := 0 // with the NIC's TSO, the most new data one segment carries
	if c.t.s.cfg.TSO {
		tso = segs * mss
	}
	for {
		limit := mss
		if tso > mss && seqGEQ(c.sndNxt, c.sndMax) {
			limit = tso // new data; what goes again goes one MSS at a time
		}
		n, fin, stop, persist := c.nextSegment(mss, limit)
		if stop {
			if persist {
				c.armPersist()
			}
			return
		}
		if c.t.txFull() {
			c.waitTx() // the queue is nearly full: go on when it drains
			return
		}
		seq := c.sndNxt
		// The last segment of a GSO packet of two or more: the packet is
		// full, or the burst ends after this segment. Only new data: what
		// goes again after a timeout is resent as Linux resends, segment
		// by segment.
		push := false
		if n > mss {
			push = true // a TSO segment is a GSO packet of its own
		} else if gso > 0 && !fin && seqGEQ(seq, c.sndMax) {
			end := pos+1 == gso
			if !end {
				c.sndNxt = seq + uint32(n)
				_, _, end, _ = c.nextSegment(mss, mss)
				c.sndNxt = seq
			}
			push = end && pos > 0
			if pos++; end {
				pos = 0
			}
		}
		sent, finOut, ok := c.sendData(seq, n, fin, push)
		if !ok {
			c.armRTO() // try again when the pool has refilled
			return
		}
		if !c.rttTiming && sent > 0 && c.retries == 0 {
			c.rttTiming, c.rttSeq, c.rttStart = true, seq+uint32(sent), c.t.s.now
		}
		if sent > 0 && c.lastDataIn != 0 && c.t.s.now-c.lastDataIn < int64(c.t.cfg.DelayedACK) {
			c.pingpong = true
		}
		c.sndNxt += uint32(sent)
		if c.frtoSend > 0 {
			c.frtoSend = max(c.frtoSend-sent, 0)
		}
		if finOut {
			c.finSent, c.finSeq = true, c.sndNxt
			c.finBare = sent == 0
			c.sndNxt++
		}
		if seqGT(c.sndNxt, c.sndMax) {
			c.sndMax = c.sndNxt
		}
	}
}

// nextSegment decides the segment of new data to send at sndNxt: n bytes,
// at most limit (one MSS, or more for the NIC's TSO: then a whole number
// of MSS unless it ends the data), and whether our FIN follows them. stop
// says nothing goes now; persist that the peer's window holds data back
// with nothing in flight.
func (c *TCPConn) nextSegment(mss, limit int) (n int, fin, stop, persist bool) {
	if c.finSent && seqGT(c.sndNxt, c.finSeq) {
		return 0, false, true, false // everything, FIN included, is in flight
	}
	off := int(c.sndNxt - c.sndUna)
	avail := c.sndBuf.len() - off
	wndRoom := int(int32(c.sndUna + c.sndWnd - c.sndNxt))
	cwndRoom := c.cwndRoom() // in recovery, what PRR allows
	if c.frtoSend > 0 {
		cwndRoom = c.frtoSend // F-RTO's new segments (RFC 5682 2.1 step 2b)
	}
	if !c.inRecovery && c.dupAcks > 0 {
		cwndRoom += min(c.dupAcks, 2) * mss // limited transmit (RFC 3042)
	}
	n = max(0, min(avail, wndRoom, cwndRoom, limit))
	if n > mss && n < avail {
		n -= n % mss
	}
	fin = c.finQueued && n == avail
	if n == 0 && !fin {
		return 0, false, true, avail > 0 && wndRoom <= 0 && c.sndUna == c.sndNxt
	}
	if n < mss && !fin {
		switch {
		case n < avail && cwndRoom <= n:
			return 0, false, true, false // the congestion window is full: wait for ACKs
		case n < avail:
			// The peer's window limits: sender SWS avoidance (RFC
			// 9293 3.8.6.2.1) sends a small segment only if it is
			// half the largest window the peer offered.
			if n < int(c.maxSndWnd/2) {
				return 0, false, true, c.sndUna == c.sndNxt
			}
		case !c.noDelay && c.sndNxt != c.sndUna:
			return 0, false, true, false // Nagle: a short tail waits for the outstanding ACK
		}
	}
	return n, fin, false, false
}

// gsoSegs is how many segments of mss bytes Linux would put in one GSO
// packet now (tcp_tso_autosize): what its pacing rate sends in about a
// millisecond (2^-10 s) plus, on a short path, up to 64 KiB more (64 KiB
// >> RTT/512µs), at least 2 and at most 64 KiB. Its pacing rate is the
// congestion window (or the flight, if larger) per smoothed RTT, twice
// that while the window is below half the slow start threshold and 1.2
// times after; with no RTT sample yet it is unbounded.
func (c *TCPConn) gsoSegs(mss int) int {
	const gsoMax = 64 << 10
	if c.srtt <= 0 {
		return max(gsoMax/mss, 2)
	}
	ratio := int64(120)
	if c.cc.Cwnd() < c.cc.Ssthresh()/2 {
		ratio = 200
	}
	window := int64(max(c.cc.Cwnd(), int(c.sndMax-c.sndUna)))
	bytes := window * ratio * 1e7 / c.srtt >> 10 // (window * ratio/100 / srtt in seconds) >> 10
	if r := c.srtt / 1000 >> 9; r < 32 {
		bytes += gsoMax >> r
	}
	return max(int(min(bytes, gsoMax))/mss, 2)
}

// armRTO (re)starts the retransmission timer. While a flight of data is
// out and no probe has gone for it, the timer first fires as a tail loss
// probe (RFC 8985 7) after two smoothed RTTs (and the peer's delayed ACK
// when one segment is out), or when the timeout would, in its place if
// that is sooner (RFC 8985 7.2): a lost last segment or a lost last ACK
// then costs a round trip instead of a timeout.
func (c *TCPConn) armRTO() { c.armTimer(c.t.s.now + c.rto) }

// rearmRTO restarts the retransmission timer after a retransmission by
// the timer. With a user timeout, the timer is shortened to expire when
// the user timeout does (Linux's tcp_clamp_rto_to_user_timeout), so the
// connection ends on time rather than up to an RTO (MaxRTO) later.
func (c *TCPConn) rearmRTO() {
	at := c.t.s.now + c.rto
	if c.userTimeout > 0 && c.state != tcpSynReceived {
		at = min(at, max(c.rexmitStart+c.userTimeout, c.t.s.now+int64(c.t.s.wheel.Tick())))
	}
	c.armTimer(at)
}

// userTimedOut reports whether the user timeout ends the connection at
// this retransmission timeout (Linux's retransmits_timed_out with
// icsk_user_timeout): a retransmission has gone (retries counts this
// expiry too) and the user timeout has passed since the first one (since
// the first SYN in SYN-SENT).
func (c *TCPConn) userTimedOut() bool {
	return c.userTimeout > 0 && c.state != tcpSynReceived && c.retries > 1 &&
		c.t.s.now-c.rexmitStart >= c.userTimeout
}

// tlpDelayedACK is RFC 8985's WCDelAckT, the worst case delayed ACK a
// tail loss probe of a one-segment flight allows for (200 ms, the RFC's
// value and Linux's TCP_RTO_MIN in tcp_schedule_loss_probe).
const tlpDelayedACK = 200 * time.Millisecond

// armTimer arms the retransmission timer for the timeout at rtoAt, or
// for a tail loss probe before it (see armRTO).
func (c *TCPConn) armTimer(rtoAt int64) {
	due := rtoAt
	c.rtoAt = rtoAt
	c.tlpArmed = false
	if !c.tlpOut && !c.inRecovery && c.srtt > 0 && c.synchronized() && c.retries == 0 {
		pto := 2 * c.srtt
		if int(c.sndMax-c.sndUna) <= c.dataMSS() {
			pto += int64(tlpDelayedACK) // the peer may delay its ACK of one segment
		}
		pto = max(pto, int64(c.t.s.wheel.Tick())*2)
		// A probe due after the timeout goes at the timeout, in its
		// place (RFC 8985 7.2: PTO = TCP_RTO_expiration() - Now()).
		due, c.tlpArmed = min(c.t.s.now+pto, rtoAt), true
	}
	c.t.s.wheel.Schedule(&c.rtoTimer, due)
}

// sendTailProbe sends new data if the peer's window takes it, otherwise
// the last segment sent again (RFC 8985 7.3), so that the peer answers
// with an ACK and SACK blocks that start a fast recovery.
func (c *TCPConn) sendTailProbe() {
	t := c.t
	t.stats.TailLossProbes++
	mss := c.dataMSS()
	off := int(c.sndNxt - c.sndUna)
	avail := c.sndBuf.len() - off
	wndRoom := int(int32(c.sndUna + c.sndWnd - c.sndNxt))
	if c.sndNxt == c.sndMax && avail > 0 && wndRoom > 0 {
		n := min(avail, wndRoom, mss)
		seq := c.sndNxt
		if sent, _, ok := c.sendData(seq, n, false, false); ok {
			c.sndNxt += uint32(sent)
			c.sndMax = c.sndNxt
		}
		return
	}
	end := c.sndMax
	fin := c.finSent && end == c.finSeq+1
	if fin {
		end = c.finSeq
	}
	n := min(mss, int(end-c.sndUna))
	if fin && c.finBare {
		n = 0 // the last segment sent was the FIN alone: so is the probe
	}
	if n <= 0 && !fin {
		return
	}
	if _, _, ok := c.sendData(end-uint32(n), n, fin, false); ok {
		t.stats.Retransmits++
		if c.rttTiming && seqGT(c.rttSeq, end-uint32(n)) {
			// The timed segment went again: its ACK will be ambiguous
			// (Karn). rttAfterProbe decides when it comes.
			c.rttProbeAt = t.s.now
		}
	}
}

// rttAfterProbe takes an ACK that completes the RTT measurement of a
// segment a tail loss probe sent again (before acked does): without
// timestamps the ACK may answer either transmission, and Karn's rule
// (RFC 6298 3) discards the sample; with them, the echoed TSval tells
// which transmission it answers (RFC 7323 4), and the sample is timed
// from that one, to the millisecond of the timestamp clock, as Linux
// takes it (tcp_rtt_tsopt_us). A probe older than the measurement
// (rttProbeAt not after rttStart) is of an earlier one.
func (c *TCPConn) rttAfterProbe(seg *tcpSegment) {
	if !c.rttTiming || c.rttProbeAt <= c.rttStart || !seqGEQ(seg.ack, c.rttSeq) {
		return
	}
	c.rttProbeAt = 0
	now := c.t.s.now
	if c.tsOK && seg.opts.HasTimestamps && seg.opts.TSEcr != 0 {
		if d := int32(c.tsNow() - seg.opts.TSEcr); d >= 0 && now-int64(d)*1e6 >= c.rttStart-1e6 {
			c.rttStart = now - int64(d)*1e6
			return
		}
	}
	c.rttTiming = false
}

// onRTO retransmits from sndUna (RFC 6298 5.4-5.6, RFC 5681 3.1): back off
// the timer, forget the running RTT measurement (Karn), collapse the
// congestion window, forget the SACK scoreboard (the peer may renege) and
// go back to sndUna.
func (c *TCPConn) onRTO(*timerT) {
	t := c.t
	// s.now stays the time Advance read from the clock: the wheel's own
	// time during a callback is the tick the timer was due at, which may
	// be earlier than segments this stack already stamped (timestamps must
	// never go backwards, RFC 7323 5.4).
	if c.tlpArmed {
		c.tlpArmed = false
		if c.sndUna != c.sndMax {
			c.tlpOut = true
			c.sendTailProbe()
			c.armRTO()
		}
		return
	}
	c.retries++
	limit := t.cfg.MaxRetries
	switch c.state {
	case tcpSynSent:
		limit = t.cfg.SYNRetries
	case tcpSynReceived:
		limit = t.cfg.SYNACKRetries
	default:
		if c.retries == 1 {
			c.rexmitStart = t.s.now
		}
	}
	expired := c.retries > limit
	if c.userTimeout > 0 && c.synchronized() {
		expired = false // the user timeout replaces MaxRetries
	}
	if expired || c.userTimedOut() {
		if c.softErr != nil {
			c.free(c.softErr)
		} else {
			c.free(ErrConnectionTimeout)
		}
		return
	}
	c.rto = min(c.rto*2, int64(t.cfg.MaxRTO))
	c.rttTiming = false
	t.stats.Retransmits++
	t.stats.RTOs++
	switch c.state {
	case tcpSynSent, tcpSynReceived:
		c.sendSYN()
		return
	}
	if c.sndUna == c.sndMax {
		return
	}
	c.cc.OnRTO(int(c.sndMax - c.sndUna))
	if c.retries == 1 || !c.undoOn || !c.undoRTO {
		c.startUndo(true) // a timeout again without progress: the same episode
	}
	c.startFRTO()
	c.inRecovery = false
	c.dupAcks = 0
	c.nSacked = 0
	c.recoverSeq, c.recoveryGuard = c.sndMax, true
	c.sndNxt = c.sndUna
	c.rexmitNxt = c.sndUna
	c.output()
	if c.sndNxt == c.sndUna {
		// Nothing could go (a closed window): probe instead.
		c.armPersist()
	}
	c.rearmRTO()
}

// armPersist starts the persist timer: zero-window probes with the RTO's
// backoff, without the RTO's limit on retries (RFC 9293 3.8.6.1).
func (c *TCPConn) armPersist() {
	if c.persistTimer.Pending() {
		return
	}
	d := min(c.rto<<min(c.persistBackoff, 16), int64(c.t.cfg.MaxRTO))
	if c.userTimeout > 0 && c.zwpTiming {
		// Expire when the user timeout does (Linux's
		// tcp_clamp_probe0_to_user_timeout).
		d = min(d, max(c.zwpStart+c.userTimeout-c.t.s.now, int64(c.t.s.wheel.Tick())))
	}
	c.t.s.wheel.Schedule(&c.persistTimer, c.t.s.now+d)
}

// onPersist runs while data waits for the peer's window and nothing is in
// flight. A zero window gets a probe; a window too small for the sender's
// silly-window avoidance gets what fits anyway (RFC 9293 3.8.6.2.1's
// override timeout). Either way the peer answers with its current window,
// so a lost window update cannot stall the connection.
func (c *TCPConn) onPersist(*timerT) {
	t := c.t
	avail := c.sndBuf.len() - int(c.sndNxt-c.sndUna)
	if avail <= 0 || c.sndUna != c.sndNxt {
		c.persistBackoff = 0
		c.zwpTiming = false
		return // nothing waits, or the retransmission timer covers it
	}
	if room := int(int32(c.sndUna + c.sndWnd - c.sndNxt)); room > 0 {
		c.zwpTiming = false
		t.stats.PersistProbes++
		seq := c.sndNxt
		if sent, _, ok := c.sendData(seq, min(room, c.dataMSS(), avail), false, false); ok && sent > 0 {
			c.sndNxt += uint32(sent)
			if seqGT(c.sndNxt, c.sndMax) {
				c.sndMax = c.sndNxt
			}
			c.persistBackoff = 0
			c.armRTO()
			return
		}
	} else {
		// The user timeout counts from the first probe of this closed
		// window, answered or not (Linux's icsk_probes_tstamp).
		timedOut := false
		if !c.zwpTiming {
			c.zwpTiming, c.zwpStart = true, t.s.now
		} else {
			timedOut = c.userTimeout > 0 && t.s.now-c.zwpStart >= c.userTimeout
		}
		if timedOut || c.zeroWindowGiveUp() {
			t.stats.ZeroWindowAborts++
			c.free(ErrConnectionTimeout)
			return
		}
		t.stats.PersistProbes++
		c.sendProbe()
		c.zwpOut = min(c.zwpOut+1, 255)
	}
	c.persistBackoff++
	c.armPersist()
}

// orphanProbes bounds zero-window probes for a connection the application
// closed, as Linux's tcp_orphan_retries (0, which means 8 while the
// probe interval is below the maximum): 8 unanswered probes, or, answered
// or not, a probe interval backed off to MaxRTO. RFC 6429 allows ending a
// connection in persist to reclaim its resources; nobody waits for this
// one's data.
const orphanProbes = 8

// zeroWindowGiveUp reports whether the zero-window probe due now should
// end the connection instead (Linux's tcp_probe_timer): a peer gone
// silent for MaxRetries probes (orphanProbes if the application closed),
// or, for a closed one, a window that stayed shut until the probe
// interval reached MaxRTO.
func (c *TCPConn) zeroWindowGiveUp() bool {
	limit := c.t.cfg.MaxRetries
	if c.released {
		if c.rto<<min(c.persistBackoff, 16) >= int64(c.t.cfg.MaxRTO) {
			return true
		}
		limit = orphanProbes
	}
	return int(c.zwpOut) >= limit
}

// handshakeRTO starts the data phase's RTO once the handshake completes
// (call it before retries is cleared): if our SYN or SYN-ACK timed out and
// no RTT was measured (Karn), the RTO restarts at 3 s rather than keep
// the handshake's backoff (RFC 6298 5.7; Linux's TCP_TIMEOUT_FALLBACK in
// tcp_init_metrics).
func (c *TCPConn) handshakeRTO() {
	if c.retries > 0 && c.srtt == 0 {
		cfg := &c.t.cfg
		c.rto = int64(min(max(3*time.Second, cfg.InitialRTO), cfg.MaxRTO))
	}
}

// onDelayedACK sends the ACK that no data rode on in time.
func (c *TCPConn) onDelayedACK(*timerT) {
	if c.segsUnacked > 0 || c.ackNow {
		c.t.stats.DelayedACKs++
		c.pingpong = false // the reply did not come in time to carry it
		c.sendACK()
	}
}

// armKeepAlive starts keepalive for a connection that asked for it.
func (c *TCPConn) armKeepAlive() {
	if c.keepAlive {
		c.t.s.wheel.Schedule(&c.keepTimer, c.lastRecv+c.keepIdle())
	}
}

// keepIdle, keepInterval and keepCount are the connection's keepalive
// timing: its own (SetKeepAlive) or the stack's.
func (c *TCPConn) keepIdle() int64 {
	if c.kaIdle > 0 {
		return c.kaIdle
	}
	return int64(c.t.cfg.KeepAliveIdle)
}

func (c *TCPConn) keepInterval() int64 {
	if c.kaInterval > 0 {
		return c.kaInterval
	}
	return int64(c.t.cfg.KeepAliveInterval)
}

func (c *TCPConn) keepCount() int {
	if c.kaCount > 0 {
		return c.kaCount
	}
	return c.t.cfg.KeepAliveProbes
}

// onKeepAlive probes an idle connection (RFC 9293 3.8.4): after
// KeepAliveIdle without a segment, a probe every KeepAliveInterval; after
// KeepAliveProbes unanswered ones the connection times out.
func (c *TCPConn) onKeepAlive(*timerT) {
	t := c.t
	now := t.s.now
	if idle := now - c.lastRecv; idle < c.keepIdle() {
		c.probes = 0
		t.s.wheel.Schedule(&c.keepTimer, c.lastRecv+c.keepIdle())
		return
	}
	// With a user timeout, it decides when unanswered probes end the
	// connection, instead of KeepAliveProbes (as Linux).
	if c.userTimeout > 0 && c.probes > 0 && now-c.lastRecv >= c.userTimeout ||
		c.userTimeout == 0 && c.probes >= c.keepCount() {
		c.free(ErrConnectionTimeout)
		return
	}
	c.probes++
	t.stats.KeepAliveProbes++
	c.sendProbe()
	t.s.wheel.Schedule(&c.keepTimer, now+c.keepInterval())
}

// onTimeWait ends TIME-WAIT after 2*MSL, and FIN-WAIT-2 after
// FinWait2Timeout.
func (c *TCPConn) onTimeWait(*timerT) {
	if c.state == tcpFinWait2 {
		c.t.stats.FinWait2Timeouts++
		c.free(ErrConnectionTimeout)
		return
	}
	c.free(nil)
}

// updateRTT takes one RTT sample r (RFC 6298 2.2-2.4, G = the wheel tick).
func (c *TCPConn) updateRTT(r int64) {
	if c.srtt == 0 {
		c.srtt, c.rttvar = max(r, 1), r/2
	} else {
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4
		c.srtt = (7*c.srtt + r) / 8
	}
	cfg := &c.t.cfg
	c.rto = min(max(c.srtt+max(int64(c.t.s.wheel.Tick()), 4*c.rttvar), int64(cfg.MinRTO)), int64(cfg.MaxRTO))
}

// SRTT returns the smoothed round-trip time in nanoseconds (0 before the
// first sample).
func (c *TCPConn) SRTT() int64 { return c.srtt }

// Cwnd returns the congestion window in bytes.
func (c *TCPConn) Cwnd() int { return c.cc.Cwnd() }
