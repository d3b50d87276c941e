package stack

import (
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
	"github.com/mkstack/mkstack/stack/timer"
)

type timerT = timer.Timer

// tcpSegment is an arriving segment's fields, read once from the header.
type tcpSegment struct {
	seq, ack uint32
	flags    header.TCPFlags
	wnd      uint16
	options  []byte
	payload  []byte
}

func (g *tcpSegment) has(f header.TCPFlags) bool { return g.flags&f != 0 }

// seqLen is SEG.LEN: the payload plus one for each of SYN and FIN.
func (g *tcpSegment) seqLen() uint32 {
	n := uint32(len(g.payload))
	if g.has(header.TCPFlagSYN) {
		n++
	}
	if g.has(header.TCPFlagFIN) {
		n++
	}
	return n
}

// tcpInput handles a TCP segment addressed to us; b starts at the IPv4
// header ip (deliverIPv4 calls it).
func (s *Stack) tcpInput(b *nicq.Buf, ip header.IPv4) {
	t := tcpOf(s)
	raw, r := header.ParseTCP(ip.Payload())
	if r != header.DropNone {
		t.stats.BadSegments++
		s.drop(b, DropReason(r))
		return
	}
	if ip.Destination() != s.addr {
		s.drop(b, DropNotForUs) // TCP is unicast only
		return
	}
	if !raw.IsChecksumValid(checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), header.ProtocolTCP, uint16(len(raw)))) {
		t.stats.BadSegments++
		s.drop(b, DropReason(header.DropBadChecksum))
		return
	}
	t.stats.SegmentsIn++
	seg := tcpSegment{
		seq:     raw.SequenceNumber(),
		ack:     raw.AckNumber(),
		flags:   raw.Flags(),
		wnd:     raw.Window(),
		options: raw.Options(),
		payload: raw.Payload(),
	}
	id := tcpTuple{localAddr: s.addr, remoteAddr: ip.Source(), localPort: raw.DestinationPort(), remotePort: raw.SourcePort()}
	if c := t.conns[id]; c != nil {
		c.input(&seg)
		bufFree(b)
		return
	}
	if l := t.listeners[id.localPort]; l != nil {
		l.input(id, &seg)
		bufFree(b)
		return
	}
	t.sendReset(id, &seg)
	s.drop(b, DropNoSocket)
}

// input is the LISTEN state (RFC 9293 3.10.7.2).
func (l *TCPListener) input(id tcpTuple, seg *tcpSegment) {
	t := l.t
	switch {
	case seg.has(header.TCPFlagRST):
		return
	case seg.has(header.TCPFlagACK):
		t.sendReset(id, seg)
		return
	case !seg.has(header.TCPFlagSYN):
		return
	}
	if l.synCount >= l.opts.SYNQueue || len(t.conns) >= t.cfg.MaxConns {
		// TODO: SYN cookies (RFC 4987) instead of a drop.
		t.stats.SYNQueueDrops++
		return
	}
	c := t.newConn(id, l.opts.OnEvent)
	c.listener = l
	l.synCount++
	t.stats.PassiveOpens++
	c.state = tcpSynReceived
	c.takeSYN(seg)
	c.sendSYN()
}

// takeSYN records the peer's SYN: IRS and the options it carried.
func (c *TCPConn) takeSYN(seg *tcpSegment) {
	c.irs = seg.seq
	c.rcvNxt = seg.seq + 1
	var o header.TCPOptions
	header.ParseTCPOptions(seg.options, &o) // a bad option leaves the defaults
	// RFC 9293 3.7.1: 536 when the peer announces no MSS.
	mss := 536
	if o.HasMSS && o.MSS > 0 {
		mss = int(o.MSS)
	}
	c.sndMSS = min(c.sndMSS, mss)
	if o.HasWindowScale {
		c.wsOK = true
		c.sndShift = o.WindowScale
	} else {
		c.wsOK, c.sndShift = false, 0
	}
	if !c.wsOK {
		c.rcvShift = 0
	}
	// The window of a SYN is never scaled (RFC 7323 2.2).
	c.sndWnd = uint32(seg.wnd)
	c.sndWl1 = seg.seq
}

