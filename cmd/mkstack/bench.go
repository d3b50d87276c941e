package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mkstack/mkstack/bench"
	"github.com/mkstack/mkstack/bench/plot"
	"github.com/mkstack/mkstack/sockets"
	"golang.org/x/sys/unix"
)

// systemsFor returns the systems workload w runs.
func (o *benchOptions) systemsFor(w bench.Workload) []string {
	if w == bench.Memcached && !o.systemsSet {
		return memcachedSystems
	}
	return o.spec.Systems
}

func init() {
	register(command{name: "bench", summary: "measure workloads by core count on mkstack, gVisor and the kernel side by side (JSON, table, plots)", run: runBench})
}

type benchOptions struct {
	spec       bench.Spec
	workloads  []bench.Workload
	out        string
	gvisorPeer string
	plots      bool
	allowDirty bool
	// rates are the fixed-rate mode's offered rates (none: peak).
	rates []float64
	// conns are the flows per core to measure (more than one: the
	// connection axis).
	conns []int
	// systemsSet: --systems was given; otherwise the memcached workload
	// runs its own pair (memcachedSystems).
	systemsSet bool
}

// memcachedSystems are the memcached workload's systems when --systems is
// not given: those of the pairs bench.PairsFor(bench.Memcached) compares.
var memcachedSystems = func() []string {
	var out []string
	for _, pr := range bench.PairsFor(bench.Memcached) {
		for _, s := range []string{pr.System, pr.Peer} {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}()

func init() {
	// The memcached workload's mkstack side is serve --app memcached's
	// application.
	bench.MemcachedServer = func(n *sockets.Network, port uint16, memoryMB int) (io.Closer, error) {
		return startMemcached(n, port, mcConfig{MemoryBytes: int64(memoryMB) << 20})
	}
}

// parseCounts parses "16" or "100,1000,5000" into ascending distinct
// positive counts.
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > bench.MaxConns {
			return nil, fmt.Errorf("%q: want whole numbers in 1..%d", f, bench.MaxConns)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// parseRates parses "16000" or "4000,8000,16000" into ascending distinct
// positive rates. A rate may end in a multiplier (rateSuffixes): 16k,
// 100M (bytes per second for a stream), 1.5G, 64Mi.
func parseRates(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := parseRate(strings.TrimSpace(f))
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q: want a positive rate (transactions per second; bytes per second for a stream), with k, M, G, Ki, Mi or Gi if you like", f)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

// rateSuffixes are the multipliers a rate may end in: decimal k (or K),
// M and G, and binary Ki, Mi and Gi.
var rateSuffixes = []struct {
	suffix string
	mult   float64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9},
}

// parseRate parses one rate: a number with an optional rateSuffixes
// multiplier.
func parseRate(f string) (float64, error) {
	mult := 1.0
	for _, s := range rateSuffixes {
		if num, ok := strings.CutSuffix(f, s.suffix); ok {
			f, mult = num, s.mult
			break
		}
	}
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, err
	}
	return v * mult, nil
}

func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "report" {
		return runBenchReport(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o                         benchOptions
		workloads, cores, systems string
		duration, warmup          time.Duration
		conns                     string
		transactions              uint64
		rates                     string
	)
	names := make([]string, len(bench.Workloads))
	for i, w := range bench.Workloads {
		names[i] = string(w)
	}
	fs.StringVar(&workloads, "workload", string(bench.TCPRR), "workloads, comma-separated, or all: "+strings.Join(names, ", "))
	fs.StringVar(&cores, "cores", "1,2", "core counts: 1,2,4 or 1-4")
	fs.StringVar(&systems, "systems", "mkstack,mkstack-conn,gvisor,linux", "systems, comma-separated: "+strings.Join(bench.Systems, ", ")+" (the memcached workload: "+strings.Join(memcachedSystems, ",")+" unless given)")
	fs.DurationVar(&duration, "duration", 10*time.Second, "measured time per point")
	fs.DurationVar(&warmup, "warmup", time.Second, "load before each point is measured")
	fs.StringVar(&conns, "conns", strconv.Itoa(bench.DefaultConns), "connections (or UDP flows) per core, one request in flight each; a list (100,1000,5000) measures each and writes WORKLOAD-conns.json with rate and machine memory against connections")
	fs.Uint64Var(&transactions, "transactions", 0, "run each point until N transactions are done instead of for --duration (for instruction counts under callgrind)")
	fs.StringVar(&rates, "rate", "", "the fixed-rate mode: pace the load at N transactions per second per point (open loop; http on the veth systems: h2load --rps) and report the whole machine's CPU per transaction; for tcp-stream and tcp-stream-many N bytes per second for all flows together, each flow writing 64 KiB chunks when due, and the CPU per MiB received; a list (4000,16000) measures each rate; a rate may end in k, M, G (10^3, 10^6, 10^9) or Ki, Mi, Gi (2^10, 2^20, 2^30): 16k, 100M; empty: peak")
	fs.BoolVar(&o.allowDirty, "allow-dirty", false, "with --out inside this source tree, write the figures even though the tree has uncommitted changes (recorded in the JSON)")
	fs.StringVar(&bench.HTTPClient, "http-client", "wrk", "the load generator of http at peak on the veth systems: wrk, h2load or go (a fixed rate always uses h2load)")
	fs.StringVar(&o.out, "out", "", "write DIR/WORKLOAD.json, DIR/WORKLOAD.txt and the plots (SVG and PNG) there")
	fs.StringVar(&o.gvisorPeer, "gvisor-peer", "", "the gvisorpeer binary for --systems gvisor (default: build bench/gvisorpeer from this source tree with go build)")
	fs.BoolVar(&o.plots, "plots", true, "with --out, draw the plots")
	fs.BoolVar(&bench.CRRServerClosesFirst, "crr-server-closes-first", false, "tcp-crr: the server closes first and holds the TIME-WAITs (not for gvisor)")
	fs.BoolVar(&o.spec.Idle, "idle", false, "the idle-connection mode (tcp-rr, http): each point opens --conns connections per core, makes one exchange on each (a request and its echo, or a GET) and leaves them open without traffic, then reports the whole machine's memory per idle connection (MemAvailable before and after, each after a garbage collection and settled) and the ratio to the like-for-like peer; its rate is connections opened per second")
	fs.DurationVar(&o.spec.IdleSettle, "idle-settle", bench.DefaultIdleSettle, "--idle: how long the machine's MemAvailable must hold still (within 1 MiB) before each reading (at most ten times that is waited)")
	fs.IntVar(&o.spec.MTU, "mtu", 0, "MTU of the veth and TAP systems' devices, both ends (0: 1500; the mem wire and loopback systems keep theirs; above 3822 the AF_XDP systems use multi-buffer); each of their points records it")
	fs.BoolVar(&o.spec.IPv6, "ipv6", false, "run the load over IPv6: the veth and TAP systems between the lab's fd77::1 (mkstack with it in Addrs6, or the kernel) and fd77::2, the mem wire systems between fd00::1 and fd00::2, the loopback ones on ::1 (gvisor ignores it and runs over IPv4); each point records its family, and with --out the files are WORKLOAD-ipv6.json and so on, beside the IPv4 ones")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mkstack bench: "+format+"\n", a...)
		fs.Usage()
		return 2
	}
	if fs.NArg() != 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.systemsSet = o.systemsSet || f.Name == "systems" })
	if workloads == "all" {
		o.workloads = bench.Workloads
	} else {
		for w := range strings.SplitSeq(workloads, ",") {
			wl, err := bench.ParseWorkload(strings.TrimSpace(w))
			if err != nil {
				return bad("--workload: %v", err)
			}
			if !slices.Contains(o.workloads, wl) {
				o.workloads = append(o.workloads, wl)
			}
		}
	}
	var err error
	if o.spec.Cores, err = bench.ParseCores(cores); err != nil {
		return bad("--cores: %v", err)
	}
	if o.spec.Systems, err = bench.ParseSystems(systems); err != nil {
		return bad("--systems: %v", err)
	}
	if !slices.Contains(bench.HTTPClients, bench.HTTPClient) {
		return bad("--http-client %q: want one of %s", bench.HTTPClient, strings.Join(bench.HTTPClients, ", "))
	}
	if o.rates, err = parseRates(rates); err != nil {
		return bad("--rate: %v", err)
	}
	if o.conns, err = parseCounts(conns); err != nil {
		return bad("--conns: %v", err)
	}
	if len(o.conns) > 1 && len(o.rates) > 0 {
		return bad("--conns with a list and --rate: measure one axis at a time")
	}
	o.spec.Duration, o.spec.Warmup, o.spec.Conns, o.spec.Transactions = duration, warmup, o.conns[0], transactions
	for _, w := range o.workloads {
		s := o.spec
		s.Workload = w
		if len(o.rates) > 0 {
			s.Rate = o.rates[0]
		}
		if err := s.Validate(); err != nil {
			return bad("%v", err)
		}
	}
	// SIGINT and SIGTERM cancel the run: a point stops, the veth systems
	// remove their namespaces, and no files are written.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := benchMain(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "mkstack bench:", err)
		return 1
	}
	return 0
}

