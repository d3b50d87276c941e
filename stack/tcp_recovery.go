package stack

import "github.com/mkstack/mkstack/stack/header"

// Out-of-order data (receive side) and the SACK scoreboard with loss
// recovery (send side).
//
// Receive: data beyond a hole is written into the receive ring at its
// place past the in-order bytes, so it costs no memory beyond the window
// we advertised; c.ooo remembers which ranges are there (bounded by
// TCPConfig.MaxOutOfOrder). When the hole fills, the ranges it reaches
// join the in-order bytes without a copy.
//
// Send: SACK blocks (RFC 2018) build c.sacked, the ranges above sndUna the
// peer holds. Loss is declared after three duplicate ACKs or when more
// than two segments' worth of data is SACKed above sndUna (RFC 6675's
// IsLost for the first hole). Recovery (RFC 6675 with SACK, RFC 6582
// NewReno without) then sends while pipe < cwnd: first the holes below
// the highest SACKed byte, in order, once each, then new data. pipe is
// the bytes still in the network: those sent above the highest SACKed
// byte plus the holes retransmitted in this recovery (the holes not yet
// retransmitted are taken as lost, the SACKed ranges as delivered).

// oooBytes is the span from rcvNxt to the end of the last out-of-order
// range: ring space already promised to data held beyond a hole.
func (c *TCPConn) oooBytes() int {
	if c.nOOO == 0 {
		return 0
	}
	return int(c.ooo[c.nOOO-1].end - c.rcvNxt)
}

// storeOutOfOrder keeps a segment that arrived beyond a hole; it reports
// false when that would need more ranges than allowed.
func (c *TCPConn) storeOutOfOrder(seg *tcpSegment) bool {
	r := seqRange{seg.seq, seg.seq + uint32(len(seg.payload))}
	// Find the insertion point and merge with neighbours.
	i := 0
	for i < c.nOOO && seqLT(c.ooo[i].end, r.start) {
		i++
	}
	j := i
	for j < c.nOOO && seqLEQ(c.ooo[j].start, r.end) {
		if seqLT(c.ooo[j].start, r.start) {
			r.start = c.ooo[j].start
		}
		if seqGT(c.ooo[j].end, r.end) {
			r.end = c.ooo[j].end
		}
		j++
	}
	merged := j - i
	if merged == 0 && c.nOOO == c.t.cfg.MaxOutOfOrder {
		return false
	}
	c.rcvBuf.writeAt(int(seg.seq-c.rcvNxt), seg.payload)
	// Replace ooo[i:j] by r.
	switch {
	case merged == 0:
		copy(c.ooo[i+1:c.nOOO+1], c.ooo[i:c.nOOO])
		c.nOOO++
	case merged > 1:
		copy(c.ooo[i+1:], c.ooo[j:c.nOOO])
		c.nOOO -= merged - 1
	}
	c.ooo[i] = r
	c.oooLatest = r.start
	return true
}

// joinOutOfOrder moves the ranges that now touch rcvNxt into the in-order
// bytes.
func (c *TCPConn) joinOutOfOrder() {
	k := 0
	for k < c.nOOO && seqLEQ(c.ooo[k].start, c.rcvNxt) {
		if seqGT(c.ooo[k].end, c.rcvNxt) {
			n := c.ooo[k].end - c.rcvNxt
			c.rcvBuf.commit(int(n))
			c.rcvNxt += n
		}
		k++
	}
	if k > 0 {
		copy(c.ooo[:], c.ooo[k:c.nOOO])
		c.nOOO -= k
	}
}

// sackBlocks puts up to limit SACK blocks in o: the range holding the
// latest segment first, then the others in order (RFC 2018 4).
func (c *TCPConn) sackBlocks(o *header.TCPOptions, limit int) {
	n := 0
	for i := 0; i < c.nOOO && n < limit; i++ {
		if c.ooo[i].start == c.oooLatest {
			o.SACKBlocks[n] = header.SACKBlock{Left: c.ooo[i].start, Right: c.ooo[i].end}
			n++
		}
	}
	for i := 0; i < c.nOOO && n < limit; i++ {
		if c.ooo[i].start != c.oooLatest {
			o.SACKBlocks[n] = header.SACKBlock{Left: c.ooo[i].start, Right: c.ooo[i].end}
			n++
		}
	}
	o.NumSACKBlocks = n
}

