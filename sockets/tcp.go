package sockets

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/stack"
)

// conn is a net.Conn over one stack.TCPConn. The application side (Read,
// Write, Close and deadlines, from any goroutine) and the core side (the
// do* methods and event, on the owning core) meet only through Network.call
// and Network.post, the read and write queues, and the one-slot wake
// channels:
//
//   - The core copies what arrives into the read queue (one producer, the
//     core; one consumer, the reader) as its Readable event fires, and
//     signals rdWake if the reader is parked (rdParked). Read takes from
//     the queue with no message to the core: a request whose bytes are in
//     costs the reader no hand-off at all, one that must wait costs one
//     wake-up. What does not fit stays in the TCP receive ring, whose
//     window then closes as for any slow reader; the core marks that
//     (rxBlocked) and the Read that makes room queues a refill. The end of
//     the stream or the connection's error (rxEnd) is published only once
//     every byte before it is in the queue.
//
//   - Write copies into the connection's write queue (one producer, the
//     writer; one consumer, the core) and queues a drain on the core
//     unless one is queued already; it waits only when the queue is full,
//     on wrWake, which the core signals as it moves bytes into the send
//     ring. Close and CloseWrite send what is staged before the FIN.
//
//   - An operation stores its argument in the conn, queues its pre-bound
//     do* method on the core (no allocation) and waits on its done
//     channel; the core runs it, stores the result and signals. The
//     channel hand-off orders the argument and result accesses.
//
//   - A write that cannot proceed (the send ring full) is registered by
//     the same do* call (wrWait: a core-side field) and the goroutine
//     parks on wrWake; the core's event handler signals it when the state
//     changes. Registration and event both happen on the core, so no
//     wake-up is lost. A parked reader and the core meet through rdParked
//     and the read queue's indexes instead, each side storing its own and
//     then loading the other's (sequentially consistent atomics), so one
//     of them always sees the other.
//
// One goroutine at a time reads and one writes (rdMu, wrMu), as net.Conn
// allows concurrent callers.
type conn struct {
	n             *Network
	core          int
	local, remote netip.AddrPort // set by attach (remote by Dial before)

	// c is the stack connection while the core has a part in it (core
	// side only): nil once the application closed it, or once it closed
	// and every byte it held is in the read queue. The stack reuses the
	// value after that, so no call may reach it through sc.
	c        *stack.TCPConn
	wrWait   bool // core side only
	dialWait bool // core side only
	// prev and next link the conns the core holds (Network.conns, core
	// side only), which a graceful Shutdown drains.
	prev, next *conn
	listed     bool

	rdMu, wrMu, ctlMu      sync.Mutex
	ctlDone                chan struct{}
	rdWake, wrWake         chan struct{} // Close signals both
	isClosed               atomic.Bool
	rdDeadline, wrDeadline deadline
	rdTimer, wrTimer       *time.Timer

	// The read side: the core stages received bytes in a read queue;
	// rdParked says a reader waits on rdWake; rxBlocked that bytes wait in
	// the receive ring for room in the queue; rxEnd the error Read returns
	// once the queue is empty (io.EOF for the peer's FIN).
	//
	// A connection starts with a small queue (rqSmall, readQueueSize),
	// which is all a request/response connection needs. The first time it
	// fills, the core moves on to a big one (rqBig, published once,
	// bigReadQueueSize): a bulk reader then takes more per Read and asks
	// for a refill a tenth as often. rqIn is the queue the core fills
	// (core side); rq the one the reader takes from (reader side), which
	// moves to rqBig once rqSmall is empty, so the bytes keep their order.
	rqSmall   *writeQueue
	rqBig     atomic.Pointer[writeQueue]
	rqIn      *writeQueue // core side
	rq        *writeQueue // reader side
	rdParked  atomic.Bool
	rxBlocked atomic.Bool
	rxEnd     atomic.Pointer[error]
	// holds counts who may still touch the conn: the application (until
	// its handle is closed and no call is left in it, tcpConn.leave), the
	// core (until it detaches the connection), and each drain or refill
	// message on its way to the core. The last to let go returns the conn
	// and its queues to their pools, so a connection is not garbage.
	holds        atomic.Int32
	coreReleased bool // core side only
	// The write side: Write stages bytes in a write queue and queues
	// drainFn unless a drain is queued already; the core moves them into
	// the TCP send ring and signals wrWake as room frees. werr is the
	// error a later Write reports (the connection reset or closed under
	// the writer).
	//
	// As on the read side, a connection starts with a small queue
	// (wqSmall), and the first Write that fills it goes on in a big one
	// (wqBig, published once); wqIn is the queue Write fills (writer
	// side), wqOut the one the core drains (core side), which moves to
	// wqBig once wqSmall is empty. wqLimit is SetWriteBuffer's bound (0:
	// none), which a big queue takes when it is published.
	wqSmall            *writeQueue
	wqBig              atomic.Pointer[writeQueue]
	wqIn               *writeQueue // writer side
	wqOut              *writeQueue // core side
	wqLimit            atomic.Int32
	drainQueued        atomic.Bool
	werr               atomic.Pointer[error]
	closeWhenSent      bool // core side: Close came with bytes still staged
	closeWriteWhenSent bool // core side: CloseWrite came with bytes still staged
	rdLimit            int  // core side: SetReadBuffer's bound, 0 for none
	ctlOp              ctlOp
	ctlErr             error
	ctlKeepAlive       stack.KeepAliveConfig // opKeepAlive's argument
	ctlNoDelay         bool                  // opNoDelay's argument
	ctlBuffer          int                   // opReadBuffer's and opWriteBuffer's argument
	// linger is SetLinger's value (-1: the default); lingerDone is closed
	// by the core when a Close with staged bytes has handed them and the
	// FIN to TCP (made by Close, before it queues opClose).
	linger       atomic.Int32
	lingerDone   chan struct{}
	lingerClosed bool        // core side: lingerDone is closed
	rdShut       atomic.Bool // CloseRead: Read reports EOF, arrivals are discarded
	dialTo       netip.AddrPort
	// The core's work on the conn, bound once when connPool makes it.
	refillFn func(*stack.Stack)
	drainFn  func(*stack.Stack)
	ctlFn    func(*stack.Stack)
}

