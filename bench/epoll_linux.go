//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/affinity"
)

// LinuxEpoll is the kernel's stack over loopback driven the way
// SysMkstack drives mkstack: per core, one server thread and one client
// thread, locked and pinned to the core's CPU, each running an epoll loop
// over non-blocking sockets. The server thread owns its own SO_REUSEPORT
// listener (or UDP socket), and the client thread keeps Flows
// connections (or UDP sockets) with one request in flight each, sending
// the next request from the loop iteration that read the response. In
// the fixed-rate mode a flow sends when its transaction (a stream's
// chunk) is due, its thread's wait timed (in nanoseconds) to wake for it.
func LinuxEpoll() System {
	return SystemFunc(func(ctx context.Context, p Params) (Point, error) {
		pt, err := runLinuxEpoll(ctx, p)
		pt.System, pt.API, pt.Client, pt.Driver = SysLinuxEpoll, "epoll", "epoll", "loopback"
		return pt, err
	})
}

func runLinuxEpoll(ctx context.Context, p Params) (Point, error) {
	addr := loopbackAddr(p)
	if p.Idle {
		var d net.Dialer
		return RunConn(ctx, &ConnTarget{Addr: addr, Dial: d.DialContext, serve: epollServe(ctx, p, addr, func(fn func() error) error { return fn() })}, p)
	}
	m := newMeter(p, p.Cores*p.Flows)
	stopServer, port, err := epollServe(ctx, p, addr, func(fn func() error) error { return fn() })(m)
	if err != nil {
		return Point{}, fmt.Errorf("serve: %w", err)
	}
	stopClients, err := startEpollClients(m, netip.MustParseAddr(addr), port)
	if err != nil {
		stopServer()
		return Point{}, fmt.Errorf("load: %w", err)
	}
	pt, err := m.window(ctx)
	// The load ends before the server, as RunConn's does, so no flow
	// sees its server go away in the middle of a transaction.
	stopClients()
	stopServer()
	pt.Latency, pt.Family = m.latency(), familyOf(addr)
	return pt, err
}

// sockaddr is ip:port as a socket address of ip's family (AF_INET for an
// IPv4 or IPv4-mapped address, else AF_INET6), and that family.
func sockaddr(ip netip.Addr, port int) (unix.Sockaddr, int) {
	ip = ip.Unmap()
	if ip.Is4() {
		return &unix.SockaddrInet4{Addr: ip.As4(), Port: port}, unix.AF_INET
	}
	return &unix.SockaddrInet6{Addr: ip.As16(), Port: port}, unix.AF_INET6
}

// sockaddrPort is the port of an AF_INET or AF_INET6 socket address.
func sockaddrPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

// Limits of the epoll loops.
const (
	// epollBatch is the most events one wait returns.
	epollBatch = 256
	// epollIdleWait bounds a wait with nothing scheduled: a loop notices
	// a stop set without a wake-up (the meter's) this late at most.
	epollIdleWait = 100 * time.Millisecond
	// epollPacedWait bounds a wait in the fixed-rate mode.
	epollPacedWait = time.Millisecond
	// epollRetry is how long a tcp-crr flow whose connection failed waits
	// before it connects again, so a refused or port-starved flow does
	// not spin.
	epollRetry = time.Millisecond
	// udpResendAfter is how long a datagram may go unanswered before the
	// client counts it lost and resends it (as clientFlow.resendLost).
	udpResendAfter = 100 * time.Millisecond
	// epollMaxPending is the unsent output a server connection may hold
	// before the server stops reading it: a client that pipelines without
	// reading cannot make it buffer without bound.
	epollMaxPending = 256 << 10
	// udpBatchSize is the datagrams one recvmmsg takes and one sendmmsg
	// answers.
	udpBatchSize = 32
)

// epollLoop is one thread's epoll instance and the eventfd that wakes it.
// Whoever wakes a loop closes it, after its thread has ended: a thread
// closing its own eventfd could free the number for a socket that a late
// wake-up would then write to.
type epollLoop struct {
	ep, wake int
	events   []unix.EpollEvent
	// Arguments of epoll_ctl and epoll_pwait2, here so that no call
	// allocates them.
	ev unix.EpollEvent
	ts unix.Timespec
}