// input processes a segment for a connection, following the order of RFC
// 9293 3.10.7.4: sequence check, RST, SYN, ACK, data, FIN.
func (c *TCPConn) input(seg *tcpSegment) {
	if c.state == tcpSynSent {
		c.inputSynSent(seg)
		return
	}
	// First: is the segment acceptable (it overlaps the window)?
	if !c.acceptable(seg) {
		if !seg.has(header.TCPFlagRST) {
			c.sendACK()
		}
		return
	}
	// Trim what we already have from the front, what lies past the window
	// from the back (a FIN beyond the window is not yet seen).
	if d := c.rcvNxt - seg.seq; seqLT(seg.seq, c.rcvNxt) {
		if seg.has(header.TCPFlagSYN) {
			seg.flags &^= header.TCPFlagSYN
			seg.seq++
			d--
		}
		d = min(d, uint32(len(seg.payload)))
		seg.payload = seg.payload[d:]
		seg.seq += d
	}
	if wnd := c.rcvBuf.free(); len(seg.payload) > wnd {
		seg.payload = seg.payload[:wnd]
		seg.flags &^= header.TCPFlagFIN
	}

	// Second: RST (RFC 5961 3.2): only the exact next sequence number
	// resets; anything else in the window earns a challenge ACK.
	if seg.has(header.TCPFlagRST) {
		if seg.seq != c.rcvNxt {
			c.t.stats.ChallengeACKs++
			c.sendACK()
			return
		}
		switch c.state {
		case tcpSynReceived:
			c.free(ErrConnectionRefused)
		case tcpClosing, tcpLastAck, tcpTimeWait:
			c.free(nil)
		default:
			c.free(ErrConnectionReset)
		}
		return
	}
	// Fourth: a SYN in a synchronized state (RFC 5961 4.2) gets a
	// challenge ACK; so does a retransmitted SYN in SYN-RECEIVED.
	if seg.has(header.TCPFlagSYN) {
		c.t.stats.ChallengeACKs++
		c.sendACK()
		return
	}
	// Fifth: ACK.
	if !seg.has(header.TCPFlagACK) {
		return
	}
	if c.state == tcpSynReceived {
		if !(seqLT(c.sndUna, seg.ack) && seqLEQ(seg.ack, c.sndNxt)) {
			c.t.sendReset(c.id, seg)
			return
		}
		c.established()
		if c.state == tcpClosed {
			return
		}
	}
	switch {
	case seqGT(seg.ack, c.sndNxt):
		// It acknowledges something not yet sent: ACK and drop.
		c.sendACK()
		return
	case seqLT(c.sndUna, seg.ack):
		c.acked(seg.ack)
	}
	// Window update, only from a newer segment (SND.WL1, SND.WL2).
	if seqLT(c.sndWl1, seg.seq) || (c.sndWl1 == seg.seq && seqLEQ(c.sndWl2, seg.ack)) {
		c.sndWnd = uint32(seg.wnd) << c.sndShift
		c.sndWl1, c.sndWl2 = seg.seq, seg.ack
	}
	finAcked := c.finSent && seqGT(c.sndUna, c.finSeq)
	switch c.state {
	case tcpFinWait1:
		if finAcked {
			c.state = tcpFinWait2
		}
	case tcpClosing:
		if finAcked {
			c.enterTimeWait()
		}
	case tcpLastAck:
		if finAcked {
			c.free(nil)
			return
		}
	case tcpTimeWait:
		// Only a retransmitted FIN arrives here: acknowledge it and
		// restart the 2*MSL wait.
		if seg.has(header.TCPFlagFIN) {
			c.sendACK()
			c.enterTimeWait()
		}
		return
	}

	// Seventh: data, in order only. An out-of-order segment is dropped
	// and answered at once with a duplicate ACK (the bounded out-of-order
	// queue and SACK come later).
	needACK := false
	if len(seg.payload) > 0 {
		switch c.state {
		case tcpEstablished, tcpFinWait1, tcpFinWait2:
			needACK = true
			if seg.seq == c.rcvNxt {
				c.rcvNxt += uint32(c.rcvBuf.write(seg.payload))
				c.notify(TCPEventReadable)
				if c.state == tcpClosed {
					return
				}
			} else {
				seg.flags &^= header.TCPFlagFIN
			}
		}
	}
	// Eighth: FIN, once every byte before it has arrived.
	if seg.has(header.TCPFlagFIN) && seg.seq+uint32(len(seg.payload)) == c.rcvNxt && !c.peerFIN {
		c.rcvNxt++
		c.peerFIN = true
		needACK = true
		switch c.state {
		case tcpSynReceived, tcpEstablished:
			c.state = tcpCloseWait
		case tcpFinWait1:
			// Our FIN is not yet acknowledged: simultaneous close.
			c.state = tcpClosing
		case tcpFinWait2:
			c.sendACK()
			needACK = false
			c.enterTimeWait()
		}
		c.notify(TCPEventPeerClosed)
		if c.state == tcpClosed {
			return
		}
	}
	if needACK {
		// TODO: delayed ACK; today every data segment is acknowledged.
		c.sendACK()
	}
	c.output()
}

