package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"time"

	"github.com/mkstack/mkstack/affinity"
)

// DefaultSystems are the systems this module runs in-process. gVisor's
// netstack lives in the nested module bench/gvisorpeer (so this module's
// go.mod never names it); its runner adds SysGVisor.
func DefaultSystems() map[string]System {
	return map[string]System{
		SysMkstack:              MkstackHandlers(),
		SysMkstackConn:          MkstackConn(),
		SysLinux:                Linux(),
		SysLinuxEpoll:           LinuxEpoll(),
		SysGVisor:               unavailable(SysGVisor, "it runs from the nested module bench/gvisorpeer (mkstack bench builds and runs it there)"),
		SysMkstackAFXDP:         Veth(SysMkstackAFXDP),
		SysMkstackTap:           Veth(SysMkstackTap),
		SysLinuxVeth:            Veth(SysLinuxVeth),
		SysLinuxVethOffloadsOff: Veth(SysLinuxVethOffloadsOff),
		SysLinuxEpollVeth:       Veth(SysLinuxEpollVeth),
		SysMkstackConnAFXDP:     Veth(SysMkstackConnAFXDP),
		SysMkstackConnTap:       Veth(SysMkstackConnTap),
		SysMemcachedVeth:        Veth(SysMemcachedVeth),
	}
}

// memSettleFrom is the shortest point settleMemory runs before.
const memSettleFrom = 2 * time.Second

// settleMemory waits until MemAvailable has held still (memoryStill) for
// a second, so a point's machine memory figure does not take in what the
// last point freed.
func settleMemory() { memoryStill(time.Second) }

// memoryStill waits until MemAvailable has held still within 1 MiB for
// window (sampled eight times across it), or for ten times window at
// most: memory an earlier point's process, namespaces and devices gave
// back keeps arriving for seconds after they are gone. It returns the last
// reading.
func memoryStill(window time.Duration) (int64, bool) {
	const samples = 9 // eight intervals
	var recent []int64
	start := time.Now()
	for {
		cur, ok := MemAvailable()
		if !ok {
			return 0, false
		}
		recent = append(recent, cur)
		if len(recent) > samples {
			recent = recent[1:]
		}
		if len(recent) == samples && slices.Max(recent)-slices.Min(recent) < 1<<20 || time.Since(start) > 10*window {
			return cur, true
		}
		time.Sleep(window / (samples - 1))
	}
}

// RunOptions shape Run.
type RunOptions struct {
	// Systems replace or add to DefaultSystems.
	Systems map[string]System
	// Progress, if set, hears about each point as it is measured.
	Progress func(system string, cores int, elapsed time.Duration, rate float64)
	// Done, if set, hears about each point once it has its figures.
	Done func(p Point)
}

// TakesIdle reports whether system runs the idle-connection mode
// (Spec.Idle): every system whose load is Go's net.Conns (RunConn) does;
// the mem wire's handler system drives its load with handlers of its own.
func TakesIdle(system string) bool {
	return system != SysMkstack && system != SysGVisor && system != SysMemcachedVeth
}

// PlanCPUs returns the CPUs of a k-core point: affinity.Plan's choice when
// the process may use k CPUs, else nil (not pinned) and why.
func PlanCPUs(k int) ([]int, string) {
	set, err := affinity.AllowedCPUs()
	if err != nil {
		return nil, fmt.Sprintf("not pinned: %v", err)
	}
	if k > set.Count() {
		return nil, fmt.Sprintf("not pinned: %d cores on %d allowed CPUs", k, set.Count())
	}
	cpus, err := affinity.Plan(k, "")
	if err != nil {
		return nil, fmt.Sprintf("not pinned: %v", err)
	}
	return cpus, ""
}

