package sockets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/stack"
)

// Network is the application face of a running core.Runtime: it opens
// listeners, connections and packet sockets whose every operation is a
// message to the core that owns them. It is safe for concurrent use.
type Network struct {
	rt   *core.Runtime
	addr netip.Addr
	// onLink and gateway are the stacks' routes (fixed by their Config),
	// so that a datagram with no route fails its write at once although
	// the core sends it later.
	onLink  netip.Prefix
	gateway bool
	// addrs6 are the stacks' IPv6 addresses, the link-local one first
	// (none without IPv6); prefixes6[i] is the on-link prefix of
	// addrs6[i+1]; gateway6 is whether an IPv6 default route exists.
	addrs6    []netip.Addr
	prefixes6 []netip.Prefix
	gateway6  bool // a configured IPv6 gateway, or router advertisements taken
	nextCore  atomic.Uint32
	stats     Stats
	// shared is set once the goroutine-facing API (Listen, Dial,
	// ListenPacket) has asked the cores onto shared threads.
	shared atomic.Bool
	// conns are the net.Conn connections each core holds a stack
	// connection for, by core; each list is touched only by its core.
	conns []connList
}

// connList is a core's list of conns (intrusive: linking allocates
// nothing).
type connList struct {
	head *conn
	n    int
	_    [48]byte // each core's list on its own cache line
}

func (l *connList) push(sc *conn) {
	if sc.listed {
		return
	}
	sc.listed, sc.prev, sc.next = true, nil, l.head
	if l.head != nil {
		l.head.prev = sc
	}
	l.head = sc
	l.n++
}

func (l *connList) remove(sc *conn) {
	if !sc.listed {
		return
	}
	if sc.prev != nil {
		sc.prev.next = sc.next
	} else {
		l.head = sc.next
	}
	if sc.next != nil {
		sc.next.prev = sc.prev
	}
	sc.listed, sc.prev, sc.next = false, nil, nil
	l.n--
}

// flushForShutdown starts a graceful shutdown of the core's conns (on
// the core): later Writes fail with net.ErrClosed, and the bytes earlier
// Writes staged move into the send rings as far as they have room. It
// returns how many conns still have staged bytes: their FIN must wait.
func (l *connList) flushForShutdown() (staged int) {
	for sc := l.head; sc != nil; {
		next := sc.next // drain may finish a Close and unlink sc
		// Held across the drain, which may finish a Close and let go
		// of the core's hold, the conn's last.
		sc.holds.Add(1)
		sc.setWriteErr(net.ErrClosed)
		signal(sc.wrWake)
		sc.drain()
		if sc.c != nil && sc.staged() {
			staged++
		}
		sc.release()
		sc = next
	}
	return staged
}

// Stats count what the sockets layer itself dropped or refused.
type Stats struct {
	// AcceptOverflows: connections reset because the application did not
	// accept them fast enough (the listener's queue was full).
	AcceptOverflows atomic.Uint64
	// UDPDrops: datagrams dropped because a packet socket's queue on a
	// core was full.
	UDPDrops atomic.Uint64
	// HandlerPanics: panics in per-core handlers (each reset its
	// connection).
	HandlerPanics atomic.Uint64
}

// New returns the Network of rt. It asks core 0 for the stacks' address.
func New(rt *core.Runtime) (*Network, error) {
	n := &Network{rt: rt, conns: make([]connList, rt.NumCores())}
	err := rt.DoWait(context.Background(), 0, func(s *stack.Stack) {
		n.addr = s.Addr()
		cfg := s.Config()
		n.onLink, n.gateway = cfg.Addr.Masked(), cfg.Gateway.IsValid()
		n.addrs6 = s.Addrs6()
		for _, a := range n.addrs6[min(1, len(n.addrs6)):] {
			for _, p := range cfg.Addrs6 {
				if p.Addr() == a {
					n.prefixes6 = append(n.prefixes6, p.Masked())
					break
				}
			}
		}
		// A router an advertisement gives is known to the cores only:
		// with advertisements taken, an off-link IPv6 destination is
		// left to the stack (no route there is a counted no_route drop).
		n.gateway6 = cfg.Gateway6.IsValid() || !cfg.IgnoreRouterAdvertisements
	})
	if err != nil {
		return nil, fmt.Errorf("sockets: %w", err)
	}
	return n, nil
}

// shareThreads moves the cores onto the Go scheduler's threads
// (core.Threads) the first time the application reaches for the
// goroutine-facing API: its goroutines hand every request to a core and
// get every reply from one, and with the cores on shared threads each
// hand-off is a goroutine switch rather than a thread wake-up. Per-core
// handlers (ServeTCP, DialHandler) never leave their core, so a Network
// used only through them keeps the cores on their own threads. A runtime
// started with core.ThreadsPinned keeps its threads. A core that cannot
// move stays on its thread and works, only with the slower hand-offs:
// Runtime.ThreadMode says so, and Runtime.ShareThreads says why.
func (n *Network) shareThreads() {
	if !n.shared.Load() && n.shared.CompareAndSwap(false, true) {
		_ = n.rt.ShareThreads()
	}
}

