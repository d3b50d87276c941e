package sockets

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/stack"
)

// conn is a net.Conn over one stack.TCPConn. The application side (Read,
// Write, Close and deadlines, from any goroutine) and the core side (the
// do* methods and event, on the owning core) meet only through Network.call
// and Network.post, the write queue, and the one-slot wake channels:
//
//   - Write copies into the connection's write queue (one producer, the
//     writer; one consumer, the core) and queues a drain on the core
//     unless one is queued already; it waits only when the queue is full,
//     on wrWake, which the core signals as it moves bytes into the send
//     ring. Close and CloseWrite send what is staged before the FIN.
//   - An operation stores its argument in the conn, queues its pre-bound
//     do* method on the core (no allocation) and waits on its done
//     channel; the core runs it, stores the result and signals. The
//     channel hand-off orders the argument and result accesses.
//   - An operation that cannot proceed (nothing to read, the send ring
//     full) is registered by the same do* call (rdWait, wrWait: core-side
//     fields) and the goroutine parks on rdWake or wrWake; the core's
//     event handler signals it when the state changes. Registration and
//     event both happen on the core, so no wake-up is lost.
//
// One goroutine at a time reads and one writes (rdMu, wrMu), as net.Conn
// allows concurrent callers.
type conn struct {
	n            *Network
	core         int
	laddr, raddr *net.TCPAddr

	c              *stack.TCPConn // core side only
	rdWait, wrWait bool           // core side only
	dialWait       bool           // core side only

	rdMu, wrMu, ctlMu      sync.Mutex
	rdDone                 chan struct{}
	ctlDone, ctlDone2      chan struct{}
	rdWake, wrWake         chan struct{}
	closed                 chan struct{} // closed by Close
	isClosed               atomic.Bool
	rdDeadline, wrDeadline deadline
	rdTimer, wrTimer       *time.Timer

	rbuf []byte
	rn   int
	rerr error
	// The write side: Write stages bytes in wq and queues drainFn unless
	// a drain is queued already; the core moves them into the TCP send
	// ring and signals wrWake as room frees. werr is the error a later
	// Write reports (the connection reset or closed under the writer).
	wq                 *writeQueue
	drainQueued        atomic.Bool
	werr               atomic.Pointer[error]
	closeWhenSent      bool // core side: Close came with bytes still staged
	closeWriteWhenSent bool // core side: CloseWrite came with bytes still staged
	ctlOp              ctlOp
	ctlErr             error
	dialTo             netip.AddrPort
	readFn             func(*stack.Stack)
	cancelReadFn       func(*stack.Stack)
	drainFn            func(*stack.Stack)
	ctlFn              func(*stack.Stack)
	onEventFn          stack.TCPHandler
}

type ctlOp uint8

const (
	opClose ctlOp = iota + 1
	opCloseWrite
	opDial
	opAbort
	opPollDial
)