// acceptable is the test of RFC 9293 3.10.7.4 table 6.
func (c *TCPConn) acceptable(seg *tcpSegment) bool {
	wnd := uint32(c.rcvBuf.free())
	n := seg.seqLen()
	if c.state == tcpTimeWait {
		wnd = max(wnd, 1) // the ring may be full; still see the FIN again
	}
	inWindow := func(x uint32) bool { return seqLEQ(c.rcvNxt, x) && seqLT(x, c.rcvNxt+wnd) }
	switch {
	case n == 0 && wnd == 0:
		return seg.seq == c.rcvNxt
	case n == 0:
		return inWindow(seg.seq)
	case wnd == 0:
		return false
	default:
		return inWindow(seg.seq) || inWindow(seg.seq+n-1)
	}
}

// inputSynSent is the SYN-SENT state (RFC 9293 3.10.7.3).
func (c *TCPConn) inputSynSent(seg *tcpSegment) {
	ackOK := false
	if seg.has(header.TCPFlagACK) {
		if seqLEQ(seg.ack, c.iss) || seqGT(seg.ack, c.sndNxt) {
			c.t.sendReset(c.id, seg)
			return
		}
		ackOK = true
	}
	if seg.has(header.TCPFlagRST) {
		if ackOK {
			c.free(ErrConnectionRefused)
		}
		return
	}
	if !seg.has(header.TCPFlagSYN) {
		return
	}
	c.takeSYN(seg)
	if ackOK {
		c.sndUna = seg.ack
		c.sndWl2 = seg.ack
		c.retries = 0
		c.t.s.wheel.Cancel(&c.rtoTimer)
		c.state = tcpEstablished
		c.sendACK()
		c.notify(TCPEventEstablished)
		c.output()
		return
	}
	// Simultaneous open: both SYNs crossed. Answer with SYN-ACK on our
	// ISS; the peer's SYN-ACK or ACK completes the handshake.
	c.state = tcpSynReceived
	c.sendSYN()
}

// established completes a handshake in SYN-RECEIVED.
func (c *TCPConn) established() {
	c.state = tcpEstablished
	c.retries = 0
	c.t.s.wheel.Cancel(&c.rtoTimer)
	if l := c.listener; l != nil {
		l.synCount--
		if l.opts.OnEvent == nil {
			if l.closed || !l.pushAccept(c) {
				c.t.stats.AcceptQueueDrops++
				c.listener = nil
				c.sendFlags(c.sndNxt, 0, tcpFlagsRST)
				c.free(ErrConnectionReset)
				return
			}
		} else {
			c.listener = nil
		}
	}
	c.notify(TCPEventEstablished)
}

// acked takes an ACK that moves sndUna forward to ack.
func (c *TCPConn) acked(ack uint32) {
	n := ack - c.sndUna
	if c.sndUna == c.iss {
		n-- // our SYN
	}
	if c.finSent && seqGT(ack, c.finSeq) {
		n-- // our FIN
	}
	c.sndBuf.discard(int(n))
	c.sndUna = ack
	if seqLT(c.sndNxt, c.sndUna) {
		c.sndNxt = c.sndUna // after a go-back-N rewind
	}
	if c.rttTiming && seqGEQ(ack, c.rttSeq) {
		c.rttTiming = false
		c.updateRTT(c.t.s.now - c.rttStart)
	}
	c.retries = 0
	if c.sndUna == c.sndNxt {
		c.t.s.wheel.Cancel(&c.rtoTimer)
	} else {
		c.armRTO() // RFC 6298 5.3
	}
	if n > 0 {
		c.notify(TCPEventWritable)
	}
}

func (c *TCPConn) enterTimeWait() {
	c.state = tcpTimeWait
	c.t.s.wheel.Cancel(&c.rtoTimer)
	c.t.s.wheel.Schedule(&c.waitTimer, c.t.s.now+2*int64(c.t.cfg.MSL))
}
