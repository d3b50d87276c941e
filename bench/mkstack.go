package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

// The mem wire's two ends (with their IPv6 addresses, /64) and the
// workloads' ports.
const (
	serverAddr  = "10.0.0.1"
	clientAddr  = "10.0.0.2"
	serverAddr6 = "fd00::1"
	clientAddr6 = "fd00::2"
	tcpPort     = 7
	udpPort     = 9
)

// memServerAddr is the address the load dials on the mem wire: the
// server's IPv4 one, or with p.IPv6 its IPv6 one.
func memServerAddr(p Params) string {
	if p.IPv6 {
		return serverAddr6
	}
	return serverAddr
}

// memPair is a server runtime and a client runtime of k cores each over
// one mem wire with k queues per NIC: core i owns server queue i and
// client queue i, and both core i's run on CPUs[i] (when pinned).
type memPair struct {
	wire           *mem.Wire
	server, client *sockets.Network
}

func startMemPair(p Params) (*memPair, error) {
	wire, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		// TSO: the kernel's loopback, the peer, moves 64 KiB segments too.
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: p.Cores, PoolBuffers: 8192, TSO: true},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: p.Cores, PoolBuffers: 8192, TSO: true},
	}})
	if err != nil {
		return nil, err
	}
	mp := &memPair{wire: wire}
	if mp.server, err = startMemStack(wire, 0, serverAddr, serverAddr6+"/64", p); err != nil {
		wire.Close()
		return nil, fmt.Errorf("server stack: %w", err)
	}
	if mp.client, err = startMemStack(wire, 1, clientAddr, clientAddr6+"/64", p); err != nil {
		mp.server.Shutdown(context.Background())
		wire.Close()
		return nil, fmt.Errorf("client stack: %w", err)
	}
	return mp, nil
}

func startMemStack(wire *mem.Wire, nic int, addr, addr6 string, p Params) (*sockets.Network, error) {
	rt, err := core.Start(core.Config{
		NIC:   wire.NIC(nic),
		Cores: p.Cores,
		CPUs:  p.CPUs,
		// The server's core i and the client's core i share CPU i (or
		// four cores share two CPUs): the runtime's default spin
		// window, in which a spinning core yields its CPU to its peer
		// between looks. (Before cores yielded, an idle core here slept
		// at once, SpinWindow -1: a spinning one stole its peer's CPU.)
		StackConfig: func(int) stack.Config { return stackConfig(p, addr, addr6) },
		// The client opens connections faster than the kernel's clients
		// do (tcp-crr at 136K a second on one core), and Linux's range
		// of 28 232 ports was all in TIME-WAIT: dials failed. Every
		// port but the well-known ones: 320K a second at TIME-WAIT's
		// 200 ms (stackConfig).
		LocalPorts: rss.PortRange{First: 1024, Last: 65535},
	})
	if err != nil {
		return nil, err
	}
	return sockets.New(rt)
}

// stackConfig is the configuration of every mkstack stack of a point of
// p, at addr (a /24), and with p.IPv6 at addr6 (an address with its
// prefix length) too.
func stackConfig(p Params, addr, addr6 string) stack.Config {
	cfg := stack.Config{Addr: netip.MustParsePrefix(addr + "/24")}
	if p.IPv6 {
		cfg.Addrs6 = []netip.Prefix{netip.MustParsePrefix(addr6)}
	}
	if !p.Workload.Stream() {
		// Small rings: a transaction is 64 bytes, and tcp-crr
		// keeps thousands of connections in TIME-WAIT.
		cfg.TCP.SendBuffer, cfg.TCP.ReceiveBuffer = 16<<10, 16<<10
	}
	if p.Workload == TCPCRR {
		// The client closes first and holds each port in
		// TIME-WAIT for 2*MSL: 200 ms keeps its ports from
		// running out (Linux reuses them on loopback,
		// tcp_tw_reuse=2).
		cfg.TCP.MSL = 100 * time.Millisecond
	}
	return cfg
}