func newConn(n *Network, core int) *conn {
	sc := &conn{
		n: n, core: core,
		rdDone: make(chan struct{}, 1), ctlDone: make(chan struct{}, 1), ctlDone2: make(chan struct{}, 1),
		rdWake: make(chan struct{}, 1), wrWake: make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	sc.readFn, sc.drainFn, sc.ctlFn, sc.onEventFn = sc.doRead, sc.doDrain, sc.doCtl, sc.onEvent
	sc.wq = newWriteQueue()
	sc.cancelReadFn = sc.doCancelRead
	return sc
}

// attach binds sc to a stack connection (on the core).
func (sc *conn) attach(c *stack.TCPConn) {
	sc.c = c
	c.Context = sc
	l, r := c.LocalAddr(), c.RemoteAddr()
	sc.laddr = &net.TCPAddr{IP: net.IP(l[:]).To16(), Port: int(c.LocalPort())}
	sc.raddr = &net.TCPAddr{IP: net.IP(r[:]).To16(), Port: int(c.RemotePort())}
}

// onEvent runs on the core for each event of the connection.
func (sc *conn) onEvent(c *stack.TCPConn, ev stack.TCPEvent) {
	switch ev {
	case stack.TCPEventEstablished:
		if sc.dialWait {
			sc.dialWait = false
			signal(sc.rdWake)
		}
	case stack.TCPEventReadable, stack.TCPEventPeerClosed:
		if sc.rdWait {
			sc.tryRead()
		}
	case stack.TCPEventWritable:
		if sc.wrWait {
			sc.wrWait = false
			sc.drain()
		}
	case stack.TCPEventClosed:
		if sc.dialWait {
			sc.dialWait = false
			signal(sc.rdWake)
		}
		if sc.rdWait {
			sc.tryRead()
		}
		// Staged bytes will never go: the next Write reports why.
		sc.wrWait = false
		if err := mapError(c.Err()); err != nil {
			sc.setWriteErr(err)
		} else {
			sc.setWriteErr(net.ErrClosed)
		}
		sc.wq.discard()
		sc.closeWhenSent, sc.closeWriteWhenSent = false, false
		signal(sc.wrWake)
	}
}

// doRead takes a read request (rbuf): it completes at once if data, the
// end of the stream or an error is there, or stays pending (rdWait) until
// the connection's next event completes it. Either way the application
// learns the result from one signal on rdDone.
func (sc *conn) doRead(*stack.Stack) {
	sc.rdWait = true
	sc.tryRead()
}

// tryRead completes the pending read if it can.
func (sc *conn) tryRead() {
	c := sc.c
	sc.rn, sc.rerr = 0, nil
	switch {
	case c == nil:
		sc.rerr = net.ErrClosed
	default:
		sc.rn = c.Read(sc.rbuf)
		if sc.rn == 0 {
			switch {
			case c.Buffered() == 0 && c.PeerClosed():
				sc.rerr = io.EOF
			case c.Closed():
				if sc.rerr = mapError(c.Err()); sc.rerr == nil {
					sc.rerr = io.EOF
				}
			default:
				return // stays pending
			}
		}
	}
	sc.rdWait = false
	signal(sc.rdDone)
}

// doCancelRead withdraws a pending read (the reader's deadline passed or
// the connection closed): after it, rdDone holds a token only if the read
// completed first.
func (sc *conn) doCancelRead(*stack.Stack) {
	sc.rdWait = false
	signal(sc.ctlDone2)
}

// doDrain runs on the core when Write staged bytes.
func (sc *conn) doDrain(*stack.Stack) {
	sc.drainQueued.Store(false)
	sc.drain()
}

// drain moves staged bytes into the TCP send ring as far as it has room,
// waits for Writable if it has none, wakes a writer waiting for room, and
// finishes a Close that was waiting for the bytes to go.
func (sc *conn) drain() {
	c := sc.c
	if c == nil {
		sc.wq.discard()
		sc.setWriteErr(net.ErrClosed)
		signal(sc.wrWake)
		return
	}
	moved := false
	for {
		p := sc.wq.peek()
		if len(p) == 0 {
			break
		}
		n, err := c.Write(p)
		if err != nil {
			sc.wq.discard()
			sc.setWriteErr(mapError(err))
			moved = true
			break
		}
		sc.wq.advance(n)
		moved = moved || n > 0
		if n < len(p) {
			sc.wrWait = true // the send ring is full: go on at Writable
			break
		}
	}
	if moved {
		signal(sc.wrWake)
	}
	if sc.wq.empty() {
		if sc.closeWriteWhenSent {
			sc.closeWriteWhenSent = false
			c.CloseWrite()
		}
		if sc.closeWhenSent {
			sc.closeWhenSent = false
			c.Close()
			sc.c = nil
		}
	}
}

func (sc *conn) setWriteErr(err error) {
	if sc.werr.Load() == nil {
		sc.werr.Store(&err)
	}
}

func (sc *conn) doCtl(s *stack.Stack) {
	sc.ctlErr = nil
	c := sc.c
	switch sc.ctlOp {
	case opDial:
		a := sc.dialTo.Addr().As4()
		nc, err := s.DialTCP(a, sc.dialTo.Port(), stack.TCPConnOptions{OnEvent: sc.onEventFn, NoDelay: true})
		if err != nil {
			sc.ctlErr = mapError(err)
			break
		}
		sc.attach(nc)
		sc.dialWait = true
	case opPollDial:
		switch {
		case c == nil:
			sc.ctlErr = net.ErrClosed
		case c.Closed():
			if sc.ctlErr = mapError(c.Err()); sc.ctlErr == nil {
				sc.ctlErr = net.ErrClosed
			}
		case !c.Established():
			sc.ctlErr = errInProgress
			sc.dialWait = true
		}
	case opClose:
		if c != nil {
			// As Linux: closing with unread data resets the connection.
			if c.Buffered() > 0 {
				sc.wq.discard()
				c.Abort()
				sc.c = nil
				break
			}
			// Bytes Write staged go first; the FIN follows them.
			if sc.drain(); !sc.wq.empty() {
				sc.closeWhenSent = true
				break
			}
			if sc.c != nil {
				c.Close()
				sc.c = nil
			}
		}
	case opAbort:
		if c != nil {
			c.Abort()
			sc.c = nil
		}
	case opCloseWrite:
		if c != nil {
			// The FIN goes after the bytes Write staged.
			if sc.drain(); !sc.wq.empty() {
				sc.closeWriteWhenSent = true
			} else if sc.c != nil {
				c.CloseWrite()
			}
		}
	}
	signal(sc.ctlDone)
}

var errInProgress = errors.New("connect in progress")

func (sc *conn) ctl(op ctlOp) error {
	sc.ctlMu.Lock()
	defer sc.ctlMu.Unlock()
	sc.ctlOp = op
	if err := sc.n.call(sc.core, sc.ctlFn, sc.ctlDone); err != nil {
		return err
	}
	return sc.ctlErr
}

func (sc *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: sc.laddr, Addr: sc.raddr, Err: err}
}