// takeSACK merges the segment's SACK blocks into the scoreboard, ignoring
// blocks outside (sndUna, sndMax] (D-SACK and bogus ones).
func (c *TCPConn) takeSACK(seg *tcpSegment) {
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
}

func (c *TCPConn) addSACKed(r seqRange) {
	i := 0
	for i < c.nSacked && seqLT(c.sacked[i].end, r.start) {
		i++
	}
	j := i
	for j < c.nSacked && seqLEQ(c.sacked[j].start, r.end) {
		if seqLT(c.sacked[j].start, r.start) {
			r.start = c.sacked[j].start
		}
		if seqGT(c.sacked[j].end, r.end) {
			r.end = c.sacked[j].end
		}
		j++
	}
	merged := j - i
	switch {
	case merged == 0 && c.nSacked == len(c.sacked):
		// Full: forget the highest range (the least useful for repair).
		if i == c.nSacked {
			return
		}
		copy(c.sacked[i+1:], c.sacked[i:c.nSacked-1])
	case merged == 0:
		copy(c.sacked[i+1:c.nSacked+1], c.sacked[i:c.nSacked])
		c.nSacked++
	case merged > 1:
		copy(c.sacked[i+1:], c.sacked[j:c.nSacked])
		c.nSacked -= merged - 1
	}
	c.sacked[i] = r
}

// dropSACKedBelow forgets scoreboard ranges the cumulative ACK passed.
func (c *TCPConn) dropSACKedBelow(ack uint32) {
	k := 0
	for k < c.nSacked && seqLEQ(c.sacked[k].end, ack) {
		k++
	}
	if k > 0 {
		copy(c.sacked[:], c.sacked[k:c.nSacked])
		c.nSacked -= k
	}
	if c.nSacked > 0 && seqLT(c.sacked[0].start, ack) {
		c.sacked[0].start = ack
	}
}

func (c *TCPConn) sackedBytes() int {
	n := 0
	for i := range c.nSacked {
		n += int(c.sacked[i].end - c.sacked[i].start)
	}
	return n
}

// highSACKed is the end of the highest SACKed range (sndUna if none).
func (c *TCPConn) highSACKed() uint32 {
	if c.nSacked == 0 {
		return c.sndUna
	}
	return c.sacked[c.nSacked-1].end
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

// enterRecovery starts fast retransmit and recovery.
func (c *TCPConn) enterRecovery() {
	t := c.t
	c.inRecovery = true
	c.recoverSeq, c.recoveryGuard = c.sndMax, true
	c.cc.OnCongestion(int(c.sndMax - c.sndUna))
	c.rexmitNxt = c.sndUna
	c.rttTiming = false // Karn: the sample would be ambiguous
	t.stats.FastRetransmits++
	if c.nSacked > 0 {
		t.stats.SACKRecoveries++
	}
	// The first hole goes at once, whatever the window (RFC 5681 3.2).
	// A tail loss probe still pending becomes the retransmission timer,
	// restarted by the retransmission as Linux does: no probe is sent in
	// recovery (RFC 8985 7.2).
	c.retransmitHole(true)
	c.armRTO()
	c.schedule()
}

// pipe estimates the bytes in the network (RFC 6675 SetPipe, simplified as
// the comment at the top of this file says).
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
			s := c.sacked[i].start
			if seqGT(s, end) {
				s = end
			}
			if seqLT(x, s) {
				p += int(s - x)
			}
			x = c.sacked[i].end
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
		r := c.sacked[i]
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
	if !force && c.cc.Cwnd()-c.pipe() < n {
		return false
	}
	sent, _, ok := c.sendData(seq, n, false, false)
	if !ok || sent == 0 {
		return false
	}
	if seq == c.sndUna {
		c.holeRexmitAt = c.t.s.now
	}
	c.rexmitNxt = seq + uint32(sent)
	c.t.stats.Retransmits++
	return true
}
