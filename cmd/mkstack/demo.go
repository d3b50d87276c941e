package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

func init() {
	register(command{name: "demo", summary: "run a server stack and a client stack on an in-memory wire under load, and report per core (no set-up needed)", run: runDemo})
}

const (
	demoTCPPort  = 7
	demoUDPPort  = 9
	demoMsgSize  = 64
	demoTCPConns = 16 // per client core
	demoUDPFlows = 16 // per client core, one datagram in flight each
)

// demoCounts are one client core's transactions, written by that core's
// handlers only and read by the reporter (padded: one writer per line).
type demoCounts struct {
	tcp, udp atomic.Uint64
	_        [112]byte
}

type demoOptions struct {
	cores    int
	duration time.Duration
	workload string
	pcapDir  string
	metrics  string
	pin      bool
	ipv6     bool
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demoOptions
	fs.IntVar(&o.cores, "cores", 0, "cores per stack (default: every CPU this process may use)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the load runs")
	fs.StringVar(&o.workload, "workload", "mixed", "tcp (64-byte request/response on persistent connections), udp (64-byte echo) or mixed")
	fs.StringVar(&o.pcapDir, "pcap", "", "write the server NIC's frames to DIR/server.pcap (first 128 bytes of each)")
	fs.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus metrics of both stacks at ADDR/metrics while running (e.g. 127.0.0.1:9100)")
	fs.BoolVar(&o.pin, "pin", false, "pin each core to a CPU (the server's and the client's core i share CPU i)")
	fs.BoolVar(&o.ipv6, "ipv6", false, "run the load over IPv6 (server fd00::1, client fd00::2) instead of IPv4")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mkstack demo: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	if fs.NArg() != 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if o.duration <= 0 {
		return bad("--duration must be positive, got %v", o.duration)
	}
	switch o.workload {
	case "tcp", "udp", "mixed":
	default:
		return bad("--workload %q: want tcp, udp or mixed", o.workload)
	}
	allowed, err := affinity.AllowedCPUs()
	if err != nil {
		fmt.Fprintln(stderr, "mkstack demo:", err)
		return 1
	}
	if o.cores == 0 {
		o.cores = allowed.Count()
	}
	if o.cores < 1 || o.cores > 64 {
		return bad("--cores %d: want 1..64", o.cores)
	}
	if o.pin && o.cores > allowed.Count() {
		return bad("--cores %d with --pin: only %d CPUs are allowed", o.cores, allowed.Count())
	}
	if err := demo(o, allowed.Count(), stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "mkstack demo:", err)
		return 1
	}
	return 0
}