// Read reads what has arrived, waiting for data if none has. It costs one
// message to the core and one wake-up: the core fills p itself when data
// comes.
func (sc *conn) Read(p []byte) (int, error) {
	sc.rdMu.Lock()
	defer sc.rdMu.Unlock()
	if sc.isClosed.Load() {
		return 0, sc.opError("read", net.ErrClosed)
	}
	if sc.rdDeadline.passed() {
		return 0, sc.opError("read", errDeadline)
	}
	if len(p) == 0 {
		return 0, nil
	}
	sc.rbuf = p
	defer func() { sc.rbuf = nil }()
	if err := sc.n.send(sc.core, sc.readFn); err != nil {
		return 0, sc.opError("read", err)
	}
	err := sc.waitRead()
	if err == nil {
		return sc.result()
	}
	// Give up: withdraw the request, then see whether it completed before
	// the core saw the withdrawal.
	if cerr := sc.n.call(sc.core, sc.cancelReadFn, sc.ctlDone2); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if sc.completed() {
		return sc.result()
	}
	return 0, sc.opError("read", err)
}

// waitRead waits for the core to complete the read; it returns an error
// (the deadline passed, the connection or the runtime closed) when the
// reader must give up instead.
func (sc *conn) waitRead() error {
	for {
		var timeout <-chan time.Time
		if at := sc.rdDeadline.at.Load(); at != 0 {
			wait := time.Until(time.Unix(0, at))
			if wait <= 0 {
				return errDeadline
			}
			if sc.rdTimer == nil {
				sc.rdTimer = time.NewTimer(wait)
			} else {
				sc.rdTimer.Reset(wait)
			}
			timeout = sc.rdTimer.C
		}
		select {
		case <-sc.rdDone:
			if sc.rdTimer != nil {
				sc.rdTimer.Stop()
			}
			return nil
		case <-sc.rdWake: // the deadline changed: look again
		case <-timeout:
			return errDeadline
		case <-sc.closed:
			return net.ErrClosed
		case <-sc.n.rt.Done():
			return net.ErrClosed
		}
	}
}

// completed consumes the rdDone token if the core signalled one.
func (sc *conn) completed() bool {
	select {
	case <-sc.rdDone:
		return true
	default:
		return false
	}
}

func (sc *conn) result() (int, error) {
	switch {
	case sc.rn > 0:
		return sc.rn, nil
	case sc.rerr == io.EOF:
		return 0, io.EOF
	default:
		return 0, sc.opError("read", sc.rerr)
	}
}