func benchMain(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	if o.out != "" {
		if err := checkCleanTree(o.out, o.allowDirty); err != nil {
			return err
		}
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
	}
	extra := map[string]bench.System{}
	needGVisor := false
	for _, w := range o.workloads {
		needGVisor = needGVisor || slices.Contains(o.systemsFor(w), bench.SysGVisor)
	}
	if needGVisor {
		bin := o.gvisorPeer
		if bin == "" {
			tmp, err := os.MkdirTemp("", "mkstack-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			fmt.Fprintln(stdout, "building bench/gvisorpeer (a nested module: gVisor stays out of mkstack's go.mod)...")
			if bin, err = buildGVisorPeer(ctx, tmp); err != nil {
				return err
			}
		}
		extra[bench.SysGVisor] = gvisorPeer(bin)
	}
	lead, trail := "", "\n"
	if isTerminal(stdout) {
		lead, trail = "\r\033[K", ""
	}
	for _, w := range o.workloads {
		spec := o.spec
		spec.Workload = w
		spec.Systems = o.systemsFor(w)
		if spec.Idle {
			// Memory is the measure: each point in a process of its own,
			// so none reuses what an earlier one left mapped.
			for _, name := range spec.Systems {
				if name != bench.SysGVisor {
					extra[name] = isolated(name)
				}
			}
		}
		var cur string
		ro := bench.RunOptions{
			Systems: extra,
			Progress: func(system string, cores int, elapsed time.Duration, rate float64) {
				cur = fmt.Sprintf("%s %s, %d cores: %4.1fs  %s %s", w, system, cores, elapsed.Seconds(), bench.FormatRate(rate), w.Unit())
				fmt.Fprint(stdout, lead+cur+trail)
			},
			Done: func(p bench.Point) {
				if trail == "" && cur != "" {
					fmt.Fprint(stdout, lead)
					cur = ""
				}
				// The family is named on every line of an IPv6 run (an
				// IPv4 run's lines stay as they were).
				fam := ""
				if o.spec.IPv6 {
					fam = ", " + p.FamilyText()
				}
				if p.Err != "" {
					fmt.Fprintf(stdout, "%s %s, %d cores%s: %s\n", w, p.System, p.Cores, fam, p.Err)
					return
				}
				if p.OfferedRate > 0 {
					machine := ""
					if p.MachineCPUUnit != "" {
						machine = fmt.Sprintf(", machine CPU %.2f %s", p.MachineCPUPerUnit, p.MachineCPUUnit)
					}
					fmt.Fprintf(stdout, "%s %s, %d cores%s: %s %s (%s offered)%s\n", w, p.System, p.Cores, fam, bench.FormatRate(p.Rate), p.Unit,
						bench.FormatRate(p.OfferedRate), machine)
					return
				}
				if o.spec.Idle {
					fmt.Fprintf(stdout, "%s %s, %d cores%s: %d idle connections, %s KiB each (opened at %s/s)\n", w, p.System, p.Cores, fam,
						p.Cores*p.Flows, p.IdleKiBPerConnText(), bench.FormatRate(p.Rate))
					return
				}
				fmt.Fprintf(stdout, "%s %s, %d cores%s: %s %s\n", w, p.System, p.Cores, fam, bench.FormatRate(p.Rate), p.Unit)
			},
		}
		// Each offered rate or connection count is a run of its own;
		// their points go in one result, told apart by their offered rate
		// or flows.
		rates := o.rates
		if len(rates) == 0 {
			rates = []float64{0} // peak
		}
		var r *bench.Result
		for _, conns := range o.conns {
			spec.Conns = conns
			if err := raiseFileLimit(spec); err != nil {
				// The points that need more fail with EMFILE in their
				// figures; the others still count.
				fmt.Fprintln(stderr, "mkstack bench:", err)
			}
			for _, rate := range rates {
				spec.Rate = rate
				ri, err := bench.Run(ctx, spec, ro)
				if err != nil {
					return err
				}
				if r == nil {
					r = ri
				} else {
					r.Points = append(r.Points, ri.Points...)
				}
			}
		}
		r.Finish()
		r.Env.AllowDirty = o.allowDirty && strings.HasSuffix(r.Env.Commit, "+dirty")
		var table bytes.Buffer
		r.WriteTable(&table)
		over := ""
		if o.spec.IPv6 {
			over = " over IPv6"
		}
		fmt.Fprintf(stdout, "\n%s%s (%s, %s, %s)\n%s\n", w, over, r.Env.CPUModel, r.Env.Kernel, r.Env.GoVersion, table.String())
		if o.out == "" {
			continue
		}
		base := filepath.Join(o.out, string(w))
		if len(o.rates) > 0 {
			base += "-rate"
		}
		if len(o.conns) > 1 {
			base += "-conns"
		}
		if o.spec.IPv6 {
			base += "-ipv6" // beside the IPv4 run's files
		}
		if o.spec.Idle {
			base += "-idle"
		}
		var js bytes.Buffer
		if err := r.WriteJSON(&js); err != nil {
			return err
		}
		if err := os.WriteFile(base+".json", js.Bytes(), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(base+".txt", table.Bytes(), 0o644); err != nil {
			return err
		}
		written := []string{base + ".json", base + ".txt"}
		if o.plots && (!o.spec.Idle || len(o.conns) > 1) {
			draw := plot.Write
			if len(o.rates) > 0 {
				draw = plot.WriteRate
			}
			if len(o.conns) > 1 {
				draw = plot.WriteConns
			}
			paths, err := draw(r, o.out)
			if err != nil {
				return err
			}
			written = append(written, paths...)
		}
		fmt.Fprintf(stdout, "wrote %s\n\n", strings.Join(written, " "))
	}
	return nil
}

// checkCleanTree refuses to write figures into the source tree (say
// docs/bench) from a tree with uncommitted changes, since the JSON would
// name a commit that did not produce them, unless allowDirty.
func checkCleanTree(out string, allowDirty bool) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	dir := abs
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir)
	}
	top, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil // not in a git tree: nothing to check against
	}
	// Figures already written under docs/ (by an earlier workload or run)
	// do not count: the code is what the JSON's commit names.
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)docs").Output()
	if err != nil || len(st) == 0 || allowDirty {
		return nil
	}
	return fmt.Errorf("--out %s is inside the source tree %s, which has uncommitted changes (git status): commit them first, or pass --allow-dirty to write the figures anyway (the JSON records it)",
		out, strings.TrimSpace(string(top)))
}