// serveHandlers binds the workload's server on every core of rt with the
// per-core handlers (serverHandler, a UDP echo), counting into m.
func serveHandlers(ctx context.Context, rt *core.Runtime, m *meter) error {
	errs := make([]error, rt.NumCores())
	serve := func(s *stack.Stack) {
		c := s.Config().Core
		if m.p.Workload == UDPEcho {
			_, errs[c] = s.BindUDP(udpPort, stack.UDPOptions{
				Handler: func(ep *stack.UDPEndpoint, b []byte, from [4]byte, port uint16) {
					ep.SendTo(b, from, port)
				},
				Handler6: func(ep *stack.UDPEndpoint, b []byte, from [16]byte, port uint16) {
					ep.SendTo6(b, from, port)
				},
			})
			return
		}
		_, errs[c] = s.ListenTCP(tcpPort, stack.TCPListenOptions{OnEvent: serverHandler(m, c), OnSegment: serverSegment(m, c), NoDelay: true})
	}
	if err := rt.BroadcastWait(ctx, serve); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// close shuts both runtimes down (open connections are reset after a short
// grace) and closes the wire.
func (mp *memPair) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := errors.Join(mp.client.Shutdown(ctx), mp.server.Shutdown(ctx))
	return errors.Join(err, mp.wire.Close())
}

// stacks returns each core's stack of n, for use on that core only.
func stacks(n *sockets.Network) ([]*stack.Stack, error) {
	out := make([]*stack.Stack, n.Runtime().NumCores())
	err := n.Runtime().BroadcastWait(context.Background(), func(s *stack.Stack) { out[s.Config().Core] = s })
	return out, err
}

// MkstackHandlers is mkstack over the mem wire with the load generated by
// per-core handlers on the client runtime's cores (stack.TCPHandler and
// UDP handlers, the API sockets.ServeTCP and DialHandler wrap): each
// response starts the next request in the same call, with no goroutine
// and no thread wake-up between them.
func MkstackHandlers() System { return SystemFunc(runMkstackHandlers) }

func runMkstackHandlers(ctx context.Context, p Params) (Point, error) {
	mp, err := startMemPair(p)
	if err != nil {
		return Point{}, err
	}
	m := newMeter(p, p.Cores*p.Flows)
	pt, err := mkstackHandlerLoad(ctx, mp, m)
	if cerr := mp.close(); err == nil && cerr != nil {
		err = fmt.Errorf("shut down: %w", cerr)
	}
	pt.System, pt.Family = SysMkstack, familyOf(memServerAddr(p))
	return pt, err
}

