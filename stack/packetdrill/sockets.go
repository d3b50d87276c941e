//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"syscall"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// Linux values the syscall package does not name, or names per platform.
const (
	sockStream   = 1
	sockNonblock = 0x800
	sockCloexec  = 0x80000

	msgPeek     = 0x2
	msgDontwait = 0x40
	msgWaitall  = 0x100

	solSocket   = 1
	soReuseaddr = 2
	soType      = 3
	soError     = 4
	soSndbuf    = 7
	soRcvbuf    = 8
	soKeepalive = 9
	soLinger    = 13
	soReuseport = 15

	solTCP         = 6
	tcpNodelay     = 1
	tcpMaxseg      = 2
	tcpKeepidle    = 4
	tcpKeepintvl   = 5
	tcpKeepcnt     = 6
	tcpUserTimeout = 18
	tcpInq         = 36 // also TCP_CM_INQ, its control message

	fGetfd = 1
	fSetfd = 2
	fGetfl = 3
	fSetfl = 4

	siocinq     = 0x541B // FIONREAD
	siocoutq    = 0x5411 // TIOCOUTQ
	siocoutqnsd = 0x894B
	fionbio     = 0x5421

	pollIn     = 0x1
	pollPri    = 0x2
	pollOut    = 0x4
	pollErr    = 0x8
	pollHup    = 0x10
	pollNval   = 0x20
	pollRdnorm = 0x40
	pollWrnorm = 0x100
	pollRdhup  = 0x2000

	afInet = 2
)

// sock is one file descriptor: a TCP socket in one of its lives (fresh,
// bound, listening, connecting or connected).
type sock struct {
	nonblock bool

	port  uint16 // bound local port, 0 if none
	lst   *stack.TCPListener
	conn  *stack.TCPConn
	errOK bool // the connection's error was reported (Linux's sk_err is read once)

	shutRd, shutWr bool

	reuseAddr, noDelay, keepAlive bool
	keepIdle, keepIntvl, keepCnt  int
	rcvBuf, sndBuf                int
	maxSeg                        int
	lingerOn                      bool
	linger                        int
	userTimeout                   int  // TCP_USER_TIMEOUT, ms
	inq                           bool // TCP_INQ: recvmsg reports what is left to read
}

func (p *plugin) portBound(port uint16) bool {
	for _, s := range p.fds {
		if s.port == port {
			return true
		}
	}
	return false
}

// call runs op for a socket call from thread tid.
func (p *plugin) call(tid int, op func() (int, syscall.Errno)) (int, syscall.Errno) {
	p.enter(tid)
	defer p.leave(tid)
	p.gtodTid = 0
	if err := p.ensureStack(); err != nil {
		p.logf("%v", err)
		return -1, syscall.ENOMEM
	}
	p.sync()
	n, e := op()
	p.collect()
	p.changed()
	if e != 0 {
		return -1, e
	}
	return n, 0
}

func (p *plugin) sockOf(fd int) (*sock, syscall.Errno) {
	s := p.fds[fd]
	if s == nil {
		return nil, syscall.EBADF
	}
	return s, 0
}

// errnoOf maps a connection's error to Linux's errno.
func errnoOf(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, stack.ErrConnectionRefused):
		return syscall.ECONNREFUSED
	case errors.Is(err, stack.ErrConnectionReset):
		return syscall.ECONNRESET
	case errors.Is(err, stack.ErrConnectionTimeout):
		return syscall.ETIMEDOUT
	case errors.Is(err, stack.ErrHostUnreachable):
		return syscall.EHOSTUNREACH
	case errors.Is(err, stack.ErrNetUnreachable), errors.Is(err, stack.ErrNoRoute):
		return syscall.ENETUNREACH
	case errors.Is(err, stack.ErrPortUnreachable):
		return syscall.ECONNREFUSED
	case errors.Is(err, stack.ErrConnectionClosed):
		return syscall.EPIPE
	case errors.Is(err, stack.ErrPortInUse):
		return syscall.EADDRINUSE
	case errors.Is(err, stack.ErrTooManyConns), errors.Is(err, stack.ErrNoEphemeralPort):
		return syscall.EAGAIN
	}
	return syscall.EIO
}