// wakeTag marks the eventfd's events; listeners use listenerTag. Flows
// and connections are tagged with their index, from 0.
const (
	wakeTag     = -1
	listenerTag = -2
)

func newEpollLoop() (*epollLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	l := &epollLoop{ep: ep, wake: wake, events: make([]unix.EpollEvent, epollBatch)}
	if err := l.add(wake, unix.EPOLLIN, wakeTag); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *epollLoop) add(fd int, events uint32, tag int32) error {
	l.ev = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: tag}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &l.ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// wakeUp makes the loop's wait return; any goroutine may call it.
func (l *epollLoop) wakeUp() {
	var one = [8]byte{1}
	unix.Write(l.wake, one[:])
}

func (l *epollLoop) close() {
	unix.Close(l.wake)
	unix.Close(l.ep)
}

var noEpollPwait2 atomic.Bool

// wait waits up to d for events. It uses epoll_pwait2, whose timeout is
// in nanoseconds, so the fixed-rate mode sends on time rather than up to
// a millisecond late (or spins); kernels older than 5.11 get epoll_wait
// with d rounded up to a millisecond.
func (l *epollLoop) wait(d time.Duration) (int, error) {
	d = max(d, 0)
	if !noEpollPwait2.Load() {
		l.ts = unix.NsecToTimespec(int64(d))
		r, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
			uintptr(len(l.events)), uintptr(unsafe.Pointer(&l.ts)), 0, 0)
		if e == 0 {
			return int(r), nil
		}
		if e != unix.ENOSYS {
			return 0, e
		}
		noEpollPwait2.Store(true)
	}
	return unix.EpollWait(l.ep, l.events, int((d+time.Millisecond-1)/time.Millisecond))
}

// Raw system calls where x/sys/unix's wrappers allocate (a Sockaddr per
// accept) or lack what is needed (the byte count of a send with
// MSG_NOSIGNAL; recvmmsg and sendmmsg).

func accept4(fd int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// send writes b to a connected socket; MSG_NOSIGNAL turns a write to a
// connection the peer reset into EPIPE rather than a SIGPIPE, whatever
// signal handling the program using this package set up.
func send(fd int, b []byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func recvmmsg(fd int, hs []unix.Mmsghdr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func sendmmsg(fd int, hs []unix.Mmsghdr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// noDelay sets TCP_NODELAY; the option's value lives in a global so no
// call allocates it.
func noDelay(fd int) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY,
		uintptr(unsafe.Pointer(&sockoptOne)), 4, 0)
	if e != 0 {
		return e
	}
	return nil
}

var sockoptOne int32 = 1

// addProcs changes GOMAXPROCS by n. The epoll threads hold a P (the Go
// scheduler's right to run Go code) whenever they are not in epoll_wait,
// so each gets one of its own, as core.Start gives mkstack's cores:
// without it, a 1-core point (GOMAXPROCS 1 once the process is confined
// to one CPU) has the server and client threads of the core take turns
// with the P, each hand-off waiting for the scheduler's monitor.
func addProcs(n int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)+n))
}

var procsMu sync.Mutex

// lockThread locks the calling goroutine to its thread and, when the
// point is pinned, the thread to core's CPU. The lock is never undone
// (affinity.Pin's rule): the thread ends with the goroutine.
func lockThread(p Params, core int) error {
	runtime.LockOSThread()
	if p.CPUs == nil {
		return nil
	}
	return affinity.Pin(p.CPUs[core])
}