func mkstackHandlerLoad(ctx context.Context, mp *memPair, m *meter) (Point, error) {
	p := m.p
	cli, err := stacks(mp.client)
	if err != nil {
		return Point{}, err
	}
	if err := serveHandlers(ctx, mp.server.Runtime(), m); err != nil {
		return Point{}, err
	}
	errs := make([]error, p.Cores)
	dst := netip.MustParseAddr(memServerAddr(p))
	flows := make([]*clientFlow, 0, p.Cores*p.Flows)
	for c := range p.Cores {
		for j := range p.Flows {
			flows = append(flows, &clientFlow{m: m, i: c*p.Flows + j, s: cli[c], dst: dst})
		}
	}
	// The core a reply to local port port lands on: over IPv6 the
	// client's source is its fd00::2 (the stack picks its first address
	// that is not link-local for a global destination).
	owner := func(s *stack.Stack, port uint16) int {
		if dst.Is6() {
			return mp.client.Runtime().FlowOwner6(17, dst.As16(), netip.MustParseAddr(clientAddr6).As16(), udpPort, port)
		}
		return mp.client.Runtime().FlowOwner(17, dst.As4(), s.Addr().As4(), udpPort, port)
	}
	start := func(s *stack.Stack) {
		c := s.Config().Core
		port := uint16(20000)
		for _, f := range flows[c*p.Flows : (c+1)*p.Flows] {
			if p.Workload == UDPEcho {
				// A local port whose replies hash to this core.
				for ; port < 60000 && owner(s, port) != c; port++ {
				}
				if errs[c] = f.startUDP(port); errs[c] != nil {
					return
				}
				port++
				continue
			}
			if p.Workload == TCPCRR {
				f.startNext()
				continue
			}
			if errs[c] = f.dial(); errs[c] != nil {
				return
			}
		}
	}
	if err := mp.client.Runtime().BroadcastWait(ctx, start); err != nil {
		return Point{}, err
	}
	if err := errors.Join(errs...); err != nil {
		m.stop()
		return Point{}, fmt.Errorf("start the load: %w", err)
	}
	var kick sync.WaitGroup
	kickCtx, stopKick := context.WithCancel(ctx)
	if p.Workload == UDPEcho || p.Workload == TCPCRR || m.paced() {
		// The cores have no timers for the application: a goroutine
		// starts the transactions (a stream's chunks) that have come due
		// in the fixed-rate mode (every 250 µs, so a transaction may
		// start up to that late, and its latency counts from when it was
		// due; a stream's chunks that came due meanwhile go out
		// together), retries a tcp-crr
		// connect that found every local port in TIME-WAIT, and resends
		// a datagram lost to a full queue, which would stall its flow,
		// once it has waited 100 ms.
		every := 50 * time.Millisecond
		switch {
		case m.paced():
			every = 250 * time.Microsecond
		case p.Workload == TCPCRR:
			every = 5 * time.Millisecond // a connect that found no free port
		}
		kick.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-kickCtx.Done():
					return
				case <-t.C:
					mp.client.Runtime().Broadcast(func(s *stack.Stack) {
						c := s.Config().Core
						for _, f := range flows[c*p.Flows : (c+1)*p.Flows] {
							if f.waiting {
								f.startNext()
							}
							f.resendLost()
						}
					})
				}
			}
		})
	}
	pt, err := m.window(ctx)
	stopKick()
	kick.Wait()
	// Every handler that recorded a latency ran before this call did.
	if qerr := mp.client.Runtime().BroadcastWait(context.Background(), func(*stack.Stack) {}); err == nil && qerr != nil {
		err = qerr
	}
	pt.Latency = m.latency()
	return pt, err
}

// serverHandler serves the workload on server core c.
// serverSegment is the streams' sink on the handler API as an application
// written for it would take them: each segment's bytes counted where the
// NIC put them (OnSegment), never copied into the receive ring, as an epoll
// server's read() copies them once into its buffer. Other workloads read
// from the ring (nil).
func serverSegment(m *meter, c int) stack.TCPSegmentHandler {
	if w := m.p.Workload; w != TCPStream && w != TCPStreamMany {
		return nil
	}
	return func(conn *stack.TCPConn, p []byte) int {
		m.add(c, uint64(len(p)))
		return len(p)
	}
}

func serverHandler(m *meter, c int) stack.TCPHandler {
	w := m.p.Workload
	var scratch []byte
	return func(conn *stack.TCPConn, ev stack.TCPEvent) {
		switch ev {
		case stack.TCPEventReadable:
			a, b := conn.Peek()
			switch w {
			case TCPStream, TCPStreamMany:
				n := len(a) + len(b)
				m.add(c, uint64(n))
				conn.Discard(n)
			case HTTP:
				for {
					a, b = conn.Peek()
					buf := joined(a, b, &scratch)
					n := httpMessageLen(buf)
					if n < 0 {
						conn.Abort()
						return
					}
					if n == 0 {
						return
					}
					conn.Discard(n)
					conn.Write(httpResponse)
				}
			default: // echo
				n, _ := conn.Write(a)
				if n == len(a) && len(b) > 0 {
					k, _ := conn.Write(b)
					n += k
				}
				conn.Discard(n)
				if w == TCPCRR && CRRServerClosesFirst && n >= MsgSize {
					conn.Close()
				}
			}
		case stack.TCPEventPeerClosed:
			conn.Close()
		case stack.TCPEventClosed:
			conn.Close()
		}
	}
}