type ctlOp uint8

const (
	opClose ctlOp = iota + 1
	opCloseWrite
	opDial
	opAbort
	opPollDial
	opKeepAlive
	opNoDelay
	opReadBuffer
	opWriteBuffer
)

// DefaultKeepAlive is the keepalive of every accepted and dialled
// connection, as Go's net sets it (15 s idle, 15 s between probes, 9
// probes): a peer that vanished without a FIN or RST is found within
// about 2.5 minutes instead of never.
var DefaultKeepAlive = stack.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// newConn takes a conn from the pool for a new connection on core. Its
// channels, timers and bound methods come with it: made once, when the
// pool first makes the conn.
func newConn(n *Network, core int) *conn {
	sc := connPool.Get().(*conn)
	sc.n, sc.core = n, core
	sc.wqSmall = writeQueuePool.Get().(*writeQueue)
	sc.wqIn, sc.wqOut = sc.wqSmall, sc.wqSmall
	sc.rqSmall = readQueuePool.Get().(*writeQueue)
	sc.rqIn, sc.rq = sc.rqSmall, sc.rqSmall
	sc.holds.Store(2)
	sc.linger.Store(-1)
	return sc
}

var (
	connPool          sync.Pool // of *conn, New set by init (it refers to connPool)
	writeQueuePool    = sync.Pool{New: func() any { return newLendingQueue() }}
	bigWriteQueuePool = sync.Pool{New: func() any { return newByteRing(bigWriteQueueSize) }}
	readQueuePool     = sync.Pool{New: func() any { return newLendingQueue() }}
	bigReadQueuePool  = sync.Pool{New: func() any { return newByteRing(bigReadQueueSize) }}
)

func init() {
	connPool.New = func() any {
		sc := &conn{
			ctlDone: make(chan struct{}, 1),
			rdWake:  make(chan struct{}, 1), wrWake: make(chan struct{}, 1),
		}
		sc.refillFn, sc.drainFn, sc.ctlFn = sc.doRefill, sc.doDrain, sc.doCtl
		return sc
	}
}

// release lets go of one holder's use of the conn (holds); the last
// returns the conn and its queues to their pools.
func (sc *conn) release() {
	if sc.holds.Add(-1) != 0 {
		return
	}
	sc.wqSmall.reset()
	sc.rqSmall.reset()
	writeQueuePool.Put(sc.wqSmall)
	readQueuePool.Put(sc.rqSmall)
	if big := sc.wqBig.Load(); big != nil {
		big.reset()
		bigWriteQueuePool.Put(big)
	}
	if big := sc.rqBig.Load(); big != nil {
		big.reset()
		bigReadQueuePool.Put(big)
	}
	sc.recycle()
}

