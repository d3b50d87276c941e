//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/afxdp"
	"github.com/mkstack/mkstack/nicq/netlab"
	"github.com/mkstack/mkstack/nicq/netlab/nsthread"
	"github.com/mkstack/mkstack/nicq/tap"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

// vethSystem is how a veth system runs: the lab's driver, whether the
// kernel peer's offloads are switched off, and the server.
type vethSystem struct {
	driver string
	// peerOffloadsOff switches the offloads of the kernel's devices off;
	// otherwise they stay at their defaults, which the drivers take.
	peerOffloadsOff bool
	run             func(ctx context.Context, l *vethLab, p Params) (Point, error)
}

var vethSystems = map[string]vethSystem{
	SysMkstackAFXDP:         {driver: "afxdp", run: runMkstackVeth(false)},
	SysMkstackTap:           {driver: "tap", run: runMkstackVeth(false)},
	SysMkstackConnAFXDP:     {driver: "afxdp", run: runMkstackVeth(true)},
	SysMkstackConnTap:       {driver: "tap", run: runMkstackVeth(true)},
	SysLinuxVeth:            {driver: "afxdp", run: runKernelVeth(false)},
	SysLinuxVethOffloadsOff: {driver: "afxdp", peerOffloadsOff: true, run: runKernelVeth(true)},
	SysLinuxEpollVeth:       {driver: "afxdp", run: runEpollVeth},
	SysMemcachedVeth:        {driver: "afxdp", run: runMemcachedVeth},
}

// Veth returns the veth system called name (SysMkstackAFXDP,
// SysMkstackTap, SysMkstackConnAFXDP, SysMkstackConnTap, SysLinuxVeth,
// SysLinuxVethOffloadsOff, SysLinuxEpollVeth). Each point makes its own
// lab (nicq/netlab) under a name unique to this process, with one queue
// per core, and removes it when the point ends, also when it fails or is
// cancelled (SIGINT cancels mkstack bench's context). The server runs in
// the lab's stack namespace: mkstack with the driver opened there and k
// cores, serving with the per-core handlers SysMkstack serves with or
// through its net.Conn face (net/http for http); or the kernel with the
// lab's stack address on the veth, serving through Go's net (one
// SO_REUSEPORT listener per core, as SysLinux) or with SysLinuxEpoll's
// epoll threads. The load is the goroutine load generator (RunConn) on
// kernel sockets made in the peer namespace (for TAP, the same namespace
// on the device's kernel side), or wrk and h2load for http. With
// Params.IPv6 the server is at netlab.StackAddr6 (mkstack with it in
// Addrs6, the kernel with netlab.StackPrefix6 on the device) and the load
// dials it from the peer's netlab.PeerAddr6. Without root the system is
// not available.
func Veth(name string) System {
	vs, ok := vethSystems[name]
	if !ok {
		return unavailable(name, "not a veth system")
	}
	return SystemFunc(func(ctx context.Context, p Params) (pt Point, err error) {
		if os.Geteuid() != 0 {
			return Point{}, fmt.Errorf("%s: %w: needs root (network namespaces, veth, TAP, XDP)", name, ErrNotAvailable)
		}
		lab, err := upVethLab(vs.driver, p.Cores, vs.peerOffloadsOff, p.IPv6, p.MTU)
		if err != nil {
			return Point{}, fmt.Errorf("%s: %w", name, err)
		}
		defer func() {
			if derr := lab.down(); derr != nil {
				err = errors.Join(err, derr)
			}
		}()
		pt, err = vs.run(ctx, lab, p)
		pt.System = name
		pt.PeerOffloads = "defaults"
		if p.MTU != 0 && p.MTU != 1500 {
			pt.MTU = p.MTU
		}
		if vs.peerOffloadsOff {
			pt.PeerOffloads = "off"
		}
		return pt, err
	})
}

// vethLab is one point's namespaces and devices.
type vethLab struct {
	names  netlab.Names
	driver string
	// ipv6: the point runs over IPv6 (Params.IPv6), the server at
	// netlab.StackAddr6 and the peer at netlab.PeerAddr6.
	ipv6         bool
	host         netns.NsHandle // this process's own namespace
	stack, peer  netns.NsHandle
	stackIf      string
	offloadsOff  bool
	closeHandles func()
}

var labSeq atomic.Uint32

