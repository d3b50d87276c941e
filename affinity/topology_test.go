package affinity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) *Topology {
	t.Helper()
	topo, err := ReadTopology(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// cpus builds a CPU list from a list string, for expected values.
func cpus(t *testing.T, list string) []int {
	t.Helper()
	c, err := ParseCPUList(list)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func equalList(t *testing.T, what string, got, want []int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v (%s), want %v (%s)", what, got, FormatCPUList(got), want, FormatCPUList(want))
	}
}

func TestReadTopologyTwoSocketMachine(t *testing.T) {
	topo := readFixture(t, "twosocket64")
	all := cpus(t, "0-63")
	equalList(t, "Present", topo.Present, all)
	equalList(t, "Online", topo.Online, all)
	equalList(t, "Allowed", topo.Allowed, all)
	equalList(t, "Nodes", topo.Nodes, []int{0, 1})
	equalList(t, "NodeCPUs(0)", topo.NodeCPUs(0), cpus(t, "0-15,32-47"))
	equalList(t, "NodeCPUs(1)", topo.NodeCPUs(1), cpus(t, "16-31,48-63"))
	if len(topo.CPUs) != 64 {
		t.Fatalf("%d CPUs, want 64", len(topo.CPUs))
	}
	for _, tc := range []struct {
		id, node int
		siblings []int
	}{
		{0, 0, []int{0, 32}},
		{5, 0, []int{5, 37}},
		{40, 0, []int{8, 40}},
		{16, 1, []int{16, 48}},
		{63, 1, []int{31, 63}},
	} {
		c, ok := topo.CPU(tc.id)
		if !ok {
			t.Fatalf("CPU(%d) not found", tc.id)
		}
		if c.ID != tc.id || !c.Online || c.Node != tc.node || !slices.Equal(c.Siblings, tc.siblings) {
			t.Errorf("CPU(%d) = %+v, want online on node %d with siblings %v", tc.id, c, tc.node, tc.siblings)
		}
		if c.Package != -1 || c.Core != -1 {
			t.Errorf("CPU(%d): package %d core %d, want -1 -1 (the fixture has no ids)", tc.id, c.Package, c.Core)
		}
	}
	if _, ok := topo.CPU(64); ok {
		t.Error("CPU(64) found on a 64-CPU machine")
	}
}

func TestReadTopologySmallMachineWithOfflineCPU(t *testing.T) {
	topo := readFixture(t, "small4")
	equalList(t, "Present", topo.Present, []int{0, 1, 2, 3})
	equalList(t, "Online", topo.Online, []int{0, 1, 2})
	equalList(t, "Allowed", topo.Allowed, []int{1, 2, 3})
	equalList(t, "Nodes", topo.Nodes, []int{0})
	want := []CPU{
		{ID: 0, Online: true, Node: 0, Package: 0, Core: 0, Siblings: []int{0}},
		{ID: 1, Online: true, Node: 0, Package: 0, Core: 1, Siblings: []int{1}},
		{ID: 2, Online: true, Node: 0, Package: 0, Core: 2, Siblings: []int{2}},
		// Offline: no topology directory; the node comes from cpu3/node0.
		{ID: 3, Online: false, Node: 0, Package: -1, Core: -1},
	}
	if !reflect.DeepEqual(topo.CPUs, want) {
		t.Errorf("CPUs =\n%+v\nwant\n%+v", topo.CPUs, want)
	}
}

func TestReadTopologyWithoutPresentCPUsFails(t *testing.T) {
	if _, err := ReadTopology(t.TempDir()); err == nil {
		t.Error("ReadTopology of an empty tree succeeded")
	}
}

func TestReadTopologyOfThisMachine(t *testing.T) {
	topo, err := ReadTopology("/")
	if err != nil {
		t.Fatal(err)
	}
	set, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	equalList(t, "Allowed", topo.Allowed, ListCPUs(set))
	// The runtime counts the CPUs the process may use at start, as we do.
	if got := topo.usable(); len(got) != runtime.NumCPU() {
		t.Errorf("online and allowed: %v, runtime.NumCPU() = %d", got, runtime.NumCPU())
	}
	for _, c := range topo.CPUs {
		if c.Online != slices.Contains(topo.Online, c.ID) {
			t.Errorf("CPU %d: Online %v disagrees with the online list %v", c.ID, c.Online, topo.Online)
		}
		if c.Siblings != nil && !slices.Contains(c.Siblings, c.ID) {
			t.Errorf("CPU %d: siblings %v do not include it", c.ID, c.Siblings)
		}
	}
	ifaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Skipf("no /sys/class/net to read interfaces from: %v", err)
	}
	for _, e := range ifaces {
		nic, err := topo.NIC(e.Name())
		if err != nil {
			t.Errorf("NIC(%s): %v", e.Name(), err)
			continue
		}
		for _, q := range nic.QueueIRQs {
			if len(nic.IRQs) > 0 && !slices.Contains(nic.IRQs, q.IRQ) && !strings.Contains(q.Name, nic.Name) {
				t.Errorf("NIC(%s): queue irq %+v is neither the device's nor named for it", e.Name(), q)
			}
		}
		t.Logf("%s: device %q node %d, %d rx/%d tx queues, irqs %v, queue irqs %+v",
			nic.Name, nic.Device, nic.Node, nic.RxQueues, nic.TxQueues, nic.IRQs, nic.QueueIRQs)
	}
}

func TestCheckCPUSaysWhyACPUCannotBeUsed(t *testing.T) {
	topo := readFixture(t, "small4") // present 0-3, online 0-2, allowed 1-3
	for _, tc := range []struct {
		cpu  int
		want error
		msg  string
	}{
		{-1, ErrNoSuchCPU, "affinity: pin cpu -1: cpu does not exist (present: 0-3)"},
		{4, ErrNoSuchCPU, "affinity: pin cpu 4: cpu does not exist (present: 0-3)"},
		{3, ErrCPUOffline, "affinity: pin cpu 3: cpu is offline (online: 0-2)"},
		{0, ErrCPUNotAllowed, "affinity: pin cpu 0: cpu not in the allowed set (allowed: 1-3)"},
		{1, nil, ""},
		{2, nil, ""},
	} {
		err := topo.CheckCPU(tc.cpu)
		if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
			t.Errorf("CheckCPU(%d) = %v, want %v", tc.cpu, err, tc.want)
			continue
		}
		if err == nil {
			continue
		}
		if err.Error() != tc.msg {
			t.Errorf("CheckCPU(%d) says %q, want %q", tc.cpu, err, tc.msg)
		}
		var ce *CPUError
		if !errors.As(err, &ce) || ce.CPU != tc.cpu {
			t.Errorf("CheckCPU(%d) = %#v, want a *CPUError for that CPU", tc.cpu, err)
		}
	}
	// Only one of the three kinds per CPU, the first that applies.
	if err := topo.CheckCPU(3); errors.Is(err, ErrCPUNotAllowed) || errors.Is(err, ErrNoSuchCPU) {
		t.Errorf("CheckCPU(3) = %v matches more than ErrCPUOffline", err)
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"\n", nil},
		{"0", []int{0}},
		{"0-3\n", []int{0, 1, 2, 3}},
		{"0-1,4,6-7", []int{0, 1, 4, 6, 7}},
		{"8,2-3,2", []int{2, 3, 8}},
		{"5-5", []int{5}},
	} {
		got, err := ParseCPUList(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"a", "1-", "-1", "3-1", "1,,2", "0-15:2/4", "+1", "1 ,2", "99999999"} {
		if got, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestFormatCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{3}, "3"},
		{[]int{0, 1, 2, 3}, "0-3"},
		{[]int{7, 0, 1, 4, 6, 1}, "0-1,4,6-7"},
		{[]int{-2, 5, 6}, "5-6"},
	} {
		if got := FormatCPUList(tc.in); got != tc.want {
			t.Errorf("FormatCPUList(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0-3,8,10-11", "", "5", "1-0", "0-15:2/4", "63,0-1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCPUList(s)
		if err != nil {
			return
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("ParseCPUList(%q) = %v: not sorted and unique", s, got)
		}
		again, err := ParseCPUList(FormatCPUList(got))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseCPUList(FormatCPUList(%v)) = %v, %v", got, again, err)
		}
	})
}