// Write stages p for the core and returns once all of it is staged,
// waiting only when the staging queue and the send ring are full (as a
// kernel socket's send buffer); the core sends it in order. An error the
// connection meets later (a reset) is reported by the next Write.
func (sc *conn) Write(p []byte) (int, error) {
	sc.wrMu.Lock()
	defer sc.wrMu.Unlock()
	total := 0
	for {
		if sc.isClosed.Load() {
			return total, sc.opError("write", net.ErrClosed)
		}
		if e := sc.werr.Load(); e != nil {
			return total, sc.opError("write", *e)
		}
		if sc.wrDeadline.passed() {
			return total, sc.opError("write", errDeadline)
		}
		k := sc.wq.put(p[total:])
		total += k
		if k > 0 && sc.drainQueued.CompareAndSwap(false, true) {
			if err := sc.n.send(sc.core, sc.drainFn); err != nil {
				return total, sc.opError("write", err)
			}
		}
		if total == len(p) {
			return total, nil
		}
		if err := park(sc.wrWake, sc.closed, sc.n.rt.Done(), &sc.wrDeadline, &sc.wrTimer); err != nil {
			return total, sc.opError("write", err)
		}
	}
}

// Close closes the connection: a FIN after the data written, or a reset if
// received data was left unread (as Linux does). Blocked Read and Write
// calls return net.ErrClosed.
func (sc *conn) Close() error {
	if !sc.isClosed.CompareAndSwap(false, true) {
		return sc.opError("close", net.ErrClosed)
	}
	close(sc.closed)
	if err := sc.ctl(opClose); err != nil {
		return sc.opError("close", err)
	}
	return nil
}

// CloseWrite sends a FIN after the data written; reading goes on.
func (sc *conn) CloseWrite() error {
	if sc.isClosed.Load() {
		return sc.opError("close", net.ErrClosed)
	}
	if err := sc.ctl(opCloseWrite); err != nil {
		return sc.opError("close", err)
	}
	return nil
}

// CloseRead is accepted for compatibility with *net.TCPConn; data that
// arrives afterwards is still acknowledged and buffered.
func (sc *conn) CloseRead() error { return nil }

func (sc *conn) LocalAddr() net.Addr  { return sc.laddr }
func (sc *conn) RemoteAddr() net.Addr { return sc.raddr }

func (sc *conn) SetDeadline(t time.Time) error {
	sc.SetReadDeadline(t)
	sc.SetWriteDeadline(t)
	return nil
}

// SetReadDeadline sets the read deadline and wakes a blocked Read so it
// sees the new one.
func (sc *conn) SetReadDeadline(t time.Time) error {
	sc.rdDeadline.set(t)
	signal(sc.rdWake)
	return nil
}

func (sc *conn) SetWriteDeadline(t time.Time) error {
	sc.wrDeadline.set(t)
	signal(sc.wrWake)
	return nil
}

// Dial connects to address ("tcp" or "tcp4", an IPv4 literal and a port).
func (n *Network) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext connects to address until ctx is done.
func (n *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := parseAddr(network, address)
	if err == nil && (network == "udp" || network == "udp4") {
		return n.dialUDP(ap)
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	raddr := net.TCPAddrFromAddrPort(ap)
	sc := newConn(n, n.pickCore())
	sc.raddr = raddr
	sc.dialTo = ap
	if err := sc.ctl(opDial); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err}
	}
	for {
		err := sc.ctl(opPollDial)
		if err == nil {
			return sc, nil
		}
		if err != errInProgress {
			return nil, &net.OpError{Op: "dial", Net: network, Source: sc.laddr, Addr: raddr, Err: err}
		}
		select {
		case <-sc.rdWake:
		case <-n.rt.Done():
			return nil, &net.OpError{Op: "dial", Net: network, Source: sc.laddr, Addr: raddr, Err: net.ErrClosed}
		case <-ctx.Done():
			sc.isClosed.Store(true)
			close(sc.closed)
			sc.ctl(opAbort)
			return nil, &net.OpError{Op: "dial", Net: network, Source: sc.laddr, Addr: raddr, Err: ctx.Err()}
		}
	}
}