// epollServe serves p's workload from the kernel at addr (IPv4 or IPv6),
// the way ConnTarget.serve wants: one locked thread per core, pinned to CPUs[i]
// when the point is pinned, with its own SO_REUSEPORT listener (or UDP
// socket) on one shared port and an epoll loop over it and the
// connections it accepts. The sockets are made by functions run through
// in, which may enter a network namespace first: they stay in it, and the
// threads serve them from wherever they run. A pinned point of more than
// one core steers each flow to the core on whose CPU its packets arrive
// (steerByCPU). stop closes every socket and returns once the threads
// have ended.
func epollServe(ctx context.Context, p Params, addr string, in func(func() error) error) func(m *meter) (stop func(), port int, err error) {
	return func(m *meter) (func(), int, error) {
		ip, err := netip.ParseAddr(addr)
		if err != nil || ip.Zone() != "" {
			return nil, 0, fmt.Errorf("epoll server: address %q: want an IPv4 or IPv6 address", addr)
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("epoll server: %w", err)
		}
		fds := make([]int, 0, p.Cores)
		closeFDs := func() {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		port := 0
		for i := range p.Cores {
			var fd int
			err := in(func() (err error) {
				fd, port, err = epollListen(p.Workload, ip, port)
				return err
			})
			if err != nil {
				closeFDs()
				return nil, 0, fmt.Errorf("epoll server core %d: %w", i, err)
			}
			fds = append(fds, fd)
		}
		if p.CPUs != nil && p.Cores > 1 {
			if err := steerByCPU(fds[0], p.CPUs); err != nil {
				closeFDs()
				return nil, 0, fmt.Errorf("epoll server: %w", err)
			}
		}
		s := &epollServer{procs: p.Cores}
		addProcs(s.procs)
		ready := make(chan error, p.Cores)
		for i, fd := range fds {
			s.wg.Go(func() { s.serve(p, m, i, fd, ready) })
		}
		var errs []error
		for range p.Cores {
			errs = append(errs, <-ready)
		}
		if err := errors.Join(errs...); err != nil {
			s.stop()
			return nil, 0, err
		}
		return sync.OnceFunc(s.stop), port, nil
	}
}

// epollListen makes one non-blocking SO_REUSEPORT socket of the group on
// ip:port (port 0: a free port) and returns it and its port: a listener,
// or a UDP socket for udp-echo.
func epollListen(w Workload, ip netip.Addr, port int) (fd, bound int, err error) {
	typ, what := unix.SOCK_STREAM, "listen"
	if w == UDPEcho {
		typ, what = unix.SOCK_DGRAM, "bind udp"
	}
	where := fmt.Sprintf("%s %s", what, netip.AddrPortFrom(ip, uint16(port)))
	sa, family := sockaddr(ip, port)
	fd, err = unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("%s: socket: %w", where, err)
	}
	fail := func(op string, err error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s: %s: %w", where, op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("SO_REUSEPORT", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if family == unix.AF_INET6 {
		// This address alone, never IPv4-mapped ones.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if w != UDPEcho {
		// tcp-crr opens connections in bursts of a core's flows at once.
		if err := unix.Listen(fd, 4096); err != nil {
			return fail("listen", err)
		}
	}
	bsa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, sockaddrPort(bsa), nil
}

// steerByCPU attaches to the reuseport group of fd a classic BPF program
// that hands a new connection (or a datagram) to the socket of the core
// whose CPU processed its first packet: the group's socket i, core i's,
// when that CPU is cpus[i]. Over loopback and veth the sender's CPU
// processes the packet, so a client pinned to core i's CPU is served by
// core i, both sides of each flow on one CPU as in SysMkstack, and no
// wake-up crosses CPUs. A packet processed on any other CPU gets an index
// past the group, for which the kernel falls back to its hash.
func steerByCPU(fd int, cpus []int) error {
	const skfAdCPU = 0xfffff000 + 36 // SKF_AD_OFF + SKF_AD_CPU
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdCPU}}
	for i, cpu := range cpus {
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(cpu), Jf: 1},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: uint32(i)})
	}
	prog = append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: math.MaxUint32})
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog); err != nil {
		return fmt.Errorf("steer by CPU (SO_ATTACH_REUSEPORT_CBPF): %w", err)
	}
	return nil
}

// epollServer is the server threads of a point.
type epollServer struct {
	procs    int // added to GOMAXPROCS while the threads run
	wg       sync.WaitGroup
	stopping atomic.Bool
	mu       sync.Mutex
	loops    []*epollLoop
}

// stop tells the threads to end, wakes them, waits for them and closes
// their loops.
func (s *epollServer) stop() {
	s.stopping.Store(true)
	s.mu.Lock()
	for _, l := range s.loops {
		l.wakeUp()
	}
	s.mu.Unlock()
	s.wg.Wait()
	for _, l := range s.loops {
		l.close()
	}
	addProcs(-s.procs)
}

