//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/afxdp"
	"github.com/mkstack/mkstack/nicq/netlab"
	"github.com/mkstack/mkstack/nicq/netlab/nsthread"
	"github.com/mkstack/mkstack/nicq/tap"
	"github.com/mkstack/mkstack/stack"
)

// Veth returns the veth system called name: SysMkstackAFXDP,
// SysMkstackTap or SysLinuxVeth. Each point makes its own lab
// (nicq/netlab) under a name unique to this process, with one queue
// per core, and removes it when the point ends, also when it fails or is
// cancelled (SIGINT cancels mkstack bench's context). The server runs in
// the lab's stack namespace: mkstack with the driver opened there, k cores
// and the per-core handlers SysMkstack serves with, or the kernel with the
// lab's stack address on the veth and one SO_REUSEPORT listener per core
// (as SysLinux). The load is the goroutine load generator (RunConn) on
// kernel sockets made in the peer namespace (for TAP, the same namespace
// on the device's kernel side). Without root the system is not available.
func Veth(name string) System {
	driver := map[string]string{SysMkstackAFXDP: "afxdp", SysMkstackTap: "tap", SysLinuxVeth: "afxdp"}[name]
	if driver == "" {
		return unavailable(name, "not a veth system")
	}
	return SystemFunc(func(ctx context.Context, p Params) (pt Point, err error) {
		if os.Geteuid() != 0 {
			return Point{}, fmt.Errorf("%s: %w: needs root (network namespaces, veth, TAP, XDP)", name, ErrNotAvailable)
		}
		lab, err := upVethLab(driver, p.Cores)
		if err != nil {
			return Point{}, fmt.Errorf("%s: %w", name, err)
		}
		defer func() {
			if derr := lab.down(); derr != nil {
				err = errors.Join(err, derr)
			}
		}()
		if name == SysLinuxVeth {
			pt, err = runKernelVeth(ctx, lab, p)
		} else {
			pt, err = runMkstackVeth(ctx, lab, p)
		}
		pt.System = name
		return pt, err
	})
}

// vethLab is one point's namespaces and devices.
type vethLab struct {
	names        netlab.Names
	driver       string
	host         netns.NsHandle // this process's own namespace
	stack, peer  netns.NsHandle
	stackIf      string
	closeHandles func()
}

var labSeq atomic.Uint32

