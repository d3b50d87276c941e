package stack

import "github.com/mkstack/mkstack/stack/header"

// D-SACK (RFC 2883) and the undo of spurious congestion reductions.
//
// Receive: a segment that is wholly or partly a duplicate (below RCV.NXT,
// or over out-of-order data already held) is reported by the next segment
// we send, whose first SACK block is the duplicate range (dsack), ahead of
// the usual blocks. Linux peers use it to undo their own reductions.
//
// Send: a reduction (fast recovery's, or the timeout's) opens an undo
// episode (startUndo). Three detectors may find it was spurious, and then
// the controller's OnSpuriousCongestion restores the window from before it
// and the connection leaves its recovery (undo), as Linux's
// tcp_undo_cwnd_reduction does:
//
//   - D-SACK (RFC 3708, Linux's undo_retrans): every byte retransmitted
//     in the episode is reported back by a D-SACK, so the peer had every
//     segment already.
//   - Eifel (RFC 3522, Linux's tcp_packet_delayed): with timestamps, the
//     first ACK that acknowledges new data after the first retransmission
//     echoes a TSval older than that retransmission's, so it answers the
//     original transmission.
//   - F-RTO (RFC 5682 2.1, the basic algorithm), after a timeout: if the
//     first ACK after the retransmission acknowledges it and not all that
//     was outstanding, two new segments go instead of the next
//     retransmissions; if the next ACK acknowledges more, data never
//     retransmitted arrived, and the timeout was spurious. A duplicate
//     ACK instead returns to the timer's go-back-N. With timestamps,
//     Eifel judges the first ACK: if it finds the retransmission was
//     needed, F-RTO stops there (it could not tell that ACK's cause).

// noteDuplicate records [start, end) as received twice, for the D-SACK
// block of the next segment we send. A later duplicate replaces an earlier
// one not yet reported, as Linux's tcp_dsack_set.
func (c *TCPConn) noteDuplicate(start, end uint32) {
	if !c.sackOK || !seqLT(start, end) {
		return
	}
	c.dsack, c.dsackOn = seqRange{start, end}, true
}

// noteOldDuplicate takes a segment that failed the sequence test (or PAWS)
// and lies, at least in part, below RCV.NXT: its sequence space up to
// RCV.NXT, FIN included, is a duplicate (Linux's tcp_send_dupack). In
// TIME-WAIT no D-SACK is sent, as in Linux, whose TIME-WAIT socket
// answers a retransmitted FIN with a plain ACK.
func (c *TCPConn) noteOldDuplicate(seg *tcpSegment) {
	if !c.sackOK || c.state == tcpTimeWait || seg.has(header.TCPFlagSYN) {
		return
	}
	n := seg.seqLen()
	if n == 0 || !seqLT(seg.seq, c.rcvNxt) {
		return
	}
	end := seg.seq + n
	if seqGT(end, c.rcvNxt) {
		end = c.rcvNxt
	}
	c.noteDuplicate(seg.seq, end)
}

// noteHeldDuplicate records the part of [start, end) that overlaps the
// first out-of-order range holding any of it.
func (c *TCPConn) noteHeldDuplicate(start, end uint32) {
	if !c.sackOK {
		return
	}
	for i := 0; i < c.nOOO; i++ {
		r := c.sb.ooo[i]
		if seqLT(r.start, end) && seqGT(r.end, start) {
			if seqGT(r.start, start) {
				start = r.start
			}
			if seqLT(r.end, end) {
				end = r.end
			}
			c.noteDuplicate(start, end)
			return
		}
	}
}

// maxUndoRanges bounds the retransmitted ranges an episode remembers for
// D-SACK; an episode with more (retransmissions to many holes not
// contiguous) is left to Eifel.
const maxUndoRanges = 8

// startUndo opens the undo episode of a reduction just made (rto: by the
// retransmission timer), as Linux's tcp_init_undo: the retransmissions
// that follow are counted from here.
func (c *TCPConn) startUndo(rto bool) {
	c.undoOn, c.undoRTO, c.undoAny, c.undoNoDSACK, c.eifelArmed = true, rto, false, false, false
	c.nUndo, c.eifelTS = 0, 0
}

