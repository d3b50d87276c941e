// Command gvisorpeer runs one bench point on gVisor's netstack and prints
// it as JSON: `mkstack bench --systems gvisor` runs it for each point (it
// lives in the nested module bench/gvisorpeer so that mkstack's go.mod
// never names gVisor). It inherits the CPUs its parent is confined to for
// the point.
//
//	gvisorpeer point -workload tcp-rr -cores 1 -flows 16 -duration 3s -warmup 1s [-cpus 1] [-transactions N]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mkstack/mkstack/bench"
	"github.com/mkstack/mkstack/bench/gvisorpeer"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 || args[0] != "point" {
		fmt.Fprintln(os.Stderr, "usage: gvisorpeer point -workload W -cores K -flows F -duration D [-warmup D] [-cpus LIST] [-transactions N] [-rate N]")
		return 2
	}
	fs := flag.NewFlagSet("point", flag.ContinueOnError)
	var (
		workload, cpus string
		p              bench.Params
	)
	fs.StringVar(&workload, "workload", string(bench.TCPRR), "workload")
	fs.IntVar(&p.Cores, "cores", 1, "cores of the point (its CPUs are the ones this process may use)")
	fs.IntVar(&p.Flows, "flows", bench.DefaultConns, "flows per core")
	fs.DurationVar(&p.Duration, "duration", 3*time.Second, "measured time")
	fs.DurationVar(&p.Warmup, "warmup", time.Second, "load before measuring")
	fs.Uint64Var(&p.Transactions, "transactions", 0, "run until N transactions instead of for -duration")
	fs.Float64Var(&p.Rate, "rate", 0, "pace the load at N transactions per second, bytes per second for a stream (0: peak)")
	fs.StringVar(&cpus, "cpus", "", "the CPUs the parent confined the point to, for the record")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	if p.Workload, err = bench.ParseWorkload(workload); err != nil {
		fmt.Fprintln(os.Stderr, "gvisorpeer:", err)
		return 2
	}
	if p.Cores < 1 || p.Flows < 1 || (p.Duration <= 0 && p.Transactions == 0) {
		fmt.Fprintln(os.Stderr, "gvisorpeer: -cores, -flows and -duration (or -transactions) must be positive")
		return 2
	}
	for f := range strings.SplitSeq(cpus, ",") {
		if f == "" {
			continue
		}
		c, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gvisorpeer: -cpus %q: %v\n", cpus, err)
			return 2
		}
		p.CPUs = append(p.CPUs, c)
	}
	pt, err := gvisorpeer.System().Run(context.Background(), p)
	if err != nil {
		pt.Err = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(pt); err != nil {
		fmt.Fprintln(os.Stderr, "gvisorpeer:", err)
		return 1
	}
	return 0
}
