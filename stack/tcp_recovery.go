package stack

import "github.com/mkstack/mkstack/stack/header"

// Out-of-order data (receive side) and the SACK scoreboard with loss
// recovery (send side).
//
// Receive: data beyond a hole is written into the receive ring at its
// place past the in-order bytes, so it costs no memory beyond the window
// we advertised; c.sb.ooo remembers which ranges are there (bounded by
// TCPConfig.MaxOutOfOrder). When the hole fills, the ranges it reaches
// join the in-order bytes without a copy.
//
// Send: SACK blocks (RFC 2018) build c.sb.sacked, the ranges above sndUna the
// peer holds. Loss is declared after three duplicate ACKs or when more
// than two segments' worth of data is SACKed above sndUna (RFC 6675's
// IsLost for the first hole). Recovery (RFC 6675 with SACK, RFC 6582
// NewReno without) then sends what Proportional Rate Reduction (RFC 9937)
// allows on each ACK (prrACK): first the holes below the highest SACKed
// byte, in order, once each, then new data.
//
// pipe is the bytes still in the network, as Linux's in-flight count:
// those sent above the highest SACKed byte plus the holes retransmitted in
// this recovery. A hole below the highest SACKed byte and not yet
// retransmitted counts as lost. That is RACK's rule (RFC 8985 6.2) during
// recovery when no reordering has been seen (its reordering window is
// then 0): a segment is lost once one sent after it is delivered, and the
// segments above a hole were first sent after it. RFC 6675's IsLost is
// more patient (a hole is lost only with three segments SACKed above it);
// Linux, whose loss detection is RACK, counts the holes lost as here, and
// with IsLost the pipe would keep them in flight and PRR would send a
// segment or two less per ACK than Linux does (packetdrill's
// prr-ss-ack-below-snd_una-cubic). A retransmission that is lost again
// is noticed only at sndUna (processACK, holeRexmitAt), not by RACK's
// timestamps; nor is there RACK's reordering timer.

// oooBytes is the span from rcvNxt to the end of the last out-of-order
// range: ring space already promised to data held beyond a hole.
func (c *TCPConn) oooBytes() int {
	if c.nOOO == 0 {
		return 0
	}
	return int(c.sb.ooo[c.nOOO-1].end - c.rcvNxt)
}

// storeOutOfOrder keeps a segment that arrived beyond a hole; it reports
// DropTCPOutOfOrderFull when that would need more ranges than allowed,
// DropTCPMemory when the ring has no memory for it.
func (c *TCPConn) storeOutOfOrder(seg *tcpSegment) DropReason {
	r := seqRange{seg.seq, seg.seq + uint32(len(seg.payload))}
	c.noteHeldDuplicate(r.start, r.end)
	c.scoreboard()
	// Find the insertion point and merge with neighbours.
	i := 0
	for i < c.nOOO && seqLT(c.sb.ooo[i].end, r.start) {
		i++
	}
	j := i
	for j < c.nOOO && seqLEQ(c.sb.ooo[j].start, r.end) {
		if seqLT(c.sb.ooo[j].start, r.start) {
			r.start = c.sb.ooo[j].start
		}
		if seqGT(c.sb.ooo[j].end, r.end) {
			r.end = c.sb.ooo[j].end
		}
		j++
	}
	merged := j - i
	if merged == 0 && c.nOOO == c.t.cfg.MaxOutOfOrder {
		return DropTCPOutOfOrderFull
	}
	if !c.rcvBuf.writeAt(int(seg.seq-c.rcvNxt), seg.payload) {
		return DropTCPMemory
	}
	// Replace ooo[i:j] by r.
	switch {
	case merged == 0:
		copy(c.sb.ooo[i+1:c.nOOO+1], c.sb.ooo[i:c.nOOO])
		c.nOOO++
	case merged > 1:
		copy(c.sb.ooo[i+1:], c.sb.ooo[j:c.nOOO])
		c.nOOO -= merged - 1
	}
	c.sb.ooo[i] = r
	c.oooLatest = r.start
	return DropNone
}

// joinOutOfOrder moves the ranges that now touch rcvNxt into the in-order
// bytes.
func (c *TCPConn) joinOutOfOrder() {
	k := 0
	for k < c.nOOO && seqLEQ(c.sb.ooo[k].start, c.rcvNxt) {
		if seqGT(c.sb.ooo[k].end, c.rcvNxt) {
			n := c.sb.ooo[k].end - c.rcvNxt
			c.rcvBuf.commit(int(n))
			c.rcvNxt += n
		}
		k++
	}
	if k > 0 {
		copy(c.sb.ooo[:], c.sb.ooo[k:c.nOOO])
		c.nOOO -= k
	}
}