// noteRetransmit records n bytes sent again at seq (sendData) in the
// episode. The first retransmission's TSval is what Eifel compares with
// (RFC 3522 step 1, RetransmitTS). Each range is remembered for D-SACK,
// in order, adjacent ones merged; one sent twice (the peer then sends a
// D-SACK for each copy, and which copies arrived cannot be told) or
// more than maxUndoRanges leave the episode to Eifel.
func (c *TCPConn) noteRetransmit(seq uint32, n int) {
	if !c.undoOn || n <= 0 {
		return
	}
	if !c.undoAny {
		c.undoAny = true
		if c.tsOK {
			c.eifelArmed, c.eifelTS = true, c.tsNow()
		}
	}
	if c.undoNoDSACK {
		return
	}
	r := seqRange{seq, seq + uint32(n)}
	c.scoreboard()
	i := 0
	for i < c.nUndo && seqLEQ(c.sb.undo[i].end, r.start) {
		i++
	}
	switch {
	case i < c.nUndo && seqLT(c.sb.undo[i].start, r.end):
		c.undoNoDSACK = true // sent twice
	case i > 0 && c.sb.undo[i-1].end == r.start:
		c.sb.undo[i-1].end = r.end
		if i < c.nUndo && c.sb.undo[i].start == r.end {
			c.sb.undo[i-1].end = c.sb.undo[i].end
			copy(c.sb.undo[i:], c.sb.undo[i+1:c.nUndo])
			c.nUndo--
		}
	case i < c.nUndo && c.sb.undo[i].start == r.end:
		c.sb.undo[i].start = r.start
	case c.nUndo == maxUndoRanges:
		c.undoNoDSACK = true
	default:
		copy(c.sb.undo[i+1:c.nUndo+1], c.sb.undo[i:c.nUndo])
		c.sb.undo[i] = r
		c.nUndo++
	}
}

// isDSACK reports whether the first SACK block of seg is a D-SACK (RFC
// 2883 4): below the cumulative ACK, or within the second block.
func isDSACK(seg *tcpSegment) bool {
	o := &seg.opts
	if o.NumSACKBlocks == 0 {
		return false
	}
	b := o.SACKBlocks[0]
	if !seqLT(b.Left, b.Right) {
		return false
	}
	if seqLEQ(b.Right, seg.ack) {
		return true
	}
	if o.NumSACKBlocks > 1 {
		b2 := o.SACKBlocks[1]
		return seqLT(b2.Left, b2.Right) && seqGEQ(b.Left, b2.Left) && seqLEQ(b.Right, b2.Right)
	}
	return false
}

// takeDSACK takes the D-SACK block of seg: what it covers of the
// episode's retransmitted ranges was not needed by the peer (RFC 3708;
// Linux's undo_retrans, which counts segments marked retransmitted).
// Once every retransmitted byte is so reported, the reduction was
// spurious. A D-SACK of data sent once (the network duplicated it)
// covers no retransmitted range and counts for nothing.
func (c *TCPConn) takeDSACK(seg *tcpSegment) {
	c.t.stats.DSACKsReceived++
	if !c.undoOn || !c.undoAny || c.undoNoDSACK || c.nUndo == 0 {
		return
	}
	b := seg.opts.SACKBlocks[0]
	d := seqRange{b.Left, b.Right}
	hit := false
	for i := 0; i < c.nUndo; {
		r := c.sb.undo[i]
		if !seqLT(r.start, d.end) || !seqLT(d.start, r.end) {
			i++
			continue
		}
		hit = true
		left := seqLT(r.start, d.start) // r keeps bytes below d
		right := seqLT(d.end, r.end)    // and above
		switch {
		case left && right:
			if c.nUndo == maxUndoRanges {
				c.undoNoDSACK = true
				return
			}
			copy(c.sb.undo[i+2:c.nUndo+1], c.sb.undo[i+1:c.nUndo])
			c.sb.undo[i] = seqRange{r.start, d.start}
			c.sb.undo[i+1] = seqRange{d.end, r.end}
			c.nUndo++
			i += 2
		case left:
			c.sb.undo[i].end = d.start
			i++
		case right:
			c.sb.undo[i].start = d.end
			i++
		default:
			copy(c.sb.undo[i:], c.sb.undo[i+1:c.nUndo])
			c.nUndo--
		}
	}
	if hit && c.nUndo == 0 {
		c.t.stats.DSACKUndos++
		c.undo()
	}
}