// recycle clears a conn nobody holds any more and puts it in connPool,
// keeping what the pool made it with. A wake-up left in a channel is
// drained: the next connection's first wait would take it for its own.
func (sc *conn) recycle() {
	for _, ch := range []chan struct{}{sc.ctlDone, sc.rdWake, sc.wrWake} {
		select {
		case <-ch:
		default:
		}
	}
	for _, t := range []*time.Timer{sc.rdTimer, sc.wrTimer} {
		if t != nil {
			t.Stop()
		}
	}
	*sc = conn{
		ctlDone: sc.ctlDone, rdWake: sc.rdWake, wrWake: sc.wrWake,
		rdTimer: sc.rdTimer, wrTimer: sc.wrTimer,
		refillFn: sc.refillFn, drainFn: sc.drainFn, ctlFn: sc.ctlFn,
	}
	connPool.Put(sc)
}

// staged reports whether bytes Write staged wait in a write queue (core
// side).
func (sc *conn) staged() bool {
	big := sc.wqBig.Load()
	return !sc.wqSmall.empty() || big != nil && !big.empty()
}

// discardStaged drops the bytes Write staged (core side).
func (sc *conn) discardStaged() {
	sc.wqSmall.discard()
	if big := sc.wqBig.Load(); big != nil {
		big.discard()
	}
}

// unread reports whether received bytes wait in a read queue.
func (sc *conn) unread() bool {
	big := sc.rqBig.Load()
	return !sc.rqSmall.empty() || big != nil && !big.empty()
}

// detach ends the core's part in the connection (on the core): it will
// not touch the stack connection or the queues again.
func (sc *conn) detach() {
	if sc.c != nil {
		sc.c.Context = nil // its later events are no one's
	}
	sc.c = nil
	sc.n.conns[sc.core].remove(sc)
	if !sc.coreReleased {
		sc.coreReleased = true
		sc.release()
	}
}

// attach binds sc to a stack connection (on the core).
func (sc *conn) attach(c *stack.TCPConn) {
	sc.c = c
	c.Context = sc
	sc.n.conns[sc.core].push(sc)
	c.SetKeepAlive(DefaultKeepAlive)
	sc.local = netip.AddrPortFrom(c.LocalAddr(), c.LocalPort())
	sc.remote = netip.AddrPortFrom(c.RemoteAddr(), c.RemotePort())
}

// dialledEvent is every dialled connection's event handler: the conn is
// the stack connection's Context until it detaches, and the stack may
// keep the connection (TIME-WAIT) long after the conn serves another.
func dialledEvent(c *stack.TCPConn, ev stack.TCPEvent) {
	if sc, ok := c.Context.(*conn); ok {
		sc.onEvent(c, ev)
	}
}

// onEvent runs on the core for each event of the connection.
func (sc *conn) onEvent(c *stack.TCPConn, ev stack.TCPEvent) {
	if sc.c != c {
		return // detached: the application closed it
	}
	switch ev {
	case stack.TCPEventEstablished:
		if sc.dialWait {
			sc.dialWait = false
			signal(sc.rdWake)
		}
	case stack.TCPEventReadable, stack.TCPEventPeerClosed:
		sc.pushRx()
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
		// Staged bytes will never go: the next Write reports why.
		sc.wrWait = false
		if err := mapError(c.Err()); err != nil {
			sc.setWriteErr(err)
		} else {
			sc.setWriteErr(net.ErrClosed)
		}
		sc.discardStaged()
		sc.closeWhenSent, sc.closeWriteWhenSent = false, false
		sc.finishLinger()
		signal(sc.wrWake)
		// The received bytes go to the read queue, and the end after
		// them; once the ring is empty pushRx lets go of c.
		sc.pushRx()
	}
}

// letGoIfDone ends the core's part in a connection that has closed once
// every byte it received is in the read queue (on the core): it releases
// the stack connection (Abort on a closed connection sends nothing) and
// forgets it. The stack may reuse the value at once, for a later Dial
// say; sc.c would otherwise still point at it, and a later call on sc
// (SetKeepAlive, Close) would reach that other connection.
func (sc *conn) letGoIfDone(c *stack.TCPConn) {
	if c.Closed() && c.Buffered() == 0 && sc.c == c {
		c.Abort()
		sc.detach()
	}
}

// segmentToConn is every net.Conn's segment handler (stack.OnSegment): an
// in-order segment that arrives while the receive ring is empty goes
// straight into the read queue, one copy instead of two (into the ring,
// then out of it: pushRx). What does not fit, the stack keeps in the ring,
// and its Readable event brings pushRx.
func segmentToConn(c *stack.TCPConn, p []byte) int {
	sc, ok := c.Context.(*conn)
	if !ok || sc.c != c || sc.rdShut.Load() {
		return 0 // not attached, or CloseRead: the ring's path decides
	}
	n := sc.queueRx(p)
	if n > 0 && sc.rdParked.Load() {
		signal(sc.rdWake)
		sc.n.rt.AwaitAnswer(sc.core)
	}
	return n
}

