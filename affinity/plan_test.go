package affinity

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlanTwoSocketMachine(t *testing.T) {
	topo := readFixture(t, "twosocket64")
	for _, tc := range []struct {
		name string
		n    int
		opts PlanOptions
		want string // in order of preference
	}{
		{"NIC node's cores first", 8, PlanOptions{Interface: "eth0"},
			"16,17,18,19,20,21,22,23"},
		{"all of the NIC node's physical cores", 16, PlanOptions{Interface: "eth0"},
			"16-31"},
		// Physical cores on the other node before any SMT sibling.
		{"other node's cores before siblings", 20, PlanOptions{Interface: "eth0"},
			"16-31,1,2,3,4"},
		// CPU 0 is held back, so 32 counts as the first thread of core {0,32}.
		{"every physical core", 32, PlanOptions{Interface: "eth0"},
			"16-31,1-15,32"},
		{"siblings after, NIC node first", 34, PlanOptions{Interface: "eth0"},
			"16-31,1-15,32,48,49"},
		{"CPU 0 last", 64, PlanOptions{Interface: "eth0"},
			"16-31,1-15,32,48-63,33-47,0"},
		{"no NIC: nodes in order", 4, PlanOptions{},
			"1,2,3,4"},
		{"no NIC: node 0's cores, then node 1's", 17, PlanOptions{},
			"1-15,32,16"},
		{"CPU 0 when asked", 4, PlanOptions{UseCPU0: true},
			"0,1,2,3"},
		{"CPU 0 when asked keeps 32 a sibling", 33, PlanOptions{UseCPU0: true},
			"0-31,32"},
		{"CPU 0 when asked, NIC node first", 17, PlanOptions{Interface: "eth0", UseCPU0: true},
			"16-31,0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := topo.Plan(tc.n, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := orderedList(t, tc.want); !slices.Equal(got, want) {
				t.Errorf("Plan(%d, %+v) =\n%v\nwant\n%v", tc.n, tc.opts, got, want)
			}
		})
	}
}

// orderedList expands a list like "16-31,1,2" keeping its order, since a
// plan's order matters and ParseCPUList sorts.
func orderedList(t *testing.T, s string) []int {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		out = append(out, cpus(t, part)...)
	}
	return out
}

func TestPlanOnlyOnlineAllowedCPUs(t *testing.T) {
	topo := readFixture(t, "small4") // online 0-2, allowed 1-3
	got, err := topo.Plan(2, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	equalList(t, "Plan(2)", got, []int{1, 2})
	// A virtual interface has no node: no preference, same plan.
	got, err = topo.Plan(2, PlanOptions{Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	equalList(t, "Plan(2, lo)", got, []int{1, 2})

	_, err = topo.Plan(3, PlanOptions{UseCPU0: true})
	if !errors.Is(err, ErrNotEnoughCPUs) {
		t.Fatalf("Plan(3) = %v, want ErrNotEnoughCPUs", err)
	}
	const msg = "affinity: plan 3 cpus: not enough usable cpus: 2 online and allowed (1-2)"
	if err.Error() != msg {
		t.Errorf("Plan(3) says %q, want %q", err, msg)
	}
}

func TestPlanErrors(t *testing.T) {
	topo := readFixture(t, "twosocket64")
	if _, err := topo.Plan(65, PlanOptions{}); !errors.Is(err, ErrNotEnoughCPUs) {
		t.Errorf("Plan(65) on 64 CPUs = %v, want ErrNotEnoughCPUs", err)
	}
	if _, err := topo.Plan(4, PlanOptions{Interface: "eth9"}); !errors.Is(err, ErrNoSuchInterface) {
		t.Errorf("Plan(4, eth9) = %v, want ErrNoSuchInterface", err)
	}
	for _, n := range []int{0, -1} {
		if got, err := topo.Plan(n, PlanOptions{}); err == nil {
			t.Errorf("Plan(%d) = %v, want an error", n, got)
		}
	}
}

// TestPlanWithCPUsOutsideTheAllowedSet confines the two-socket machine to
// node 1's first eight cores and node 0's CPU 0-3 with their siblings, as
// a cgroup cpuset might.
func TestPlanWithCPUsOutsideTheAllowedSet(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "twosocket64"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc/self/status"), []byte(status("", "0-3,16-23,32-35,48-55")), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := topo.Plan(24, PlanOptions{Interface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	equalList(t, "Plan(24, eth0)", got, orderedList(t, "16-23,1,2,3,32,48-55,33,34,35,0"))
	if _, err := topo.Plan(25, PlanOptions{}); !errors.Is(err, ErrNotEnoughCPUs) {
		t.Errorf("Plan(25) with 24 allowed = %v, want ErrNotEnoughCPUs", err)
	}
}

func TestPlanThisMachine(t *testing.T) {
	topo, err := ReadTopology("/")
	if err != nil {
		t.Fatal(err)
	}
	usable := topo.usable()
	got, err := Plan(len(usable), "")
	if err != nil {
		t.Fatal(err)
	}
	if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, usable) {
		t.Errorf("Plan(%d) = %v, want every online allowed CPU %v", len(usable), got, usable)
	}
	if len(got) > 1 && slices.Contains(got, 0) && got[len(got)-1] != 0 {
		t.Errorf("Plan(%d) = %v: CPU 0 is not last", len(usable), got)
	}
	if _, err := Plan(len(usable)+1, ""); !errors.Is(err, ErrNotEnoughCPUs) {
		t.Errorf("Plan(%d) = %v, want ErrNotEnoughCPUs", len(usable)+1, err)
	}
}