// serve is server thread i: it reports on ready whether it started, then
// serves fd until stop, and closes fd and every connection it accepted.
func (s *epollServer) serve(p Params, m *meter, i, fd int, ready chan<- error) {
	c := &epollServerCore{m: m, w: p.Workload, core: i, lfd: fd}
	defer unix.Close(fd)
	if err := lockThread(p, i); err != nil {
		ready <- fmt.Errorf("epoll server core %d: %w", i, err)
		return
	}
	l, err := newEpollLoop()
	if err == nil {
		// Level-triggered: a burst larger than one accept (or one
		// recvmmsg) per wait is reported again rather than drained with
		// a call that ends in EAGAIN.
		err = l.add(fd, unix.EPOLLIN, listenerTag)
	}
	if err != nil {
		if l != nil {
			l.close()
		}
		ready <- fmt.Errorf("epoll server core %d: %w", i, err)
		return
	}
	c.loop = l
	s.mu.Lock()
	s.loops = append(s.loops, l)
	s.mu.Unlock()
	if c.w == UDPEcho {
		c.udp = newUDPBatch()
	} else {
		c.buf = make([]byte, StreamChunk)
	}
	ready <- nil
	for !s.stopping.Load() {
		n, err := l.wait(epollIdleWait)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			break // a bad epoll fd: nothing left to serve
		}
		for _, ev := range l.events[:n] {
			switch ev.Pad {
			case wakeTag:
			case listenerTag:
				if c.w == UDPEcho {
					c.echoUDP()
				} else {
					c.accept()
				}
			default:
				if sc := c.conns[ev.Pad]; sc.fd == int(ev.Fd) {
					c.event(sc, ev.Events)
				}
			}
		}
	}
	for _, sc := range c.conns {
		if sc.fd >= 0 {
			unix.Close(sc.fd)
		}
	}
}

// epollServerCore is one server thread's state, owned by that thread.
type epollServerCore struct {
	m     *meter
	w     Workload
	core  int
	lfd   int
	loop  *epollLoop
	conns []*serverConn // by tag
	free  []int32       // tags of closed connections, for reuse
	buf   []byte        // reads of echo and streams: consumed at once
	udp   *udpBatch
}

// serverConn is one accepted connection. Its buffers are kept when it
// closes and reused by a later connection, so tcp-crr's connection per
// transaction allocates nothing.
type serverConn struct {
	fd  int // -1 once closed
	tag int32
	// in holds a partial HTTP request.
	in  []byte
	nin int
	// out[off:] is output the socket would not take yet.
	out []byte
	off int
	// echoed counts the bytes echoed, for tcp-crr with
	// CRRServerClosesFirst; closeOnFlush closes once out is sent.
	echoed       int
	closeOnFlush bool
}

func (c *epollServerCore) accept() {
	fd, err := accept4(c.lfd)
	if err != nil {
		return // EAGAIN, or a connection reset before it was accepted
	}
	if err := noDelay(fd); err != nil {
		unix.Close(fd)
		return
	}
	var sc *serverConn
	if n := len(c.free); n > 0 {
		sc = c.conns[c.free[n-1]]
		c.free = c.free[:n-1]
	} else {
		sc = &serverConn{tag: int32(len(c.conns)), out: make([]byte, 0, 4096)}
		if c.w == HTTP {
			sc.in = make([]byte, 4096)
		}
		c.conns = append(c.conns, sc)
	}
	sc.fd, sc.nin, sc.out, sc.off, sc.echoed, sc.closeOnFlush = fd, 0, sc.out[:0], 0, 0, false
	// Edge-triggered: a connection is registered once, with EPOLLOUT
	// too, so a response the socket would not take is sent on the next
	// edge without an epoll_ctl to ask for it and another to stop.
	if err := c.loop.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, sc.tag); err != nil {
		c.close(sc)
	}
}

func (c *epollServerCore) close(sc *serverConn) {
	unix.Close(sc.fd)
	sc.fd = -1
	c.free = append(c.free, sc.tag)
}