// queueRx puts what it can of p into the read queue, moving on to a big
// queue once the small one is full and no read buffer size was set (a
// bulk reader; the reader follows once it has emptied the small one,
// bounded as the small one is, SetReadBuffer), and returns how much it
// took.
func (sc *conn) queueRx(p []byte) int {
	n := sc.rqIn.put(p)
	if n < len(p) && sc.rqIn == sc.rqSmall && sc.rqSmall.limited() == 0 {
		big := bigReadQueuePool.Get().(*writeQueue)
		big.setLimit(sc.rdLimit)
		sc.rqBig.Store(big)
		sc.rqIn = big
		n += big.put(p[n:])
	}
	return n
}

// pushRx moves received bytes from the TCP receive ring into the read
// queue, as far as it has room, publishes the end of the stream once
// every byte is across, and wakes a parked reader.
func (sc *conn) pushRx() {
	c := sc.c
	if c == nil {
		return // closed by the application: Read reports net.ErrClosed
	}
	if sc.rdShut.Load() {
		c.Discard(c.Buffered()) // CloseRead: acknowledged and dropped
		sc.letGoIfDone(c)
		return
	}
	moved := false
	for {
		a, b := c.Peek()
		if len(a) == 0 {
			break
		}
		n := sc.queueRx(a)
		if n == len(a) && len(b) > 0 {
			n += sc.queueRx(b)
		}
		if n > 0 {
			c.Discard(n)
			moved = true
		}
		if c.Buffered() == 0 {
			break
		}
		// The queue is full. Say so, then look again: a reader that made
		// room before seeing the mark would otherwise leave the rest here.
		sc.rxBlocked.Store(true)
		if sc.rqIn.free() == 0 {
			break
		}
	}
	ended := false
	if c.Buffered() == 0 && sc.rxEnd.Load() == nil {
		if err := streamEnd(c); err == io.EOF {
			sc.rxEnd.Store(&eofEnd) // the usual end, shared
			ended = true
		} else if err != nil {
			// Only here does the error go to the heap: a variable
			// declared before the test would escape on every call.
			end := err
			sc.rxEnd.Store(&end)
			ended = true
		}
	}
	if (moved || ended) && sc.rdParked.Load() {
		signal(sc.rdWake)
		sc.n.rt.AwaitAnswer(sc.core)
	}
	sc.letGoIfDone(c)
}

// eofEnd is rxEnd for a stream the peer ended with its FIN: one for all
// connections, which only read it.
var eofEnd error = io.EOF

// streamEnd is what Read reports once the bytes before it are read: io.EOF
// after the peer's FIN, the connection's error once it has closed, nil
// while it is open.
func streamEnd(c *stack.TCPConn) error {
	switch {
	case c.PeerClosed():
		return io.EOF
	case c.Closed():
		if err := mapError(c.Err()); err != nil {
			return err
		}
		return io.EOF
	}
	return nil
}

// doRefill runs on the core when a Read made room in a read queue that
// had filled.
func (sc *conn) doRefill(*stack.Stack) {
	sc.pushRx()
	sc.release() // the message's hold (sendHeld)
}

// doDrain runs on the core when Write staged bytes.
func (sc *conn) doDrain(*stack.Stack) {
	sc.drainQueued.Store(false)
	sc.drain()
	sc.release() // the message's hold (sendHeld)
}

// sendHeld queues fn (a drain or refill) for the core, holding the conn
// until it has run: a message still on its way when the application and
// the core let go would otherwise find the conn serving another
// connection.
func (sc *conn) sendHeld(fn func(*stack.Stack)) error {
	sc.holds.Add(1)
	if err := sc.n.send(sc.core, fn); err != nil {
		sc.release()
		return err
	}
	return nil
}