func demo(o demoOptions, allowed int, stdout, stderr io.Writer) error {
	wire, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: o.cores, PoolBuffers: 4096, TSO: true},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: o.cores, PoolBuffers: 4096, TSO: true},
	}})
	if err != nil {
		return err
	}
	defer wire.Close()

	var pcap *nicq.PcapWriter
	if o.pcapDir != "" {
		if err := os.MkdirAll(o.pcapDir, 0o755); err != nil {
			return fmt.Errorf("--pcap: %w", err)
		}
		path := filepath.Join(o.pcapDir, "server.pcap")
		if pcap, err = nicq.CreatePcap(path, nicq.PcapConfig{SnapLen: 128}); err != nil {
			return fmt.Errorf("--pcap: %w", err)
		}
		for q := range o.cores {
			wire.NIC(0).Queue(q).SetTap(pcap)
		}
		defer func() {
			for q := range o.cores {
				wire.NIC(0).Queue(q).SetTap(nil)
			}
			if err := pcap.Close(); err != nil {
				fmt.Fprintln(stderr, "mkstack demo: pcap:", err)
			} else {
				fmt.Fprintf(stdout, "capture: %s (read it with tcpdump -r or tshark -r)\n", path)
			}
		}()
	}

	var cpus []int
	if o.pin {
		if cpus, err = affinity.Plan(o.cores, ""); err != nil {
			return err
		}
	}
	// Both stacks run in this process, and their cores may outnumber the
	// CPUs: they keep the runtime's spin window, since a spinning core
	// yields its CPU between looks and takes no time its peer wants
	// (sleeping at once instead, as the demo did before cores yielded,
	// ran 4 cores on 2 CPUs at two thirds the rate).
	server, err := demoStack(wire, 0, "10.0.0.1", "fd00::1", o.cores, cpus)
	if err != nil {
		return fmt.Errorf("server stack: %w", err)
	}
	defer shutdownWithin(server, demoShutdownWait)
	client, err := demoStack(wire, 1, "10.0.0.2", "fd00::2", o.cores, cpus)
	if err != nil {
		return fmt.Errorf("client stack: %w", err)
	}
	defer shutdownWithin(client, demoShutdownWait)

	if o.metrics != "" {
		reg := prometheus.NewRegistry()
		if err := server.Runtime().Register(prometheus.WrapRegistererWith(prometheus.Labels{"stack": "server"}, reg)); err != nil {
			return err
		}
		if err := client.Runtime().Register(prometheus.WrapRegistererWith(prometheus.Labels{"stack": "client"}, reg)); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", ln.Addr())
	}

	counts := make([]demoCounts, o.cores)
	stop := &atomic.Bool{}
	pin := "not pinned"
	if o.pin {
		pin = fmt.Sprintf("pinned to CPUs %v", cpus)
	}
	if 2*o.cores > allowed {
		pin += fmt.Sprintf("; %d cores share %d CPUs", 2*o.cores, allowed)
	}
	srvAddr, cliAddr := "10.0.0.1", "10.0.0.2"
	if o.ipv6 {
		srvAddr, cliAddr = "fd00::1", "fd00::2"
	}
	fmt.Fprintf(stdout, "mkstack demo: server %s and client %s on an in-memory wire, %d cores each (%s), workload %s, %v\n", srvAddr, cliAddr,
		o.cores, pin, o.workload, o.duration)

	if o.workload != "udp" {
		if err := demoTCP(server, client, counts, stop, o.ipv6); err != nil {
			return err
		}
	}
	if o.workload != "tcp" {
		if err := demoUDP(server, client, counts, stop, o.ipv6); err != nil {
			return err
		}
	}

	start := time.Now()
	before := demoSnapshot(server, client, counts)
	tick := time.NewTicker(time.Second)
	prev, prevT := before, start
	// A live line on a terminal, one line per second otherwise.
	lead, trail := "", "\n"
	if isTerminal(stdout) {
		lead, trail = "\r", ""
	}
	for now := range tick.C {
		cur := demoSnapshot(server, client, counts)
		d := now.Sub(prevT).Seconds()
		fmt.Fprintf(stdout, "%s%5.1fs  tcp %10.0f req/s  udp %10.0f echo/s  server %10.0f pkt/s in  %s",
			lead, now.Sub(start).Seconds(), float64(cur.tcp-prev.tcp)/d, float64(cur.udp-prev.udp)/d, float64(cur.rx-prev.rx)/d, trail)
		prev, prevT = cur, now
		if now.Sub(start) >= o.duration {
			break
		}
	}
	tick.Stop()
	stop.Store(true)
	elapsed := time.Since(start).Seconds()
	after := demoSnapshot(server, client, counts)
	if trail == "" {
		fmt.Fprintln(stdout)
	}
	demoReport(stdout, server, client, counts, before, after, elapsed)
	return nil
}

// demoStack starts a runtime of `cores` cores on NIC i at addr/24.
// demoStack starts a runtime on NIC i of wire at addr and addr6.
func demoStack(wire *mem.Wire, i int, addr, addr6 string, cores int, cpus []int) (*sockets.Network, error) {
	nic := wire.NIC(i)
	rt, err := core.Start(core.Config{
		NIC:   nic,
		Cores: cores,
		CPUs:  cpus,
		StackConfig: func(int) stack.Config {
			// The runtime gives each core an RSS-aware port allocator.
			cfg := stack.Config{Addr: netip.MustParsePrefix(addr + "/24"), Addrs6: []netip.Prefix{netip.MustParsePrefix(addr6 + "/64")}}
			cfg.TCP.SendBuffer, cfg.TCP.ReceiveBuffer = 16<<10, 16<<10
			return cfg
		},
	})
	if err != nil {
		return nil, err
	}
	return sockets.New(rt)
}