// checkEifel takes the first ACK of new data after the episode's first
// retransmission (RFC 3522 steps 2-3): if it echoes a timestamp older
// than that retransmission's, it answers the original transmission and
// the reduction was spurious. Either way Eifel is done for the episode.
func (c *TCPConn) checkEifel(seg *tcpSegment) {
	c.eifelArmed = false
	o := &seg.opts
	if !c.undoOn || !o.HasTimestamps || o.TSEcr == 0 || !seqLT(o.TSEcr, c.eifelTS) {
		return
	}
	c.t.stats.EifelUndos++
	c.undo()
}

// undo reverses the episode's reduction: the controller restores its
// window from before it (OnSpuriousCongestion, which also ends its own
// recovery), and the connection leaves fast recovery, PRR with it. After
// a timeout, what the timer's go-back-N had still to resend is not
// resent: the originals arrived (Linux's undo unmarks them lost).
func (c *TCPConn) undo() {
	c.undoOn, c.eifelArmed = false, false
	c.frto, c.frtoSend = 0, 0
	c.cc.OnSpuriousCongestion()
	if c.inRecovery {
		c.inRecovery = false
		c.dupAcks = 0
		c.holeRexmitAt = 0
	}
	if c.undoRTO && seqLT(c.sndNxt, c.sndMax) {
		c.sndNxt = c.sndMax
	}
}

// startFRTO starts F-RTO at a timeout (step 1; the retransmission follows
// in onRTO). Not after a fast recovery, whose retransmissions showed a
// real loss, unless the timer expires again (as Linux's tcp_enter_loss).
func (c *TCPConn) startFRTO() {
	c.frto, c.frtoSend = 0, 0
	if !c.inRecovery || c.retries > 1 {
		c.frto, c.frtoRecover = 1, c.sndMax
	}
}

// frtoACK takes an ACK that moved sndUna to ack during F-RTO; rexmitEnd is
// where sndNxt stood, the end of what went again since the timeout, and
// eifel says whether Eifel judged this ACK (and, since the undo did not
// happen, found the retransmission needed).
func (c *TCPConn) frtoACK(ack, rexmitEnd uint32, eifel bool) {
	switch {
	case c.frto == 2:
		// Step 3b: data not retransmitted is acknowledged.
		c.t.stats.FRTOUndos++
		c.undo()
	case eifel || !c.undoOn || seqLT(ack, rexmitEnd) || seqGEQ(ack, c.frtoRecover):
		// Step 2a: the retransmission is not all acknowledged, or all
		// that was outstanding is: the conventional recovery goes on.
		c.frto = 0
	default:
		// Step 2b: up to two new segments, if there is data and the
		// peer's window takes it; otherwise the conventional recovery.
		c.frto = 0
		avail := c.sndBuf.len() - int(c.sndMax-c.sndUna)
		if avail > 0 && seqLT(c.sndMax, c.sndUna+c.sndWnd) && !(c.finSent && seqGT(c.sndMax, c.finSeq)) {
			c.frto, c.frtoSend = 2, 2*c.dataMSS()
			c.sndNxt = c.sndMax
		}
	}
}

// frtoDupACK takes a duplicate ACK during F-RTO: after the new segments
// (step 3a) the timeout was real, and the unacknowledged data is resent
// from sndUna in slow start; before them (step 2a) the conventional
// recovery simply goes on.
func (c *TCPConn) frtoDupACK() {
	if c.frto == 2 {
		c.sndNxt = c.sndUna
		c.rexmitNxt = c.sndUna
	}
	c.frto, c.frtoSend = 0, 0
}
