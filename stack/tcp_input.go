package stack

import (
	"encoding/binary"
	"errors"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
	"github.com/mkstack/mkstack/stack/timer"
)

type timerT = timer.Timer

// tcpSegment is an arriving segment's fields, read once from the header,
// options parsed once.
type tcpSegment struct {
	seq, ack uint32
	flags    header.TCPFlags
	wnd      uint16
	opts     header.TCPOptions
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

// pawsIdle is how long TS.Recent stays valid without a segment (RFC 7323
// 5.5: 24 days).
const pawsIdle = 24 * 24 * 3600 * int64(1e9)

// tcpInput handles a TCP segment addressed to us; b starts at the IPv4
// header ip (deliverIPv4 calls it). Work a segment makes for its
// connection beyond its own state (the ACK to send, the Readable event) is
// deferred to the end of the receive burst: see flushPending.
func (s *Stack) tcpInput(b *nicq.Buf, ip header.IPv4) {
	t := &s.tcp
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
	if b.Flags&nicq.FlagL4ChecksumVerified == 0 && !s.l4ChecksumOK(b, raw, raw.Checksum(), checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), header.ProtocolTCP, uint16(len(raw)))) {
		t.stats.BadSegments++
		s.dropBadL4Checksum(b, ip, header.ProtocolTCP, raw.DestinationPort())
		return
	}
	b.Flags |= nicq.FlagL4ChecksumVerified // a core it is forwarded to need not check again
	id := tcpTuple{localAddr: mapped4(s.addr), remoteAddr: mapped4(ip.Source()), localPort: raw.DestinationPort(), remotePort: raw.SourcePort()}
	c := t.conns[id]
	if c == nil && s.forwardToOwner(b, ip, id.remotePort, id.localPort) {
		return
	}
	s.tcpSegmentIn(b, raw, id, c)
}

// tcpInput6 is tcpInput for IPv6: the segment is ip[off:], after any
// extension headers.
func (s *Stack) tcpInput6(b *nicq.Buf, ip header.IPv6, off int) {
	t := &s.tcp
	raw, r := header.ParseTCP(ip[off:])
	if r != header.DropNone {
		t.stats.BadSegments++
		s.drop(b, DropReason(r))
		return
	}
	src, dst, ok := s.flowAddrs6(b, ip)
	if !ok {
		return
	}
	if b.Flags&nicq.FlagL4ChecksumVerified == 0 && !s.l4ChecksumOK(b, raw, raw.Checksum(), checksum.PseudoHeaderIPv6(src, dst, header.ProtocolTCP, uint32(len(raw)))) {
		t.stats.BadSegments++
		s.dropBadL4Checksum6(b, src, header.ProtocolTCP, raw.DestinationPort(), raw.Checksum())
		return
	}
	b.Flags |= nicq.FlagL4ChecksumVerified
	id := tcpTuple{localAddr: dst, remoteAddr: src, localPort: raw.DestinationPort(), remotePort: raw.SourcePort()}
	c := t.conns[id]
	if c == nil && s.forwardToOwner6(b, header.ProtocolTCP, src, dst, id.remotePort, id.localPort) {
		return
	}
	s.tcpSegmentIn(b, raw, id, c)
}

// tcpSegmentIn takes a checked segment raw of connection id, whose table
// entry is c (nil for none), b holding it.
func (s *Stack) tcpSegmentIn(b *nicq.Buf, raw header.TCP, id tcpTuple, c *TCPConn) {
	t := &s.tcp
	var seg tcpSegment
	if r := header.ParseTCPOptions(raw.Options(), &seg.opts); r != header.DropNone {
		t.stats.BadSegments++
		s.drop(b, DropReason(r))
		return
	}
	t.stats.SegmentsIn++
	seg.seq, seg.ack, seg.flags, seg.wnd, seg.payload = raw.SequenceNumber(), raw.AckNumber(), raw.Flags(), raw.Window(), raw.Payload()
	reason := DropNone
	l := t.listeners[id.localPort]
	if l != nil && !l.takes(&id) {
		l = nil
	}
	if c != nil && c.state == tcpTimeWait && l != nil && c.reopens(&seg) {
		c.free(nil) // TIME-WAIT gives way to a new incarnation
		c = nil
	}
	switch {
	case c != nil:
		reason = c.input(&seg)
	case l != nil && !l.closed:
		reason = l.input(id, &seg)
	default:
		t.sendReset(id, &seg)
		reason = DropNoSocket
	}
	if reason != DropNone {
		s.drop(b, reason)
		return
	}
	bufFree(b)
}

// takes reports whether the listener accepts connections of id's family.
func (l *TCPListener) takes(id *tcpTuple) bool {
	switch l.opts.Family {
	case 4:
		return !id.v6()
	case 6:
		return id.v6()
	}
	return true
}