// event handles one edge of sc: send what is pending, then read until the
// socket is drained (or the pending output is too large).
func (c *epollServerCore) event(sc *serverConn, ev uint32) {
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && sc.off < len(sc.out) {
		if !c.flush(sc) {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	// The peer's FIN (or an error) raises no further edge: with it in
	// ev, read to the end even after a short read.
	hup := ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for sc.fd >= 0 && !sc.closeOnFlush && len(sc.out)-sc.off < epollMaxPending {
		buf := c.buf
		if c.w == HTTP {
			buf = sc.in[sc.nin:]
			if len(buf) == 0 {
				c.close(sc) // a request larger than the buffer
				return
			}
		}
		n, err := unix.Read(sc.fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			if err != unix.EAGAIN {
				c.close(sc)
			}
			return
		case n == 0:
			c.close(sc) // the peer closed: so does the server
			return
		}
		if !c.serve(sc, buf[:n]) {
			return
		}
		// A short read drained the socket; a later segment raises a
		// new edge (epoll(7)).
		if n < len(buf) && !hup {
			return
		}
	}
}

// serve applies the workload's logic to data just read on sc and reports
// whether sc is still open.
func (c *epollServerCore) serve(sc *serverConn, data []byte) bool {
	switch c.w {
	case TCPStream, TCPStreamMany:
		if len(c.m.slots) > 0 {
			c.m.add(c.core%len(c.m.slots), uint64(len(data)))
		}
		return true
	case HTTP:
		sc.nin += len(data)
		queued := false
		for {
			n := httpMessageLen(sc.in[:sc.nin])
			if n < 0 {
				c.close(sc)
				return false
			}
			if n == 0 {
				break
			}
			sc.nin = copy(sc.in, sc.in[n:sc.nin])
			sc.out = append(sc.out, httpResponse...)
			queued = true
		}
		// Pipelined requests read together are answered with one write.
		return !queued || c.flush(sc)
	}
	// Echo (udp-echo is served by echoUDP).
	if sc.off < len(sc.out) {
		sc.out = append(sc.out, data...) // after what is pending
	} else {
		n, err := send(sc.fd, data)
		if err != nil && err != unix.EAGAIN {
			c.close(sc)
			return false
		}
		sc.out, sc.off = append(sc.out[:0], data[n:]...), 0
	}
	if c.w == TCPCRR && CRRServerClosesFirst {
		if sc.echoed += len(data); sc.echoed >= MsgSize {
			sc.closeOnFlush = true
			if sc.off == len(sc.out) {
				c.close(sc)
				return false
			}
		}
	}
	return true
}

// flush sends sc's pending output until it is all sent or the socket
// would block, and reports whether sc is still open.
func (c *epollServerCore) flush(sc *serverConn) bool {
	for sc.off < len(sc.out) {
		n, err := send(sc.fd, sc.out[sc.off:])
		switch {
		case err == unix.EAGAIN:
			return true // the next EPOLLOUT edge sends the rest
		case err == unix.EINTR:
		case err != nil:
			c.close(sc)
			return false
		default:
			sc.off += n
		}
	}
	sc.out, sc.off = sc.out[:0], 0
	if sc.closeOnFlush {
		c.close(sc)
		return false
	}
	return true
}

// udpBatch is the message headers, addresses and buffers of one
// recvmmsg and the sendmmsg that echoes what it got.
type udpBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family's
	bufs  []byte
}

const udpBufSize = 2048

func newUDPBatch() *udpBatch {
	b := &udpBatch{
		hdrs:  make([]unix.Mmsghdr, udpBatchSize),
		iovs:  make([]unix.Iovec, udpBatchSize),
		names: make([]unix.RawSockaddrInet6, udpBatchSize),
		bufs:  make([]byte, udpBatchSize*udpBufSize),
	}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*udpBufSize]
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	return b
}

// echoUDP answers one batch of datagrams; the listener is level-triggered,
// so a fuller queue is reported again.
func (c *epollServerCore) echoUDP() {
	b := c.udp
	for i := range b.hdrs {
		b.iovs[i].SetLen(udpBufSize)
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	n, err := recvmmsg(c.lfd, b.hdrs)
	if err != nil || n == 0 {
		return
	}
	for i := range n {
		b.iovs[i].SetLen(int(b.hdrs[i].Len))
	}
	for sent := 0; sent < n; {
		k, err := sendmmsg(c.lfd, b.hdrs[sent:n])
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			return // a full socket buffer drops the rest: the client resends
		}
		sent += k
	}
}