// clientFlow is one flow of the load on a client core: one request in
// flight, the next sent from the handler that got the response.
type clientFlow struct {
	m    *meter
	i    int
	s    *stack.Stack
	dst  netip.Addr // the server: IPv4 or IPv6
	sent int64
	cur  *stack.TCPConn
	more bool // tcp-crr: start another once this one is closed
	// waiting: the flow's next transaction (a stream's next chunk) is
	// not due yet (fixed-rate mode); the pacer starts it.
	waiting bool
	// left is what a stream has still to write of the chunk it began:
	// the chunk is done, and the next may begin, once it is 0.
	left int
	// sentAt is when the datagram in flight went out (sent is when its
	// transaction was due).
	sentAt  int64
	ep      *stack.UDPEndpoint
	buf     [MsgSize]byte
	scratch []byte
	// onEvent is f.event, bound once: a method value made per dial is an
	// allocation per tcp-crr transaction.
	onEvent stack.TCPHandler
}

func (f *clientFlow) dial() error {
	if f.onEvent == nil {
		f.onEvent = f.event
	}
	c, err := f.s.DialTCPAddr(f.dst, tcpPort, stack.TCPConnOptions{OnEvent: f.onEvent, NoDelay: true})
	if err != nil {
		return err
	}
	f.cur = c
	return nil
}

// startNext starts the flow's next transaction, or in the fixed-rate mode
// leaves it waiting for the pacer if it is not due yet.
func (f *clientFlow) startNext() {
	m := f.m
	if m.stopping.Load() {
		f.waiting = false
		return
	}
	if m.p.Workload.Stream() {
		// request paces the chunks itself.
		f.waiting = false
		if f.cur != nil {
			f.request(f.cur)
		}
		return
	}
	if m.paced() && m.now() < m.due(f.i) {
		f.waiting = true
		return
	}
	f.waiting = false
	f.sent = m.begin(f.i)
	switch {
	case m.p.Workload == UDPEcho:
		f.sentAt = m.now()
		f.sendUDP()
	case m.p.Workload == TCPCRR:
		if err := f.dial(); err != nil {
			// Every local port may be in TIME-WAIT (2*MSL at this
			// rate): the pacer tries again shortly.
			m.fail(f.i)
			f.waiting = true
		}
	case f.cur != nil:
		f.request(f.cur)
	}
}

func (f *clientFlow) request(c *stack.TCPConn) {
	switch f.m.p.Workload {
	case HTTP:
		c.Write(httpRequest)
	case TCPStream, TCPStreamMany:
		f.stream(c)
	default:
		c.Write(f.buf[:])
	}
}

var streamChunk [StreamChunk]byte

// stream writes chunks on c until the send buffer is full (the Writable
// event goes on) or, in the fixed-rate mode, until the next chunk is not
// yet due (the pacer goes on). A chunk the send buffer took only part of
// is finished before the next one begins; a late flow writes its overdue
// chunks back to back, never one before it is due.
func (f *clientFlow) stream(c *stack.TCPConn) {
	m := f.m
	f.waiting = false
	for !m.stopping.Load() {
		if f.left == 0 {
			if m.paced() {
				if m.now() < m.due(f.i) {
					f.waiting = true
					return
				}
				m.begin(f.i)
			}
			f.left = len(streamChunk)
		}
		n, _ := c.Write(streamChunk[len(streamChunk)-f.left:])
		f.left -= n
		if f.left > 0 {
			return
		}
	}
}

