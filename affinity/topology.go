package affinity

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Topology is the machine's CPU layout as sysfs describes it, read once by
// ReadTopology. It is a plain value: reading it again is how to see CPU
// hot-plug. Every list in it is sorted and free of duplicates.
type Topology struct {
	// Root is the directory the topology was read from: "/" for this
	// machine, a fixture tree in tests. NIC and the IRQ functions read and
	// write below it too.
	Root string

	Present []int // CPUs that exist (cpu/present)
	Online  []int // CPUs that are online (cpu/online)

	// Allowed is the set this process may run on. For the root "/" it is
	// the process's set as it was at start (see AllowedCPUs); for any other
	// root it is Cpus_allowed_list from ROOT/proc/self/status, or every
	// present CPU if that file is absent.
	Allowed []int

	Nodes []int // NUMA nodes that have CPUs; empty on a kernel without NUMA
	CPUs  []CPU // one per present CPU, ordered by ID
}

// CPU is one hardware thread.
type CPU struct {
	ID      int
	Online  bool
	Node    int // NUMA node, -1 if unknown
	Package int // physical_package_id (socket), -1 if unknown
	Core    int // core_id within the package, -1 if unknown

	// Siblings are the hardware threads of this CPU's physical core,
	// itself included (thread_siblings_list). Nil when the kernel does not
	// say, as for an offline CPU.
	Siblings []int
}

const (
	sysCPU  = "sys/devices/system/cpu"
	sysNode = "sys/devices/system/node"
)

// ReadTopology reads the CPU topology from the sysfs tree under root
// ("/" for this machine). A test passes a fixture directory laid out like
// the real one: ROOT/sys/devices/system/cpu/{present,online,cpuN/topology},
// ROOT/sys/devices/system/node/nodeN/cpulist, ROOT/sys/class/net/IF/... and
// ROOT/proc/{interrupts,irq/N/smp_affinity_list,self/status}.
//
// Only the list of present CPUs is required; every other file may be
// missing, and what it would have said is then unknown (see CPU) or
// defaults as documented on Topology.
func ReadTopology(root string) (*Topology, error) {
	t, err := readCPUState(root)
	if err != nil {
		return nil, err
	}
	if len(t.Present) == 0 {
		return nil, fmt.Errorf("affinity: read topology under %s: no present cpus", root)
	}
	if err := t.readCPUs(); err != nil {
		return nil, err
	}
	return t, nil
}

// readCPUState reads what checking a CPU needs and nothing more: the
// present, online and allowed sets. It is what Pin reads on every call.
func readCPUState(root string) (*Topology, error) {
	t := &Topology{Root: root}
	var err error
	if t.Present, err = readCPUListFile(t.path(sysCPU, "present")); errors.Is(err, fs.ErrNotExist) {
		// Kernels always have cpu/present; a hand-made tree may not.
		t.Present, err = numberedEntries(t.path(sysCPU), "cpu")
	}
	if err != nil {
		return nil, fmt.Errorf("affinity: read present cpus: %w", err)
	}
	if t.Online, err = readCPUListFile(t.path(sysCPU, "online")); errors.Is(err, fs.ErrNotExist) {
		t.Online, err = slices.Clone(t.Present), nil
	}
	if err != nil {
		return nil, fmt.Errorf("affinity: read online cpus: %w", err)
	}
	if filepath.Clean(root) == "/" {
		set, err := AllowedCPUs()
		if err != nil {
			return nil, err
		}
		t.Allowed = ListCPUs(set)
	} else {
		t.Allowed, err = readStatusAllowed(t.path("proc/self/status"))
		if errors.Is(err, fs.ErrNotExist) {
			t.Allowed, err = slices.Clone(t.Present), nil
		}
		if err != nil {
			return nil, fmt.Errorf("affinity: read allowed cpus: %w", err)
		}
	}
	return t, nil
}

