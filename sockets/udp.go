package sockets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
)

// A packet socket is bound on every core (a datagram lands on the core its
// flow hashes to). Each core copies an arriving datagram into a slot it
// owns and passes the slot to the application on an SPSC ring; ReadFrom
// copies it out and hands the slot back on a second ring. Slots are
// allocated once, when the socket opens: a steady stream of datagrams
// allocates nothing. A datagram larger than a slot gets a buffer of its own.
//
// Sending mirrors it: WriteTo copies the datagram into a free slot of the
// core that owns its flow, passes it on a third ring, and returns without
// waiting for the core (as a kernel socket's send buffer lets it); the core
// sends it and hands the slot back on a fourth. A datagram larger than a
// slot, or one that finds no free slot, waits for its core instead, after
// the staged ones.

const (
	// DefaultUDPQueue is how many datagrams each core holds for a packet
	// socket before it drops (and counts) more.
	DefaultUDPQueue = 512
	udpSlotSize     = 2048
	// udpSendSlots is how many datagrams each core stages for sending.
	udpSendSlots = 64
)

type datagram struct {
	buf  []byte
	n    int
	from netip.AddrPort
	slot bool // buf is a slot to return
}

// udpCore is one core's half of a packet socket.
type udpCore struct {
	ep    *stack.UDPEndpoint      // the core's
	in    *msgring.Ring[datagram] // core → application
	slots *msgring.Ring[[]byte]   // application → core: free slots
	spare []byte                  // the core's: a slot taken and not passed on
	_     [64]byte

	out     *msgring.Ring[datagram] // application → core: datagrams to send
	outFree *msgring.Ring[[]byte]   // core → application: send slots
	// drainQueued is set while a drain of out is queued on the core.
	drainQueued atomic.Bool
	drainFn     func(*stack.Stack)
	_           [64]byte
}

type packetConn struct {
	n        *Network
	port     uint16
	laddr    *net.UDPAddr
	raddr    netip.AddrPort // set for a connected (dialled) socket
	family   int            // 4 or 6 for one family, 0 for both
	per      []*udpCore
	wake     chan struct{}
	closed   chan struct{}
	waiting  atomic.Bool
	isClosed atomic.Bool
	next     int // the core ReadFrom looks at first (under rdMu)

	rdMu, wrMu             sync.Mutex
	rdDeadline, wrDeadline deadline
	rdTimer                *time.Timer

	wrDone  chan struct{}
	wbuf    []byte
	wdst    netip.AddrPort
	werr    error
	writeFn func(*stack.Stack)
	// sendErr is the first error a staged datagram met on its core; the
	// next write reports it (as a kernel socket reports an asynchronous
	// error).
	sendErr atomic.Pointer[error]
}

// ListenPacket opens a UDP socket on every core: "udp" with ":port",
// "0.0.0.0:port" or "[::]:port" takes IPv4 and IPv6, "udp4" IPv4 only,
// "udp6" IPv6 only, as Go's net does.
func (n *Network) ListenPacket(network, address string) (net.PacketConn, error) {
	n.shareThreads()
	ap, err := parseAddr(network, address)
	if err == nil && !strings.HasPrefix(network, "udp") {
		err = net.UnknownNetworkError(network)
	}
	family := 0
	if err == nil {
		family, err = n.bindFamily(network, ap)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	pc, err := n.openUDP(ap.Port(), netip.AddrPort{}, family, ap)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(ap), Err: mapError(err)}
	}
	return pc, nil
}

// openUDP binds port (0: a free one) on every core for datagrams of family
// (4, 6 or 0 for both), connected to raddr if it is valid; local is the
// address asked for.
func (n *Network) openUDP(port uint16, raddr netip.AddrPort, family int, local netip.AddrPort) (*packetConn, error) {
	cores := n.rt.NumCores()
	pc := &packetConn{
		n: n, per: make([]*udpCore, cores), raddr: raddr, family: family,
		wake: make(chan struct{}, 1), closed: make(chan struct{}), wrDone: make(chan struct{}, 1),
	}
	pc.writeFn = pc.doWrite
	for i := range pc.per {
		u := &udpCore{
			in: msgring.NewRing[datagram](DefaultUDPQueue), slots: msgring.NewRing[[]byte](DefaultUDPQueue),
			out: msgring.NewRing[datagram](udpSendSlots), outFree: msgring.NewRing[[]byte](udpSendSlots),
		}
		for range DefaultUDPQueue - 1 {
			u.slots.Enqueue(make([]byte, udpSlotSize))
		}
		for range udpSendSlots - 1 {
			u.outFree.Enqueue(make([]byte, udpSlotSize))
		}
		u.drainFn = func(*stack.Stack) {
			u.drainQueued.Store(false)
			pc.drainOut(u)
		}
		pc.per[i] = u
	}
	// Port 0: core 0 picks a free port, the others bind the same one.
	if port == 0 {
		var err error
		n.rt.DoWait(context.Background(), 0, func(s *stack.Stack) {
			var ep *stack.UDPEndpoint
			if ep, err = s.BindUDP(0, pc.options(0)); err == nil {
				pc.per[0].ep = ep
				port = ep.Port()
			}
		})
		if err != nil {
			return nil, err
		}
	}
	pc.port = port
	pc.laddr = net.UDPAddrFromAddrPort(n.wildcard(family, netip.AddrPortFrom(local.Addr(), port)))
	errs := make([]error, cores)
	err := n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		core := s.Config().Core
		if pc.per[core].ep != nil {
			return
		}
		pc.per[core].ep, errs[core] = s.BindUDP(port, pc.options(core))
	})
	if err = errors.Join(append(errs, err)...); err != nil {
		pc.closeCores()
		return nil, err
	}
	return pc, nil
}