// buildGVisorPeer builds the nested module's command into dir.
func buildGVisorPeer(ctx context.Context, dir string) (string, error) {
	src, err := findGVisorPeer()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gvisorpeer")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gvisorpeer")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s/cmd/gvisorpeer: %w\n%s", src, err, out)
	}
	return bin, nil
}

// findGVisorPeer looks for bench/gvisorpeer from the working directory up.
func findGVisorPeer() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "bench", "gvisorpeer")
		if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("gvisor: bench/gvisorpeer not found above the working directory: run from the mkstack source tree or pass --gvisor-peer")
		}
		dir = up
	}
}

// gvisorPeer runs each point in the gvisorpeer process, which inherits the
// CPUs this process is confined to for the point and prints the point as
// JSON.
func gvisorPeer(bin string) bench.System {
	return bench.SystemFunc(func(ctx context.Context, p bench.Params) (bench.Point, error) {
		args := []string{"point",
			"-workload", string(p.Workload), "-cores", strconv.Itoa(p.Cores), "-flows", strconv.Itoa(p.Flows),
			"-duration", p.Duration.String(), "-warmup", p.Warmup.String(),
			"-transactions", strconv.FormatUint(p.Transactions, 10),
		}
		if p.Rate > 0 {
			args = append(args, "-rate", strconv.FormatFloat(p.Rate, 'f', -1, 64))
		}
		return pointProcess(ctx, "gvisorpeer", bin, args, p.CPUs)
	})
}