// listener is a net.Listener spanning every core: each core has its own
// stack listener, and the connections its handshakes complete are put on
// one multi-producer ring that Accept takes from.
type listener struct {
	n      *Network
	addr   *net.TCPAddr
	port   uint16
	queue  *msgring.MPSC[*conn]
	wake   chan struct{}
	closed chan struct{}
	// waiting is set by an Accept about to park; the cores signal wake
	// only then (a sequentially consistent pair with the queue check).
	waiting  atomic.Bool
	isClosed atomic.Bool
	per      []*stack.TCPListener // by core, each touched only by its core
}

// DefaultAcceptBacklog bounds the connections waiting for Accept across
// all cores.
const DefaultAcceptBacklog = 4096

// Listen listens on address ("tcp" or "tcp4"; ":port" or the stacks'
// address and a port) on every core.
func (n *Network) Listen(network, address string) (net.Listener, error) {
	ap, err := parseAddr(network, address)
	if err == nil && network != "tcp" && network != "tcp4" {
		err = net.UnknownNetworkError(network)
	}
	if err == nil && ap.Addr() != netip.IPv4Unspecified() && ap.Addr() != n.addr {
		err = &net.AddrError{Err: "not the address of this stack (" + n.addr.String() + ")", Addr: ap.Addr().String()}
	}
	if err == nil && ap.Port() == 0 {
		err = &net.AddrError{Err: "port 0: name a port", Addr: address}
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l := &listener{
		n: n, port: ap.Port(),
		addr:   net.TCPAddrFromAddrPort(netip.AddrPortFrom(n.addr, ap.Port())),
		queue:  msgring.NewMPSC[*conn](DefaultAcceptBacklog),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		per:    make([]*stack.TCPListener, n.rt.NumCores()),
	}
	errs := make([]error, n.rt.NumCores())
	err = n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		core := s.Config().Core
		handler := l.handler(core)
		l.per[core], errs[core] = s.ListenTCP(l.port, stack.TCPListenOptions{OnEvent: handler, NoDelay: true})
	})
	if err = errors.Join(append(errs, err)...); err != nil {
		l.closeCores()
		return nil, &net.OpError{Op: "listen", Net: network, Addr: l.addr, Err: mapError(err)}
	}
	return l, nil
}

// handler returns the event handler of core's listener: it wraps each new
// connection in a conn, queues it for Accept and passes later events on.
func (l *listener) handler(core int) stack.TCPHandler {
	return func(c *stack.TCPConn, ev stack.TCPEvent) {
		if ev == stack.TCPEventEstablished && c.Context == nil {
			sc := newConn(l.n, core)
			sc.attach(c)
			if l.isClosed.Load() || !l.queue.Enqueue(sc) {
				l.n.stats.AcceptOverflows.Add(1)
				sc.c = nil
				c.Abort()
				return
			}
			if l.waiting.Load() {
				signal(l.wake)
			}
			return
		}
		if sc, ok := c.Context.(*conn); ok {
			sc.onEvent(c, ev)
		}
	}
}

// Accept waits for the next connection from any core.
func (l *listener) Accept() (net.Conn, error) {
	for {
		if l.isClosed.Load() {
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
		}
		if sc, ok := l.queue.Dequeue(); ok {
			return sc, nil
		}
		l.waiting.Store(true)
		if sc, ok := l.queue.Dequeue(); ok {
			l.waiting.Store(false)
			return sc, nil
		}
		select {
		case <-l.wake:
		case <-l.closed:
		case <-l.n.rt.Done():
			l.waiting.Store(false)
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
		}
		l.waiting.Store(false)
	}
}

// Close stops listening on every core; connections not yet accepted are
// reset, accepted ones go on.
func (l *listener) Close() error {
	if !l.isClosed.CompareAndSwap(false, true) {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	close(l.closed)
	l.closeCores()
	for {
		sc, ok := l.queue.Dequeue()
		if !ok {
			break
		}
		sc.isClosed.Store(true)
		close(sc.closed)
		sc.ctl(opAbort)
	}
	return nil
}

func (l *listener) closeCores() {
	l.n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		if tl := l.per[s.Config().Core]; tl != nil {
			tl.Close()
		}
	})
}

func (l *listener) Addr() net.Addr { return l.addr }