func TestNICOnNode1WithEightQueues(t *testing.T) {
	topo := readFixture(t, "twosocket64")
	nic, err := topo.NIC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	var want []QueueIRQ
	for q := range 8 {
		want = append(want, QueueIRQ{Queue: q, IRQ: 100 + q, Name: "eth0-TxRx-" + string(rune('0'+q))})
	}
	if nic.Name != "eth0" || nic.Device != "device" || nic.Node != 1 || nic.RxQueues != 8 || nic.TxQueues != 8 {
		t.Errorf("NIC(eth0) = %+v, want device on node 1 with 8 rx and 8 tx queues", nic)
	}
	equalList(t, "IRQs", nic.IRQs, cpus(t, "100-108"))
	if !reflect.DeepEqual(nic.QueueIRQs, want) {
		// IRQ 108 ("eth0", the link vector) is the device's but no queue's.
		t.Errorf("QueueIRQs =\n%+v\nwant\n%+v", nic.QueueIRQs, want)
	}
	equalList(t, "QueueIRQsOf(5)", nic.QueueIRQsOf(5), []int{105})
	equalList(t, "QueueIRQsOf(8)", nic.QueueIRQsOf(8), nil)
}

func TestNICVirtualInterfaceHasNoNodeOrIRQs(t *testing.T) {
	nic, err := readFixture(t, "small4").NIC("lo")
	if err != nil {
		t.Fatal(err)
	}
	want := &NIC{Name: "lo", Node: -1, RxQueues: 1, TxQueues: 1}
	if !reflect.DeepEqual(nic, want) {
		t.Errorf("NIC(lo) = %+v, want %+v", nic, want)
	}
}