// readCPUs fills Nodes and CPUs.
func (t *Topology) readCPUs() error {
	nodeOf := make(map[int]int)
	nodes, err := numberedEntries(t.path(sysNode), "node")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("affinity: read numa nodes: %w", err)
	}
	for _, n := range nodes {
		cpus, err := readCPUListFile(t.path(sysNode, "node"+strconv.Itoa(n), "cpulist"))
		if err != nil {
			return fmt.Errorf("affinity: read cpus of numa node %d: %w", n, err)
		}
		if len(cpus) > 0 {
			t.Nodes = append(t.Nodes, n)
		}
		for _, c := range cpus {
			nodeOf[c] = n
		}
	}
	for _, id := range t.Present {
		c := CPU{ID: id, Online: contains(t.Online, id), Node: -1, Package: -1, Core: -1}
		dir := t.path(sysCPU, "cpu"+strconv.Itoa(id))
		if n, ok := nodeOf[id]; ok {
			c.Node = n
		} else if links, _ := numberedEntries(dir, "node"); len(links) == 1 {
			// An offline CPU is missing from its node's cpulist, but
			// cpuN/nodeM (a link to the node) still names it.
			c.Node = links[0]
		}
		if c.Siblings, err = readCPUListFile(filepath.Join(dir, "topology", "thread_siblings_list")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("affinity: read smt siblings of cpu %d: %w", id, err)
		}
		if c.Package, err = readIntFile(filepath.Join(dir, "topology", "physical_package_id"), -1); err != nil {
			return fmt.Errorf("affinity: read package of cpu %d: %w", id, err)
		}
		if c.Core, err = readIntFile(filepath.Join(dir, "topology", "core_id"), -1); err != nil {
			return fmt.Errorf("affinity: read core of cpu %d: %w", id, err)
		}
		t.CPUs = append(t.CPUs, c)
	}
	return nil
}

// CPU returns the CPU with the given ID, if it is present.
func (t *Topology) CPU(id int) (CPU, bool) {
	i, ok := slices.BinarySearchFunc(t.CPUs, id, func(c CPU, id int) int { return c.ID - id })
	if !ok {
		return CPU{}, false
	}
	return t.CPUs[i], true
}

// NodeCPUs returns the present CPUs of a NUMA node, in ascending order.
func (t *Topology) NodeCPUs(node int) []int {
	var cpus []int
	for _, c := range t.CPUs {
		if c.Node == node {
			cpus = append(cpus, c.ID)
		}
	}
	return cpus
}

// CheckCPU says whether this process could be pinned to cpu: nil, or a
// *CPUError wrapping ErrNoSuchCPU, ErrCPUOffline or ErrCPUNotAllowed, in
// that order of precedence. Pin makes the same check against this machine.
func (t *Topology) CheckCPU(cpu int) error {
	return t.checkCPU("pin", cpu, true)
}

// checkCPU checks cpu against the present and online sets and, if
// wantAllowed, the allowed set. A nil set (not known, as when sysfs is
// unreadable) is not checked.
func (t *Topology) checkCPU(op string, cpu int, wantAllowed bool) error {
	switch {
	case cpu < 0 || t.Present != nil && !contains(t.Present, cpu):
		return &CPUError{Op: op, CPU: cpu, Err: ErrNoSuchCPU, SetName: "present", Set: t.Present}
	case t.Online != nil && !contains(t.Online, cpu):
		return &CPUError{Op: op, CPU: cpu, Err: ErrCPUOffline, SetName: "online", Set: t.Online}
	case wantAllowed && !contains(t.Allowed, cpu):
		return &CPUError{Op: op, CPU: cpu, Err: ErrCPUNotAllowed, SetName: "allowed", Set: t.Allowed}
	}
	return nil
}

// usable returns the CPUs that are online and allowed, ascending.
func (t *Topology) usable() []int {
	var cpus []int
	for _, c := range t.Online {
		if contains(t.Allowed, c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

func (t *Topology) path(elem ...string) string {
	return filepath.Join(append([]string{t.Root}, elem...)...)
}

func readCPUListFile(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cpus, err := ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cpus == nil {
		cpus = []int{} // known to be empty, unlike a missing file
	}
	return cpus, nil
}

// readIntFile reads a file holding one decimal integer, returning def if
// the file does not exist.
func readIntFile(path string, def int) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// numberedEntries returns N for every entry PREFIXN of dir (cpu0, node1),
// ascending.
func numberedEntries(dir, prefix string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, e := range entries {
		num, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || num == "" {
			continue
		}
		if n, err := strconv.Atoi(num); err == nil && n >= 0 && num[0] != '+' {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// readStatusAllowed reads Cpus_allowed_list from a /proc/PID/status file.
func readStatusAllowed(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			cpus, err := ParseCPUList(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return cpus, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: no Cpus_allowed_list line", path)
}