// DropNone is the zero DropReason: the packet was taken.
const DropNone = DropReason(header.DropNone)

// reopens reports whether a SYN may end this TIME-WAIT and start a new
// connection on the tuple: its sequence number is beyond the old
// connection's, or its timestamp is newer (RFC 6191). A timestamp equal to
// the last one (two incarnations in one clock tick) falls back on the
// sequence number; an older one never reopens.
func (c *TCPConn) reopens(seg *tcpSegment) bool {
	if !seg.has(header.TCPFlagSYN) || seg.has(header.TCPFlagACK|header.TCPFlagRST) {
		return false
	}
	if c.tsOK && seg.opts.HasTimestamps && seg.opts.TSVal != c.tsRecent {
		return seqGT(seg.opts.TSVal, c.tsRecent)
	}
	return seqGT(seg.seq, c.rcvNxt)
}

// input is the LISTEN state (RFC 9293 3.10.7.2), with SYN cookies (RFC
// 4987) when the SYN queue is full.
func (l *TCPListener) input(id tcpTuple, seg *tcpSegment) DropReason {
	t := l.t
	switch {
	case seg.has(header.TCPFlagRST):
		return DropTCPIgnored
	case seg.has(header.TCPFlagACK) && !seg.has(header.TCPFlagSYN):
		switch {
		case t.cfg.DisableSYNCookies:
		case !l.recentOverflow():
			// The SYN queue has not overflowed lately: no cookie can
			// be outstanding, and this is a stray ACK like any other.
			t.stats.CookieACKsNoOverflow++
		default:
			if c := l.cookieACK(id, seg); c != nil {
				return c.input(seg)
			}
			// A pure ACK with a bad cookie is answered with a reset.
			// A segment with data may be a later segment of a real
			// connection whose first segments were lost (its sequence
			// number no longer gives the ISN the cookie hashed): drop it,
			// and the sender's retransmission from its first unacknowledged
			// byte validates.
			if len(seg.payload) == 0 {
				t.sendReset(id, seg)
			}
			return DropTCPBadCookie
		}
		t.sendReset(id, seg)
		return DropNoSocket
	case seg.has(header.TCPFlagACK):
		t.sendReset(id, seg)
		return DropTCPIgnored
	case !seg.has(header.TCPFlagSYN):
		return DropTCPIgnored
	}
	if l.synCount >= l.opts.SYNQueue || !t.room() {
		if !t.cfg.DisableSYNCookies {
			l.overflow()
			if !t.cookieAllowed() {
				return DropTCPSYNCookieRate
			}
			l.sendCookie(id, seg)
			return DropNone
		}
		if len(t.conns) >= t.cfg.MaxConns {
			return DropTCPTooManyConns
		}
		t.stats.SYNQueueDrops++
		return DropTCPSYNQueueFull
	}
	c := t.newConn(id, l.opts.OnEvent, t.cc)
	c.listener = l
	c.noDelay, c.keepAlive, c.onSegment = l.opts.NoDelay, l.opts.KeepAlive, l.opts.OnSegment
	c.userTimeout = max(int64(l.opts.UserTimeout), 0)
	l.synCount++
	t.stats.PassiveOpens++
	c.setState(tcpSynReceived)
	c.takeSYN(seg)
	c.sendSYN()
	return DropNone
}