func TestNICMissingInterfaceIsErrNoSuchInterface(t *testing.T) {
	topo := readFixture(t, "twosocket64")
	for _, name := range []string{"eth1", "", "..", "../../proc", "eth0/device"} {
		if _, err := topo.NIC(name); !errors.Is(err, ErrNoSuchInterface) {
			t.Errorf("NIC(%q) = %v, want ErrNoSuchInterface", name, err)
		}
	}
}

// TestNICVirtioFindsPCIParent lays out a virtio-net interface as this
// machine's sysfs does, links included: eth0's device is virtio2, whose
// parent PCI function 0000:00:03.0 has the NUMA node and the MSI vectors,
// and whose vectors are named for virtio2, not eth0.
func TestNICVirtioFindsPCIParent(t *testing.T) {
	root := t.TempDir()
	pci := "sys/devices/pci0000:00/0000:00:03.0"
	write := func(p, content string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/devices/system/cpu/present", "0-1\n")
	write(pci+"/numa_node", "-1\n")
	for _, irq := range []string{"37", "38", "39"} {
		write(pci+"/msi_irqs/"+irq, "msix\n")
	}
	write(pci+"/virtio2/net/eth0/queues/rx-0/rps_cpus", "0\n")
	write(pci+"/virtio2/net/eth0/queues/tx-0/xps_cpus", "0\n")
	write("sys/bus/pci/.keep", "")
	write("sys/bus/virtio/.keep", "")
	link("../../../bus/pci", pci+"/subsystem")
	link("../../../../bus/virtio", pci+"/virtio2/subsystem")
	link("../../../virtio2", pci+"/virtio2/net/eth0/device")
	link("../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0", "sys/class/net/eth0")
	// This machine's /proc/interrupts, trimmed.
	write("proc/interrupts", `           CPU0       CPU1       
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 28:          0          0 PCI-MSIX-0000:00:01.0   0-edge      virtio0-config
 36:          0     131115 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config
 38:          0       1889 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 39:       2429          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
NMI:          0          0   Non-maskable interrupts
`)
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := topo.NIC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	want := &NIC{
		Name: "eth0", Device: "virtio2", Node: -1, RxQueues: 1, TxQueues: 1,
		IRQs: []int{37, 38, 39},
		QueueIRQs: []QueueIRQ{
			{Queue: 0, IRQ: 38, Name: "virtio2-input.0"},
			{Queue: 0, IRQ: 39, Name: "virtio2-output.0"},
		},
	}
	if !reflect.DeepEqual(nic, want) {
		t.Errorf("NIC(eth0) =\n%+v\nwant\n%+v", nic, want)
	}
}

func TestParseInterrupts(t *testing.T) {
	const text = `            CPU0       CPU1       CPU2
   0:         44          0          0   IO-APIC   2-edge      timer
  16:          0          5          0   IO-APIC  16-fasteoi   ehci_hcd:usb1, i801_smbus
  40:          0          0          0  IR-PCI-MSI 524288-edge      i40e-eth2-TxRx-0
  41:          0          0          0   XT-PIC    -edge      cascade
  42:          0          0          0  GICv3  27 Level     arch_timer
  43:          0          0          0   weird
  44:          3          2          1
 NMI:          0          0          0   Non-maskable interrupts
 ERR:          0
 MIS:          0
`
	lines, err := parseInterrupts(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []irqLine{
		{0, []string{"timer"}},
		{16, []string{"ehci_hcd:usb1", "i801_smbus"}},
		{40, []string{"i40e-eth2-TxRx-0"}},
		{41, []string{"cascade"}},
		{42, []string{"arch_timer"}},
		{43, []string{"weird"}},
		{44, nil},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("parseInterrupts =\n%+v\nwant\n%+v", lines, want)
	}
	if _, err := parseInterrupts(strings.NewReader("")); err == nil {
		t.Error("parseInterrupts of an empty file succeeded")
	}
	if _, err := parseInterrupts(strings.NewReader(" 0: 1 IO-APIC 2-edge timer\n")); err == nil {
		t.Error("parseInterrupts without a CPU header succeeded")
	}
}

func TestQueueNumberFromVectorNames(t *testing.T) {
	tokens := []string{"eth0", "0000:3b:00.0"}
	for _, tc := range []struct {
		name string
		q    int
		ok   bool
	}{
		{"eth0-TxRx-3", 3, true},
		{"i40e-eth0-TxRx-12", 12, true},
		{"eth0-rx-1", 1, true},
		{"mlx5_comp7@pci:0000:3b:00.0", 7, true},
		{"eth0", 0, false},                         // ixgbe's link vector
		{"mlx5_async0@pci:0000:3b:00.0", 0, false}, // mlx5's async events
		{"i40e-0000:3b:00.0:misc", 0, false},
		{"virtio2-config", 0, false},
		{"eth0-TxRx", 0, false},
		{"12345", 0, false},
	} {
		q, ok := queueNumber(tc.name, tokens)
		if q != tc.q || ok != tc.ok {
			t.Errorf("queueNumber(%q) = %d, %v, want %d, %v", tc.name, q, ok, tc.q, tc.ok)
		}
	}
}

func TestQueueIRQsMatchTheInterfaceAsAWholeWord(t *testing.T) {
	lines := []irqLine{
		{50, []string{"eth1-TxRx-0"}},
		{51, []string{"eth1-TxRx-1"}},
		{52, []string{"eth10-TxRx-0"}},
		{53, []string{"veth1-TxRx-0"}},
		{54, []string{"xeth1"}},
		{55, []string{"i40e-eth1-TxRx-2", "eth10-TxRx-1"}}, // a shared line
	}
	got := queueIRQs(lines, nil, []string{"eth1", ""})
	want := []QueueIRQ{{0, 50, "eth1-TxRx-0"}, {1, 51, "eth1-TxRx-1"}, {2, 55, "i40e-eth1-TxRx-2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("queueIRQs = %+v, want %+v", got, want)
	}
}

func TestIRQAffinityWritesSmpAffinityList(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "twosocket64"))); err != nil {
		t.Fatal(err)
	}
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.SetIRQAffinity(100, 17, 49); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "proc/irq/100/smp_affinity_list"))
	if err != nil || string(b) != "17,49\n" {
		t.Errorf("smp_affinity_list holds %q (%v), want %q", b, err, "17,49\n")
	}
	got, err := topo.IRQAffinity(100)
	if err != nil {
		t.Fatal(err)
	}
	equalList(t, "IRQAffinity(100)", got, []int{17, 49})

	for _, tc := range []struct {
		irq  int
		cpus []int
		want error
	}{
		{100, []int{64}, ErrNoSuchCPU},
		{100, []int{-1}, ErrNoSuchCPU},
		{999, []int{1}, fs.ErrNotExist},
	} {
		if err := topo.SetIRQAffinity(tc.irq, tc.cpus...); !errors.Is(err, tc.want) {
			t.Errorf("SetIRQAffinity(%d, %v) = %v, want %v", tc.irq, tc.cpus, err, tc.want)
		}
	}
	if err := topo.SetIRQAffinity(100); err == nil {
		t.Error("SetIRQAffinity with no CPUs succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "proc/irq/999")); err == nil {
		t.Error("SetIRQAffinity created a directory for a missing IRQ")
	}
	equalList(t, "IRQAffinity(100) after refused writes", mustIRQAffinity(t, topo, 100), []int{17, 49})
}