func (f *clientFlow) event(c *stack.TCPConn, ev stack.TCPEvent) {
	m := f.m
	switch ev {
	case stack.TCPEventEstablished:
		if m.p.Workload == TCPCRR || m.p.Workload.Stream() {
			// tcp-crr's transaction began with the connect.
			f.request(c)
		} else {
			f.startNext()
		}
	case stack.TCPEventWritable:
		if m.p.Workload.Stream() {
			f.request(c)
		}
	case stack.TCPEventReadable:
		a, b := c.Peek()
		n := MsgSize
		if m.p.Workload == HTTP {
			n = httpMessageLen(joined(a, b, &f.scratch))
			if n < 0 {
				m.fail(f.i)
				c.Abort()
				return
			}
		}
		if n == 0 || len(a)+len(b) < n {
			return
		}
		c.Discard(n)
		more := m.done(f.i, f.sent)
		if m.p.Workload == TCPCRR {
			f.more = more
			if CRRServerClosesFirst {
				// The server's FIN follows: close on it (PeerClosed).
				return
			}
			// Close (ours is the TIME-WAIT) and connect again.
			f.next(c)
			return
		}
		if more {
			f.startNext()
		}
	case stack.TCPEventPeerClosed:
		if m.p.Workload == TCPCRR && CRRServerClosesFirst && c == f.cur {
			f.next(c)
			return
		}
		c.Close()
	case stack.TCPEventClosed:
		if c == f.cur && c.Err() != nil {
			m.fail(f.i)
			f.cur = nil
			if m.p.Workload == TCPCRR {
				f.startNext()
			}
		}
		c.Close()
	}
}

// next closes tcp-crr's connection c and connects again if the flow is
// to go on.
func (f *clientFlow) next(c *stack.TCPConn) {
	c.Close()
	f.cur = nil
	if f.more {
		f.startNext()
	}
}

// sendUDP sends the flow's request datagram to the server.
func (f *clientFlow) sendUDP() {
	if f.dst.Is6() {
		f.ep.SendTo6(f.buf[:], f.dst.As16(), udpPort)
		return
	}
	f.ep.SendTo(f.buf[:], f.dst.As4(), udpPort)
}

func (f *clientFlow) startUDP(port uint16) error {
	reply := func() {
		if f.m.done(f.i, f.sent) {
			f.startNext()
		} else {
			f.sent = 0
		}
	}
	ep, err := f.s.BindUDP(port, stack.UDPOptions{
		Handler:  func(*stack.UDPEndpoint, []byte, [4]byte, uint16) { reply() },
		Handler6: func(*stack.UDPEndpoint, []byte, [16]byte, uint16) { reply() },
	})
	if err != nil {
		return err
	}
	f.ep = ep
	f.startNext()
	return nil
}

// resendLost resends a datagram that has had no answer for 100 ms.
func (f *clientFlow) resendLost() {
	if f.ep == nil || f.sent == 0 || f.waiting || f.m.stopping.Load() || f.m.now()-f.sentAt < int64(100*time.Millisecond) {
		return
	}
	f.m.fail(f.i)
	f.sentAt = f.m.now()
	f.sendUDP()
}

// MkstackConn is mkstack over the mem wire through its net.Conn face:
// goroutines on both sides, each call a message to the owning core.
func MkstackConn() System {
	return SystemFunc(func(ctx context.Context, p Params) (Point, error) {
		mp, err := startMemPair(p)
		if err != nil {
			return Point{}, err
		}
		t := &ConnTarget{
			Addr: memServerAddr(p),
			Listen: func(int) ([]net.Listener, error) {
				l, err := mp.server.Listen("tcp", fmt.Sprintf(":%d", tcpPort))
				return []net.Listener{l}, err
			},
			ListenPacket: func(int) ([]net.PacketConn, error) {
				c, err := mp.server.ListenPacket("udp", fmt.Sprintf(":%d", udpPort))
				return []net.PacketConn{c}, err
			},
			Dial: mp.client.DialContext,
		}
		pt, err := RunConn(ctx, t, p)
		if cerr := mp.close(); err == nil && cerr != nil {
			err = fmt.Errorf("shut down: %w", cerr)
		}
		pt.System = SysMkstackConn
		return pt, err
	})
}