// drain moves staged bytes into the TCP send ring as far as it has room,
// waits for Writable if it has none, wakes a writer waiting for room, and
// finishes a Close that was waiting for the bytes to go.
func (sc *conn) drain() {
	c := sc.c
	if c == nil {
		// Detached: the queue may be another connection's by now.
		sc.setWriteErr(net.ErrClosed)
		signal(sc.wrWake)
		return
	}
	moved := false
	for {
		q := sc.wqOut
		p := q.peek()
		if len(p) == 0 {
			if q == sc.wqSmall {
				// As take on the read side: the writer filled the small
				// queue before it published the big one and never puts
				// into it again, so look at it once more after the load.
				if big := sc.wqBig.Load(); big != nil && sc.wqSmall.empty() {
					sc.wqOut = big
					continue
				}
				if !sc.wqSmall.empty() {
					continue
				}
			}
			break
		}
		n, err := c.Write(p)
		if err != nil {
			sc.discardStaged()
			sc.setWriteErr(mapError(err))
			moved = true
			break
		}
		q.advance(n)
		moved = moved || n > 0
		if n < len(p) {
			sc.wrWait = true // the send ring is full: go on at Writable
			break
		}
	}
	// A drained small queue holds no memory until the next Write.
	sc.wqSmall.lend()
	if moved {
		signal(sc.wrWake)
	}
	if !sc.staged() {
		if sc.closeWriteWhenSent {
			sc.closeWriteWhenSent = false
			c.CloseWrite()
		}
		if sc.closeWhenSent {
			sc.closeWhenSent = false
			c.Close()
			sc.finishLinger()
			sc.detach() // the last use of sc: it may go back to the pool
		}
	}
}

// waitFor returns once whoever holds mu has let go of it.
func waitFor(mu *sync.Mutex) {
	mu.Lock()
	//lint:ignore SA2001 the lock is taken only to wait for its holder
	mu.Unlock()
}