// pendingErr returns the connection's error not yet reported (Linux's
// sk_err), taking it if take.
func (s *sock) pendingErr(take bool) syscall.Errno {
	if s.conn == nil || s.errOK || !s.conn.Closed() {
		return 0
	}
	e := errnoOf(s.conn.Err())
	if e == syscall.EPIPE { // an orderly end is no error
		e = 0
	}
	if take && e != 0 {
		s.errOK = true
	}
	return e
}

func (s *sock) connecting() bool {
	return s.conn != nil && !s.conn.Established() && !s.conn.Closed()
}

func (p *plugin) socket(tid, domain, typ, proto int) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		if domain != afInet {
			return 0, syscall.EAFNOSUPPORT
		}
		if typ&0xf != sockStream || (proto != 0 && proto != syscall.IPPROTO_TCP) {
			return 0, syscall.EPROTONOSUPPORT
		}
		fd := 3
		for p.fds[fd] != nil {
			fd++
		}
		p.fds[fd] = &sock{
			nonblock: typ&sockNonblock != 0,
			rcvBuf:   p.sysctlInt("tcp_rmem", 1, 131072),
			sndBuf:   p.sysctlInt("tcp_wmem", 1, 16384),
		}
		return fd, 0
	})
}

// sysctlInt returns field i of a sysctl read when the stack was made.
func (p *plugin) sysctlInt(name string, i, def int) int {
	v, ok := p.sysctls[name]
	if !ok {
		return def
	}
	f := splitFields(v)
	if i >= len(f) {
		return def
	}
	n := 0
	for _, c := range f[i] {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func splitFields(s string) []string {
	var f []string
	start := -1
	for i, c := range s + " " {
		if c == ' ' || c == '\t' {
			if start >= 0 {
				f = append(f, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return f
}

// parseSockaddr reads an IPv4 sockaddr.
func parseSockaddr(b []byte) (addr [4]byte, port uint16, e syscall.Errno) {
	if len(b) < 16 {
		return addr, 0, syscall.EINVAL
	}
	if binary.LittleEndian.Uint16(b[0:2]) != afInet {
		return addr, 0, syscall.EAFNOSUPPORT
	}
	port = binary.BigEndian.Uint16(b[2:4])
	copy(addr[:], b[4:8])
	return addr, port, 0
}

// sockaddr encodes an IPv4 sockaddr.
func sockaddr(addr [4]byte, port uint16) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:2], afInet)
	binary.BigEndian.PutUint16(b[2:4], port)
	copy(b[4:8], addr[:])
	return b
}

func (p *plugin) bind(tid, fd int, sa []byte) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		addr, port, e := parseSockaddr(sa)
		if e != 0 {
			return 0, e
		}
		if s.port != 0 || s.conn != nil {
			return 0, syscall.EINVAL
		}
		if a := p.st.Addr().As4(); addr != a && addr != [4]byte{} {
			return 0, syscall.EADDRNOTAVAIL
		}
		if port == 0 {
			port = p.ephemeral()
		} else {
			for _, o := range p.fds {
				if o.port == port && (o.lst != nil || !(s.reuseAddr && o.reuseAddr)) {
					return 0, syscall.EADDRINUSE
				}
			}
		}
		s.port = port
		return 0, 0
	})
}

func (p *plugin) listen(tid, fd, backlog int) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		if s.conn != nil {
			return 0, syscall.EINVAL
		}
		if s.lst != nil {
			return 0, 0
		}
		if s.port == 0 {
			s.port = p.ephemeral()
		}
		// Linux's accept queue holds backlog+1 connections.
		q := max(backlog, 0) + 1
		l, err := p.st.ListenTCP(s.port, stack.TCPListenOptions{AcceptQueue: q, NoDelay: s.noDelay, KeepAlive: s.keepAlive,
			UserTimeout: time.Duration(s.userTimeout) * time.Millisecond})
		if err != nil {
			return 0, errnoOf(err)
		}
		s.lst = l
		return 0, 0
	})
}

