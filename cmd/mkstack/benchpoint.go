package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/mkstack/mkstack/bench"
)

func init() {
	register(command{name: "bench-point", summary: "run one point of mkstack bench in a process of its own and print it as JSON (bench --idle runs each point so)", run: runBenchPoint, hidden: true})
}

// runBenchPoint runs one system's point in this process, which holds
// nothing else: the idle-connection mode measures the machine's memory,
// and a system measured after another in one process would reuse what the
// first left mapped.
func runBenchPoint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-point", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		system, workload, cpus string
		p                      bench.Params
	)
	fs.StringVar(&system, "system", "", "the system")
	fs.StringVar(&workload, "workload", string(bench.TCPRR), "the workload")
	fs.IntVar(&p.Cores, "cores", 1, "cores")
	fs.IntVar(&p.Flows, "flows", bench.DefaultConns, "connections per core")
	fs.DurationVar(&p.Duration, "duration", 0, "measured time")
	fs.DurationVar(&p.Warmup, "warmup", 0, "warm-up time")
	fs.BoolVar(&p.Idle, "idle", false, "the idle-connection mode")
	fs.DurationVar(&p.IdleSettle, "idle-settle", 0, "the idle mode's settling time")
	fs.BoolVar(&p.IPv6, "ipv6", false, "over IPv6")
	fs.StringVar(&cpus, "cpus", "", "the point's CPUs (core i on the i-th)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	w, err := bench.ParseWorkload(workload)
	if err != nil {
		fmt.Fprintln(stderr, "mkstack bench-point:", err)
		return 2
	}
	p.Workload = w
	if cpus != "" {
		// In the parent's order: core i on the i-th.
		for _, f := range strings.Split(cpus, ",") {
			c, err := strconv.Atoi(f)
			if err != nil {
				fmt.Fprintln(stderr, "mkstack bench-point: --cpus:", err)
				return 2
			}
			p.CPUs = append(p.CPUs, c)
		}
	}
	// A child starts from the open-file limit the parent had at its own
	// start (Go's os/exec restores it), not the raised one.
	// The idle mode's veth load runs in a process of its own, so the
	// point needs a descriptor per connection at most.
	if err := raiseFileLimitTo(uint64(p.Cores*p.Flows + 1024)); err != nil {
		fmt.Fprintln(stderr, "mkstack bench-point:", err)
	}
	sys, ok := bench.DefaultSystems()[system]
	if !ok {
		fmt.Fprintf(stderr, "mkstack bench-point: system %q: unknown\n", system)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pt, err := sys.Run(ctx, p)
	if err != nil {
		pt.Err = err.Error()
	}
	if err := json.NewEncoder(stdout).Encode(pt); err != nil {
		fmt.Fprintln(stderr, "mkstack bench-point:", err)
		return 1
	}
	return 0
}

// isolated runs each point of system in a bench-point child process,
// which inherits the CPUs this process is confined to for the point.
func isolated(system string) bench.System {
	return bench.SystemFunc(func(ctx context.Context, p bench.Params) (bench.Point, error) {
		self, err := os.Executable()
		if err != nil {
			return bench.Point{}, fmt.Errorf("%s in a process of its own: %w", system, err)
		}
		args := []string{"bench-point", "-system", system, "-workload", string(p.Workload),
			"-cores", strconv.Itoa(p.Cores), "-flows", strconv.Itoa(p.Flows),
			"-duration", p.Duration.String(), "-warmup", p.Warmup.String(),
			"-idle=" + strconv.FormatBool(p.Idle), "-idle-settle", p.IdleSettle.String(), "-ipv6=" + strconv.FormatBool(p.IPv6)}
		return pointProcess(ctx, system+" in a process of its own", self, args, p.CPUs)
	})
}

func init() {
	register(command{name: "bench-idle-client", summary: "open idle connections and hold them until stdin ends (the load of bench --idle, in a process of its own)", run: runBenchIdleClient, hidden: true})
	bench.IdleClientCommand = idleClientCommand
}

// idleClientCommand runs this binary's bench-idle-client inside the
// network namespace netns.
func idleClientCommand(netns, addr string, w bench.Workload, n int) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	return exec.Command("ip", "netns", "exec", netns, self, "bench-idle-client",
		"-addr", addr, "-workload", string(w), "-n", strconv.Itoa(n))
}

func runBenchIdleClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-idle-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the server, HOST:PORT")
	workload := fs.String("workload", string(bench.TCPRR), "tcp-rr or http: the one exchange each connection makes")
	n := fs.Int("n", 1, "connections")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	w, err := bench.ParseWorkload(*workload)
	if err != nil {
		fmt.Fprintln(stderr, "mkstack bench-idle-client:", err)
		return 2
	}
	if err := raiseFileLimitTo(uint64(*n + 1024)); err != nil {
		fmt.Fprintln(stderr, "mkstack bench-idle-client:", err)
	}
	if err := bench.RunIdleClient(context.Background(), *addr, w, *n, stdout, os.Stdin); err != nil {
		fmt.Fprintln(stderr, "mkstack bench-idle-client:", err)
		return 1
	}
	return 0
}