// sackBlocks puts up to limit SACK blocks in o after the first n (a
// D-SACK block): the range holding the latest segment first, then the
// others in order (RFC 2018 4).
func (c *TCPConn) sackBlocks(o *header.TCPOptions, n, limit int) {
	for i := 0; i < c.nOOO && n < limit; i++ {
		if c.sb.ooo[i].start == c.oooLatest {
			o.SACKBlocks[n] = header.SACKBlock{Left: c.sb.ooo[i].start, Right: c.sb.ooo[i].end}
			n++
		}
	}
	for i := 0; i < c.nOOO && n < limit; i++ {
		if c.sb.ooo[i].start != c.oooLatest {
			o.SACKBlocks[n] = header.SACKBlock{Left: c.sb.ooo[i].start, Right: c.sb.ooo[i].end}
			n++
		}
	}
	o.NumSACKBlocks = n
}

// takeSACK merges the segment's SACK blocks into the scoreboard, ignoring
// blocks outside (sndUna, sndMax] (D-SACK and bogus ones). It reports
// whether they SACKed octets not SACKed before: RFC 6675's DupAck.
func (c *TCPConn) takeSACK(seg *tcpSegment) bool {
	before := c.sackedBytes()
	for k := 0; k < seg.opts.NumSACKBlocks; k++ {
		b := seg.opts.SACKBlocks[k]
		r := seqRange{b.Left, b.Right}
		if !seqLT(r.start, r.end) || seqLEQ(r.end, c.sndUna) || seqGT(r.end, c.sndMax) {
			continue
		}
		if seqLT(r.start, c.sndUna) {
			r.start = c.sndUna
		}
		c.addSACKed(r)
	}
	return c.sackedBytes() > before
}

func (c *TCPConn) addSACKed(r seqRange) {
	c.scoreboard()
	i := 0
	for i < c.nSacked && seqLT(c.sb.sacked[i].end, r.start) {
		i++
	}
	j := i
	for j < c.nSacked && seqLEQ(c.sb.sacked[j].start, r.end) {
		if seqLT(c.sb.sacked[j].start, r.start) {
			r.start = c.sb.sacked[j].start
		}
		if seqGT(c.sb.sacked[j].end, r.end) {
			r.end = c.sb.sacked[j].end
		}
		j++
	}
	merged := j - i
	switch {
	case merged == 0 && c.nSacked == len(c.sb.sacked):
		// Full: forget the highest range (the least useful for repair).
		if i == c.nSacked {
			return
		}
		copy(c.sb.sacked[i+1:], c.sb.sacked[i:c.nSacked-1])
	case merged == 0:
		copy(c.sb.sacked[i+1:c.nSacked+1], c.sb.sacked[i:c.nSacked])
		c.nSacked++
	case merged > 1:
		copy(c.sb.sacked[i+1:], c.sb.sacked[j:c.nSacked])
		c.nSacked -= merged - 1
	}
	c.sb.sacked[i] = r
}

// dropSACKedBelow forgets scoreboard ranges the cumulative ACK passed.
func (c *TCPConn) dropSACKedBelow(ack uint32) {
	k := 0
	for k < c.nSacked && seqLEQ(c.sb.sacked[k].end, ack) {
		k++
	}
	if k > 0 {
		copy(c.sb.sacked[:], c.sb.sacked[k:c.nSacked])
		c.nSacked -= k
	}
	if c.nSacked > 0 && seqLT(c.sb.sacked[0].start, ack) {
		c.sb.sacked[0].start = ack
	}
}

func (c *TCPConn) sackedBytes() int {
	n := 0
	for i := range c.nSacked {
		n += int(c.sb.sacked[i].end - c.sb.sacked[i].start)
	}
	return n
}

// highSACKed is the end of the highest SACKed range (sndUna if none).
func (c *TCPConn) highSACKed() uint32 {
	if c.nSacked == 0 {
		return c.sndUna
	}
	return c.sb.sacked[c.nSacked-1].end
}

// dataMSS is the payload of a full segment: the MSS less the options every
// segment carries.
func (c *TCPConn) dataMSS() int {
	if c.tsOK {
		return c.sndMSS - 12
	}
	return c.sndMSS
}

func (c *TCPConn) lossDetected() bool {
	return c.dupAcks >= 3 || (c.sackOK && c.sackedBytes() > 2*c.dataMSS())
}

