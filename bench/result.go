package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// Env is where a result was measured.
type Env struct {
	CPUModel   string    `json:"cpu_model"`
	NumCPU     int       `json:"num_cpu"`
	Kernel     string    `json:"kernel"`
	GoVersion  string    `json:"go_version"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	Commit     string    `json:"commit"`
	Time       time.Time `json:"time"`
	// AllowDirty records that the run was written from a modified tree
	// on purpose (mkstack bench --allow-dirty).
	AllowDirty bool `json:"allow_dirty,omitempty"`
}

// ReadEnv describes this machine and the commit of the working directory
// (git rev-parse; "unknown" outside a repository, "+dirty" if a tracked
// file outside docs/ is modified).
func ReadEnv() Env {
	e := Env{
		CPUModel: "unknown", NumCPU: runtime.NumCPU(), Kernel: "unknown",
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Commit: "unknown", Time: time.Now().UTC().Truncate(time.Second),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		e.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		e.Commit = strings.TrimSpace(string(out))
		// Changes under docs/ (the figures a run writes there, say) do
		// not make the code that produced them another.
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)docs").Output(); err == nil && len(st) > 0 {
			e.Commit += "+dirty"
		}
	}
	return e
}

// Point is one system at one core count.
type Point struct {
	System   string   `json:"system"`
	Workload Workload `json:"workload"`
	Cores    int      `json:"cores"`
	// CPUs are the CPUs the point ran on (core i on CPUs[i]).
	CPUs []int `json:"cpus,omitempty"`
	// Flows is the connections or UDP flows per core.
	Flows int `json:"flows_per_core"`
	// Seconds is the measured window; Count the transactions (bytes for
	// a stream) completed in it; Rate = Count / Seconds.
	Seconds float64 `json:"seconds"`
	Count   uint64  `json:"count"`
	Rate    float64 `json:"rate"`
	Unit    string  `json:"unit"`
	// PerCore is Rate / Cores; Efficiency is Rate(k) / (k * Rate(1)) of
	// the same system in the same run (0 without a 1-core point).
	PerCore    float64 `json:"per_core"`
	Efficiency float64 `json:"efficiency,omitempty"`
	// Latency of the transactions completed in the window (none for
	// streams).
	Latency *Latency `json:"latency,omitempty"`
	// WakeupsPerTxn and SyscallsPerTxn are, for a system whose server is
	// an mkstack runtime on a real device (the veth and TAP systems), its
	// cores' wake-ups from sleep and the system calls made for them
	// (core.Wakeups, core.Syscalls) per transaction in the window, or
	// per unit of a stream; HasRuntimeCounts says they were measured.
	WakeupsPerTxn    float64 `json:"wakeups_per_txn,omitempty"`
	SyscallsPerTxn   float64 `json:"syscalls_per_txn,omitempty"`
	HasRuntimeCounts bool    `json:"has_runtime_counts,omitempty"`
	// GCCycles is the garbage collections of the measuring process in
	// the window (runtime.MemStats.NumGC after minus before).
	GCCycles uint32 `json:"gc_cycles"`
	// CPUSeconds is the user and system CPU time of the measuring
	// process in the window (getrusage), both sides of the wire.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MachineCPUSeconds is the busy time of every CPU of the machine in
	// the window (/proc/stat: user, nice, system, irq, softirq): the load,
	// the server, the kernel's work for both and anything else running.
	// Divided by Count it is the whole machine's CPU per transaction.
	MachineCPUSeconds float64 `json:"machine_cpu_seconds,omitempty"`
	// MachineCPUPerUnit is MachineCPUSeconds per unit of the point's
	// work in MachineCPUUnit (CPUUnit): µs per transaction, or for a
	// stream µs per MiB the server received; 0 without a machine CPU
	// reading. Run and Result.Finish fill both in.
	MachineCPUPerUnit float64 `json:"machine_cpu_per_unit,omitempty"`
	MachineCPUUnit    string  `json:"machine_cpu_unit,omitempty"`
	// MachineMemoryBytes is the most the whole machine's memory in use
	// grew while the point ran, from just before its server started
	// (MemAvailable's largest drop, sampled every 50 ms): the server, the
	// load and the kernel's sockets and buffers for both. Across points
	// that differ only in connections, its slope is the memory each
	// connection costs.
	MachineMemoryBytes int64 `json:"machine_memory_bytes,omitempty"`
	// IdleMemoryBytes, in the idle-connection mode (Spec.Idle), is the
	// whole machine's memory the point's open idle connections hold:
	// MemAvailable just before they opened less MemAvailable once all
	// were open and had made their exchange, each reading taken after a
	// garbage collection of the measuring process (which holds the load,
	// and the server where it is in-process) with its free memory
	// returned to the system, and once MemAvailable had settled. The
	// server's side, the load's and the kernel's sockets for both.
	IdleMemoryBytes int64 `json:"idle_memory_bytes,omitempty"`
	// OfferedRate is the paced load of the fixed-rate mode (transactions
	// per second for the whole point, bytes per second for a stream); 0
	// for a peak point.
	OfferedRate float64 `json:"offered_rate,omitempty"`
	// GOMAXPROCS is the Go runtime's setting at the end of the window
	// (core.Start raises it while a runtime runs).
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
	// API is the application model on the server: "handler" (run to
	// completion on the core), "epoll" (a kernel thread per core and an
	// epoll loop: the kernel's equivalent of the handler API),
	// "net.Conn" (a goroutine per connection) or "net/http".
	API string `json:"api,omitempty"`
	// Driver is the device and how the server's stack reaches it:
	// "mem wire", "loopback", "veth", "veth, AF_XDP copy mode", "TAP".
	Driver string `json:"driver,omitempty"`
	// PeerOffloads is the checksum and segmentation offload setting of
	// the kernel-side device the load goes out on (veth systems):
	// "defaults" or "off".
	PeerOffloads string `json:"peer_offloads,omitempty"`
	// MTU is the MTU of a veth or TAP system's devices when it was not
	// 1500 (Spec.MTU).
	MTU int `json:"mtu,omitempty"`
	// Family is the address family the load went over: FamilyIPv4 or
	// FamilyIPv6 (mkstack bench --ipv6). Results from before it was
	// recorded lack it: they are IPv4 (IsIPv6).
	Family string `json:"family,omitempty"`
	// Client is the load generator: "handlers" (mkstack's per-core
	// handlers), "epoll" (a kernel thread per core), "go" (goroutines on
	// Go's net), "wrk" or "h2load".
	Client string `json:"client,omitempty"`
	// Errors counts failed transactions (refused dials, resets).
	Errors uint64 `json:"errors,omitempty"`
	// Note says how the point was run, when that needs saying.
	Note string `json:"note,omitempty"`
	// Err is why the point has no figures.
	Err string `json:"error,omitempty"`
}

// IsIPv6 reports whether the point ran over IPv6; a point without a
// Family (an older result) ran over IPv4.
func (p *Point) IsIPv6() bool { return p.Family == FamilyIPv6 }

// FamilyText is the point's family as prose: "IPv4" or "IPv6".
func (p *Point) FamilyText() string {
	if p.IsIPv6() {
		return "IPv6"
	}
	return "IPv4"
}

// familyOf is the family of the address addr (a host, not host:port):
// FamilyIPv6 for an IPv6 address (not an IPv4-mapped one), else
// FamilyIPv4.
func familyOf(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Unmap().Is6() {
		return FamilyIPv6
	}
	return FamilyIPv4
}

// Result is a whole run.
type Result struct {
	Env      Env      `json:"env"`
	Workload Workload `json:"workload"`
	// Duration and Warmup per point, or Transactions per point.
	Duration     string `json:"duration,omitempty"`
	Warmup       string `json:"warmup,omitempty"`
	Transactions uint64 `json:"transactions,omitempty"`
	// Rate is the fixed-rate mode's offered load per point (0: peak).
	Rate float64 `json:"rate,omitempty"`
	// Idle is the idle-connection mode (Spec.Idle): each point's rate is
	// connections opened per second, its figure IdleMemoryBytes.
	Idle   bool    `json:"idle,omitempty"`
	Points []Point `json:"points"`
}

// Finish computes each point's efficiency from its system's 1-core point
// at the same offered rate, and its machine CPU per unit of work.
func (r *Result) Finish() {
	for i := range r.Points {
		r.Points[i].setCPUPerUnit()
	}
	type key struct {
		system  string
		offered float64
		flows   int
	}
	one := map[key]float64{}
	for _, p := range r.Points {
		if p.Cores == 1 && p.Err == "" {
			one[key{p.System, p.OfferedRate, p.Flows}] = p.Rate
		}
	}
	for i := range r.Points {
		p := &r.Points[i]
		if r1 := one[key{p.System, p.OfferedRate, p.Flows}]; r1 > 0 && p.Err == "" {
			p.Efficiency = p.Rate / (float64(p.Cores) * r1)
		}
	}
}

// Find returns the (first) point of system at cores, or nil.
func (r *Result) Find(system string, cores int) *Point {
	for i := range r.Points {
		if r.Points[i].System == system && r.Points[i].Cores == cores {
			return &r.Points[i]
		}
	}
	return nil
}

// FindAt returns the point of system at cores and offered rate (0: a
// peak point), or nil.
func (r *Result) FindAt(system string, cores int, offered float64) *Point {
	for i := range r.Points {
		if p := &r.Points[i]; p.System == system && p.Cores == cores && p.OfferedRate == offered {
			return p
		}
	}
	return nil
}

// FindFlows returns the point of system at cores, offered rate (0: peak)
// and flows per core, or nil.
func (r *Result) FindFlows(system string, cores int, offered float64, flows int) *Point {
	for i := range r.Points {
		if p := &r.Points[i]; p.System == system && p.Cores == cores && p.OfferedRate == offered && p.Flows == flows {
			return p
		}
	}
	return nil
}

// findLike returns the point of system measured as a was: at its core
// count, offered rate, flows per core and address family; or nil.
func (r *Result) findLike(system string, a *Point) *Point {
	for i := range r.Points {
		if p := &r.Points[i]; p.System == system && p.Cores == a.Cores && p.OfferedRate == a.OfferedRate && p.Flows == a.Flows && p.IsIPv6() == a.IsIPv6() {
			return p
		}
	}
	return nil
}

// HasIPv6 reports whether any of r's points ran over IPv6 (mkstack bench
// --ipv6).
func (r *Result) HasIPv6() bool {
	for i := range r.Points {
		if r.Points[i].IsIPv6() {
			return true
		}
	}
	return false
}

// FlowCounts lists the distinct flows per core of r's points with
// figures, ascending:
// more than one for a result along the connection axis (mkstack bench
// --conns with a list).
func (r *Result) FlowCounts() []int {
	var out []int
	for _, p := range r.Points {
		if p.Err == "" && !slices.Contains(out, p.Flows) {
			out = append(out, p.Flows)
		}
	}
	slices.Sort(out)
	return out
}

// OfferedRates lists the distinct offered rates of r's points, ascending
// (none for a peak result).
func (r *Result) OfferedRates() []float64 {
	var out []float64
	for _, p := range r.Points {
		if p.OfferedRate > 0 && !slices.Contains(out, p.OfferedRate) {
			out = append(out, p.OfferedRate)
		}
	}
	slices.Sort(out)
	return out
}

// WriteJSON writes r indented.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a result written by WriteJSON.
func ReadJSON(rd io.Reader) (*Result, error) {
	var r Result
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("bench: read result: %w", err)
	}
	return &r, nil
}

// FormatRate prints a rate with a unit prefix: "1.23M".
func FormatRate(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fK", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// WriteTable writes r as an aligned table, then the ratios of mkstack to
// each other system measured at the same core count.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// A fixed-rate result has the offered rate and the whole machine's
	// CPU per unit of work (CPUUnit) too.
	rate := r.isRate()
	cpuU, cpuScale := CPUUnit(r.Workload)
	// A result with IPv6 points names each point's family (a run with
	// --ipv6 may hold systems that ran over IPv4: TakesIPv6).
	family := r.HasIPv6()
	head := "system\t"
	if family {
		head += "family\t"
	}
	head += "cores\tconns\t"
	if rate {
		head += "offered\t"
	}
	unit := r.Workload.Unit()
	head += "%s\t"
	if r.Idle {
		unit = "conns opened/s"
		head += "idle KiB/conn\t"
	}
	head += "per core\tefficiency\tp50 µs\tp99 µs\tp99.9 µs\tCPU s\t"
	if rate {
		head += "machine CPU " + cpuU + "\t"
	}
	counts := r.hasRuntimeCounts()
	if counts {
		head += "wake-ups/txn\tsyscalls/txn\t"
	}
	fmt.Fprintf(tw, head+"GCs\terrors\tmem MiB\t\n", unit)
	for _, p := range r.Points {
		sys := p.System
		if family {
			sys += "\t" + p.FamilyText()
		}
		if p.Err != "" {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\t\t\t\t\t\t\t\t\t\n", sys, p.Cores, p.Cores*p.Flows, p.Err)
			continue
		}
		offered, machine := "", ""
		if rate {
			offered, machine = "-\t", "-\t"
			if p.OfferedRate > 0 {
				offered = FormatRate(p.OfferedRate) + "\t"
			}
			if c := p.CPUPerTxn(); c > 0 {
				machine = fmt.Sprintf("%.2f\t", c*cpuScale)
			}
		}
		eff, p50, p99, p999 := "-", "-", "-", "-"
		if p.Efficiency > 0 {
			eff = fmt.Sprintf("%.2f", p.Efficiency)
		}
		if p.Latency != nil {
			p50, p99 = fmt.Sprintf("%.1f", p.Latency.P50), fmt.Sprintf("%.1f", p.Latency.P99)
			if p.Latency.P999 > 0 { // wrk reports no 99.9th percentile
				p999 = fmt.Sprintf("%.1f", p.Latency.P999)
			}
		}
		mem := "-"
		if p.MachineMemoryBytes > 0 {
			mem = fmt.Sprintf("%.1f", float64(p.MachineMemoryBytes)/(1<<20))
		}
		rateText := FormatRate(p.Rate)
		if r.Idle {
			rateText += "\t" + p.IdleKiBPerConnText()
		}
		if counts {
			if p.HasRuntimeCounts {
				machine += fmt.Sprintf("%.2f\t%.2f\t", p.WakeupsPerTxn, p.SyscallsPerTxn)
			} else {
				machine += "-\t-\t"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s%d\t%d\t%s\t\n", sys, p.Cores, p.Cores*p.Flows, offered, rateText, FormatRate(p.PerCore),
			eff, p50, p99, p999, p.CPUSeconds, machine, p.GCCycles, p.Errors, mem)
	}
	axis := len(r.FlowCounts()) > 1
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ratio := range r.Ratios() {
		at := ""
		if ratio.OfferedRate > 0 {
			at = " at " + FormatRate(ratio.OfferedRate) + " offered"
			if r.Workload.Stream() {
				at = " at " + FormatRate(ratio.OfferedRate) + " bytes/s offered"
			}
		}
		if axis {
			at += fmt.Sprintf(" with %d conns", ratio.Cores*ratio.Flows)
		}
		if ratio.Family == FamilyIPv6 {
			at += " over IPv6"
		}
		if r.Idle {
			// The rate is how fast the connections opened; the figure
			// is the memory they hold.
			fmt.Fprintf(w, "%s ÷ %s at %d cores%s (%s): connections opened per second %.2f", ratio.System, ratio.Peer, ratio.Cores, at, ratio.Model, ratio.Value)
		} else {
			fmt.Fprintf(w, "%s ÷ %s at %d cores%s (%s): %.2f", ratio.System, ratio.Peer, ratio.Cores, at, ratio.Model, ratio.Value)
		}
		if ratio.CPUPerTxn > 0 {
			fmt.Fprintf(w, ", machine CPU per %s %.2f", CPUPerUnitText(r.Workload), ratio.CPUPerTxn)
		}
		if ratio.IdleMemory > 0 {
			fmt.Fprintf(w, ", memory per idle connection %.2f", ratio.IdleMemory)
		}
		if axis && ratio.Memory > 0 {
			fmt.Fprintf(w, ", machine memory %.2f", ratio.Memory)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// Ratio compares a system with its like-for-like peer (a Pair), measured
// in the same run at the same core count.
type Ratio struct {
	System string `json:"system"`
	Peer   string `json:"peer"`
	Cores  int    `json:"cores"`
	// Model is the pair's API model.
	Model string `json:"model"`
	// OfferedRate is both points' offered rate (0: peak).
	OfferedRate float64 `json:"offered_rate,omitempty"`
	// Flows is both points' flows (connections) per core.
	Flows int `json:"flows_per_core,omitempty"`
	// Family is both points' address family (Point.Family: empty for
	// IPv4 in results from before it was recorded).
	Family string `json:"family,omitempty"`
	// Value is the system's rate divided by the peer's.
	Value float64 `json:"value"`
	// CPUPerTxn is the system's whole-machine CPU per transaction divided
	// by the peer's (0 where either lacks it).
	CPUPerTxn float64 `json:"cpu_per_txn,omitempty"`
	// Memory is the system's MachineMemoryBytes divided by the peer's (0
	// where either lacks it).
	Memory float64 `json:"memory,omitempty"`
	// IdleMemory is the system's IdleMemoryBytes divided by the peer's
	// (the idle-connection mode; 0 where either lacks it).
	IdleMemory float64 `json:"idle_memory,omitempty"`
}

// Ratios compares each system with its like-for-like peers (Pairs) at
// each core count both have a figure for, over the same address family;
// no other ratio is given.
func (r *Result) Ratios() []Ratio {
	var out []Ratio
	for _, pr := range PairsFor(r.Workload) {
		for _, a := range r.Points {
			if a.System != pr.System || a.Err != "" {
				continue
			}
			b := r.findLike(pr.Peer, &a)
			if b == nil || b.Err != "" || b.Rate == 0 {
				continue
			}
			ratio := Ratio{System: a.System, Peer: b.System, Cores: a.Cores, Model: pr.Model, OfferedRate: a.OfferedRate, Flows: a.Flows, Family: a.Family, Value: a.Rate / b.Rate}
			if ca, cb := a.CPUPerTxn(), b.CPUPerTxn(); ca > 0 && cb > 0 {
				ratio.CPUPerTxn = ca / cb
			}
			if a.MachineMemoryBytes > 0 && b.MachineMemoryBytes > 0 {
				ratio.Memory = float64(a.MachineMemoryBytes) / float64(b.MachineMemoryBytes)
			}
			if a.IdleMemoryBytes > 0 && b.IdleMemoryBytes > 0 {
				ratio.IdleMemory = float64(a.IdleMemoryBytes) / float64(b.IdleMemoryBytes)
			}
			out = append(out, ratio)
		}
	}
	return out
}

// IdleKiBPerConn is IdleMemoryBytes per connection in KiB, 0 without a
// figure.
func (p *Point) IdleKiBPerConn() float64 {
	if p.IdleMemoryBytes <= 0 || p.Cores*p.Flows == 0 {
		return 0
	}
	return float64(p.IdleMemoryBytes) / float64(p.Cores*p.Flows) / 1024
}

// IdleKiBPerConnText is IdleKiBPerConn as text, "-" without a figure.
func (p *Point) IdleKiBPerConnText() string {
	if k := p.IdleKiBPerConn(); k > 0 {
		return fmt.Sprintf("%.1f", k)
	}
	return "-"
}

// CPUPerTxn is the whole machine's CPU time per transaction (per byte
// for a stream) in the point's window, in seconds; 0 without a reading.
func (p *Point) CPUPerTxn() float64 {
	if p.Count == 0 || p.MachineCPUSeconds <= 0 {
		return 0
	}
	return p.MachineCPUSeconds / float64(p.Count)
}

// CPUUnit is the unit of the whole machine's CPU per unit of w's work
// (Point.MachineCPUPerUnit, the fixed-rate tables and plots) and the
// factor from CPUPerTxn's seconds per count to it: µs per transaction,
// and for the streams, whose count is bytes, µs per MiB received.
func CPUUnit(w Workload) (unit string, scale float64) {
	if w.Stream() {
		return "µs/MiB", 1e6 * (1 << 20)
	}
	return "µs/trans", 1e6
}

// CPUPerUnitText is CPUUnit's unit in words, for prose: "transaction"
// or "MiB".
func CPUPerUnitText(w Workload) string {
	if w.Stream() {
		return "MiB"
	}
	return "transaction"
}

// setCPUPerUnit fills in MachineCPUPerUnit and MachineCPUUnit from the
// point's machine CPU and count.
func (p *Point) setCPUPerUnit() {
	p.MachineCPUPerUnit, p.MachineCPUUnit = 0, ""
	if c := p.CPUPerTxn(); c > 0 && p.Err == "" {
		unit, scale := CPUUnit(p.Workload)
		p.MachineCPUPerUnit, p.MachineCPUUnit = c*scale, unit
	}
}

// hasRuntimeCounts reports whether a point measured its runtime's wake-ups
// and system calls.
func (r *Result) hasRuntimeCounts() bool {
	for i := range r.Points {
		if r.Points[i].HasRuntimeCounts {
			return true
		}
	}
	return false
}