// options returns the stack socket options of core's endpoint: handlers
// for the socket's families.
func (pc *packetConn) options(core int) stack.UDPOptions {
	var o stack.UDPOptions
	if pc.family != 6 {
		o.Handler = func(_ *stack.UDPEndpoint, payload []byte, from [4]byte, fromPort uint16) {
			pc.deliver(core, payload, netip.AddrPortFrom(netip.AddrFrom4(from), fromPort))
		}
	} else {
		o.Handler = func(*stack.UDPEndpoint, []byte, [4]byte, uint16) {} // IPv6 only: IPv4 is not for it
	}
	if pc.family != 4 {
		o.Handler6 = func(_ *stack.UDPEndpoint, payload []byte, from [16]byte, fromPort uint16) {
			pc.deliver(core, payload, netip.AddrPortFrom(netip.AddrFrom16(from), fromPort))
		}
	}
	return o
}

// deliver queues a datagram from src for the application; on core.
func (pc *packetConn) deliver(core int, payload []byte, src netip.AddrPort) {
	u := pc.per[core]
	if pc.raddr.IsValid() && src != pc.raddr {
		return // a connected socket takes only its peer's datagrams
	}
	d := datagram{n: len(payload), from: src}
	if len(payload) <= udpSlotSize {
		slot := u.spare
		u.spare = nil
		if slot == nil {
			var ok bool
			if slot, ok = u.slots.Dequeue(); !ok {
				pc.n.stats.UDPDrops.Add(1)
				return
			}
		}
		d.buf, d.slot = slot, true
	} else {
		d.buf = make([]byte, len(payload))
	}
	copy(d.buf, payload)
	if !u.in.Enqueue(d) {
		if d.slot {
			u.spare = d.buf // only the application may put slots back
		}
		pc.n.stats.UDPDrops.Add(1)
		return
	}
	if pc.waiting.Load() {
		signal(pc.wake)
		pc.n.rt.AwaitAnswer(core)
	}
}

// take returns the next datagram from any core, round robin.
func (pc *packetConn) take() (datagram, int, bool) {
	for k := range pc.per {
		i := (pc.next + k) % len(pc.per)
		if d, ok := pc.per[i].in.Dequeue(); ok {
			pc.next = i + 1
			return d, i, true
		}
	}
	return datagram{}, 0, false
}

func (pc *packetConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: pc.laddr, Addr: addr, Err: err}
}

// ReadFromUDPAddrPort reads a datagram and its source without allocating.
func (pc *packetConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	pc.rdMu.Lock()
	defer pc.rdMu.Unlock()
	for {
		if pc.isClosed.Load() {
			return 0, netip.AddrPort{}, pc.opError("read", nil, net.ErrClosed)
		}
		d, core, ok := pc.take()
		if !ok {
			pc.waiting.Store(true)
			d, core, ok = pc.take()
		}
		if ok {
			pc.waiting.Store(false)
			n := copy(p, d.buf[:d.n])
			if d.slot {
				pc.per[core].slots.Enqueue(d.buf)
			}
			return n, d.from, nil
		}
		if pc.rdDeadline.passed() {
			pc.waiting.Store(false)
			return 0, netip.AddrPort{}, pc.opError("read", nil, errDeadline)
		}
		err := park(pc.wake, pc.closed, pc.n.rt.Done(), &pc.rdDeadline, &pc.rdTimer)
		pc.waiting.Store(false)
		if err != nil {
			return 0, netip.AddrPort{}, pc.opError("read", nil, err)
		}
	}
}