// enterRecovery starts fast retransmit and recovery on the ACK that
// detected the loss; delivered is what that ACK reported delivered and
// sackedBefore the bytes SACKed before it.
func (c *TCPConn) enterRecovery(delivered, sackedBefore int) {
	t := c.t
	c.inRecovery = true
	c.recoverSeq, c.recoveryGuard = c.sndMax, true
	// FlightSize without what limited transmit sent (RFC 5681 3.2 step
	// 2): outside recovery only limited transmit sends beyond cwnd.
	c.cc.OnCongestion(min(int(c.sndMax-c.sndUna), c.cc.Cwnd()))
	c.startUndo(false)
	c.frto, c.frtoSend = 0, 0
	c.rexmitNxt = c.sndUna
	c.rttTiming = false // Karn: the sample would be ambiguous
	t.stats.FastRetransmits++
	if c.nSacked > 0 {
		t.stats.SACKRecoveries++
	}
	// RFC 9937's RecoverFS: the flight, less what was SACKed before this
	// ACK (it will not be delivered again during the recovery).
	c.prrDelivered, c.prrRexmit, c.prrRoom = 0, 0, 0
	c.prrNxt0, c.prrNxt = c.sndNxt, c.sndNxt
	c.recoverFS = max(int(c.sndNxt-c.sndUna)-sackedBefore, 1)
	c.prrACK(delivered, false)
	// The first hole goes at once, whatever the window (RFC 5681 3.2;
	// PRR's room is at least a segment here). A tail loss probe still
	// pending becomes the retransmission timer, restarted by the
	// retransmission as Linux does: no probe is sent in recovery (RFC
	// 8985 7.2).
	c.retransmitHole(true)
	c.armRTO()
	c.schedule()
}

// delivered is RFC 9937's DeliveredData for an ACK that acknowledged
// acked new bytes cumulatively (0 for a duplicate ACK) when sackedBefore
// bytes were SACKed before it: the bytes the peer newly holds, SACKed
// ones included, those it had SACKed before not counted again. Without
// SACK each duplicate ACK stands for a segment delivered (at most the
// flight less a segment in all, as Linux), and a cumulative ACK counts
// what it covers beyond those, at least a segment's worth.
//
// Slow start and congestion avoidance grow cwnd by this rather than by
// the bytes the cumulative ACK covers, as Linux does: after reordering,
// the ACK that fills the hole covers data the peer already reported
// (SACKed, or counted by a duplicate ACK) and counts only what is new.
// RFC 5681 3.1 bounds the growth per ACK ("at most SMSS", or L*SMSS with
// RFC 3465's byte counting); counting less is within both.
func (c *TCPConn) delivered(acked, sackedBefore int) int {
	if c.sackOK {
		return max(acked+c.sackedBytes()-sackedBefore, 0)
	}
	mss := c.dataMSS()
	if !c.inRecovery && c.dupAcks == 1 && acked == 0 || !c.inRecovery && c.dupAcks == 0 {
		c.dupCredit = 0 // the first duplicate ACK of a run, or none before
	}
	if acked == 0 {
		d := min(mss, int(c.sndMax-c.sndUna)-mss-c.dupCredit)
		if d <= 0 {
			return 0
		}
		c.dupCredit += d
		return d
	}
	d := max(acked-c.dupCredit, min(acked, mss))
	c.dupCredit = max(c.dupCredit-max(acked-mss, 0), 0)
	return d
}

// prrACK is PRR's step for an ACK in recovery that reported delivered
// bytes (RFC 9937, the algorithm of Linux's tcp_cwnd_reduction): while
// the pipe is above ssthresh, send in proportion to what was delivered,
// ssthresh/RecoverFS of it, rounded up to whole segments as Linux counts
// them; below, send as much as was delivered (PRR-CRB), a segment more
// when the ACK moved sndUna without revealing a new loss (safe, PRR-SSRB),
// but never beyond ssthresh. The room it sets is spent by retransmitHole
// and, through sndNxt, by new data (cwndRoom).
func (c *TCPConn) prrACK(delivered int, safe bool) {
	if delivered <= 0 {
		return
	}
	mss := c.dataMSS()
	c.prrDelivered += delivered
	out := c.prrOut()
	pipe := c.pipe()
	ssthresh := c.cc.Ssthresh()
	var sndcnt int
	if pipe > ssthresh {
		fs := int64(c.recoverFS)
		quota := int((int64(c.prrDelivered)*int64(ssthresh) + fs - 1) / fs)
		sndcnt = (quota+mss-1)/mss*mss - out
	} else {
		sndcnt = max(c.prrDelivered-out, delivered)
		if safe {
			sndcnt += mss
		}
		sndcnt = min(ssthresh-pipe, sndcnt)
	}
	if out == 0 {
		sndcnt = max(sndcnt, mss) // the fast retransmit itself
	}
	c.prrRoom = max(sndcnt, 0)
	c.prrNxt = c.sndNxt
}

