package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

func init() {
	register(command{name: "serve", summary: "run the stack on a NIC with a built-in application until SIGINT or SIGTERM", run: runServe})
}

type serveOptions struct {
	driver, iface, app, metrics string
	addr                        netip.Prefix
	addrs6                      []netip.Prefix
	gateway, gateway6           netip.Addr
	cores, mtu                  int
	afpacketRing                int
	cpus                        []int
	synCookieRate               int
	port                        int
	memoryMB, maxItem           int // --app memcached
	pin, xdpGeneric, noTSO      bool
	shutdown, spin              time.Duration
	threads                     core.Threads
}

func parseServe(args []string, stderr io.Writer) (serveOptions, int) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serveOptions
	var addrs, gws []string
	var addr6 string
	fs.StringVar(&o.driver, "driver", "afxdp", "NIC driver: "+driverNames())
	fs.StringVar(&o.iface, "iface", "", "interface to drive (not for mem)")
	fs.Func("addr", "the stack's address and prefix, repeatable: at most one IPv4, e.g. 10.77.0.1/24, and any number of IPv6, e.g. fd77::1/64 (at least one of either; IPv6 alone makes an IPv6-only stack); with IPv6 the stack also has a link-local address, answers ping6 and neighbour discovery, and serves its app over IPv6 too (with --driver afxdp, frames to these addresses and their solicited-node groups go to the stack, link-local and all-nodes traffic to the kernel)", func(v string) error {
		addrs = append(addrs, v)
		return nil
	})
	fs.Func("gateway", "default gateway, repeatable: an IPv4 address inside the IPv4 prefix, and an IPv6 one (link-local, or inside an IPv6 prefix) (optional)", func(v string) error {
		gws = append(gws, v)
		return nil
	})
	fs.StringVar(&addr6, "addr6", "", "IPv6 addresses with their prefix lengths, comma-separated, e.g. fd77::1/64: the same as giving each to --addr")
	fs.IntVar(&o.cores, "cores", 0, "cores (default: one per NIC queue, capped by the CPUs); with fewer cores than queues each core polls several")
	var cpus string
	fs.StringVar(&cpus, "cpus", "", "pin the cores to these CPUs, core i to the i-th lowest, e.g. 2,3 or 4-7 (default: CPUs near the NIC; --cores, if given, must match the count)")
	fs.IntVar(&o.synCookieRate, "syn-cookies-per-second", 0, "per core, the most SYN cookies sent under a SYN flood; the flood's SYNs beyond are dropped and counted (0: the stack's default, 25000; negative: no bound)")
	fs.StringVar(&o.app, "app", "echo", "application: echo (TCP), http (net/http over sockets), discard (TCP), memcached (the text protocol, items sharded across the cores)")
	fs.IntVar(&o.port, "port", 0, "port of the application (default: 7 echo, 80 http, 9 discard, 11211 memcached)")
	fs.IntVar(&o.memoryMB, "memory", 64, "memcached: megabytes for items, all cores together (memcached's -m); each core evicts its least recently used items beyond its share")
	fs.IntVar(&o.maxItem, "max-item-size", 1<<20, "memcached: largest value in bytes (memcached's -I)")
	fs.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus metrics at ADDR/metrics and Go profiles at ADDR/debug/pprof/ from the host's own network (e.g. 127.0.0.1:9100)")
	fs.BoolVar(&o.pin, "pin", true, "pin each core to a CPU")
	var xdpMode string
	fs.StringVar(&xdpMode, "xdp-mode", "native", "afxdp: native, or generic (slower; for drivers without native XDP; wrong queue indexes on veth)")
	var ring string
	fs.StringVar(&ring, "afpacket-ring", "v2", "afpacket: the receive ring, v2 (TPACKET_V2: each frame handed over at once, for request-response latency) or v3 (TPACKET_V3: frames in blocks, fewer wake-ups under load, but a lone frame waits up to 1 ms)")
	var threads string
	fs.StringVar(&threads, "threads", "auto", "where the cores run: pinned (each on its own thread, pinned with --pin; best for the per-core handler apps), shared (on the Go scheduler's threads, so that a hand-off to an application goroutine is a goroutine switch; best for net.Conn and net/http), or auto (pinned until the application uses net.Conn, as --app http does)")
	fs.IntVar(&o.mtu, "mtu", 0, "the stack's MTU, at most the device's (0: the device's); with IPv6, at least 1280")
	fs.BoolVar(&o.noTSO, "no-tso", false, "send TCP in segments of one MSS even where the driver offers TSO (tap, afpacket, mem), with checksums complete even where it would complete them (tap, afpacket, afxdp in copy mode), as ethtool -K DEV tx off: every frame a capture sees is then at most one MTU with a complete checksum")
	fs.DurationVar(&o.spin, "spin-window", 0, "how long an idle core polls before it sleeps (0: the runtime's default, 50µs; negative: sleep at once, for cores that share CPUs with other work)")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 5*time.Second, "on SIGINT/SIGTERM, how long connections get to close with FIN before they are reset")
	if err := fs.Parse(args); err != nil {
		return o, 2
	}
	bad := func(format string, a ...any) (serveOptions, int) {
		fmt.Fprintf(stderr, "mkstack serve: "+format+"\n", a...)
		fs.Usage()
		return o, 2
	}
	if fs.NArg() != 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if o.mtu != 0 && (o.mtu < 68 || o.mtu > 65535) {
		return bad("--mtu %d: want 68 to 65535, or 0 for the device's", o.mtu)
	}
	t, err := core.ParseThreads(threads)
	if err != nil {
		return bad("--threads %q: want auto, pinned or shared", threads)
	}
	o.threads = t
	switch xdpMode {
	case "native":
	case "generic":
		o.xdpGeneric = true
	default:
		return bad("--xdp-mode %q: want native or generic", xdpMode)
	}
	switch ring {
	case "v2":
		o.afpacketRing = 2
	case "v3":
		o.afpacketRing = 3
	default:
		return bad("--afpacket-ring %q: want v2 or v3", ring)
	}
	if _, ok := drivers[o.driver]; !ok {
		return bad("--driver %q: want one of %s", o.driver, driverNames())
	}
	if o.driver != "mem" && o.iface == "" {
		return bad("--iface is required with --driver %s", o.driver)
	}
	if addr6 != "" {
		addrs = append(addrs, strings.Split(addr6, ",")...)
	}
	for _, f := range addrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		switch {
		case err == nil && p.Addr().Is4():
			if o.addr.IsValid() {
				return bad("--addr %q: one IPv4 address only (%v already)", f, o.addr)
			}
			o.addr = p
		case err == nil && p.Addr().Is6() && !p.Addr().Is4In6() && !p.Addr().IsMulticast() && !p.Addr().IsUnspecified() && !p.Addr().IsLoopback() && p.Addr().Zone() == "":
			o.addrs6 = append(o.addrs6, p)
		default:
			return bad("--addr %q: want a unicast address with its prefix length, e.g. 10.77.0.1/24 or fd77::1/64", f)
		}
	}
	if !o.addr.IsValid() && len(o.addrs6) == 0 {
		return bad("--addr: an address with its prefix length is required, e.g. --addr 10.77.0.1/24 (IPv4), --addr fd77::1/64 (IPv6), or both")
	}
	for _, gw := range gws {
		g, err := netip.ParseAddr(gw)
		switch {
		case err == nil && g.Is4() && o.addr.Contains(g) && !o.gateway.IsValid():
			o.gateway = g
		case err == nil && g.Is6() && !g.Is4In6() && g.Zone() == "" && !o.gateway6.IsValid() && (g.IsLinkLocalUnicast() || slices.ContainsFunc(o.addrs6, func(p netip.Prefix) bool { return p.Contains(g) })):
			o.gateway6 = g
		default:
			return bad("--gateway %q: want one IPv4 address inside %v and one IPv6 address that is link-local or inside an --addr IPv6 prefix", gw, o.addr)
		}
	}
	switch o.app {
	case "echo", "http", "discard", "memcached":
	default:
		return bad("--app %q: want echo, http, discard or memcached", o.app)
	}
	if o.port == 0 {
		o.port = map[string]int{"echo": 7, "http": 80, "discard": 9, "memcached": 11211}[o.app]
	}
	if o.memoryMB < 1 || o.maxItem < 1 {
		return bad("--memory %d and --max-item-size %d: want positive values", o.memoryMB, o.maxItem)
	}
	if o.port < 1 || o.port > 65535 {
		return bad("--port %d: want 1..65535", o.port)
	}
	if o.cores < 0 {
		return bad("--cores %d: want at least 1", o.cores)
	}
	if cpus != "" {
		if o.cpus, err = affinity.ParseCPUList(cpus); err != nil {
			return bad("--cpus %q: %v", cpus, err)
		}
		if o.cores != 0 && o.cores != len(o.cpus) {
			return bad("--cpus %q lists %d CPUs for %d cores", cpus, len(o.cpus), o.cores)
		}
		if !o.pin {
			return bad("--cpus pins the cores; it cannot go with --pin=false")
		}
		o.cores = len(o.cpus)
	}
	return o, 0
}