func upVethLab(driver string, queues int, offloadsOff, ipv6 bool, mtu int) (*vethLab, error) {
	// b, the pid's last 5 digits, the driver, a sequence digit: at most
	// 8 bytes, as netlab.NamesFor wants.
	prefix := fmt.Sprintf("b%d%c%d", os.Getpid()%100000, driver[0], labSeq.Add(1)%10)
	names := netlab.NamesFor(prefix)
	if err := netlab.UpWith(names, driver, queues, netlab.Options{PeerOffloadsOff: offloadsOff, IPv6: ipv6, MTU: mtu}); err != nil {
		netlab.Down(names)
		return nil, fmt.Errorf("lab %s: %w", prefix, err)
	}
	l := &vethLab{names: names, driver: driver, ipv6: ipv6, stackIf: names.StackIface(driver), offloadsOff: offloadsOff}
	var hs []netns.NsHandle
	l.closeHandles = func() {
		for _, h := range hs {
			h.Close()
		}
	}
	var err error
	get := func(name string) netns.NsHandle {
		h, gerr := netns.GetFromName(name)
		if gerr != nil {
			err = errors.Join(err, fmt.Errorf("network namespace %s: %w", name, gerr))
			return -1
		}
		hs = append(hs, h)
		return h
	}
	l.stack, l.peer = get(names.StackNS(driver)), get(names.PeerNS(driver))
	if err == nil {
		l.host, err = nsthread.Current()
		hs = append(hs, l.host)
	}
	if err == nil {
		err = netlab.InNS(l.peer, tuneClientSysctls)
	}
	if err != nil {
		l.down()
		return nil, err
	}
	return l, nil
}

// tuneClientSysctls lets the kernel client of tcp-crr reuse its TIME-WAIT
// ports (the kernel does so on loopback only by default, tcp_tw_reuse=2)
// from the whole port range. The settings belong to the lab's namespace
// and go with it.
func tuneClientSysctls() error {
	for file, v := range map[string]string{
		"/proc/sys/net/ipv4/tcp_tw_reuse":        "1",
		"/proc/sys/net/ipv4/ip_local_port_range": "1024 65535",
		"/proc/sys/net/ipv4/tcp_tw_reuse_delay":  "1", // ms; newer kernels only
		"/proc/sys/net/ipv4/tcp_max_tw_buckets":  "262144",
		"/proc/sys/net/core/somaxconn":           "4096",
		"/proc/sys/net/ipv4/tcp_max_syn_backlog": "4096",
	} {
		if err := os.WriteFile(file, []byte(v), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sysctl %s: %w", file, err)
		}
	}
	return nil
}

// serverAddr is the address the point's server has and its load dials:
// the lab's stack address of the point's family.
func (l *vethLab) serverAddr() string {
	if l.ipv6 {
		return netlab.StackAddr6
	}
	return netlab.StackAddr
}

// serverCIDR is serverAddr with the lab's prefix length: what the kernel
// servers put on the device.
func (l *vethLab) serverCIDR() string {
	if l.ipv6 {
		return netlab.StackPrefix6
	}
	return netlab.StackAddr + "/24"
}

func (l *vethLab) down() error {
	l.closeHandles()
	if _, err := netlab.Down(l.names); err != nil {
		return fmt.Errorf("lab %s down: %w", l.names.Prefix, err)
	}
	return nil
}

// dial connects from the peer namespace: the calling goroutine's thread
// enters it for the socket's creation and connect, then goes back (a
// socket stays in the namespace it was made in). A thread that cannot go
// back stays locked and ends with its goroutine.
func (l *vethLab) dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	runtime.LockOSThread()
	if err := netns.Set(l.peer); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter the peer namespace: %w", err)
	}
	c, err := d.DialContext(ctx, network, address)
	if serr := netns.Set(l.host); serr != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("leave the peer namespace: %w", serr)
	}
	runtime.UnlockOSThread()
	return c, err
}

// runKernelVeth serves from the kernel in the stack's namespace, on the
// veth with the lab's stack address, through Go's net (net/http for
// http); with offloadsOff the veth's offloads are off as the peer's are.
func runKernelVeth(offloadsOff bool) func(ctx context.Context, l *vethLab, p Params) (Point, error) {
	return func(ctx context.Context, l *vethLab, p Params) (Point, error) {
		if err := netlab.KernelAddr(l.stack, l.stackIf, l.serverCIDR(), offloadsOff); err != nil {
			return Point{}, err
		}
		t := kernelTarget(ctx, p, l.serverAddr(), func(fn func() error) error { return netlab.InNS(l.stack, fn) })
		t.Dial = l.dial
		pt, err := runVethLoad(ctx, l, t, p)
		pt.Driver = "veth"
		return pt, err
	}
}

// runEpollVeth serves from the kernel on the lab's veth with
// SysLinuxEpoll's epoll threads, the device at its default offloads.
func runEpollVeth(ctx context.Context, l *vethLab, p Params) (Point, error) {
	if err := netlab.KernelAddr(l.stack, l.stackIf, l.serverCIDR(), false); err != nil {
		return Point{}, err
	}
	t := &ConnTarget{
		Addr:  l.serverAddr(),
		Dial:  l.dial,
		serve: epollServe(ctx, p, l.serverAddr(), func(fn func() error) error { return netlab.InNS(l.stack, fn) }),
	}
	pt, err := runVethLoad(ctx, l, t, p)
	pt.Driver, pt.API = "veth", "epoll"
	return pt, err
}