// pointProcess runs a point in a child process (bin with args, and the
// point's CPUs in order as -cpus), which inherits the CPUs this process is
// confined to for the point and prints the point as JSON; name says which
// in errors.
func pointProcess(ctx context.Context, name, bin string, args []string, cpus []int) (bench.Point, error) {
	if cpus != nil {
		cs := make([]string, len(cpus))
		for i, c := range cpus {
			cs[i] = strconv.Itoa(c)
		}
		args = append(args, "-cpus", strings.Join(cs, ","))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0)))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return bench.Point{}, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(errb.String()))
	}
	var pt bench.Point
	if err := json.Unmarshal(out, &pt); err != nil {
		return bench.Point{}, fmt.Errorf("%s: %w", name, err)
	}
	if pt.Err != "" {
		return pt, errors.New(pt.Err)
	}
	return pt, nil
}

// raiseFileLimit raises the process's open-file limit to what spec's
// largest point needs in this process: a client socket and a server
// socket per connection (the kernel systems serve in-process), plus room
// for the rest (the lab's, the runtime's, and sockets still closing). Raising the hard limit needs CAP_SYS_RESOURCE (root); a
// point that still runs out fails with EMFILE in its figures.
func raiseFileLimit(spec bench.Spec) error {
	k := slices.Max(spec.Cores)
	if err := raiseFileLimitTo(uint64(2*k*spec.Conns + 8192)); err != nil {
		return fmt.Errorf("--conns %d at %d cores: %w (mkstack's servers need none per connection, the kernel's in-process server one)", spec.Conns, k, err)
	}
	return nil
}

// raiseFileLimitTo raises the open-file limit to need if it is lower.
func raiseFileLimitTo(need uint64) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	hard := lim.Max
	lim.Cur, lim.Max = need, max(hard, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		// As far as the hard limit lets it, then.
		lim.Cur, lim.Max = hard, hard
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
		return fmt.Errorf("up to %d open files are needed; the limit is %d and cannot be raised (%v): run as root, raise ulimit -n, or lower --conns", need, hard, err)
	}
	return nil
}