// routable reports whether the stacks have a route to dst.
func (n *Network) routable(dst netip.Addr) bool {
	if dst.Is6() {
		if len(n.addrs6) == 0 {
			return false
		}
		return n.gateway6 || dst.IsLinkLocalUnicast() || slices.ContainsFunc(n.prefixes6, func(p netip.Prefix) bool { return p.Contains(dst) })
	}
	return n.gateway || n.onLink.Contains(dst)
}

// source6 is the address the stacks send to the IPv6 address dst from
// (the stack's source selection, stack.DialTCPAddr): link-local to a
// link-local address, else the address whose prefix holds dst, else the
// first global one.
func (n *Network) source6(dst netip.Addr) netip.Addr {
	if len(n.addrs6) == 0 {
		return netip.Addr{}
	}
	if dst.IsLinkLocalUnicast() || len(n.addrs6) == 1 {
		return n.addrs6[0]
	}
	for i, p := range n.prefixes6 {
		if p.Contains(dst) {
			return n.addrs6[i+1]
		}
	}
	return n.addrs6[1]
}

// Addrs6 returns the stacks' IPv6 addresses, the link-local one first, or
// none without IPv6.
func (n *Network) Addrs6() []netip.Addr { return slices.Clone(n.addrs6) }

// isOurs reports whether a is the stacks' IPv4 address or one of their
// IPv6 addresses.
func (n *Network) isOurs(a netip.Addr) bool {
	return a == n.addr || slices.Contains(n.addrs6, a)
}

// bindFamily checks the local address ap of a listener or packet socket
// on network and returns the family it takes (4, 6, or 0 for both, as Go's
// net listens on both for "tcp" and "udp" with a wildcard address and only
// on IPv6 for "tcp6" and "udp6").
func (n *Network) bindFamily(network string, ap netip.AddrPort) (int, error) {
	a := ap.Addr()
	switch {
	case a.IsUnspecified():
	case !n.isOurs(a):
		return 0, &net.AddrError{Err: "not an address of this stack (" + n.addr.String() + fmt.Sprint(n.addrs6) + ")", Addr: a.String()}
	case a.Is4():
		return 4, nil
	default:
		return 6, nil
	}
	switch {
	case strings.HasSuffix(network, "4"):
		if !n.addr.IsValid() {
			return 0, &net.AddrError{Err: "the stacks have no IPv4 address (IPv6 only)", Addr: a.String()}
		}
		return 4, nil
	case strings.HasSuffix(network, "6"):
		if len(n.addrs6) == 0 {
			return 0, &net.AddrError{Err: "the stacks have no IPv6 address (core.Config's stack Addrs6, serve --addr6)", Addr: a.String()}
		}
		return 6, nil
	}
	return 0, nil
}

// wildcard returns the address a socket of family bound to the wildcard
// address reports: the stacks' IPv4 address for IPv4 only, else [::].
func (n *Network) wildcard(family int, ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().IsUnspecified() {
		return ap
	}
	if family == 4 {
		return netip.AddrPortFrom(n.addr, ap.Port())
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
}

// Runtime returns the runtime under the network.
func (n *Network) Runtime() *core.Runtime { return n.rt }

// Addr returns the stacks' IPv4 address.
func (n *Network) Addr() netip.Addr { return n.addr }

// Stats returns the sockets layer's counters.
func (n *Network) Stats() *Stats { return &n.stats }

// call queues fn on core and waits for it to signal done. A full mailbox
// is retried (the core drains it every iteration); a stopped runtime
// returns net.ErrClosed.
func (n *Network) call(coreIdx int, fn func(*stack.Stack), done chan struct{}) error {
	if err := n.send(coreIdx, fn); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-n.rt.Done():
		// The runtime runs calls queued before it stopped: one may
		// still have signalled.
		select {
		case <-done:
			return nil
		default:
			return net.ErrClosed
		}
	}
}

// send queues fn on core without waiting for it to run; a full mailbox
// parks the goroutine until the core has drained some of it.
func (n *Network) send(coreIdx int, fn func(*stack.Stack)) error {
	if err := n.rt.DoOrWait(context.Background(), coreIdx, fn); err != nil {
		return net.ErrClosed
	}
	return nil
}

// pickCore chooses the core of an active open: in turn, so connections
// spread over the cores (each takes a local port whose replies land on
// it).
func (n *Network) pickCore() int {
	return int(n.nextCore.Add(1)-1) % n.rt.NumCores()
}