// accept takes a connection; sa receives the peer's address.
func (p *plugin) accept(tid, fd int, sa *[]byte) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		if s.lst == nil {
			return 0, syscall.EINVAL
		}
		if s.lst.Pending() == 0 {
			if s.nonblock {
				return 0, syscall.EAGAIN
			}
			if !p.block(tid, func() bool { return p.fds[fd] == s && s.lst.Pending() > 0 }, 0) {
				return 0, syscall.EAGAIN
			}
		}
		c, ok := s.lst.Accept()
		if !ok {
			return 0, syscall.EAGAIN
		}
		nfd := 3
		for p.fds[nfd] != nil {
			nfd++
		}
		p.fds[nfd] = &sock{
			conn: c, port: s.port,
			noDelay: s.noDelay, keepAlive: s.keepAlive,
			rcvBuf: s.rcvBuf, sndBuf: s.sndBuf, maxSeg: s.maxSeg,
			lingerOn: s.lingerOn, linger: s.linger,
			// Linux's child sockets inherit these from the listener.
			userTimeout: s.userTimeout, inq: s.inq,
		}
		c.SetUserTimeout(time.Duration(s.userTimeout) * time.Millisecond)
		if sa != nil {
			*sa = sockaddr(c.RemoteAddr().As4(), c.RemotePort())
		}
		return nfd, 0
	})
}

func (p *plugin) connect(tid, fd int, sa []byte) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		addr, port, e := parseSockaddr(sa)
		if e != 0 {
			return 0, e
		}
		if s.lst != nil {
			return 0, syscall.EISCONN
		}
		if s.conn != nil {
			switch {
			case s.conn.Established() && !s.conn.Closed():
				return 0, syscall.EISCONN
			case s.conn.Closed():
				if e := s.pendingErr(true); e != 0 {
					return 0, e
				}
				return 0, syscall.EISCONN
			case s.nonblock:
				return 0, syscall.EALREADY
			}
		} else {
			p.bindPort = s.port
			c, err := p.st.DialTCP(addr, port, stack.TCPConnOptions{NoDelay: s.noDelay, KeepAlive: s.keepAlive,
				UserTimeout: time.Duration(s.userTimeout) * time.Millisecond})
			p.bindPort = 0
			if err != nil {
				return 0, errnoOf(err)
			}
			s.conn = c
			s.port = c.LocalPort()
			p.collect()
			if s.nonblock {
				return 0, syscall.EINPROGRESS
			}
		}
		c := s.conn
		p.block(tid, func() bool { return p.fds[fd] != s || c.Established() || c.Closed() }, 0)
		if p.fds[fd] != s {
			return 0, syscall.EBADF
		}
		if c.Closed() {
			if e := s.pendingErr(true); e != 0 {
				return 0, e
			}
			return 0, syscall.ECONNREFUSED
		}
		if !c.Established() {
			return 0, syscall.ETIMEDOUT
		}
		return 0, 0
	})
}

// readable reports whether a read would not block.
func (s *sock) readable() bool {
	c := s.conn
	if c == nil {
		return true
	}
	return c.Buffered() > 0 || c.PeerClosed() || c.Closed() || s.shutRd || s.pendingErr(false) != 0
}

// recv reads into bufs (an iovec) with Linux's recv flags.
func (p *plugin) recv(tid, fd int, bufs [][]byte, flags int) (int, syscall.Errno) {
	n, e, _ := p.recvmsg(tid, fd, bufs, flags)
	return n, e
}