// Run measures spec: for each core count, each system in turn, on the same
// CPUs: the whole process is confined to them (Confine) while a point runs. A point that fails keeps its error in Point.Err; Run fails only
// for a bad spec or a cancelled ctx.
func Run(ctx context.Context, spec Spec, o RunOptions) (*Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	systems := DefaultSystems()
	for name, s := range o.Systems {
		systems[name] = s
	}
	r := &Result{Env: ReadEnv(), Workload: spec.Workload, Transactions: spec.Transactions, Rate: spec.Rate, Idle: spec.Idle}
	if spec.Transactions == 0 {
		r.Duration, r.Warmup = spec.Duration.String(), spec.Warmup.String()
	}
	for _, k := range spec.Cores {
		cpus, note := PlanCPUs(k)
		for _, name := range spec.Systems {
			sys, ok := systems[name]
			if !ok {
				return nil, fmt.Errorf("system %q: unknown", name)
			}
			p := Params{
				Workload: spec.Workload, Cores: k, CPUs: cpus, Flows: flows(spec.Workload, spec.Conns),
				Duration: spec.Duration, Warmup: spec.Warmup, Transactions: spec.Transactions,
				Rate: spec.Rate, IPv6: spec.IPv6 && TakesIPv6(name), Idle: spec.Idle, MTU: spec.MTU,
				IdleSettle: spec.IdleSettle,
			}
			if o.Progress != nil {
				p.Progress = func(elapsed time.Duration, rate float64) { o.Progress(name, k, elapsed, rate) }
			}
			// Each point starts with a clean heap, handed back to the
			// system, so its machine memory figure does not depend on
			// what an earlier point left mapped.
			debug.FreeOSMemory()
			var restore func()
			if cpus != nil {
				var cerr error
				if restore, cerr = Confine(cpus); cerr != nil {
					return nil, cerr
				}
			}
			// Each point starts from the runtime's default for the CPUs it
			// may use: a runtime (core.Start) or the epoll threads raise
			// GOMAXPROCS while they run, and any explicit setting stops Go
			// from following the CPU mask, so without this a later point
			// would run at whatever an earlier one left.
			runtime.SetDefaultGOMAXPROCS()
			var pt Point
			err := Supports(name, spec.Workload)
			if err == nil && spec.Idle && !TakesIdle(name) {
				err = fmt.Errorf("%s: %w: the idle-connection mode needs a load of Go net.Conns, which the mem wire's handler load is not (use %s on the mem wire, %s on the veth)",
					name, ErrNotAvailable, SysMkstackConn, SysMkstackAFXDP)
			}
			if err == nil {
				if spec.Transactions == 0 && spec.Duration >= memSettleFrom {
					// Memory the last point gave back reaches MemAvailable
					// late (the kernel's per-CPU counts, and a lab's UMEM
					// and namespaces are released by deferred work): let
					// it land before this point's watch begins.
					settleMemory()
				}
				mem := watchMemory()
				pt, err = sys.Run(ctx, p)
				pt.MachineMemoryBytes = mem.end()
			}
			if restore != nil {
				restore()
			}
			runtime.SetDefaultGOMAXPROCS()
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			pt.System, pt.Workload, pt.Cores, pt.Flows, pt.Unit = name, spec.Workload, k, p.Flows, spec.Workload.Unit()
			describe(&pt)
			if pt.CPUs == nil {
				pt.CPUs = cpus
			}
			if note != "" {
				pt.Note = note
			}
			if err != nil {
				pt.Err = err.Error()
				if errors.Is(err, ErrNotAvailable) {
					pt = Point{System: name, Workload: spec.Workload, Cores: k, Flows: p.Flows, Unit: pt.Unit, Err: err.Error()}
				}
			}
			if pt.Family == "" {
				// A system says which family its load went over (the
				// address it dialled); one that did not ran as asked.
				pt.Family = FamilyIPv4
				if p.IPv6 {
					pt.Family = FamilyIPv6
				}
			}
			pt.setCPUPerUnit()
			r.Points = append(r.Points, pt)
			if o.Done != nil {
				o.Done(pt)
			}
		}
	}
	r.Finish()
	return r, nil
}

// describe fills in what a point's system did not say of itself: its API
// model, device and load generator.
func describe(p *Point) {
	if p.API == "" {
		p.API = ModelOf(p.System, p.Workload)
	}
	if p.Driver == "" {
		switch p.System {
		case SysMkstack, SysMkstackConn:
			p.Driver = "mem wire"
		case SysLinux, SysLinuxEpoll:
			p.Driver = "loopback"
		case SysGVisor:
			p.Driver = "channel link"
		}
	}
	if p.Client == "" {
		switch p.System {
		case SysMkstack:
			p.Client = "handlers"
		case SysLinuxEpoll:
			p.Client = "epoll"
		case SysMkstackConn, SysLinux, SysGVisor:
			p.Client = "go"
		}
	}
}