func runServe(args []string, stdout, stderr io.Writer) int {
	o, code := parseServe(args, stderr)
	if code != 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, o, log, stdout); err != nil {
		log.Error("serve failed", "err", err)
		return 1
	}
	return 0
}

// serve runs the stack and the application until ctx is done, then shuts
// down: listeners close, connections get a FIN, stragglers a reset, the
// cores stop and the NIC closes.
func serve(ctx context.Context, o serveOptions, log *slog.Logger, stdout io.Writer) error {
	nic, closeNIC, err := drivers[o.driver](driverOptions{
		iface: o.iface, queues: o.cores, addrs: o.driverAddrs(), xdpGeneric: o.xdpGeneric, afpacketRing: o.afpacketRing,
		warn: func(msg string, args ...any) { log.Warn(msg, args...) },
		info: func(msg string, args ...any) { log.Info(msg, args...) },
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", o.driver, err)
	}
	defer closeNIC()
	mtu, err := o.stackMTU(nic)
	if err != nil {
		return err
	}
	cfg := core.Config{
		NIC:        nic,
		Cores:      o.cores,
		CPUs:       o.cpus,
		Pin:        o.pin,
		SpinWindow: o.spin,
		Threads:    o.threads,
		NoTSO:      o.noTSO,
		StackConfig: func(c int) stack.Config {
			return stack.Config{Addr: o.addr, Addrs6: o.addrs6, Gateway: o.gateway, Gateway6: o.gateway6, MTU: mtu, TCP: stack.TCPConfig{SYNCookiesPerSecond: o.synCookieRate},
				Warn: func(msg string) { log.Warn(msg, "core", c, "driver", o.driver) }}
		},
	}
	rt, err := core.Start(cfg)
	if err != nil && o.pin && o.cpus == nil && (errors.Is(err, affinity.ErrNotEnoughCPUs) || errors.Is(err, affinity.ErrCPUNotAllowed)) {
		log.Warn("cannot pin the cores; running them unpinned", "err", err)
		cfg.Pin = false
		rt, err = core.Start(cfg)
	}
	if err != nil {
		return err
	}
	n, err := sockets.New(rt)
	if err != nil {
		rt.Stop(context.Background())
		return err
	}
	log.Info("stack up", "driver", o.driver, "nic", nic.Name(), "mac", net.HardwareAddr(macSlice(nic.MAC())).String(),
		"addr", o.addr, "addr6", fmt.Sprint(o.addrs6), "cores", rt.NumCores(), "cpus", fmt.Sprint(rt.CPUs()), "queues", nic.NumQueues(), "mtu", mtu)

	var appClose func()
	var appMetrics prometheus.Collector
	switch o.app {
	case "memcached":
		mc, err := startMemcached(n, uint16(o.port), mcConfig{MemoryBytes: int64(o.memoryMB) << 20, MaxValue: o.maxItem})
		if err != nil {
			n.Shutdown(context.Background())
			return err
		}
		appClose = func() { mc.Close() }
		appMetrics = newMCCollector(mc)
	case "echo", "discard":
		echo := o.app == "echo"
		srv, err := n.ServeTCP(uint16(o.port), sockets.Handler{
			Data: func(c *stack.TCPConn, a, b []byte) int {
				if !echo {
					return len(a) + len(b)
				}
				k, _ := c.Write(a)
				if k == len(a) && len(b) > 0 {
					m, _ := c.Write(b)
					k += m
				}
				return k
			},
			Writable: func(c *stack.TCPConn) {
				// Data refused for want of room is offered again; a peer
				// that closed its side is closed once all is echoed.
				if a, b := c.Peek(); len(a)+len(b) > 0 && echo {
					k, _ := c.Write(a)
					if k == len(a) && len(b) > 0 {
						m, _ := c.Write(b)
						k += m
					}
					c.Discard(k)
				}
				if c.Buffered() == 0 && c.State() == "CLOSE-WAIT" {
					c.Close()
				}
			},
			PeerClosed: func(c *stack.TCPConn) {
				// Close now only if everything received was echoed: what
				// waits for room in the send ring goes first (Writable
				// closes after it). Closing here dropped the tail of a
				// bulk echo whose peer had finished sending.
				if c.Buffered() == 0 {
					c.Close()
				}
			},
		})
		if err != nil {
			n.Shutdown(context.Background())
			return err
		}
		appClose = func() { srv.Close() }
	case "http":
		l, err := n.Listen("tcp", ":"+strconv.Itoa(o.port))
		if err != nil {
			n.Shutdown(context.Background())
			return err
		}
		hs := &http.Server{Handler: httpApp(rt), ReadHeaderTimeout: 10 * time.Second, Protocols: httpProtocols()}
		go hs.Serve(l)
		appClose = func() { hs.Close() }
	}
	var on []string
	if o.addr.IsValid() {
		on = append(on, netip.AddrPortFrom(o.addr.Addr(), uint16(o.port)).String())
	}
	for _, p := range o.addrs6 {
		on = append(on, netip.AddrPortFrom(p.Addr(), uint16(o.port)).String())
	}
	where := strings.Join(on, ", ")
	log.Info("serving", "app", o.app, "addr", where, "threads", rt.ThreadMode().String())
	fmt.Fprintf(stdout, "serving %s on %s (%s driver, %d cores); SIGINT or SIGTERM to stop\n", o.app, where, o.driver, rt.NumCores())

	if o.metrics != "" {
		reg := prometheus.NewRegistry()
		rt.Register(reg)
		if appMetrics != nil {
			reg.MustRegister(appMetrics)
		}
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			appClose()
			n.Shutdown(context.Background())
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		// The profiles go beside the metrics, so a slow or large server
		// can be looked into where it runs (go tool pprof ADDR/debug/pprof/heap).
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go ms.Serve(ln)
		defer ms.Close()
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}

	<-ctx.Done()
	log.Info("shutting down", "timeout", o.shutdown)
	appClose()
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	c := rt.Counters()
	args := []any{"rx_packets", c.Values[core.RxPackets], "tx_packets", c.Values[core.TxPackets]}
	for i, name := range rt.DropReasonNames() {
		if c.Drops[i] != 0 {
			args = append(args, "drop_"+name, c.Drops[i])
		}
	}
	log.Info("stopped", args...)
	return nil
}

func macSlice(m [6]byte) []byte { return m[:] }

// stackMTU is the stack's MTU: --mtu, which the device must carry, or the
// device's own.
func (o *serveOptions) stackMTU(nic nicq.NIC) (int, error) {
	dev := nic.MTU()
	switch {
	case o.mtu == 0:
		return dev, nil
	case o.mtu > dev && o.driver == "mem":
		return 0, fmt.Errorf("--mtu %d: the mem wire's NICs have MTU %d", o.mtu, dev)
	case o.mtu > dev:
		hint := ""
		if o.driver == "afxdp" {
			hint = "; above MTU 3822 a frame spans several UMEM frames, which needs AF_XDP multi-buffer (Linux 6.6)"
		}
		return 0, fmt.Errorf("--mtu %d: %s has MTU %d: raise it first (ip link set dev %s mtu %d)%s", o.mtu, o.iface, dev, o.iface, o.mtu, hint)
	case o.mtu < 1280 && len(o.addrs6) > 0:
		return 0, fmt.Errorf("--mtu %d: IPv6 needs at least 1280", o.mtu)
	}
	return o.mtu, nil
}

// httpApp is the built-in HTTP application: a page at /, a download of N
// bytes at /bytes/N, and at /upload a sink that reads a request's whole
// body and answers with its length and SHA-256 (an upload's rate and
// integrity, with curl --data-binary or -T).
func httpApp(rt *core.Runtime) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from mkstack (%d cores)\n", rt.NumCores())
	})
	mux.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "want /bytes/N with 0 <= N <= 2^30", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = byte(i * 131)
		}
		for n > 0 {
			k := min(n, len(buf))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("reading the body after %d bytes: %v", n, err), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d bytes, sha256 %x\n", n, h.Sum(nil))
	})
	return mux
}

// driverAddrs are the addresses the driver hands the stack frames for
// (AF_XDP's program): the IPv4 address and the --addr6 ones.
func (o *serveOptions) driverAddrs() []netip.Addr {
	var addrs []netip.Addr
	if o.addr.IsValid() {
		addrs = append(addrs, o.addr.Addr())
	}
	for _, p := range o.addrs6 {
		addrs = append(addrs, p.Addr())
	}
	return addrs
}

// httpProtocols are the http app's: HTTP/1.1, and HTTP/2 over cleartext
// with prior knowledge (h2c, RFC 9113 3.3), which h2load and curl
// --http2-prior-knowledge speak by default; there is no TLS to negotiate
// HTTP/2 by ALPN.
func httpProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}