// recvmsg is recv that also returns the TCP_CM_INQ control message's value
// when the socket asked for it (TCP_INQ) and the call succeeded, as
// Linux's tcp_recvmsg adds it; inq is -1 when there is none.
func (p *plugin) recvmsg(tid, fd int, bufs [][]byte, flags int) (n int, e syscall.Errno, inq int) {
	inq = -1
	n, e = p.call(tid, func() (int, syscall.Errno) {
		n, e := p.recvLocked(tid, fd, bufs, flags)
		if s := p.fds[fd]; e == 0 && s != nil && s.inq {
			inq = s.inqHint()
		}
		return n, e
	})
	return n, e, inq
}

// recvLocked is recv's body (the plugin's lock held).
func (p *plugin) recvLocked(tid, fd int, bufs [][]byte, flags int) (int, syscall.Errno) {
	s, e := p.sockOf(fd)
	if e != 0 {
		return 0, e
	}
	if s.lst != nil {
		return 0, syscall.ENOTCONN
	}
	if s.conn == nil {
		return 0, syscall.ENOTCONN
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total == 0 {
		return 0, 0
	}
	nonblock := s.nonblock || flags&msgDontwait != 0
	want := 1
	if flags&msgWaitall != 0 && flags&msgPeek == 0 {
		want = total
	}
	done := 0
	for {
		c := s.conn
		if c.Buffered() > 0 {
			if flags&msgPeek != 0 {
				a, b := c.Peek()
				return gather(bufs, 0, a, b), 0
			}
			a, b := c.Peek()
			n := gather(bufs, done, a, b)
			c.Discard(n)
			done += n
			if done >= want {
				return done, 0
			}
			continue
		}
		if done > 0 && (nonblock || c.PeerClosed() || c.Closed() || s.shutRd) {
			return done, 0
		}
		if e := s.pendingErr(true); e != 0 {
			if done > 0 {
				return done, 0
			}
			return 0, e
		}
		if c.PeerClosed() || c.Closed() || s.shutRd {
			return done, 0
		}
		if !c.Established() && !s.connecting() {
			return 0, syscall.ENOTCONN
		}
		if nonblock {
			return 0, syscall.EAGAIN
		}
		if !p.block(tid, func() bool { return p.fds[fd] != s || s.readable() }, 0) {
			return done, syscall.EAGAIN
		}
		if p.fds[fd] != s {
			return 0, syscall.EBADF
		}
	}
}

// inqHint is Linux's tcp_inq_hint, the TCP_CM_INQ control message of a
// socket with TCP_INQ: the bytes left to read (the peer's FIN counts as
// one, as it does in rcv_nxt - copied_seq), or 1 when nothing is left and
// the connection is done, so that the reader reads on to the end.
func (s *sock) inqHint() int {
	c := s.conn
	if c == nil {
		return 0
	}
	n := c.Buffered()
	if c.PeerClosed() {
		n++
	}
	if n == 0 && c.Closed() {
		n = 1
	}
	return n
}

// gather copies the views a, b (in order) into the iovec bufs, skipping
// the first skip bytes of bufs, and returns how many bytes it copied.
func gather(bufs [][]byte, skip int, a, b []byte) int {
	src := [2][]byte{a, b}
	n := 0
	si := 0
	for _, dst := range bufs {
		if skip >= len(dst) {
			skip -= len(dst)
			continue
		}
		dst = dst[skip:]
		skip = 0
		for len(dst) > 0 && si < 2 {
			k := copy(dst, src[si])
			dst = dst[k:]
			src[si] = src[si][k:]
			n += k
			if len(src[si]) == 0 {
				si++
			}
		}
	}
	return n
}

// writable is Linux's sk_stream_is_writeable: free space at least half
// of what is queued.
func (s *sock) writable() bool {
	c := s.conn
	return c != nil && c.WriteSpace() > 0 && c.WriteSpace() >= c.Unsent()/2
}

// send writes the iovec bufs with Linux's send flags.
func (p *plugin) send(tid, fd int, bufs [][]byte, flags int) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		var data []byte
		for _, b := range bufs {
			data = append(data, b...)
		}
		nonblock := s.nonblock || flags&msgDontwait != 0
		if s.conn == nil {
			return 0, syscall.EPIPE
		}
		if len(data) == 0 {
			return 0, 0
		}
		done := 0
		for {
			c := s.conn
			if e := s.pendingErr(true); e != 0 {
				if done > 0 {
					return done, 0
				}
				return 0, e
			}
			if s.shutWr || c.Closed() {
				if done > 0 {
					return done, 0
				}
				return 0, syscall.EPIPE
			}
			if s.connecting() {
				if nonblock {
					return 0, syscall.EAGAIN
				}
			} else {
				n, err := c.Write(data[done:])
				done += n
				if done == len(data) {
					return done, 0
				}
				if err != nil && n == 0 {
					if done > 0 {
						return done, 0
					}
					return 0, errnoOf(err)
				}
				if nonblock {
					if done > 0 {
						return done, 0
					}
					return 0, syscall.EAGAIN
				}
			}
			if !p.block(tid, func() bool {
				return p.fds[fd] != s || s.conn.Closed() || s.writable() && !s.connecting()
			}, 0) {
				if done > 0 {
					return done, 0
				}
				return 0, syscall.EAGAIN
			}
			if p.fds[fd] != s {
				return 0, syscall.EBADF
			}
		}
	})
}