// finishLinger tells a lingering Close that its bytes and FIN are with
// TCP, or that they never will be (on the core).
func (sc *conn) finishLinger() {
	if sc.lingerDone != nil && !sc.lingerClosed {
		sc.lingerClosed = true
		close(sc.lingerDone)
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
		nc, err := s.DialTCPAddr(sc.dialTo.Addr(), sc.dialTo.Port(), stack.TCPConnOptions{OnEvent: dialledEvent, OnSegment: segmentToConn, NoDelay: true})
		if err != nil {
			sc.ctlErr = mapError(err)
			break
		}
		sc.attach(nc)
		sc.dialWait = true
	case opPollDial:
		switch {
		case c == nil:
			// Closed and let go of (letGoIfDone): werr holds why.
			sc.ctlErr = net.ErrClosed
			if e := sc.werr.Load(); e != nil {
				sc.ctlErr = *e
			}
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
			if c.Buffered() > 0 || sc.unread() {
				sc.discardStaged()
				c.Abort()
				sc.detach()
				break
			}
			// Bytes Write staged go first; the FIN follows them.
			if sc.drain(); sc.staged() {
				sc.closeWhenSent = true
				break
			}
			if sc.c != nil {
				c.Close()
				sc.detach()
			}
		}
		if !sc.closeWhenSent {
			sc.finishLinger()
		}
	case opKeepAlive:
		if c != nil {
			c.SetKeepAlive(sc.ctlKeepAlive)
		}
	case opNoDelay:
		if c != nil {
			c.SetNoDelay(sc.ctlNoDelay)
		}
	case opReadBuffer:
		if c != nil {
			// The stack clamps the request; the read queue (which the
			// core fills) takes the same bound.
			sc.rdLimit = c.SetReceiveBuffer(sc.ctlBuffer)
			sc.rqSmall.setLimit(sc.rdLimit)
			if big := sc.rqBig.Load(); big != nil {
				big.setLimit(sc.rdLimit)
			}
		}
	case opWriteBuffer:
		if c != nil {
			n := c.SetSendBuffer(sc.ctlBuffer)
			sc.wqLimit.Store(int32(n))
			sc.wqSmall.setLimit(n)
			if big := sc.wqBig.Load(); big != nil {
				big.setLimit(n)
			}
		}
	case opAbort:
		if c != nil {
			c.Abort()
			sc.detach()
		}
		sc.finishLinger()
	case opCloseWrite:
		if c != nil {
			// The FIN goes after the bytes Write staged.
			if sc.drain(); sc.staged() {
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
	return opError(op, sc.local, sc.remote, err)
}

// opError is err as *net.TCPConn reports it, with the connection's
// addresses (each unset one left nil).
func opError(op string, local, remote netip.AddrPort, err error) *net.OpError {
	e := &net.OpError{Op: op, Net: "tcp", Err: err}
	if local.IsValid() {
		e.Source = net.TCPAddrFromAddrPort(local)
	}
	if remote.IsValid() {
		e.Addr = net.TCPAddrFromAddrPort(remote)
	}
	return e
}

// Read reads what has arrived, waiting for data if none has. Bytes the
// core has staged cost no message to the core; a Read that waits costs
// one wake-up when they come.
func (sc *conn) Read(p []byte) (int, error) {
	sc.rdMu.Lock()
	defer sc.rdMu.Unlock()
	if len(p) == 0 {
		if sc.isClosed.Load() {
			return 0, sc.opError("read", net.ErrClosed)
		}
		return 0, nil
	}
	for {
		if sc.isClosed.Load() {
			return 0, sc.opError("read", net.ErrClosed)
		}
		if sc.rdShut.Load() {
			return 0, io.EOF
		}
		if sc.rdDeadline.passed() {
			return 0, sc.opError("read", errDeadline)
		}
		if n := sc.take(p); n > 0 {
			return n, nil
		}
		if e := sc.rxEnd.Load(); e != nil {
			// The end is published after the bytes before it: look once
			// more for bytes staged between the two loads.
			if n := sc.take(p); n > 0 {
				return n, nil
			}
			if *e == io.EOF {
				return 0, io.EOF
			}
			return 0, sc.opError("read", *e)
		}
		sc.rdParked.Store(true)
		if sc.unread() || sc.rxEnd.Load() != nil {
			sc.rdParked.Store(false)
			continue
		}
		err := park(sc.rdWake, nil, sc.n.rt.Done(), &sc.rdDeadline, &sc.rdTimer)
		sc.rdParked.Store(false)
		if err != nil {
			// Bytes staged before the runtime stopped are still the
			// reader's.
			if n := sc.take(p); n > 0 && !sc.isClosed.Load() {
				return n, nil
			}
			return 0, sc.opError("read", err)
		}
	}
}

// take copies staged bytes into p, and queues a refill if the core left
// bytes in the receive ring for want of room.
func (sc *conn) take(p []byte) int {
	n := sc.rq.get(p)
	if n == 0 && sc.rq == sc.rqSmall {
		if big := sc.rqBig.Load(); big != nil {
			// The core filled the small queue before it published the
			// big one, and never puts into the small one again: empty
			// now, it is done with (and not before: it may have filled
			// up between the get above and the load).
			if n = sc.rqSmall.get(p); n == 0 {
				sc.rq = big
				sc.rqSmall.lend() // done with for good
				n = sc.rq.get(p)
			}
		}
	}
	if n > 0 && sc.rq == sc.rqSmall {
		// A read that took every staged byte leaves a request/response
		// connection idle until its next exchange, whether or not a
		// reader waits for it (a client reads its answer and goes
		// quiet): the memory goes back until then.
		sc.rqSmall.lend()
	}
	if n > 0 && sc.rxBlocked.Load() && sc.rxBlocked.CompareAndSwap(true, false) {
		// A refill that cannot be queued (the runtime stopped) leaves
		// the rest unread, as the stopped runtime would anyway.
		sc.sendHeld(sc.refillFn)
	}
	return n
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
		k := sc.wqIn.put(p[total:])
		if k < len(p)-total && sc.wqIn == sc.wqSmall {
			// A bulk writer: go on in a big queue, bounded as the small
			// one is (SetWriteBuffer); the core follows once it has
			// emptied the small one.
			if limit := int(sc.wqLimit.Load()); limit == 0 || limit > sc.wqSmall.capacity() {
				big := bigWriteQueuePool.Get().(*writeQueue)
				big.setLimit(limit)
				sc.wqBig.Store(big)
				sc.wqIn = big
				k += sc.wqIn.put(p[total+k:])
			}
		}
		total += k
		if k > 0 && sc.drainQueued.CompareAndSwap(false, true) {
			if err := sc.sendHeld(sc.drainFn); err != nil {
				return total, sc.opError("write", err)
			}
		}
		if total == len(p) {
			return total, nil
		}
		if err := park(sc.wrWake, nil, sc.n.rt.Done(), &sc.wrDeadline, &sc.wrTimer); err != nil {
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
	// A parked Read or Write wakes, sees isClosed and returns.
	signal(sc.rdWake)
	signal(sc.wrWake)
	linger := sc.linger.Load()
	op := opClose
	if linger == 0 {
		op = opAbort // SO_LINGER 0: discard what is unsent and reset
	} else if linger > 0 {
		sc.lingerDone = make(chan struct{})
	}
	err := sc.ctl(op)
	if err == nil && linger > 0 {
		// Wait for the staged bytes and the FIN to be handed to TCP, at
		// most linger seconds; then reset what is left.
		t := time.NewTimer(time.Duration(linger) * time.Second)
		select {
		case <-sc.lingerDone:
		case <-t.C:
			err = sc.ctl(opAbort)
		case <-sc.n.rt.Done():
		}
		t.Stop()
	}
	// A Read or Write under way returns at its wake-up above; the
	// handle lets go of the conn once the last call has left it.
	waitFor(&sc.rdMu)
	waitFor(&sc.wrMu)
	if err != nil {
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

// CloseRead shuts the reading side down, as *net.TCPConn's: Read reports
// io.EOF from then on, and data that arrives afterwards is acknowledged
// and discarded (as Linux's shutdown(SHUT_RD) lets a peer go on sending).
func (sc *conn) CloseRead() error {
	if sc.isClosed.Load() {
		return sc.opError("close", net.ErrClosed)
	}
	sc.rdShut.Store(true)
	signal(sc.rdWake)
	return nil
}

// SetKeepAlive turns keepalive probes on (DefaultKeepAlive's timing) or
// off, as *net.TCPConn's.
func (sc *conn) SetKeepAlive(on bool) error {
	k := DefaultKeepAlive
	k.Enable = on
	return sc.setKeepAlive(k)
}

// SetKeepAlivePeriod sets the idle time before the first probe and the
// time between probes, as *net.TCPConn's.
func (sc *conn) SetKeepAlivePeriod(d time.Duration) error {
	k := DefaultKeepAlive
	if d > 0 {
		k.Idle, k.Interval = d, d
	}
	return sc.setKeepAlive(k)
}

// SetKeepAliveConfig configures keepalive as *net.TCPConn's: a zero field
// takes DefaultKeepAlive's value; a negative one leaves keepalive's
// current value... which here means the stack's own default.
func (sc *conn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	k := stack.KeepAliveConfig{Enable: cfg.Enable, Idle: DefaultKeepAlive.Idle, Interval: DefaultKeepAlive.Interval, Count: DefaultKeepAlive.Count}
	switch {
	case cfg.Idle > 0:
		k.Idle = cfg.Idle
	case cfg.Idle < 0:
		k.Idle = 0
	}
	switch {
	case cfg.Interval > 0:
		k.Interval = cfg.Interval
	case cfg.Interval < 0:
		k.Interval = 0
	}
	switch {
	case cfg.Count > 0:
		k.Count = cfg.Count
	case cfg.Count < 0:
		k.Count = 0
	}
	return sc.setKeepAlive(k)
}

func (sc *conn) setKeepAlive(k stack.KeepAliveConfig) error {
	if sc.isClosed.Load() {
		return sc.opError("set", net.ErrClosed)
	}
	sc.ctlMu.Lock()
	sc.ctlKeepAlive = k
	sc.ctlMu.Unlock()
	if err := sc.ctl(opKeepAlive); err != nil {
		return sc.opError("set", err)
	}
	return nil
}

// SetNoDelay turns Nagle's algorithm off (true, the default, as Go's net)
// or on, as *net.TCPConn's.
func (sc *conn) SetNoDelay(noDelay bool) error {
	if sc.isClosed.Load() {
		return sc.opError("set", net.ErrClosed)
	}
	sc.ctlMu.Lock()
	sc.ctlNoDelay = noDelay
	sc.ctlMu.Unlock()
	if err := sc.ctl(opNoDelay); err != nil {
		return sc.opError("set", err)
	}
	return nil
}

// SetLinger sets what Close does with bytes not yet sent, as
// *net.TCPConn's: sec < 0 (the default) returns at once and the core sends
// them, then the FIN; sec == 0 discards them and resets the connection;
// sec > 0 waits up to sec seconds for them and the FIN to go to TCP, then
// resets what is left.
func (sc *conn) SetLinger(sec int) error {
	if sc.isClosed.Load() {
		return sc.opError("set", net.ErrClosed)
	}
	sc.linger.Store(int32(max(-1, min(sec, 1<<30))))
	return nil
}

// SetReadBuffer bounds what the connection holds of received bytes, as
// *net.TCPConn's (Linux's SO_RCVBUF): the stack's receive ring, so the
// window the connection advertises, holds at most bytes, and so does the
// read queue the core fills for Read. As Linux, which doubles the value
// for its bookkeeping, the connection then holds up to about twice bytes.
// The value is a request, clamped to [stack.MinTCPBuffer, the stack's
// TCPConfig.ReceiveBuffer]. A window already advertised is not taken back
// (RFC 9293): the bound applies once the peer has used it.
func (sc *conn) SetReadBuffer(bytes int) error {
	return sc.setBuffer(opReadBuffer, bytes)
}

// SetWriteBuffer bounds what the connection holds of written bytes not
// yet acknowledged, as *net.TCPConn's (Linux's SO_SNDBUF): the stack's
// send ring holds at most bytes (unsent and unacknowledged), and Write's
// staging queue as many, so a Write of more waits for the peer's
// acknowledgements. The value is a request, clamped to
// [stack.MinTCPBuffer, the stack's TCPConfig.SendBuffer].
func (sc *conn) SetWriteBuffer(bytes int) error {
	return sc.setBuffer(opWriteBuffer, bytes)
}

func (sc *conn) setBuffer(op ctlOp, bytes int) error {
	if sc.isClosed.Load() {
		return sc.opError("set", net.ErrClosed)
	}
	sc.ctlMu.Lock()
	sc.ctlBuffer = bytes
	sc.ctlMu.Unlock()
	if err := sc.ctl(op); err != nil {
		return sc.opError("set", err)
	}
	return nil
}

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

// Dial connects to address ("tcp", "tcp4" or "tcp6"; an IP literal and a
// port, e.g. "10.0.0.2:80" or "[fd00::2]:80"; or the same for "udp").
func (n *Network) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext connects to address until ctx is done.
func (n *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	n.shareThreads()
	ap, err := parseAddr(network, address)
	if err == nil && strings.HasPrefix(network, "udp") {
		return n.dialUDP(ap)
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	sc := newConn(n, n.pickCore())
	sc.remote = ap
	sc.dialTo = ap
	// A failed dial gives the conn back: the application never had it,
	// and the core let go of it or never held it.
	fail := func(err error) (net.Conn, error) {
		e := opError("dial", sc.local, ap, err)
		e.Net = network
		sc.abandon()
		return nil, e
	}
	if err := sc.ctl(opDial); err != nil {
		return fail(err)
	}
	for {
		err := sc.ctl(opPollDial)
		if err == nil {
			return newHandle(sc), nil
		}
		if err != errInProgress {
			return fail(err)
		}
		select {
		case <-sc.rdWake:
		case <-n.rt.Done():
			return fail(net.ErrClosed)
		case <-ctx.Done():
			return fail(ctx.Err())
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
	takeMu   sync.Mutex           // serialises the queue's consumers (take)
	per      []*stack.TCPListener // by core, each touched only by its core
}

// DefaultAcceptBacklog bounds the connections waiting for Accept across
// all cores.
const DefaultAcceptBacklog = 4096

// Listen listens on address on every core. As with Go's net, "tcp" with
// ":port", "0.0.0.0:port" or "[::]:port" takes IPv4 and IPv6, "tcp4" IPv4
// only and "tcp6" IPv6 only; one of the stacks' addresses takes its family.
func (n *Network) Listen(network, address string) (net.Listener, error) {
	n.shareThreads()
	ap, err := parseAddr(network, address)
	if err == nil && !strings.HasPrefix(network, "tcp") {
		err = net.UnknownNetworkError(network)
	}
	family := 0
	if err == nil {
		family, err = n.bindFamily(network, ap)
	}
	if err == nil && ap.Port() == 0 {
		err = &net.AddrError{Err: "port 0: name a port", Addr: address}
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l := &listener{
		n: n, port: ap.Port(),
		addr:   net.TCPAddrFromAddrPort(n.wildcard(family, ap)),
		queue:  msgring.NewMPSC[*conn](DefaultAcceptBacklog),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		per:    make([]*stack.TCPListener, n.rt.NumCores()),
	}
	errs := make([]error, n.rt.NumCores())
	err = n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		core := s.Config().Core
		handler := l.handler(core)
		l.per[core], errs[core] = s.ListenTCP(l.port, stack.TCPListenOptions{OnEvent: handler, OnSegment: segmentToConn, NoDelay: true, Family: family})
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
				sc.detach()
				sc.release() // no application will have it
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
		if sc, ok := l.take(); ok {
			return newHandle(sc), nil
		}
		l.waiting.Store(true)
		if sc, ok := l.take(); ok {
			l.waiting.Store(false)
			return newHandle(sc), nil
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

// take dequeues the next connection. The queue has one consumer at a time:
// Accepts on several goroutines, and Close draining what none accepted,
// take turns (the race detector caught Close draining under an Accept).
func (l *listener) take() (*conn, bool) {
	l.takeMu.Lock()
	defer l.takeMu.Unlock()
	return l.queue.Dequeue()
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
		sc, ok := l.take()
		if !ok {
			break
		}
		sc.abandon()
	}
	return nil
}

// abandon resets a connection no application will have (a failed dial,
// one left in a closed listener's queue) and lets go of the
// application's hold on it.
func (sc *conn) abandon() {
	sc.isClosed.Store(true)
	sc.ctl(opAbort)
	sc.release()
}

func (l *listener) closeCores() {
	l.n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		if tl := l.per[s.Config().Core]; tl != nil {
			tl.Close()
		}
	})
}

func (l *listener) Addr() net.Addr { return l.addr }
