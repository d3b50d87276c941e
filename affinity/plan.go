package affinity

import (
	"cmp"
	"fmt"
	"slices"
)

// PlanOptions refine Topology.Plan.
type PlanOptions struct {
	// Interface names the NIC whose NUMA node is preferred. "" means no
	// preference, as does a NIC whose node is unknown (-1).
	Interface string

	// UseCPU0 ranks CPU 0 like any other CPU. By default it comes last:
	// CPU 0 takes the interrupts and kernel housekeeping that cannot move
	// elsewhere, so a polling core there loses time to them.
	UseCPU0 bool
}

// Plan chooses n CPUs for n cores, on this machine (ReadTopology("/")),
// preferring iface's NUMA node; iface "" means no preference. See
// Topology.Plan.
func Plan(n int, iface string) ([]int, error) {
	t, err := ReadTopology("/")
	if err != nil {
		return nil, err
	}
	return t.Plan(n, PlanOptions{Interface: iface})
}

// Plan chooses n CPUs for n cores from those that are online and allowed,
// returned in order of preference: core i runs on the i-th. The order is
//
//  1. one hardware thread per physical core before any second thread of a
//     core (SMT siblings last: two polling threads on one core share its
//     execution units);
//  2. within that, the NIC's NUMA node first (its packet memory and its
//     interrupts are local there), then the other nodes in ascending order,
//     then CPUs whose node is unknown;
//  3. within that, ascending CPU number;
//
// and CPU 0 after all of them, unless opts.UseCPU0. A core's first thread is
// its lowest-numbered usable one, not counting CPU 0 when CPU 0 comes last;
// so on a machine whose cores are {0,32}, {1,33}, ..., CPU 32 counts as its
// core's first thread and CPU 0 is chosen last.
//
// It returns an error wrapping ErrNotEnoughCPUs if fewer than n CPUs are
// usable, and one wrapping ErrNoSuchInterface if opts.Interface does not
// exist.
func (t *Topology) Plan(n int, opts PlanOptions) ([]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("affinity: plan %d cpus: need at least 1", n)
	}
	preferred := -1
	if opts.Interface != "" {
		nic, err := t.NIC(opts.Interface)
		if err != nil {
			return nil, fmt.Errorf("affinity: plan %d cpus: %w", n, err)
		}
		preferred = nic.Node
	}
	usable := t.usable()
	if n > len(usable) {
		return nil, fmt.Errorf("affinity: plan %d cpus: %w: %d online and allowed (%s)",
			n, ErrNotEnoughCPUs, len(usable), formatSet(usable))
	}

	last := func(cpu int) bool { return cpu == 0 && !opts.UseCPU0 }
	type rank struct{ cpu, last, thread, node int }
	ranks := make([]rank, 0, len(usable))
	for _, cpu := range usable {
		c, ok := t.CPU(cpu)
		if !ok {
			c = CPU{ID: cpu, Node: -1}
		}
		r := rank{cpu: cpu, node: t.nodeRank(c.Node, preferred)}
		if last(cpu) {
			r.last = 1
		}
		// The thread's place among its core's usable threads.
		for _, s := range c.Siblings {
			if s < cpu && !last(s) && contains(usable, s) {
				r.thread++
			}
		}
		ranks = append(ranks, r)
	}
	slices.SortFunc(ranks, func(a, b rank) int {
		return cmp.Or(
			cmp.Compare(a.last, b.last),
			cmp.Compare(a.thread, b.thread),
			cmp.Compare(a.node, b.node),
			cmp.Compare(a.cpu, b.cpu))
	})
	plan := make([]int, n)
	for i := range plan {
		plan[i] = ranks[i].cpu
	}
	return plan, nil
}

// nodeRank orders NUMA nodes for Plan: the preferred node, the others
// ascending, unknown last.
func (t *Topology) nodeRank(node, preferred int) int {
	switch i := slices.Index(t.Nodes, node); {
	case node < 0 || i < 0:
		return len(t.Nodes) + 1
	case node == preferred:
		return 0
	default:
		return i + 1
	}
}