func (p *plugin) close(tid, fd int) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		delete(p.fds, fd)
		if s.lst != nil {
			s.lst.Close()
		}
		if c := s.conn; c != nil {
			switch {
			case c.Closed():
				c.Close() // releases it
			case s.lingerOn && s.linger == 0, c.Buffered() > 0:
				// Linux resets a connection closed with unread
				// data (RFC 2525 2.17) or with a zero linger.
				c.Abort()
			default:
				c.Close()
			}
		}
		return 0, 0
	})
}

func (p *plugin) shutdown(tid, fd, how int) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		if how < 0 || how > 2 {
			return 0, syscall.EINVAL
		}
		if s.lst != nil {
			// Linux: shutting a listener down stops it.
			if how != 1 {
				s.lst.Close()
				s.lst = nil
				return 0, 0
			}
			return 0, syscall.ENOTCONN
		}
		if s.conn == nil || s.connecting() {
			return 0, syscall.ENOTCONN
		}
		if how == 0 || how == 2 {
			s.shutRd = true
		}
		if (how == 1 || how == 2) && !s.shutWr {
			s.shutWr = true
			if !s.conn.Closed() {
				s.conn.CloseWrite()
			}
		}
		return 0, 0
	})
}

func (p *plugin) fcntl(tid, fd, cmd int, arg int64) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		switch cmd {
		case fGetfl:
			fl := syscall.O_RDWR
			if s.nonblock {
				fl |= syscall.O_NONBLOCK
			}
			return fl, 0
		case fSetfl:
			s.nonblock = arg&syscall.O_NONBLOCK != 0
			return 0, 0
		case fGetfd, fSetfd:
			return 0, 0
		}
		return 0, syscall.EINVAL
	})
}

// ioctl handles SIOCINQ, SIOCOUTQ, SIOCOUTQNSD and FIONBIO on *val.
func (p *plugin) ioctl(tid, fd int, req uint64, val *int32) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		if val == nil {
			return 0, syscall.EFAULT
		}
		switch req {
		case fionbio:
			s.nonblock = *val != 0
			return 0, 0
		case siocinq, siocoutq, siocoutqnsd:
			if s.lst != nil {
				return 0, syscall.EINVAL
			}
			if s.conn == nil || s.conn.Closed() && !s.conn.Established() {
				*val = 0
				return 0, 0
			}
			switch req {
			case siocinq:
				*val = int32(s.conn.Buffered())
			case siocoutq:
				*val = int32(s.conn.Unsent())
			case siocoutqnsd:
				info, ok := p.connInfo(s.conn)
				if !ok {
					return 0, syscall.EINVAL
				}
				*val = int32(info.Unsent)
			}
			return 0, 0
		}
		return 0, syscall.ENOTTY
	})
}