// runVethLoad drives t from the peer namespace: wrk or h2load for http
// where they are installed, else the goroutine load generator.
func runVethLoad(ctx context.Context, l *vethLab, t *ConnTarget, p Params) (Point, error) {
	if p.Idle {
		t.idleNetns = l.names.PeerNS(l.driver)
		pt, err := RunConn(ctx, t, p)
		pt.Client = "go"
		return pt, err
	}
	if p.Workload == Memcached {
		return runMemcachedLoad(ctx, l, t, p)
	}
	if p.Workload == HTTP {
		if c := httpClient(p); c != "" {
			return runHTTPClient(ctx, c, l, t, p)
		}
	}
	pt, err := RunConn(ctx, t, p)
	pt.Client = "go"
	return pt, err
}

// runMkstackVeth serves from mkstack on the lab's device with k cores:
// with the per-core handlers, or with conn through its net.Conn face.
func runMkstackVeth(conn bool) func(ctx context.Context, l *vethLab, p Params) (Point, error) {
	return func(ctx context.Context, l *vethLab, p Params) (Point, error) {
		var nic nicq.NIC
		var closeNIC func() error
		driver := "TAP"
		err := netlab.InNS(l.stack, func() error {
			switch l.driver {
			case "tap":
				n, err := tap.Open(tap.Config{Name: l.stackIf, Queues: p.Cores})
				if err != nil {
					return err
				}
				nic, closeNIC = n, n.Close
			default:
				// The program hands the stack frames for its addresses
				// (and an IPv6 one's solicited-node group).
				addrs := []netip.Addr{netip.MustParseAddr(netlab.StackAddr)}
				if l.ipv6 {
					addrs = append(addrs, netip.MustParseAddr(netlab.StackAddr6))
				}
				n, err := afxdp.Open(afxdp.Config{Interface: l.stackIf, Queues: p.Cores, Addrs: addrs})
				if err != nil {
					return err
				}
				nic, closeNIC = n, n.Close
				driver = "veth, AF_XDP " + n.Mode()
			}
			return nil
		})
		if err != nil {
			return Point{}, fmt.Errorf("open %s on %s: %w", l.driver, l.stackIf, err)
		}
		rt, err := core.Start(core.Config{
			NIC: nic, Cores: p.Cores, CPUs: p.CPUs,
			// The runtime's default spin window, as serve runs: the
			// kernel client shares the point's CPUs, and a spinning
			// core yields its CPU to it between looks. (Before cores
			// yielded, they slept at once here: SpinWindow -1.)
			StackConfig: func(int) stack.Config { return stackConfig(p, netlab.StackAddr, netlab.StackPrefix6) },
		})
		if err != nil {
			closeNIC()
			return Point{}, err
		}
		t := &ConnTarget{Addr: l.serverAddr(), Dial: l.dial}
		if p.Workload == Memcached {
			n, nerr := sockets.New(rt)
			if nerr != nil {
				err = nerr
			}
			t.serve = func(*meter) (func(), int, error) { return serveMemcachedHandlers(n) }
		} else if conn {
			n, nerr := sockets.New(rt)
			if nerr != nil {
				err = nerr
			}
			t.Listen = func(int) ([]net.Listener, error) {
				l, err := n.Listen("tcp", fmt.Sprintf(":%d", tcpPort))
				return []net.Listener{l}, err
			}
			t.ListenPacket = func(int) ([]net.PacketConn, error) {
				c, err := n.ListenPacket("udp", fmt.Sprintf(":%d", udpPort))
				return []net.PacketConn{c}, err
			}
		} else {
			t.serve = func(m *meter) (func(), int, error) {
				if err := serveHandlers(ctx, rt, m); err != nil {
					return nil, 0, err
				}
				if p.Workload == UDPEcho {
					return func() {}, udpPort, nil
				}
				return func() {}, tcpPort, nil
			}
		}
		p.RuntimeCounts = func() RuntimeCounts {
			c := rt.Counters()
			return RuntimeCounts{Wakeups: c.Values[core.Wakeups], Syscalls: c.Values[core.Syscalls]}
		}
		var pt Point
		if err == nil {
			pt, err = runVethLoad(ctx, l, t, p)
		}
		pt.Driver = driver
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if serr := rt.Stop(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop the runtime: %w", serr))
		}
		if cerr := closeNIC(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close the NIC: %w", cerr))
		}
		return pt, err
	}
}