// signal wakes the goroutine waiting on ch, if any, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// parseAddr parses "host:port" for network ("tcp", "tcp4", "tcp6", "udp",
// "udp4", "udp6"): host must be empty, an unspecified address, or an IP
// literal of the network's family ("localhost" is refused: this is not
// the kernel's stack). An IPv4-mapped IPv6 address counts as IPv4.
func parseAddr(network, address string) (netip.AddrPort, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return netip.AddrPort{}, net.UnknownNetworkError(network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, &net.AddrError{Err: "invalid port", Addr: address}
	}
	var ip netip.Addr
	v6only := strings.HasSuffix(network, "6")
	switch {
	case host == "" && v6only:
		ip = netip.IPv6Unspecified()
	case host == "":
		ip = netip.IPv4Unspecified()
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, &net.AddrError{Err: "mkstack takes IP literals only (no name resolution)", Addr: host}
		}
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, &net.AddrError{Err: "zones are not taken (the stacks have one interface)", Addr: host}
	}
	ip = ip.Unmap()
	switch {
	case ip.Is4() && v6only:
		return netip.AddrPort{}, &net.AddrError{Err: "not an IPv6 address", Addr: host}
	case ip.Is6() && strings.HasSuffix(network, "4"):
		return netip.AddrPort{}, &net.AddrError{Err: "not an IPv4 address", Addr: host}
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// mapError turns the stack's errors into those Go code checks.
func mapError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stack.ErrConnectionReset):
		return syscall.ECONNRESET
	case errors.Is(err, stack.ErrConnectionRefused):
		return syscall.ECONNREFUSED
	case errors.Is(err, stack.ErrConnectionTimeout):
		return syscall.ETIMEDOUT
	case errors.Is(err, stack.ErrHostUnreachable):
		return syscall.EHOSTUNREACH
	case errors.Is(err, stack.ErrNetUnreachable):
		return syscall.ENETUNREACH
	case errors.Is(err, stack.ErrNoRoute):
		return syscall.ENETUNREACH
	case errors.Is(err, stack.ErrConnectionClosed):
		return net.ErrClosed
	case errors.Is(err, stack.ErrPortInUse):
		return syscall.EADDRINUSE
	case errors.Is(err, stack.ErrTooManyConns), errors.Is(err, stack.ErrNoEphemeralPort):
		return syscall.EADDRNOTAVAIL
	}
	return err
}

// deadline is an operation's deadline: zero for none.
type deadline struct{ at atomic.Int64 }

func (d *deadline) set(t time.Time) {
	if t.IsZero() {
		d.at.Store(0)
		return
	}
	d.at.Store(t.UnixNano())
}

// passed reports whether the deadline is set and past.
func (d *deadline) passed() bool {
	at := d.at.Load()
	return at != 0 && time.Now().UnixNano() >= at
}

// park waits for wake, closed, the runtime's end, or the deadline. It
// reuses timer.
func park(wake, closed <-chan struct{}, stopped <-chan struct{}, d *deadline, timer **time.Timer) error {
	at := d.at.Load()
	if at == 0 {
		select {
		case <-wake:
		case <-closed:
		case <-stopped:
			return net.ErrClosed
		}
		return nil
	}
	wait := time.Until(time.Unix(0, at))
	if wait <= 0 {
		return errDeadline
	}
	if *timer == nil {
		*timer = time.NewTimer(wait)
	} else {
		(*timer).Reset(wait)
	}
	select {
	case <-wake:
	case <-closed:
	case <-stopped:
		(*timer).Stop()
		return net.ErrClosed
	case <-(*timer).C:
		return errDeadline
	}
	(*timer).Stop()
	return nil
}

// errDeadline is what net reports for a passed deadline (Timeout() is
// true, errors.Is(err, os.ErrDeadlineExceeded) holds).
var errDeadline = os.ErrDeadlineExceeded

// Shutdown stops the network gracefully: every listener closes and every
// connection is closed with a FIN after its queued data, which includes
// the bytes a Write accepted that still wait in the connection's write
// queue for room in the send ring; once those are acknowledged, or when
// ctx is done, what remains is reset. Then the runtime stops
// (Runtime.Stop). Writes after Shutdown began, and blocked ones, return
// net.ErrClosed (with the count of the bytes they staged, which are
// sent); blocked Reads return net.ErrClosed (or the peer's EOF first). As
// with Close, a Write that runs concurrently with Shutdown may lose the
// bytes it stages after the connection's FIN was queued.
func (n *Network) Shutdown(ctx context.Context) error {
	cores := n.rt.NumCores()
	remaining := make([]int, cores)
	count := func(abort bool) int {
		n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
			core := s.Config().Core
			if !abort {
				// The FIN goes after the staged bytes: a core closes
				// its connections only once none has any left.
				if staged := n.conns[core].flushForShutdown(); staged > 0 {
					remaining[core] = staged
					return
				}
			}
			remaining[core] = s.ShutdownTCP(abort)
		})
		total := 0
		for _, r := range remaining {
			total += r
		}
		return total
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
wait:
	for count(false) > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			break wait
		}
	}
	// What is left waits for the peer (FIN-WAIT-2, TIME-WAIT) or missed
	// the deadline: a reset tells the peer the connection is gone.
	count(true)
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.rt.Stop(stopCtx)
}