// Client flow states.
const (
	flowIdle      = iota // no transaction: between two, or the flow has ended
	flowWaiting          // the next transaction waits for wake (it is not due yet, or a retry)
	flowSending          // the request is partly written
	flowAwaiting         // the request is written, the response is due
	flowDraining         // tcp-crr, the server closing first: the response is in, the FIN is due
	flowStreaming        // a stream's writer
)

// epollFlow is one flow of a client thread.
type epollFlow struct {
	slot  int // the meter's
	fd    int // -1: no socket
	state uint8
	more  bool  // tcp-crr draining: start another transaction after the FIN
	start int64 // the transaction's start (meter.begin)
	sent  int64 // udp-echo: when the datagram was last sent
	wake  int64 // flowWaiting: when to go on
	off   int   // bytes of the request written
	// left is what a stream has still to write of the chunk it began:
	// the chunk is done, and the next may begin, once it is 0.
	left int
	in   []byte
	got  int // bytes of the response in in
}

// epollClient is one client thread, owning its flows.
type epollClient struct {
	m          *meter
	w          Workload
	loop       *epollLoop
	flows      []epollFlow
	dst        unix.Sockaddr
	family     int // dst's: AF_INET or AF_INET6
	req        []byte
	waiting    int   // flows in flowWaiting
	nextResend int64 // udp-echo: the next look for lost datagrams
}

