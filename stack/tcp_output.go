package stack

import (
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

// segment builds a TCP segment of id with n bytes of payload room and
// returns the buffer and the payload to fill; send finishes it. The
// options, if any, are encoded into the header.
func (t *tcpTable) segment(id tcpTuple, seq, ack uint32, flags header.TCPFlags, wnd uint16, opts *header.TCPOptions, n int) (*nicq.Buf, []byte) {
	b := t.s.getBuf()
	if b == nil {
		return nil, nil
	}
	hl := header.TCPMinimumSize
	if opts != nil {
		hl += opts.EncodedLength()
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

// send checksums the segment in b and hands it to IPv4.
func (t *tcpTable) send(id tcpTuple, b *nicq.Buf) {
	seg := header.TCP(bufData(b))
	seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(id.localAddr, id.remoteAddr, header.ProtocolTCP, uint16(len(seg)))))
	t.stats.SegmentsOut++
	t.s.sendIPv4(b, header.ProtocolTCP, id.remoteAddr)
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
		b, _ = t.segment(id, in.ack, 0, tcpFlagsRST, 0, nil, 0)
	} else {
		b, _ = t.segment(id, 0, in.seq+in.seqLen(), tcpFlagsRSTACK, 0, nil, 0)
	}
	if b == nil {
		return
	}
	t.stats.ResetsSent++
	t.send(id, b)
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

// sendFlags sends a segment without data.
func (c *TCPConn) sendFlags(seq, ack uint32, flags header.TCPFlags) {
	b, _ := c.t.segment(c.id, seq, ack, flags, c.rcvWindow(), nil, 0)
	if b == nil {
		return
	}
	if flags&tcpFlagsRST != 0 {
		c.t.stats.ResetsSent++
	}
	c.t.send(c.id, b)
}

// sendACK acknowledges everything received so far.
func (c *TCPConn) sendACK() { c.sendFlags(c.sndNxt, c.rcvNxt, tcpFlagsACK) }

// sendSYN sends (or resends) our SYN, or SYN-ACK in SYN-RECEIVED, with the
// MSS and Window Scale options (RFC 9293 3.7.1, RFC 7323 2.2).
func (c *TCPConn) sendSYN() {
	opts := header.TCPOptions{HasMSS: true, MSS: uint16(c.t.localMSS())}
	flags, ack := tcpFlagsSYN, uint32(0)
	if c.state == tcpSynReceived {
		flags |= tcpFlagsACK
		ack = c.rcvNxt
		// RFC 7323: a SYN-ACK carries Window Scale only if the SYN did.
		opts.HasWindowScale, opts.WindowScale = c.wsOK, c.rcvShift
	} else {
		opts.HasWindowScale, opts.WindowScale = true, c.rcvShift
	}
	b, _ := c.t.segment(c.id, c.iss, ack, flags, c.rcvWindow(), &opts, 0)
	if b == nil {
		return
	}
	c.sndNxt = c.iss + 1
	c.t.send(c.id, b)
	c.armRTO()
}

// output sends what the peer's window allows from the send ring, then the
// FIN if the application closed and every byte has gone.
func (c *TCPConn) output() {
	switch c.state {
	case tcpEstablished, tcpCloseWait, tcpFinWait1, tcpLastAck, tcpClosing:
	default:
		return
	}
	for {
		if c.finSent && seqGT(c.sndNxt, c.finSeq) {
			return // everything, FIN included, is in flight
		}
		off := int(c.sndNxt - c.sndUna)
		avail := c.sndBuf.len() - off
		usable := int(int32(c.sndUna + c.sndWnd - c.sndNxt))
		n := max(0, min(avail, usable, c.sndMSS))
		fin := c.finQueued && n == avail
		if n == 0 && !fin {
			if avail > 0 && c.sndUna == c.sndNxt {
				// Zero window with data waiting: the RTO timer stands in
				// for the persist timer and probes by retransmission.
				c.armRTO()
			}
			return
		}
		flags := tcpFlagsACK
		if n > 0 && n == avail {
			flags |= tcpFlagsPSH
		}
		if fin {
			flags |= tcpFlagsFIN
		}
		b, p := c.t.segment(c.id, c.sndNxt, c.rcvNxt, flags, c.rcvWindow(), nil, n)
		if b == nil {
			c.armRTO() // try again when the pool has refilled
			return
		}
		c.sndBuf.peek(off, p)
		if !c.rttTiming && n > 0 && c.retries == 0 {
			c.rttTiming, c.rttSeq, c.rttStart = true, c.sndNxt+uint32(n), c.t.s.now
		}
		c.sndNxt += uint32(n)
		if fin {
			c.finSent, c.finSeq = true, c.sndNxt
			c.sndNxt++
		}
		c.t.send(c.id, b)
		if !c.rtoTimer.Pending() {
			c.armRTO()
		}
	}
}

func (c *TCPConn) armRTO() {
	c.t.s.wheel.Schedule(&c.rtoTimer, c.t.s.now+c.rto)
}

// onRTO retransmits from sndUna (RFC 6298 5.4-5.6): back off the timer,
// forget the running RTT measurement (Karn), and go back to sndUna.
func (c *TCPConn) onRTO(*timerT) {
	t := c.t
	t.s.now = t.s.wheel.Now()
	c.retries++
	if c.retries > t.cfg.MaxRetries {
		c.free(ErrConnectionTimeout)
		return
	}
	c.rto = min(c.rto*2, int64(t.cfg.MaxRTO))
	c.rttTiming = false
	t.stats.Retransmits++
	switch c.state {
	case tcpSynSent, tcpSynReceived:
		c.sendSYN()
		return
	}
	c.sndNxt = c.sndUna
	if c.sndWnd == 0 {
		// A zero-window probe: one byte past the window.
		c.probe()
		return
	}
	c.output()
	c.armRTO()
}

// probe sends one byte beyond a zero window, so the peer's ACK tells us
// when the window opens (RFC 9293 3.8.6.1).
func (c *TCPConn) probe() {
	if c.sndBuf.len() == 0 {
		c.output() // only a FIN waits
		return
	}
	b, p := c.t.segment(c.id, c.sndUna, c.rcvNxt, tcpFlagsACK, c.rcvWindow(), nil, 1)
	if b != nil {
		c.sndBuf.peek(0, p)
		c.sndNxt = c.sndUna + 1
		c.t.send(c.id, b)
	}
	c.armRTO()
}

// onTimeWait ends TIME-WAIT after 2*MSL.
func (c *TCPConn) onTimeWait(*timerT) { c.free(nil) }

// updateRTT takes one RTT sample r (RFC 6298 2.2-2.4, G = the wheel tick).
func (c *TCPConn) updateRTT(r int64) {
	if c.srtt == 0 {
		c.srtt, c.rttvar = r, r/2
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