func TestIRQAffinityIgnoresTheProcessSetButNotOfflineCPUs(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "small4"))); err != nil {
		t.Fatal(err)
	}
	topo, err := ReadTopology(root) // online 0-2, allowed 1-3
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.SetIRQAffinity(24, 0); err != nil {
		t.Errorf("SetIRQAffinity(24, 0) outside the process's set: %v", err)
	}
	err = topo.SetIRQAffinity(24, 2, 3)
	var ce *CPUError
	if !errors.Is(err, ErrCPUOffline) || !errors.As(err, &ce) || ce.CPU != 3 {
		t.Errorf("SetIRQAffinity(24, 2, 3) = %v, want ErrCPUOffline for cpu 3", err)
	}
	equalList(t, "IRQAffinity(24)", mustIRQAffinity(t, topo, 24), []int{0})
}

func TestSetQueueIRQAffinityFollowsThePlan(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "twosocket64"))); err != nil {
		t.Fatal(err)
	}
	topo, err := ReadTopology(root)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := topo.NIC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := topo.Plan(4, PlanOptions{Interface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.SetQueueIRQAffinity(nic, plan); err != nil {
		t.Fatal(err)
	}
	// Queues 0-7 on 4 cores: queue q to plan[q%4].
	for q := range 8 {
		equalList(t, "queue "+string(rune('0'+q))+" IRQ affinity", mustIRQAffinity(t, topo, 100+q), []int{16 + q%4})
	}
	equalList(t, "link vector IRQ 108 affinity", mustIRQAffinity(t, topo, 108), cpus(t, "0-63"))
	if err := topo.SetQueueIRQAffinity(nic, []int{16, 99}); !errors.Is(err, ErrNoSuchCPU) || !strings.Contains(err.Error(), "eth0 queue 1 irq 101") {
		t.Errorf("SetQueueIRQAffinity with cpu 99 = %v, want ErrNoSuchCPU naming eth0 queue 1 irq 101", err)
	}
}

func mustIRQAffinity(t *testing.T, topo *Topology, irq int) []int {
	t.Helper()
	c, err := topo.IRQAffinity(irq)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