// startEpollClients starts one locked (and pinned) client thread per core
// of m's point, each with its Flows flows to ip:port (IPv4 or IPv6), and
// returns once they all run. stop, to call once the meter has stopped, wakes the threads and
// waits for them to end.
func startEpollClients(m *meter, ip netip.Addr, port int) (stop func(), err error) {
	p := m.p
	var wg sync.WaitGroup
	loops := make([]*epollLoop, p.Cores)
	addProcs(p.Cores)
	ready := make(chan error, p.Cores)
	for c := range p.Cores {
		wg.Go(func() {
			cl, err := newEpollClient(m, c, ip, port)
			if err != nil {
				ready <- fmt.Errorf("epoll client core %d: %w", c, err)
				return
			}
			loops[c] = cl.loop
			ready <- nil
			cl.run()
		})
	}
	var errs []error
	for range p.Cores {
		errs = append(errs, <-ready)
	}
	stop = sync.OnceFunc(func() {
		m.stop()
		for _, l := range loops {
			if l != nil {
				l.wakeUp()
			}
		}
		wg.Wait()
		for _, l := range loops {
			if l != nil {
				l.close()
			}
		}
		addProcs(-p.Cores)
	})
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// newEpollClient sets up client thread c on the calling goroutine: locks
// and pins it, and opens its flows.
func newEpollClient(m *meter, c int, ip netip.Addr, port int) (*epollClient, error) {
	p := m.p
	if err := lockThread(p, c); err != nil {
		return nil, err
	}
	l, err := newEpollLoop()
	if err != nil {
		return nil, err
	}
	dst, family := sockaddr(ip, port)
	cl := &epollClient{m: m, w: p.Workload, loop: l, flows: make([]epollFlow, p.Flows),
		dst: dst, family: family, req: make([]byte, MsgSize)}
	switch cl.w {
	case HTTP:
		cl.req = httpRequest
	case TCPStream, TCPStreamMany:
		cl.req = streamChunk[:]
	}
	for j := range cl.flows {
		f := &cl.flows[j]
		f.slot, f.fd = c*p.Flows+j, -1
		f.in = make([]byte, 4096)
	}
	for j := range cl.flows {
		f := &cl.flows[j]
		switch cl.w {
		case UDPEcho:
			err = cl.openUDP(f, j)
		case TCPCRR:
			continue // each transaction connects
		default:
			err = cl.connect(f)
		}
		if err != nil {
			cl.closeFlows()
			l.close()
			return nil, err
		}
	}
	return cl, nil
}

func (cl *epollClient) openUDP(f *epollFlow, tag int) error {
	fd, err := unix.Socket(cl.family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("udp socket: %w", err)
	}
	f.fd = fd
	if err := unix.Connect(fd, cl.dst); err != nil {
		return fmt.Errorf("udp connect: %w", err)
	}
	// Level-triggered: one datagram is read per event, and a late
	// duplicate (the answer to a resent request) is reported again.
	return cl.loop.add(fd, unix.EPOLLIN, int32(tag))
}

// connect opens f's TCP connection without waiting for it: the request
// written at once may meet EAGAIN until the handshake ends, and the
// EPOLLOUT edge of the established connection sends it.
func (cl *epollClient) connect(f *epollFlow) error {
	fd, err := unix.Socket(cl.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := noDelay(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("TCP_NODELAY: %w", err)
	}
	if err := unix.Connect(fd, cl.dst); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	if err := cl.loop.add(fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, int32(f.slot%len(cl.flows))); err != nil {
		unix.Close(fd)
		return err
	}
	f.fd, f.got, f.off, f.left = fd, 0, 0, 0
	if cl.w.Stream() {
		f.state = flowStreaming
	}
	return nil
}

func (cl *epollClient) closeFlows() {
	for i := range cl.flows {
		cl.closeFlow(&cl.flows[i])
	}
}

func (cl *epollClient) closeFlow(f *epollFlow) {
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
	f.got = 0
}

// run is the thread's loop, until the meter stops.
func (cl *epollClient) run() {
	defer cl.closeFlows()
	m := cl.m
	for i := range cl.flows {
		f := &cl.flows[i]
		switch cl.w {
		case TCPStream, TCPStreamMany:
			cl.stream(f)
		default:
			cl.next(f)
		}
	}
	bound := epollIdleWait
	if m.paced() {
		bound = epollPacedWait
	}
	for !m.stopping.Load() {
		now := m.now()
		d := min(time.Duration(cl.timers(now)-now), bound)
		n, err := cl.loop.wait(d)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for _, ev := range cl.loop.events[:n] {
			if ev.Pad < 0 {
				continue // the wake-up
			}
			f := &cl.flows[ev.Pad]
			if f.fd != int(ev.Fd) {
				continue
			}
			if cl.w == UDPEcho {
				cl.udpEvent(f)
			} else {
				cl.tcpEvent(f, ev.Events)
			}
		}
	}
}

// timers starts the waiting flows whose time has come and, for udp-echo,
// resends lost datagrams; it returns when the next of these is due.
func (cl *epollClient) timers(now int64) int64 {
	next := int64(math.MaxInt64)
	if cl.waiting > 0 {
		for i := range cl.flows {
			f := &cl.flows[i]
			if f.state != flowWaiting {
				continue
			}
			if f.wake <= now {
				cl.waiting--
				f.state = flowIdle
				cl.next(f)
			}
			if f.state == flowWaiting {
				next = min(next, f.wake)
			}
		}
	}
	if cl.w == UDPEcho {
		if now >= cl.nextResend {
			cl.resendLost(now)
			cl.nextResend = now + int64(udpResendAfter/2)
		}
		next = min(next, cl.nextResend)
	}
	return next
}

// wait parks f until t.
func (cl *epollClient) wait(f *epollFlow, t int64) {
	if f.state != flowWaiting {
		cl.waiting++
	}
	f.state, f.wake = flowWaiting, t
}

// next starts f's next transaction, or in the fixed-rate mode parks f
// until it is due.
func (cl *epollClient) next(f *epollFlow) {
	m := cl.m
	if m.stopping.Load() {
		f.state = flowIdle
		return
	}
	if cl.w.Stream() {
		// A stream's chunks are paced by stream.
		f.state = flowStreaming
		cl.stream(f)
		return
	}
	if m.paced() {
		if due := m.due(f.slot); m.now() < due {
			cl.wait(f, due)
			return
		}
	}
	f.start, f.off = m.begin(f.slot), 0
	switch cl.w {
	case UDPEcho:
		f.state, f.sent = flowAwaiting, m.now()
		// A datagram that does not go out (an ICMP error reported on
		// this write) is resent by resendLost.
		unix.Write(f.fd, cl.req)
		return
	case TCPCRR:
		if err := cl.connect(f); err != nil {
			m.fail(f.slot)
			cl.wait(f, m.now()+int64(epollRetry))
			return
		}
	}
	cl.send(f)
}

// send writes what is left of f's request.
func (cl *epollClient) send(f *epollFlow) {
	for f.off < len(cl.req) {
		n, err := send(f.fd, cl.req[f.off:])
		switch {
		case err == unix.EAGAIN:
			f.state = flowSending
			return
		case err == unix.EINTR:
		case err != nil:
			cl.broken(f)
			return
		default:
			f.off += n
		}
	}
	f.state = flowAwaiting
}

// stream writes chunks while the socket takes them (the EPOLLOUT edge
// goes on) until the meter stops or, in the fixed-rate mode, until the
// next chunk is not yet due (f waits for it). A chunk the socket took
// only part of is finished before the next one begins; a late flow
// writes its overdue chunks back to back, never one before it is due.
func (cl *epollClient) stream(f *epollFlow) {
	m := cl.m
	for !m.stopping.Load() {
		if f.left == 0 {
			if m.paced() {
				if due := m.due(f.slot); m.now() < due {
					cl.wait(f, due)
					return
				}
				m.begin(f.slot)
			}
			f.left = len(cl.req)
		}
		n, err := send(f.fd, cl.req[len(cl.req)-f.left:])
		switch {
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
		case err != nil:
			cl.broken(f)
			return
		default:
			f.left -= n
		}
	}
}

// broken ends f's connection after an error: tcp-crr connects again
// shortly, the other workloads' flows end, as connFlow's do.
func (cl *epollClient) broken(f *epollFlow) {
	stopping := cl.m.stopping.Load()
	if !stopping {
		cl.m.fail(f.slot)
	}
	cl.closeFlow(f)
	if f.state == flowWaiting {
		cl.waiting--
	}
	f.state = flowIdle
	if cl.w == TCPCRR && !stopping {
		cl.wait(f, cl.m.now()+int64(epollRetry))
	}
}

func (cl *epollClient) tcpEvent(f *epollFlow, ev uint32) {
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		switch f.state {
		case flowSending:
			cl.send(f)
		case flowStreaming:
			cl.stream(f)
		}
		if f.fd < 0 {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	hup := ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for f.fd >= 0 {
		buf := f.in[f.got:]
		if len(buf) == 0 {
			cl.broken(f) // a response larger than the buffer
			return
		}
		n, err := unix.Read(f.fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			cl.broken(f)
			return
		case n == 0:
			cl.eof(f)
			return
		}
		f.got += n
		if !cl.response(f) {
			return
		}
		if n < len(buf) && !hup {
			return
		}
	}
}

// response acts on f's input once it holds a whole response, and reports
// whether f's connection is still to be read.
func (cl *epollClient) response(f *epollFlow) bool {
	if f.state != flowAwaiting {
		cl.broken(f) // bytes no request asked for
		return false
	}
	n := MsgSize
	if cl.w == HTTP {
		if n = httpMessageLen(f.in[:f.got]); n < 0 {
			cl.broken(f)
			return false
		}
	}
	if n == 0 || f.got < n {
		return true
	}
	f.got = copy(f.in, f.in[n:f.got])
	more := cl.m.done(f.slot, f.start)
	f.state = flowIdle
	if cl.w == TCPCRR {
		if CRRServerClosesFirst {
			f.state, f.more = flowDraining, more
			return true
		}
		// The client closes first: the TIME-WAIT is its own.
		cl.closeFlow(f)
		if more {
			cl.next(f)
		}
		return false
	}
	if more {
		cl.next(f)
	}
	return f.fd >= 0
}

// eof handles the server's FIN.
func (cl *epollClient) eof(f *epollFlow) {
	if f.state != flowDraining {
		cl.broken(f)
		return
	}
	cl.closeFlow(f)
	f.state = flowIdle
	if f.more {
		cl.next(f)
	}
}

func (cl *epollClient) udpEvent(f *epollFlow) {
	_, err := unix.Read(f.fd, f.in)
	if err != nil || f.state != flowAwaiting {
		return // an ICMP error (resendLost resends), or a late duplicate
	}
	f.state = flowIdle
	if cl.m.done(f.slot, f.start) {
		cl.next(f)
	}
}

// resendLost resends each datagram unanswered for udpResendAfter and
// counts it failed. The transaction keeps its start, so its latency
// shows the loss.
func (cl *epollClient) resendLost(now int64) {
	if cl.m.stopping.Load() {
		return
	}
	for i := range cl.flows {
		f := &cl.flows[i]
		if f.state == flowAwaiting && now-f.sent >= int64(udpResendAfter) {
			cl.m.fail(f.slot)
			f.sent = now
			unix.Write(f.fd, cl.req)
		}
	}
}