func (p *plugin) connInfo(c *stack.TCPConn) (stack.TCPConnInfo, bool) {
	for _, ci := range p.st.TCPConnections(nil) {
		if ci.LocalPort == c.LocalPort() && ci.RemotePort == c.RemotePort() && ci.Remote == c.RemoteAddr() {
			return ci, true
		}
	}
	return stack.TCPConnInfo{}, false
}

func getInt(b []byte) (int, syscall.Errno) {
	if len(b) < 4 {
		return 0, syscall.EINVAL
	}
	return int(int32(binary.LittleEndian.Uint32(b))), 0
}

func (p *plugin) setsockopt(tid, fd, level, name int, val []byte) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		if level == solSocket && name == soLinger {
			if len(val) < 8 {
				return 0, syscall.EINVAL
			}
			s.lingerOn = binary.LittleEndian.Uint32(val[0:4]) != 0
			s.linger = int(int32(binary.LittleEndian.Uint32(val[4:8])))
			return 0, 0
		}
		v, e := getInt(val)
		if e != 0 {
			return 0, e
		}
		switch {
		case level == solSocket && (name == soReuseaddr || name == soReuseport):
			s.reuseAddr = v != 0
		case level == solSocket && name == soKeepalive:
			// Applies to connections opened after it: the stack sets
			// keepalive when it makes a connection.
			s.keepAlive = v != 0
		case level == solSocket && name == soSndbuf:
			// Linux doubles the value for its bookkeeping; the stack's
			// buffers are per stack, so this is only reported back.
			s.sndBuf = max(2*v, 4608)
		case level == solSocket && name == soRcvbuf:
			s.rcvBuf = max(2*v, 2304)
		case level == solTCP && name == tcpNodelay:
			s.noDelay = v != 0
			if s.conn != nil && !s.conn.Closed() {
				s.conn.SetNoDelay(s.noDelay)
			}
		case level == solTCP && name == tcpMaxseg:
			if v < 88 && v != 0 || v > 32767 {
				return 0, syscall.EINVAL
			}
			return 0, syscall.ENOPROTOOPT // the stack has no per-connection MSS
		case level == solTCP && name == tcpKeepidle:
			s.keepIdle = v
		case level == solTCP && name == tcpKeepintvl:
			s.keepIntvl = v
		case level == solTCP && name == tcpKeepcnt:
			s.keepCnt = v
		case level == solTCP && name == tcpUserTimeout:
			if v < 0 {
				return 0, syscall.EINVAL
			}
			s.userTimeout = v
			if s.conn != nil && !s.conn.Closed() {
				s.conn.SetUserTimeout(time.Duration(v) * time.Millisecond)
			}
		case level == solTCP && name == tcpInq:
			s.inq = v != 0
		default:
			return 0, syscall.ENOPROTOOPT
		}
		return 0, 0
	})
}