// takeSYN records the peer's SYN: IRS and the options it carried.
func (c *TCPConn) takeSYN(seg *tcpSegment) {
	c.irs = seg.seq
	c.rcvNxt = seg.seq + 1
	c.lastAckSent, c.rcvAdvEdge = c.rcvNxt, c.rcvNxt
	o := &seg.opts
	// RFC 9293 3.7.1: 536 when the peer announces no MSS (1220 over
	// IPv6).
	mss := c.id.defaultMSS()
	if o.HasMSS && o.MSS > 0 {
		mss = max(int(o.MSS), 64)
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
	cfg := &c.t.cfg
	c.sackOK = o.SACKPermitted && !cfg.DisableSACK
	c.tsOK = o.HasTimestamps && !cfg.DisableTimestamps
	if c.tsOK {
		c.tsRecent, c.tsRecentAt = o.TSVal, c.t.s.now
	}
	// The congestion window was set up for our own MSS; the initial
	// window counts segments of the size we will send (RFC 6928).
	c.cc.Init(c.dataMSS())
	// The window of a SYN is never scaled (RFC 7323 2.2).
	c.sndWnd = uint32(seg.wnd)
	c.maxSndWnd = c.sndWnd
	c.sndWl1 = seg.seq
}

// input processes a segment for a connection, following the order of RFC
// 9293 3.10.7.4: sequence check, RST, SYN, ACK, data, FIN; with PAWS (RFC
// 7323) first and RFC 5961's challenge ACKs for blind RST, SYN and ACK.
func (c *TCPConn) input(seg *tcpSegment) DropReason {
	if c.state == tcpSynSent {
		return c.inputSynSent(seg)
	}
	now := c.t.s.now
	// PAWS: an old timestamp marks an old duplicate.
	if c.tsOK && seg.opts.HasTimestamps && !seg.has(header.TCPFlagRST) &&
		seqLT(seg.opts.TSVal, c.tsRecent) && now-c.tsRecentAt < pawsIdle {
		c.dupACKInvalid(seg)
		return DropTCPPAWS
	}
	// A SYN in a synchronized state, in the window or not, gets a
	// challenge ACK (RFC 5961 4.2). A retransmitted SYN in SYN-RECEIVED
	// means our SYN-ACK was lost: send it again.
	if seg.has(header.TCPFlagSYN) && !seg.has(header.TCPFlagRST) {
		if c.state == tcpSynReceived && seg.seq == c.irs && !seg.has(header.TCPFlagACK) {
			c.sendSYN()
			return DropNone
		}
		c.challengeACK()
		return DropTCPChallenged
	}
	// Is the segment acceptable (does it overlap the window)?
	if !c.acceptable(seg) {
		if !seg.has(header.TCPFlagRST) {
			c.dupACKInvalid(seg)
			// A retransmitted FIN in TIME-WAIT (our ACK of it was lost)
			// lies below RCV.NXT: acknowledged above, it also restarts
			// the 2*MSL wait (RFC 9293 3.10.7.4, TIME-WAIT).
			if c.state == tcpTimeWait && seg.has(header.TCPFlagFIN) && seg.seq+uint32(len(seg.payload)) == c.rcvNxt-1 {
				c.enterTimeWait()
			}
		}
		return DropTCPOutOfWindow
	}
	// RST (RFC 5961 3.2): only the exact next sequence number resets;
	// anything else in the window earns a challenge ACK. In TIME-WAIT an
	// RST is ignored (RFC 1337).
	if seg.has(header.TCPFlagRST) {
		if seg.seq != c.rcvNxt {
			c.challengeACK()
			return DropTCPChallenged
		}
		switch c.state {
		case tcpTimeWait:
			return DropTCPIgnored
		case tcpSynReceived:
			c.free(ErrConnectionRefused)
		case tcpClosing, tcpLastAck:
			c.free(nil)
		default:
			c.free(ErrConnectionReset)
		}
		return DropNone
	}
	c.lastRecv = now
	// Trim what we already have from the front, what lies past the window
	// from the back (a FIN beyond the window is not yet seen).
	if seqLT(seg.seq, c.rcvNxt) {
		d := min(c.rcvNxt-seg.seq, uint32(len(seg.payload)))
		c.noteDuplicate(seg.seq, seg.seq+d) // D-SACK (RFC 2883)
		seg.payload = seg.payload[d:]
		seg.seq += d
		if seqLT(seg.seq, c.rcvNxt) {
			seg.flags &^= header.TCPFlagFIN // a FIN we already have
		}
	}
	if room := c.rcvBuf.free() - int(seg.seq-c.rcvNxt); len(seg.payload) > room {
		seg.payload = seg.payload[:max(room, 0)]
		seg.flags &^= header.TCPFlagFIN
	}
	if !seg.has(header.TCPFlagACK) {
		return DropTCPIgnored
	}
	if c.state == tcpSynReceived {
		if !(seqLT(c.sndUna, seg.ack) && seqLEQ(seg.ack, c.sndMax)) {
			c.t.sendReset(c.id, seg)
			return DropTCPBadACK
		}
		// Our SYN is acknowledged: sndUna passes it before the
		// Established event, so data the handler writes there is
		// counted from the first byte of the send ring.
		c.sndUna = c.iss + 1
		c.sndWl2 = seg.ack
		if c.rttTiming && seqGEQ(seg.ack, c.rttSeq) {
			c.rttTiming = false
			c.updateRTT(c.t.s.now - c.rttStart)
		}
		c.takeTimestamp(seg) // before the handler writes with it
		c.established()
		if c.state == tcpClosed {
			return DropNone
		}
	}
	// ACK acceptability (RFC 5961 5.2): not beyond what we sent, not
	// older than the largest window the peer ever offered.
	if seqGT(seg.ack, c.sndMax) {
		c.dupACKInvalid(seg)
		return DropTCPBadACK
	}
	if seqLT(seg.ack, c.sndUna-c.maxSndWnd) {
		c.challengeACK()
		return DropTCPChallenged
	}
	c.takeTimestamp(seg)
	c.zwpOut = 0 // the peer answers: zero-window probes are not lost
	c.processACK(seg)
	if c.state == tcpClosed {
		return DropNone
	}
	finAcked := c.finSent && seqGT(c.sndUna, c.finSeq)
	switch c.state {
	case tcpFinWait1:
		if finAcked {
			c.setState(tcpFinWait2)
			c.armFinWait2()
		}
	case tcpClosing:
		if finAcked {
			c.enterTimeWait()
		}
	case tcpLastAck:
		if finAcked {
			c.free(nil)
			return DropNone
		}
	case tcpTimeWait:
		// Only a retransmitted FIN arrives here: acknowledge it and
		// restart the 2*MSL wait.
		if seg.has(header.TCPFlagFIN) {
			c.ackNow = true
			c.schedule()
			c.enterTimeWait()
		}
		return DropNone
	}

	// Data. In order: into the ring, then any out-of-order ranges it
	// joins. Beyond a hole: held in the ring past the in-order bytes and
	// answered at once with SACK blocks.
	if len(seg.payload) > 0 {
		switch c.state {
		case tcpEstablished, tcpFinWait1, tcpFinWait2:
		default:
			return DropTCPIgnored // data after the peer's FIN
		}
		if c.released {
			// Nobody will read it: the application closed. RFC 1122
			// 4.2.2.13 (and Linux, TCPAbortOnData) reset the connection
			// so that the peer learns its data was lost.
			c.t.stats.AbortOnData++
			c.t.sendReset(c.id, seg)
			c.free(ErrConnectionReset)
			return DropNone
		}
		if seg.seq == c.rcvNxt {
			n := len(seg.payload)
			p := seg.payload
			if c.nOOO > 0 {
				c.noteHeldDuplicate(seg.seq, seg.seq+uint32(n))
			}
			zeroCopy := c.onSegment != nil && c.rcvBuf.len() == 0 && c.nOOO == 0
			if !zeroCopy {
				if !c.rcvBuf.writeAt(0, p) {
					return c.memoryDrop()
				}
				c.rcvBuf.commit(n)
			} else if !c.rcvBuf.hold(n) {
				// The handler may leave bytes for the ring: the memory
				// for them is set aside before RCV.NXT moves.
				return c.memoryDrop()
			}
			c.rcvNxt += uint32(n)
			c.measureRcvRTT(seg, n)
			// A segment larger than the MSS (a driver's large frame
			// taken whole, GRO's result) counts as the segments it
			// carries, so the ACK every second segment still goes.
			c.segsUnacked += max(1, (n+c.sndMSS-1)/c.sndMSS)
			c.rxEvent = true
			if c.lastDataIn == 0 || c.t.s.now-c.lastDataIn > c.rto {
				c.enterQuickACK() // data starts, or resumes after a silence
			}
			c.lastDataIn = c.t.s.now
			// A short segment ends what the peer had to send for now
			// (Linux's ICSK_ACK_PUSHED): once the application has read
			// everything, the ACK goes at once, so a sender's Nagle
			// never waits out our delayed ACK.
			c.pushed = n < c.sndMSS-40
			if zeroCopy {
				// The application reads the segment where the NIC put it;
				// only what it leaves goes into the ring. RCV.NXT moved
				// first, so a reply it writes carries the ACK. The
				// connection is queued first, so that a Close or Abort in
				// the callback cannot recycle it under this function.
				c.schedule()
				k := min(max(c.onSegment(c, p), 0), n)
				c.rcvBuf.unhold()
				c.t.stats.ZeroCopyBytes += uint64(k)
				if c.state == tcpClosed {
					return DropNone
				}
				c.rcvBuf.writeAt(0, p[k:]) // into the memory held for it
				c.rcvBuf.commit(n - k)
				if k > 0 {
					// The handler consumed, as a read would: a bound the
					// application lowered (SetReceiveBuffer) comes down by
					// what it took, and autotuning counts it.
					c.rcvBuf.boundAfterConsuming(k)
					c.rcvSpaceAdjust()
				}
			} else if c.nOOO > 0 {
				c.ackNow = true // a filled hole is acknowledged at once
				c.joinOutOfOrder()
			}
		} else {
			if r := c.storeOutOfOrder(seg); r != DropNone {
				if r == DropTCPMemory {
					return c.memoryDrop()
				}
				c.ackNow = true
				c.schedule()
				return r
			}
			c.t.stats.OutOfOrderSegments++
			c.ackNow = true
			if seg.has(header.TCPFlagFIN) {
				c.peerFINPending, c.peerFINSeq = true, seg.seq+uint32(len(seg.payload))
			}
			seg.flags &^= header.TCPFlagFIN
		}
		c.schedule()
	}
	if seg.has(header.TCPFlagFIN) && seg.seq+uint32(len(seg.payload)) == c.rcvNxt && !c.peerFIN {
		c.takeFIN()
	} else if c.peerFINPending && c.rcvNxt == c.peerFINSeq && !c.peerFIN {
		c.takeFIN()
	}
	if c.state != tcpClosed {
		c.schedule() // output may be possible after the ACK
	}
	return DropNone
}

// takeTimestamp records the TSval of an acceptable segment, one whose
// sequence number and ACK both passed, in TS.Recent if the segment covers
// the last ACK we sent (RFC 7323 4.3). A segment dropped for its ACK (of
// data never sent, or too old) does not count: its timestamp would
// otherwise make PAWS drop the connection's real segments. Linux updates
// it at the same point (tcp_ack, FLAG_UPDATE_TS_RECENT).
func (c *TCPConn) takeTimestamp(seg *tcpSegment) {
	if c.tsOK && seg.opts.HasTimestamps && seqLEQ(seg.seq, c.lastAckSent) && seqGEQ(seg.opts.TSVal, c.tsRecent) {
		c.tsRecent, c.tsRecentAt = seg.opts.TSVal, c.t.s.now
	}
}

// takeFIN consumes the peer's FIN once every byte before it has arrived.
func (c *TCPConn) takeFIN() {
	c.rcvNxt++
	c.peerFIN = true
	c.peerFINPending = false
	c.ackNow = true
	c.rxEvent = true
	switch c.state {
	case tcpSynReceived, tcpEstablished:
		c.setState(tcpCloseWait)
	case tcpFinWait1:
		// Our FIN is not yet acknowledged: simultaneous close.
		c.setState(tcpClosing)
	case tcpFinWait2:
		c.enterTimeWait()
	}
	c.schedule()
}

// acceptable is the test of RFC 9293 3.10.7.4 table 6.
func (c *TCPConn) acceptable(seg *tcpSegment) bool {
	// RCV.WND is the window we advertise, not the ring's free space: a
	// ring larger than 65535 bytes without Window Scale (or not a
	// multiple of the scale) holds more than the peer was offered.
	wnd := c.rcvWindowBytes(c.rcvWindow())
	if c.synchronized() && seqGT(c.rcvAdvEdge, c.rcvNxt+wnd) {
		// The edge offered before the scaled window rounded it back.
		wnd = c.rcvAdvEdge - c.rcvNxt
	}
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
func (c *TCPConn) inputSynSent(seg *tcpSegment) DropReason {
	ackOK := false
	if seg.has(header.TCPFlagACK) {
		if seqLEQ(seg.ack, c.iss) || seqGT(seg.ack, c.sndNxt) {
			c.t.sendReset(c.id, seg)
			return DropTCPBadACK
		}
		ackOK = true
	}
	if seg.has(header.TCPFlagRST) {
		if ackOK {
			c.free(ErrConnectionRefused)
			return DropNone
		}
		return DropTCPIgnored
	}
	if !seg.has(header.TCPFlagSYN) {
		return DropTCPIgnored
	}
	c.takeSYN(seg)
	if ackOK {
		c.sndUna = seg.ack
		c.sndWl2 = seg.ack
		if c.rttTiming {
			c.rttTiming = false
			c.updateRTT(c.t.s.now - c.rttStart)
		}
		c.handshakeRTO()
		c.retries = 0
		c.t.s.wheel.Cancel(&c.rtoTimer)
		c.setState(tcpEstablished)
		c.ackNow = true
		c.armKeepAlive()
		c.notify(TCPEventEstablished)
		if c.state != tcpClosed {
			c.schedule()
		}
		return DropNone
	}
	// Simultaneous open: both SYNs crossed. Answer with SYN-ACK on our
	// ISS; the peer's SYN-ACK or ACK completes the handshake.
	c.setState(tcpSynReceived)
	c.sendSYN()
	return DropNone
}

// established completes a handshake in SYN-RECEIVED.
func (c *TCPConn) established() {
	c.setState(tcpEstablished)
	c.handshakeRTO()
	c.retries = 0
	c.t.s.wheel.Cancel(&c.rtoTimer)
	c.armKeepAlive()
	if l := c.listener; l != nil {
		l.synCount--
		if l.opts.OnEvent == nil {
			if l.closed || !l.pushAccept(c) {
				c.t.stats.AcceptQueueDrops++
				c.listener = nil
				c.sendReset()
				c.free(ErrConnectionReset)
				c.released = true
				c.recycle()
				return
			}
		} else {
			c.listener = nil
		}
	}
	c.notify(TCPEventEstablished)
}

// processACK takes the ACK field of an acceptable segment: SACK blocks,
// the cumulative ACK, duplicate ACKs and loss recovery, the send window.
func (c *TCPConn) processACK(seg *tcpSegment) {
	now := c.t.s.now
	inFlight := int(c.sndMax - c.sndUna)
	sackedBefore, highBefore := 0, c.sndUna
	if c.nSacked > 0 {
		sackedBefore, highBefore = c.sackedBytes(), c.highSACKed()
	}
	newSACK := c.sackOK && seg.opts.NumSACKBlocks > 0 && c.takeSACK(seg)
	dsack := c.sackOK && isDSACK(seg)
	wnd := uint32(seg.wnd) << c.sndShift
	// A duplicate ACK: RFC 5681's (no data, no SYN or FIN, the same
	// window) or RFC 6675's DupAck, one that SACKs octets not SACKed
	// before, even if it carries data or changes the window (RFC 6675 2
	// and 5): on a connection with data both ways, every ACK carries
	// data, and SACK tells a loss apart regardless.
	// An ACK whose only news is a D-SACK is no duplicate ACK: it reports
	// a segment that arrived twice, not one that left the network after
	// a loss (RFC 6675 2: a DupAck SACKs new data).
	dup := seg.ack == c.sndUna && c.sndMax != c.sndUna &&
		(newSACK || !dsack && len(seg.payload) == 0 && !seg.has(header.TCPFlagFIN) && wnd == c.sndWnd)
	switch {
	case seqLT(c.sndUna, seg.ack):
		c.rttAfterProbe(seg)
		rexmitEnd := c.sndNxt // after a timeout, what went again ends here
		acked := c.acked(seg.ack)
		delivered := c.delivered(acked, sackedBefore)
		c.dupAcks = 0
		eifel := c.eifelArmed
		if eifel {
			c.checkEifel(seg) // may undo the reduction and end recovery
		}
		if c.frto != 0 {
			c.frtoACK(seg.ack, rexmitEnd, eifel)
		}
		if c.inRecovery {
			if seqGEQ(seg.ack, c.recoverSeq) {
				c.inRecovery = false
				c.cc.OnRecoveryExit()
			} else {
				if !c.sackOK {
					// A partial ACK (RFC 6582 3.2 step 5): the next
					// segment was lost too.
					c.rexmitNxt = c.sndUna
				}
				c.prrACK(delivered, c.sackOK && !c.newLoss(highBefore))
			}
		} else if delivered > 0 {
			c.cc.OnAck(delivered, inFlight, c.srtt, now)
		}
	case dup:
		c.dupAcks++
		if c.frto != 0 {
			c.frtoDupACK()
		}
		delivered := c.delivered(0, sackedBefore)
		// After a timeout, RFC 6582 4.1 keeps duplicate ACKs of the
		// data resent from starting a recovery until the ACK passes
		// recoverSeq; SACK tells real losses apart, so only a
		// connection without it waits.
		if !c.inRecovery && c.lossDetected() && (!c.recoveryGuard || c.sackOK || seqGEQ(seg.ack, c.recoverSeq)) {
			c.enterRecovery(delivered, sackedBefore)
		} else if c.inRecovery {
			if c.holeRexmitAt != 0 && now-c.holeRexmitAt > c.srtt+c.srtt/4 && seqGT(c.rexmitNxt, c.sndUna) {
				// The retransmission of the first hole has had a round
				// trip and a quarter and the hole is still there: it
				// was lost too. Start the pass over the holes again
				// rather than wait for the timeout (in the spirit of
				// RACK, RFC 8985).
				c.rexmitNxt = c.sndUna
				c.holeRexmitAt = 0
			}
			c.prrACK(delivered, false)
		}
	case c.inRecovery && c.sackOK && c.nSacked > 0:
		// An ACK below sndUna (reordered behind a later one) may still
		// SACK new data: PRR counts it, as Linux does for an old ACK.
		c.prrACK(c.delivered(0, sackedBefore), false)
	}
	if dsack {
		c.takeDSACK(seg) // after the cumulative ACK: may undo the reduction
	}
	// Window update, only from a newer segment (SND.WL1, SND.WL2).
	if seqLT(c.sndWl1, seg.seq) || (c.sndWl1 == seg.seq && seqLEQ(c.sndWl2, seg.ack)) {
		c.sndWnd = wnd
		c.maxSndWnd = max(c.maxSndWnd, wnd)
		c.sndWl1, c.sndWl2 = seg.seq, seg.ack
		if wnd > 0 {
			c.zwpTiming = false // the window opened: a new closed window times anew
		}
		if wnd > 0 && c.persistTimer.Pending() {
			c.t.s.wheel.Cancel(&c.persistTimer)
			c.persistBackoff = 0
		}
	}
}

// acked takes an ACK that moves sndUna forward to ack and returns the data
// bytes it acknowledged.
func (c *TCPConn) acked(ack uint32) int {
	n := ack - c.sndUna
	if c.sndUna == c.iss {
		n-- // our SYN
	}
	if c.finSent && seqGT(ack, c.finSeq) {
		n-- // our FIN
	}
	n = min(n, uint32(c.sndBuf.len()))
	c.sndBuf.discard(int(n))
	if c.sndBuf.n == 0 {
		c.sndBuf.release() // taken again by the next Write
	}
	c.sndUna = ack
	if seqLT(c.sndNxt, c.sndUna) {
		c.sndNxt = c.sndUna // after a go-back-N rewind
	}
	if seqLT(c.rexmitNxt, c.sndUna) {
		c.rexmitNxt = c.sndUna
	}
	c.dropSACKedBelow(ack)
	if c.rttTiming && seqGEQ(ack, c.rttSeq) {
		c.rttTiming = false
		c.updateRTT(c.t.s.now - c.rttStart)
	}
	c.retries = 0
	c.probes = 0
	c.tlpOut = false
	if c.sndUna == c.sndMax {
		c.t.s.wheel.Cancel(&c.rtoTimer)
	} else {
		c.armRTO() // RFC 6298 5.3
	}
	if n > 0 && c.writeBlocked {
		c.expandSndBuf() // autotuning (tcp_autotune.go)
		c.writeBlocked = false
		c.wrEvent = true
		c.schedule()
	}
	return int(n)
}

func (c *TCPConn) enterTimeWait() {
	c.setState(tcpTimeWait)
	// Everything we sent is acknowledged (the send ring is already
	// empty and released); what we received is wanted only by an
	// application that has not closed.
	c.sndBuf.release()
	c.nOOO = 0
	if c.released {
		c.rcvBuf.release()
	}
	c.releaseRcvBuf()
	w := &c.t.s.wheel
	w.Cancel(&c.rtoTimer)
	w.Cancel(&c.persistTimer)
	w.Cancel(&c.keepTimer)
	w.Schedule(&c.waitTimer, c.t.s.now+2*int64(c.t.cfg.MSL))
	c.t.pushTimeWait(c)
}

// challengeACK sends an RFC 5961 challenge ACK within two bounds (section
// 7), in Linux's order (tcp_send_challenge_ack): the connection's own
// rate (InvalidACKInterval), so that one connection takes at most a few of
// the stack's challenge ACKs a second, then the stack's budget for the
// second (ChallengeACKsPerSecond), so that an attacker cannot use us as an
// amplifier.
//
// The budget is not the limit itself but drawn anew each second in
// [limit/2, limit/2+limit), as Linux since 4.7: with a fixed count, an
// off-path attacker who spends the budget with segments of his own and
// counts the challenge ACKs he gets back learns how many went to a
// connection he cannot see, that is whether his guess of its tuple or
// sequence number was in the window (CVE-2016-5696).
func (c *TCPConn) challengeACK() {
	if c.invalidACKLimited() {
		return
	}
	t := c.t
	// challengeSecond holds the second plus one: 0 is none yet.
	if sec := t.s.now / 1e9; sec+1 != t.challengeSecond {
		t.challengeSecond = sec + 1
		t.challengeTokens = t.challengeBudget(sec)
	}
	if t.challengeTokens <= 0 {
		t.stats.ChallengeACKsOverBudget++
		return
	}
	t.challengeTokens--
	t.stats.ChallengeACKs++
	c.sendACK()
}

// challengeBudget is the number of challenge ACKs the stack sends in
// second sec: limit/2 + a draw in [0, limit), from a keyed hash of the
// second (SipHash under ISNKey), unpredictable without the key and
// reproducible with a fixed one.
func (t *tcpTable) challengeBudget(sec int64) int {
	limit := t.cfg.ChallengeACKsPerSecond
	var m [9]byte
	binary.LittleEndian.PutUint64(m[:8], uint64(sec))
	m[8] = 'C' // a different message from the ISN's and tsOffset's
	k0 := binary.LittleEndian.Uint64(t.cfg.ISNKey[0:8])
	k1 := binary.LittleEndian.Uint64(t.cfg.ISNKey[8:16])
	return (limit+1)/2 + int(sipHash24(k0, k1, m[:])%uint64(limit))
}

// invalidACKLimited reports whether an ACK for an invalid segment must not
// go now because the connection sent one less than InvalidACKInterval ago
// (counted), and otherwise takes the time (Linux's __tcp_oow_rate_limited).
func (c *TCPConn) invalidACKLimited() bool {
	t := c.t
	iv := int64(t.cfg.InvalidACKInterval)
	if iv < 0 {
		return false
	}
	now := t.s.now
	if c.oowACKAt != 0 && now-c.oowACKAt < iv {
		t.stats.InvalidACKsSkipped++
		return true
	}
	c.oowACKAt = now
	return false
}

// dupACKInvalid answers a segment that failed the sequence or PAWS check
// with a duplicate ACK, within the connection's InvalidACKInterval unless
// it carries data (Linux's tcp_oow_rate_limited: a segment with data,
// such as a retransmission the peer sent because our ACK was lost, is
// not part of an ACK loop and is always answered).
func (c *TCPConn) dupACKInvalid(seg *tcpSegment) {
	c.noteOldDuplicate(seg)
	if (seg.seqLen() == 0 || seg.has(header.TCPFlagSYN)) && c.invalidACKLimited() {
		return
	}
	c.ackNow = true
	c.schedule()
}

// schedule lists c for the end-of-burst work (flushPending).
func (c *TCPConn) schedule() {
	if c.queued {
		return
	}
	c.queued = true
	c.t.pending = append(c.t.pending, c)
}

// flushPending runs once at the end of each receive burst: for each
// connection that received segments it delivers one Readable event (all
// the burst's in-order data at once, GRO-like), sends what the
// application wrote in response with the ACK riding on it, and only then
// sends a pure ACK if one is still owed: at once when asked (out of
// order, a filled hole, a FIN, a window update), for every second
// segment, or for each while data starts to flow (quick ACKs, unless
// interactive), otherwise after DelayedACK.
func (t *tcpTable) flushPending() {
	if t.mem.wake {
		t.wakeWriters() // memory came back for connections waiting to write
	}
	for i := 0; i < len(t.pending); i++ {
		c := t.pending[i]
		t.pending[i] = nil
		c.queued = false
		if c.state == tcpClosed {
			c.recycle()
			continue
		}
		if c.rxEvent {
			c.rxEvent = false
			if c.rcvBuf.len() > 0 {
				c.notify(TCPEventReadable)
			}
			if c.peerFIN && !c.finEvent && c.state != tcpClosed {
				c.finEvent = true
				c.notify(TCPEventPeerClosed)
			}
		}
		if c.wrEvent && c.state != tcpClosed {
			c.wrEvent = false
			c.notify(TCPEventWritable)
		}
		if c.state == tcpClosed {
			c.recycle()
			continue
		}
		c.output()
		switch {
		case c.ackNow || c.segsUnacked >= 2 || c.segsUnacked > 0 && !c.pingpong && (c.quickACKs > 0 || c.pushed && c.rcvBuf.len() == 0):
			c.sendACK()
		case c.segsUnacked > 0 && !c.delackTimer.Pending():
			t.s.wheel.Schedule(&c.delackTimer, t.s.now+int64(t.cfg.DelayedACK))
		}
	}
	t.pending = t.pending[:0]
}

// enterQuickACK starts acknowledging each segment at once
// (TCPConfig.QuickACKs), as Linux's tcp_incr_quickack: for as many
// segments as half the receive window holds, at least 2, at most
// QuickACKs.
func (c *TCPConn) enterQuickACK() {
	limit := c.t.cfg.QuickACKs
	if limit <= 0 {
		return
	}
	// The window last advertised: the free space and what came since.
	q := (c.rcvBuf.free() + int(c.rcvNxt-c.lastAckSent)) / (2 * c.sndMSS)
	if q == 0 {
		q = 2
	}
	c.quickACKs = max(c.quickACKs, min(q, limit))
}

// deliverError takes an ICMP error quoting a segment of connection id with
// sequence number seq. Only a quote of data in flight counts (RFC 5927
// 4.1: a blind attacker does not know it). Fragmentation needed lowers the
// MSS to the path MTU and resends at once; an unreachable port or protocol
// refuses a connection still in SYN-SENT; other errors are soft (RFC 1122
// 4.2.3.9): kept, and reported if the connection then times out.
func (t *tcpTable) deliverError(id tcpTuple, seq uint32, err error, pathMTU int) bool {
	c := t.conns[id]
	if c == nil || !seqLEQ(c.sndUna, seq) || !seqLT(seq, c.sndMax) {
		return false
	}
	switch {
	case errors.Is(err, ErrMessageTooLong):
		if mss := pathMTU - id.ipHeaderLen() - header.TCPMinimumSize; mss >= 88 && mss < c.sndMSS {
			c.sndMSS = mss
			c.cc.SetMSS(c.dataMSS())
			if c.synchronized() && c.sndUna != c.sndMax {
				c.sndNxt = c.sndUna
				c.t.stats.Retransmits++
				c.output()
			}
		}
	case c.state == tcpSynSent && (errors.Is(err, ErrPortUnreachable) || errors.Is(err, ErrProtoUnreachable)):
		c.free(ErrConnectionRefused)
	default:
		c.softErr = err
	}
	return true
}
