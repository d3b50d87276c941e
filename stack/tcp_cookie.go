package stack

import (
	"encoding/binary"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// SYN cookies (RFC 4987 3.6). When a listener's SYN queue is full the
// SYN-ACK's sequence number carries the state instead of a table entry:
//
//	bits 31-27  a counter that ticks every 64 s (the cookie's age)
//	bits 26-24  an index into cookieMSS (the peer's MSS, rounded down)
//	bits 23-0   SipHash-2-4 of the tuple, the peer's ISN, the counter
//	            and the MSS index, keyed by TCPConfig.ISNKey
//
// The MAC covers the MSS index: a forged ACK cannot change the MSS the
// connection will use (to 536, or up from a small one) without failing
// validation, as Linux's cookie checks its MSS index too.
//
// The ACK that completes the handshake returns it as ACK-1; a cookie up to
// two periods old that hashes right makes an ESTABLISHED connection with
// no SYN-RECEIVED state ever stored. An ACK is checked as a cookie only if
// its listener's SYN queue overflowed (a cookie went) within the last
// synCookieValid, as Linux's tcp_synq_no_recent_overflow: otherwise no
// cookie can be outstanding, and a blind attacker's ACKs (24 bits of MAC
// to guess) are stray ACKs, answered with a reset. Window scale and SACK-permitted come
// back through the timestamp, as Linux does: the low 6 bits of our SYN-ACK's
// TSval (echoed in the ACK's TSecr) hold the peer's window scale (4 bits,
// 15 = none), SACK-permitted (1 bit) and a marker bit. Without timestamps
// the connection goes without window scaling and SACK.

const cookiePeriod = 64 * int64(1e9)

// synCookieValid is how long after its SYN queue last overflowed a
// listener still takes ACKs as cookies: 2 minutes, Linux's
// TCP_SYNCOOKIE_VALID.
const synCookieValid = 2 * 60 * int64(time.Second)

var cookieMSS = [8]uint16{536, 1200, 1300, 1360, 1400, 1440, 1452, 1460}

func (t *tcpTable) cookieHash(id tcpTuple, peerISN, count uint32, mssIndex int) uint32 {
	var buf [45]byte
	m := id.appendAddrs(buf[:0])
	m = binary.BigEndian.AppendUint16(m, id.localPort)
	m = binary.BigEndian.AppendUint16(m, id.remotePort)
	m = binary.BigEndian.AppendUint32(m, peerISN)
	m = binary.BigEndian.AppendUint32(m, count)
	m = append(m, byte(mssIndex))
	k0 := binary.LittleEndian.Uint64(t.cfg.ISNKey[0:8])
	k1 := binary.LittleEndian.Uint64(t.cfg.ISNKey[8:16]) ^ 0x636f6f6b6965 // a different function from the ISN's
	return uint32(sipHash24(k0, k1, m))
}

func (t *tcpTable) makeCookie(id tcpTuple, peerISN uint32, mssIndex int) uint32 {
	count := uint32(t.s.now / cookiePeriod)
	return count<<27 | uint32(mssIndex)<<24 | t.cookieHash(id, peerISN, count, mssIndex)&0xffffff
}

// checkCookie validates cookie (the ACK's number less one) and returns the
// MSS index it carries.
func (t *tcpTable) checkCookie(id tcpTuple, peerISN, cookie uint32) (int, bool) {
	now := uint32(t.s.now / cookiePeriod)
	age := (now - cookie>>27) & 0x1f
	if age > 1 {
		return 0, false
	}
	count := now - age
	idx := int(cookie >> 24 & 7)
	if t.cookieHash(id, peerISN, count, idx)&0xffffff != cookie&0xffffff {
		return 0, false
	}
	return idx, true
}

const (
	cookieTSMarker = 1 << 5
	cookieTSSACK   = 1 << 4
	cookieTSNoWS   = 0xf
)

// cookieBurst is how far (in time at the SYNCookiesPerSecond rate) a burst
// of cookies may run ahead of the rate.
const cookieBurst = 10 * int64(time.Millisecond)

// cookieAllowed takes one cookie SYN-ACK from the SYNCookiesPerSecond
// budget, or says there is none left.
func (t *tcpTable) cookieAllowed() bool {
	rate := t.cfg.SYNCookiesPerSecond
	if rate < 0 {
		return true
	}
	now := t.s.now
	if t.cookieDue < now-cookieBurst {
		t.cookieDue = now - cookieBurst
	}
	if t.cookieDue > now {
		return false
	}
	t.cookieDue += int64(time.Second) / int64(rate)
	return true
}

// overflow records that the listener's SYN queue overflowed now: ACKs are
// checked as cookies for synCookieValid from here.
func (l *TCPListener) overflow() {
	l.overflowed, l.overflowAt = true, l.t.s.now
}

// recentOverflow reports whether the SYN queue overflowed within the
// last synCookieValid, so that a cookie may be outstanding.
func (l *TCPListener) recentOverflow() bool {
	return l.overflowed && l.t.s.now-l.overflowAt <= synCookieValid
}

// sendCookie answers a SYN with a cookie SYN-ACK and keeps no state.
func (l *TCPListener) sendCookie(id tcpTuple, seg *tcpSegment) {
	t := l.t
	o := &seg.opts
	peerMSS := id.defaultMSS()
	if o.HasMSS {
		peerMSS = int(o.MSS)
	}
	idx := 0
	for i, m := range cookieMSS {
		if int(m) <= peerMSS {
			idx = i
		}
	}
	iss := t.makeCookie(id, seg.seq, idx)
	out := header.TCPOptions{HasMSS: true, MSS: uint16(t.localMSS(id.v6()))}
	if o.HasTimestamps && !t.cfg.DisableTimestamps {
		bits := uint32(cookieTSMarker | cookieTSNoWS)
		if o.HasWindowScale {
			bits = cookieTSMarker | uint32(o.WindowScale)
			out.HasWindowScale, out.WindowScale = true, t.rcvShift()
		}
		if o.SACKPermitted && !t.cfg.DisableSACK {
			bits |= cookieTSSACK
			out.SACKPermitted = true
		}
		now := uint32(t.s.now/1e6) + t.tsOffset(id)
		ts := now&^0x3f | bits
		if seqGT(ts, now) {
			ts -= 1 << 6 // never ahead of the clock the connection will use
		}
		out.HasTimestamps, out.TSVal, out.TSEcr = true, ts, o.TSVal
	}
	b, _ := t.segment(id, iss, seg.seq+1, tcpFlagsSYN|tcpFlagsACK, uint16(min(t.cfg.ReceiveBuffer, 0xffff)), &out, 0, 0)
	if b == nil {
		return
	}
	t.stats.SYNCookiesSent++
	t.send(id, b, t.flowLabel(&id))
}

// rcvShift is the window scale we announce: the smallest that lets the
// window cover the largest receive ring autotuning may grow to
// (TCPConfig.ReceiveBufferMax; RFC 7323 2.2: the scale is fixed at the
// handshake, so it is chosen for the bound, not the initial window).
func (t *tcpTable) rcvShift() uint8 {
	var s uint8
	for s < 14 && t.cfg.ReceiveBufferMax>>s > 0xffff {
		s++
	}
	return s
}

// cookieACK makes the connection a valid cookie stands for, or returns nil.
func (l *TCPListener) cookieACK(id tcpTuple, seg *tcpSegment) *TCPConn {
	t := l.t
	peerISN := seg.seq - 1
	idx, ok := t.checkCookie(id, peerISN, seg.ack-1)
	if !ok || !t.room() {
		return nil
	}
	c := t.newConn(id, l.opts.OnEvent, t.cc)
	c.noDelay, c.keepAlive, c.onSegment = l.opts.NoDelay, l.opts.KeepAlive, l.opts.OnSegment
	c.userTimeout = max(int64(l.opts.UserTimeout), 0)
	c.iss = seg.ack - 1
	c.sndUna, c.sndNxt, c.sndMax = seg.ack, seg.ack, seg.ack
	c.tsOffset = l.t.tsOffset(id)
	c.irs, c.rcvNxt, c.lastAckSent, c.rcvAdvEdge = peerISN, seg.seq, seg.seq, seg.seq
	c.sndMSS = min(t.localMSS(id.v6()), int(cookieMSS[idx]), t.pathMTU(&id)-id.ipHeaderLen()-header.TCPMinimumSize)
	o := &seg.opts
	c.wsOK, c.sndShift, c.rcvShift = false, 0, 0
	if o.HasTimestamps && o.TSEcr&cookieTSMarker != 0 && !t.cfg.DisableTimestamps {
		c.tsOK = true
		c.tsRecent, c.tsRecentAt = o.TSVal, t.s.now
		if ws := o.TSEcr & 0xf; ws != cookieTSNoWS {
			c.wsOK, c.sndShift, c.rcvShift = true, uint8(min(ws, header.MaxWindowScale)), t.rcvShift()
		}
		c.sackOK = o.TSEcr&cookieTSSACK != 0
	}
	c.cc.Init(c.sndMSS)
	c.sndWnd = uint32(seg.wnd) << c.sndShift
	c.maxSndWnd = c.sndWnd
	c.sndWl1, c.sndWl2 = seg.seq, seg.ack
	t.stats.SYNCookiesValid++
	t.stats.PassiveOpens++
	c.listener = l
	l.synCount++ // established() takes it back
	c.setState(tcpSynReceived)
	c.sndUna = seg.ack - 1 // so that the ACK is new in the SYN-RECEIVED check
	return c
}