func upVethLab(driver string, queues int) (*vethLab, error) {
	// b, the pid's last 5 digits, the driver, a sequence digit: at most
	// 8 bytes, as netlab.NamesFor wants.
	prefix := fmt.Sprintf("b%d%c%d", os.Getpid()%100000, driver[0], labSeq.Add(1)%10)
	names := netlab.NamesFor(prefix)
	if err := netlab.Up(names, driver, queues); err != nil {
		netlab.Down(names)
		return nil, fmt.Errorf("lab %s: %w", prefix, err)
	}
	l := &vethLab{names: names, driver: driver, stackIf: names.StackIface(driver)}
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
// veth with the lab's stack address.
func runKernelVeth(ctx context.Context, l *vethLab, p Params) (Point, error) {
	if err := netlab.KernelAddr(l.stack, l.stackIf, netlab.StackAddr+"/24"); err != nil {
		return Point{}, err
	}
	t := kernelTarget(ctx, p, netlab.StackAddr, func(fn func() error) error { return netlab.InNS(l.stack, fn) })
	t.Dial = l.dial
	if p.Workload == HTTP && wrkAvailable() {
		return runWrk(ctx, l, t, p)
	}
	return RunConn(ctx, t, p)
}

// runMkstackVeth serves from mkstack on the lab's device with k cores.
func runMkstackVeth(ctx context.Context, l *vethLab, p Params) (Point, error) {
	var nic nicq.NIC
	var closeNIC func() error
	err := netlab.InNS(l.stack, func() error {
		switch l.driver {
		case "tap":
			n, err := tap.Open(tap.Config{Name: l.stackIf, Queues: p.Cores})
			if err != nil {
				return err
			}
			nic, closeNIC = n, n.Close
		default:
			n, err := afxdp.Open(afxdp.Config{Interface: l.stackIf, Queues: p.Cores, Addrs: []netip.Addr{netip.MustParseAddr(netlab.StackAddr)}})
			if err != nil {
				return err
			}
			nic, closeNIC = n, n.Close
		}
		return nil
	})
	if err != nil {
		return Point{}, fmt.Errorf("open %s on %s: %w", l.driver, l.stackIf, err)
	}
	rt, err := core.Start(core.Config{
		NIC: nic, Cores: p.Cores, CPUs: p.CPUs,
		// The kernel client shares the point's CPUs: an idle core sleeps
		// at once rather than take the CPU the client needs.
		SpinWindow:  -1,
		StackConfig: func(int) stack.Config { return stackConfig(p, netlab.StackAddr) },
	})
	if err != nil {
		closeNIC()
		return Point{}, err
	}
	t := &ConnTarget{
		Addr: netlab.StackAddr,
		Dial: l.dial,
		serve: func(m *meter) (func(), int, error) {
			if err := serveHandlers(ctx, rt, m); err != nil {
				return nil, 0, err
			}
			if p.Workload == UDPEcho {
				return func() {}, udpPort, nil
			}
			return func() {}, tcpPort, nil
		},
	}
	var pt Point
	if p.Workload == HTTP && wrkAvailable() {
		pt, err = runWrk(ctx, l, t, p)
	} else {
		pt, err = RunConn(ctx, t, p)
	}
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

func wrkAvailable() bool {
	_, err := exec.LookPath("wrk")
	return err == nil && os.Getenv("MKSTACK_BENCH_NO_WRK") == ""
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(m?s)`)
	wrkErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk drives the http workload with wrk from the peer namespace, on
// the point's CPUs, as the veth comparison asks: one thread and
// Flows connections per core, --latency for the percentiles.
func runWrk(ctx context.Context, l *vethLab, t *ConnTarget, p Params) (Point, error) {
	var srv sync.WaitGroup
	serve := func(m *meter) (func(), int, error) { return serveConn(t, m, &srv) }
	if t.serve != nil {
		serve = t.serve
	}
	stop, port, err := serve(newMeter(p, 0))
	if err != nil {
		return Point{}, fmt.Errorf("serve: %w", err)
	}
	defer func() { stop(); srv.Wait() }()
	secs := max(1, int(p.Duration.Round(time.Second)/time.Second))
	args := []string{"netns", "exec", l.names.PeerNS(l.driver)}
	if len(p.CPUs) > 0 {
		cpus := make([]string, len(p.CPUs))
		for i, c := range p.CPUs {
			cpus[i] = strconv.Itoa(c)
		}
		args = append(args, "taskset", "-c", strings.Join(cpus, ","))
	}
	url := fmt.Sprintf("http://%s:%d/", t.Addr, port)
	args = append(args, "wrk", "-t", strconv.Itoa(p.Cores), "-c", strconv.Itoa(p.Cores*p.Flows), "-d", fmt.Sprintf("%ds", secs), "--latency", url)
	m := newMeter(p, 0)
	before := m.snap()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return Point{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	after := m.snap()
	pt, err := parseWrk(string(out), p)
	// This process is the server side only; wrk's own CPU is not counted.
	pt.GCCycles, pt.CPUSeconds = after.gc-before.gc, (after.cpu - before.cpu).Seconds()
	return pt, err
}

// parseWrk reads wrk's report into a point.
func parseWrk(out string, p Params) (Point, error) {
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return Point{}, fmt.Errorf("wrk printed no request count: %s", out)
	}
	count, _ := strconv.ParseUint(m[1], 10, 64)
	secs, _ := strconv.ParseFloat(m[2], 64)
	if m[3] == "ms" {
		secs /= 1e3
	}
	if secs <= 0 {
		return Point{}, fmt.Errorf("wrk ran for %v s", secs)
	}
	pt := Point{Workload: p.Workload, Cores: p.Cores, CPUs: p.CPUs, Flows: p.Flows, Unit: p.Workload.Unit(),
		Seconds: secs, Count: count, Rate: float64(count) / secs, Note: "driven by wrk from the peer namespace"}
	pt.PerCore = pt.Rate / float64(max(p.Cores, 1))
	if e := wrkErrors.FindStringSubmatch(out); e != nil {
		for _, v := range e[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			pt.Errors += n
		}
	}
	if e := wrkNon2xx.FindStringSubmatch(out); e != nil {
		n, _ := strconv.ParseUint(e[1], 10, 64)
		pt.Errors += n
	}
	lat := &Latency{Samples: count}
	for _, q := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(q[2], 64)
		switch q[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		switch q[1] {
		case "50":
			lat.P50 = v
		case "90":
			lat.P90 = v
		case "99":
			lat.P99 = v
		}
	}
	if lat.P50 > 0 {
		pt.Latency = lat
	}
	return pt, nil
}