// prrOut is RFC 9937's prr_out: the bytes sent since recovery began.
func (c *TCPConn) prrOut() int {
	n := c.prrRexmit
	if seqGT(c.sndNxt, c.prrNxt0) {
		n += int(c.sndNxt - c.prrNxt0)
	}
	return n
}

// cwndRoom is what the congestion window lets go now: in recovery the
// room PRR gave at the last ACK less the new data sent since (the
// retransmissions were taken off prrRoom), otherwise cwnd less the
// flight.
func (c *TCPConn) cwndRoom() int {
	if !c.inRecovery {
		return c.cc.Cwnd() - int(c.sndNxt-c.sndUna)
	}
	if seqGT(c.sndNxt, c.prrNxt) {
		return c.prrRoom - int(c.sndNxt-c.prrNxt)
	}
	return c.prrRoom
}

// newLoss reports whether SACK blocks that moved the highest SACKed byte
// up from high exposed a hole above it: data now counted lost (see pipe),
// which makes an ACK not "safe" for PRR.
func (c *TCPConn) newLoss(high uint32) bool {
	if !seqGT(c.highSACKed(), high) {
		return false
	}
	if seqLT(high, c.sndUna) {
		high = c.sndUna
	}
	for i := 0; i < c.nSacked; i++ {
		r := c.sb.sacked[i]
		if seqLEQ(r.end, high) {
			continue
		}
		if seqGT(r.start, high) {
			return true
		}
		high = r.end
	}
	return false
}

// pipe estimates the bytes in the network (RFC 6675 SetPipe, with the
// holes below the highest SACKed byte taken as lost, as the comment at
// the top of this file says).
func (c *TCPConn) pipe() int {
	inFlight := int(c.sndNxt - c.sndUna)
	if !c.inRecovery {
		return inFlight
	}
	if c.sackOK && c.nSacked > 0 {
		high := c.highSACKed()
		p := int(c.sndNxt - high)
		// Retransmitted holes below min(rexmitNxt, high).
		end := c.rexmitNxt
		if seqGT(end, high) {
			end = high
		}
		x := c.sndUna
		for i := 0; i < c.nSacked && seqLT(x, end); i++ {
			s := c.sb.sacked[i].start
			if seqGT(s, end) {
				s = end
			}
			if seqLT(x, s) {
				p += int(s - x)
			}
			x = c.sb.sacked[i].end
		}
		return p
	}
	// Without SACK each duplicate ACK says a segment left the network.
	p := max(inFlight-c.dupAcks*c.dataMSS(), 0)
	return p + int(c.rexmitNxt-c.sndUna)
}

// nextHole returns the next range to retransmit in recovery, starting at
// rexmitNxt: a gap below the highest SACKed byte (or, without SACK, the
// segment at sndUna once per partial ACK). n is 0 when there is none.
func (c *TCPConn) nextHole() (seq uint32, n int) {
	x := c.rexmitNxt
	if seqLT(x, c.sndUna) {
		x = c.sndUna
	}
	// Holes hold data only: a FIN in flight is not resent from here.
	dataEnd := c.sndUna + uint32(c.sndBuf.len())
	if !seqLT(x, dataEnd) {
		return 0, 0
	}
	if !c.sackOK || c.nSacked == 0 {
		if x != c.sndUna || c.sndUna == c.sndNxt {
			return 0, 0
		}
		return x, min(c.dataMSS(), int(c.sndNxt-x), int(dataEnd-x))
	}
	for i := 0; i < c.nSacked; i++ {
		r := c.sb.sacked[i]
		if seqLT(x, r.start) {
			return x, min(c.dataMSS(), int(r.start-x), int(dataEnd-x))
		}
		if seqLT(x, r.end) {
			x = r.end
		}
	}
	return 0, 0
}

// retransmitHole sends the next hole; force ignores the congestion window
// (the fast retransmit itself). It reports whether it sent.
func (c *TCPConn) retransmitHole(force bool) bool {
	seq, n := c.nextHole()
	if n <= 0 {
		return false
	}
	if !force && c.cwndRoom() < n {
		return false
	}
	sent, _, ok := c.sendData(seq, n, false, false)
	if !ok || sent == 0 {
		return false
	}
	c.prrRexmit += sent
	c.prrRoom = max(c.prrRoom-sent, 0)
	if seq == c.sndUna {
		c.holeRexmitAt = c.t.s.now
	}
	c.rexmitNxt = seq + uint32(sent)
	c.t.stats.Retransmits++
	return true
}