// demoTCP serves an echo on the server's cores and opens demoTCPConns
// connections on each client core, each keeping one 64-byte request in
// flight: all of it in per-core handlers, no goroutine per connection.
func demoTCP(server, client *sockets.Network, counts []demoCounts, stop *atomic.Bool, ipv6 bool) error {
	_, err := server.ServeTCP(demoTCPPort, sockets.Handler{
		Data: func(c *stack.TCPConn, a, b []byte) int {
			n, _ := c.Write(a)
			if n == len(a) && len(b) > 0 {
				k, _ := c.Write(b)
				n += k
			}
			return n
		},
	})
	if err != nil {
		return err
	}
	var req [demoMsgSize]byte
	dst := netip.AddrPortFrom(server.Addr(), demoTCPPort)
	if ipv6 {
		dst = netip.AddrPortFrom(server.Addrs6()[1], demoTCPPort) // the global address, after the link-local one
	}
	for c := range client.Runtime().NumCores() {
		cnt := &counts[c]
		h := sockets.Handler{
			Open: func(conn *stack.TCPConn) { conn.Write(req[:]) },
			Data: func(conn *stack.TCPConn, a, b []byte) int {
				n := (len(a) + len(b)) / demoMsgSize * demoMsgSize
				for range n / demoMsgSize {
					cnt.tcp.Add(1)
					if !stop.Load() {
						conn.Write(req[:])
					}
				}
				return n
			},
		}
		for range demoTCPConns {
			if err := client.DialHandler(c, dst, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// demoUDP binds an echo on every server core and, on each client core,
// demoUDPFlows ports (chosen so the replies land on that core) that each
// keep one 64-byte datagram in flight.
func demoUDP(server, client *sockets.Network, counts []demoCounts, stop *atomic.Bool, ipv6 bool) error {
	ctx := context.Background()
	errs := make([]error, server.Runtime().NumCores())
	err := server.Runtime().BroadcastWait(ctx, func(s *stack.Stack) {
		_, errs[s.Config().Core] = s.BindUDP(demoUDPPort, stack.UDPOptions{
			Handler:  func(ep *stack.UDPEndpoint, p []byte, from [4]byte, port uint16) { ep.SendTo(p, from, port) },
			Handler6: func(ep *stack.UDPEndpoint, p []byte, from [16]byte, port uint16) { ep.SendTo6(p, from, port) },
		})
	})
	if err := errors.Join(append(errs, err)...); err != nil {
		return err
	}
	dst := netip.AddrPortFrom(server.Addr(), demoUDPPort)
	if ipv6 {
		dst = netip.AddrPortFrom(server.Addrs6()[1], demoUDPPort)
	}
	var payload [demoMsgSize]byte
	rt := client.Runtime()
	flows := make([][]*demoUDPFlow, rt.NumCores())
	errs = make([]error, rt.NumCores())
	err = rt.BroadcastWait(ctx, func(s *stack.Stack) {
		c := s.Config().Core
		cnt := &counts[c]
		bound := 0
		for port := uint16(20000); bound < demoUDPFlows && port < 30000; port++ {
			// Keep the ports whose replies hash to this core.
			var owner int
			if ipv6 {
				owner = rt.FlowOwner6(17, dst.Addr().As16(), client.Addrs6()[1].As16(), demoUDPPort, port)
			} else {
				owner = rt.FlowOwner(17, dst.Addr().As4(), s.Addr().As4(), demoUDPPort, port)
			}
			if owner != c {
				continue
			}
			f := &demoUDPFlow{}
			opts := stack.UDPOptions{
				Handler: func(ep *stack.UDPEndpoint, p []byte, from [4]byte, port uint16) {
					cnt.udp.Add(1)
					f.echoes.Add(1)
					if !stop.Load() {
						ep.SendTo(p, from, port)
					}
				},
				Handler6: func(ep *stack.UDPEndpoint, p []byte, from [16]byte, port uint16) {
					cnt.udp.Add(1)
					f.echoes.Add(1)
					if !stop.Load() {
						ep.SendTo6(p, from, port)
					}
				},
			}
			ep, err := s.BindUDP(port, opts)
			if err != nil {
				errs[c] = err
				return
			}
			f.ep = ep
			flows[c] = append(flows[c], f)
			ep.SendToAddr(payload[:], dst)
			bound++
		}
	})
	if err := errors.Join(append(errs, err)...); err != nil {
		return err
	}
	// UDP does not resend, and a flow's first datagram may be dropped
	// (the server's address still unresolved, its queue full with the TCP
	// connections' SYNs): a flow that has had no echo for demoUDPResend
	// sends again, on its core, so every flow runs whatever the start was
	// like.
	go func() {
		last := make([][]uint64, len(flows))
		for c := range flows {
			last[c] = make([]uint64, len(flows[c]))
		}
		for !stop.Load() {
			time.Sleep(demoUDPResend)
			for c, fs := range flows {
				var lost []*demoUDPFlow
				for i, f := range fs {
					if n := f.echoes.Load(); n == last[c][i] {
						lost = append(lost, f)
					} else {
						last[c][i] = n
					}
				}
				if len(lost) > 0 && !stop.Load() {
					rt.Do(c, func(*stack.Stack) {
						for _, f := range lost {
							f.ep.SendToAddr(payload[:], dst)
						}
					})
				}
			}
		}
	}()
	return nil
}

// demoUDPResend is how long a demo UDP flow waits for an echo before it
// takes its datagram for lost and sends another.
const demoUDPResend = 500 * time.Millisecond

// demoUDPFlow is one client port of the UDP echo: its endpoint (used on
// its core only) and the echoes it got.
type demoUDPFlow struct {
	ep     *stack.UDPEndpoint
	echoes atomic.Uint64
}

type demoTotals struct {
	tcp, udp, rx uint64
	perCore      []demoCoreTotals
}

type demoCoreTotals struct {
	tcp, udp                       uint64
	srvRx, srvTx, cliRx, cliTx     uint64
	forwarded, drops, sleeps, wake uint64
}

func demoSnapshot(server, client *sockets.Network, counts []demoCounts) demoTotals {
	var t demoTotals
	for c := range counts {
		s := server.Runtime().CoreCounters(c)
		k := client.Runtime().CoreCounters(c)
		ct := demoCoreTotals{
			tcp: counts[c].tcp.Load(), udp: counts[c].udp.Load(),
			srvRx: s.Values[core.RxPackets], srvTx: s.Values[core.TxPackets],
			cliRx: k.Values[core.RxPackets], cliTx: k.Values[core.TxPackets],
			forwarded: s.Values[core.ForwardedPackets] + k.Values[core.ForwardedPackets],
			sleeps:    s.Values[core.IdleSleeps] + k.Values[core.IdleSleeps],
			wake:      s.Values[core.Wakeups] + k.Values[core.Wakeups],
		}
		for _, d := range s.Drops {
			ct.drops += d
		}
		for _, d := range k.Drops {
			ct.drops += d
		}
		t.tcp += ct.tcp
		t.udp += ct.udp
		t.rx += ct.srvRx
		t.perCore = append(t.perCore, ct)
	}
	return t
}

func demoReport(w io.Writer, server, client *sockets.Network, counts []demoCounts, before, after demoTotals, secs float64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "core\ttcp req/s\tudp echo/s\tserver pkt/s in\tserver pkt/s out\tclient pkt/s in\tforwarded\tdrops\t")
	var sum demoCoreTotals
	rate := func(a, b uint64) string { return fmt.Sprintf("%.0f", float64(b-a)/secs) }
	for c := range after.perCore {
		a, b := before.perCore[c], after.perCore[c]
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", c,
			rate(a.tcp, b.tcp), rate(a.udp, b.udp), rate(a.srvRx, b.srvRx), rate(a.srvTx, b.srvTx), rate(a.cliRx, b.cliRx),
			b.forwarded-a.forwarded, b.drops-a.drops)
		sum.tcp += b.tcp - a.tcp
		sum.udp += b.udp - a.udp
		sum.srvRx += b.srvRx - a.srvRx
		sum.srvTx += b.srvTx - a.srvTx
		sum.cliRx += b.cliRx - a.cliRx
		sum.forwarded += b.forwarded - a.forwarded
		sum.drops += b.drops - a.drops
	}
	fmt.Fprintf(tw, "total\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
		rate(0, sum.tcp), rate(0, sum.udp), rate(0, sum.srvRx), rate(0, sum.srvTx), rate(0, sum.cliRx), sum.forwarded, sum.drops)
	tw.Flush()
	var names []string
	reasons := server.Runtime().DropReasonNames()
	tot := server.Runtime().Counters()
	for r, v := range tot.Drops {
		if v > 0 {
			names = append(names, fmt.Sprintf("%s=%d", reasons[r], v))
		}
	}
	if len(names) > 0 {
		fmt.Fprintf(w, "server drops by reason (whole run): %s\n", strings.Join(names, " "))
	}
	fmt.Fprintf(w, "%d TCP transactions and %d UDP echoes in %.1fs\n", sum.tcp, sum.udp, secs)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// demoShutdownWait bounds each stack's graceful shutdown: the client stops
// first, and a server connection whose last bytes or FIN the stopped
// client will never acknowledge is reset then rather than retransmitted
// for minutes.
const demoShutdownWait = 2 * time.Second

// shutdownWithin shuts n down gracefully, resetting what is left after d.
func shutdownWithin(n *sockets.Network, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return n.Shutdown(ctx)
}