// getsockopt writes the option into *val (its length is the room).
func (p *plugin) getsockopt(tid, fd, level, name int, val *[]byte) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		s, e := p.sockOf(fd)
		if e != 0 {
			return 0, e
		}
		put := func(v int) (int, syscall.Errno) {
			b := make([]byte, 4)
			binary.LittleEndian.PutUint32(b, uint32(int32(v)))
			*val = b
			return 0, 0
		}
		b2i := func(b bool) int {
			if b {
				return 1
			}
			return 0
		}
		switch {
		case level == solSocket && name == soLinger:
			b := make([]byte, 8)
			binary.LittleEndian.PutUint32(b[0:4], uint32(b2i(s.lingerOn)))
			binary.LittleEndian.PutUint32(b[4:8], uint32(int32(s.linger)))
			*val = b
			return 0, 0
		case level == solSocket && name == soError:
			return put(int(s.pendingErr(true)))
		case level == solSocket && name == soType:
			return put(sockStream)
		case level == solSocket && (name == soReuseaddr || name == soReuseport):
			return put(b2i(s.reuseAddr))
		case level == solSocket && name == soKeepalive:
			return put(b2i(s.keepAlive))
		case level == solSocket && name == soSndbuf:
			return put(s.sndBuf)
		case level == solSocket && name == soRcvbuf:
			return put(s.rcvBuf)
		case level == solTCP && name == tcpNodelay:
			return put(b2i(s.noDelay))
		case level == solTCP && name == tcpMaxseg:
			if s.conn != nil && !s.conn.Closed() {
				return put(s.conn.MSS())
			}
			return put(536) // Linux's TCP_MSS_DEFAULT before a connection
		case level == solTCP && name == tcpKeepidle:
			return put(orDefault(s.keepIdle, int(p.cfg.KeepAliveIdle/time.Second), 7200))
		case level == solTCP && name == tcpKeepintvl:
			return put(orDefault(s.keepIntvl, int(p.cfg.KeepAliveInterval/time.Second), 75))
		case level == solTCP && name == tcpKeepcnt:
			return put(orDefault(s.keepCnt, p.cfg.KeepAliveProbes, 9))
		case level == solTCP && name == tcpUserTimeout:
			return put(s.userTimeout)
		case level == solTCP && name == tcpInq:
			return put(b2i(s.inq))
		}
		return 0, syscall.ENOPROTOOPT
	})
}

func orDefault(v, cfg, linux int) int {
	if v != 0 {
		return v
	}
	if cfg != 0 {
		return cfg
	}
	return linux
}

// pollFD is one entry of a poll call.
type pollFD struct {
	fd             int
	events, revent int16
}

// revents is Linux's tcp_poll for s.
func (p *plugin) revents(s *sock) int16 {
	if s.lst != nil {
		if s.lst.Pending() > 0 {
			return pollIn | pollRdnorm
		}
		return 0
	}
	var m int16
	c := s.conn
	closed := c == nil || c.Closed()
	rcvShut := s.shutRd || c != nil && (c.PeerClosed() || c.Closed() && c.Err() != nil)
	sndShut := s.shutWr || c != nil && c.Closed() && c.Err() != nil
	if rcvShut && sndShut || closed {
		m |= pollHup
	}
	if rcvShut {
		m |= pollIn | pollRdnorm | pollRdhup
	}
	if !s.connecting() {
		if c != nil && c.Buffered() > 0 {
			m |= pollIn | pollRdnorm
		}
		if !sndShut {
			if c == nil || closed || s.writable() {
				m |= pollOut | pollWrnorm
			}
		} else {
			m |= pollOut | pollWrnorm
		}
	}
	if s.pendingErr(false) != 0 {
		m |= pollErr
	}
	return m
}

// poll fills each entry's revents and returns how many are ready; the
// timeout is in milliseconds (negative: none).
func (p *plugin) poll(tid int, fds []pollFD, timeout int) (int, syscall.Errno) {
	return p.call(tid, func() (int, syscall.Errno) {
		scan := func() int {
			n := 0
			for i := range fds {
				s := p.fds[fds[i].fd]
				var r int16
				if s == nil {
					r = pollNval
				} else {
					r = p.revents(s) & (fds[i].events | pollErr | pollHup | pollNval)
				}
				fds[i].revent = r
				if r != 0 {
					n++
				}
			}
			return n
		}
		if n := scan(); n > 0 || timeout == 0 {
			return n, 0
		}
		var deadline int64
		if timeout > 0 {
			deadline = p.clock.Now() + int64(timeout)*int64(time.Millisecond)
		}
		p.block(tid, func() bool { return scan() > 0 }, deadline)
		return scan(), 0
	})
}

// closeAll closes every socket (the plugin's free).
func (p *plugin) closeAll(tid int) {
	for fd := range p.fds {
		p.close(tid, fd)
	}
}