func (pc *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := pc.ReadFromUDPAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (pc *packetConn) doWrite(s *stack.Stack) {
	// Staged datagrams go first: their drain was queued on the same
	// mailbox before this call.
	u := pc.per[s.Config().Core]
	pc.werr = mapError(u.ep.SendToAddr(pc.wbuf, pc.wdst))
	signal(pc.wrDone)
}

// drainOut sends the datagrams staged for core u and gives their slots
// back; on the core.
func (pc *packetConn) drainOut(u *udpCore) {
	for {
		d, ok := u.out.Dequeue()
		if !ok {
			return
		}
		if u.ep == nil {
			pc.setSendErr(net.ErrClosed)
		} else if err := u.ep.SendToAddr(d.buf[:d.n], d.from); err != nil {
			pc.setSendErr(mapError(err))
		}
		u.outFree.Enqueue(d.buf)
	}
}

func (pc *packetConn) setSendErr(err error) {
	pc.sendErr.CompareAndSwap(nil, &err)
}

// stage copies p into a free send slot of core and queues it, or reports
// that it cannot (too large, or no slot free); under wrMu.
func (pc *packetConn) stage(core int, p []byte, dst netip.AddrPort) (bool, error) {
	u := pc.per[core]
	if len(p) > udpSlotSize {
		return false, nil
	}
	slot, ok := u.outFree.Dequeue()
	if !ok {
		return false, nil
	}
	n := copy(slot, p)
	if !u.out.Enqueue(datagram{buf: slot, n: n, from: dst, slot: true}) {
		u.outFree.Enqueue(slot) // cannot happen: out has as many places as there are slots
		return false, nil
	}
	if u.drainQueued.CompareAndSwap(false, true) {
		if err := pc.n.send(core, u.drainFn); err != nil {
			return true, err
		}
	}
	return true, nil
}

// WriteToUDPAddrPort sends p to dst from the core that owns the flow. It
// returns once the datagram is staged for that core, without waiting for
// it. A destination with no route fails at once; an error the core meets
// sending a staged datagram (no buffer, say) is reported by the next
// write.
func (pc *packetConn) WriteToUDPAddrPort(p []byte, dst netip.AddrPort) (int, error) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if fam := pc.family; fam == 4 && !dst.Addr().Is4() || fam == 6 && !dst.Addr().Is6() {
		return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), &net.AddrError{Err: fmt.Sprintf("not an IPv%d address", fam), Addr: dst.Addr().String()})
	}
	pc.wrMu.Lock()
	defer pc.wrMu.Unlock()
	if pc.isClosed.Load() {
		return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), net.ErrClosed)
	}
	if pc.wrDeadline.passed() {
		return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), errDeadline)
	}
	if e := pc.sendErr.Swap(nil); e != nil {
		return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), *e)
	}
	if !pc.n.routable(dst.Addr()) {
		return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), syscall.ENETUNREACH)
	}
	var core int
	if dst.Addr().Is4() {
		core = pc.n.rt.FlowOwner(header.ProtocolUDP, dst.Addr().As4(), pc.n.addr.As4(), dst.Port(), pc.port)
	} else {
		core = pc.n.rt.FlowOwner6(header.ProtocolUDP, dst.Addr().As16(), pc.n.source6(dst.Addr()).As16(), dst.Port(), pc.port)
	}
	if staged, err := pc.stage(core, p, dst); staged || err != nil {
		if err != nil {
			return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), err)
		}
		return len(p), nil
	}
	pc.wbuf, pc.wdst = p, dst
	err := pc.n.call(core, pc.writeFn, pc.wrDone)
	pc.wbuf = nil
	if err == nil {
		err = pc.werr
	}
	if err != nil {
		return 0, pc.opError("write", net.UDPAddrFromAddrPort(dst), err)
	}
	return len(p), nil
}

func (pc *packetConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, pc.opError("write", addr, &net.AddrError{Err: "not a *net.UDPAddr", Addr: addr.String()})
	}
	return pc.WriteToUDPAddrPort(p, ua.AddrPort())
}

// Close unbinds the socket on every core; a blocked ReadFrom returns
// net.ErrClosed. Datagrams written before are sent first: their drains
// were queued on the cores' mailboxes before the unbinding.
func (pc *packetConn) Close() error {
	if !pc.isClosed.CompareAndSwap(false, true) {
		return pc.opError("close", nil, net.ErrClosed)
	}
	close(pc.closed)
	pc.closeCores()
	return nil
}

func (pc *packetConn) closeCores() {
	pc.n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		if u := pc.per[s.Config().Core]; u.ep != nil {
			u.ep.Close()
			u.ep = nil
		}
	})
}

func (pc *packetConn) LocalAddr() net.Addr { return pc.laddr }

func (pc *packetConn) SetDeadline(t time.Time) error {
	pc.SetReadDeadline(t)
	return pc.SetWriteDeadline(t)
}

func (pc *packetConn) SetReadDeadline(t time.Time) error {
	pc.rdDeadline.set(t)
	signal(pc.wake)
	return nil
}

func (pc *packetConn) SetWriteDeadline(t time.Time) error {
	pc.wrDeadline.set(t)
	return nil
}

// udpConn is a connected UDP socket (Dial "udp"): a net.Conn.
type udpConn struct{ *packetConn }

func (n *Network) dialUDP(raddr netip.AddrPort) (net.Conn, error) {
	fam := 4
	if raddr.Addr().Is6() {
		fam = 6
	}
	local := n.addr
	if fam == 6 {
		local = n.source6(raddr.Addr())
	}
	pc, err := n.openUDP(0, raddr, fam, netip.AddrPortFrom(local, 0))
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udp", Addr: net.UDPAddrFromAddrPort(raddr), Err: mapError(err)}
	}
	return udpConn{pc}, nil
}

func (u udpConn) Read(p []byte) (int, error) {
	n, _, err := u.ReadFromUDPAddrPort(p)
	return n, err
}

func (u udpConn) Write(p []byte) (int, error) { return u.WriteToUDPAddrPort(p, u.raddr) }

func (u udpConn) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(u.raddr) }
