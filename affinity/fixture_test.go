package affinity

import (
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixture trees under testdata are written by the generators below:
//
//	go test ./affinity -run TestFixturesMatchGenerators -update
//
// and TestFixturesMatchGenerators fails when the two drift apart. Each is
// the part of a machine's sysfs and procfs that this package reads, as
// plain files and directories: in sysfs, class/net/IF and IF/device are
// links and cpuN/nodeM a link to the node, but links do not survive a Go
// module zip, so here they are directories (an empty file for nodeM). The
// virtio test, which needs links, builds its tree in a temporary directory.
var update = flag.Bool("update", false, "rewrite the fixture trees under testdata from their generators")

var fixtures = map[string]func() map[string]string{
	"twosocket64": twoSocket64,
	"small4":      small4,
}

// twoSocket64 is a two-socket machine: 2 NUMA nodes x 16 cores x 2 SMT
// threads, numbered as Intel machines are (node 0 has CPUs 0-15 and their
// siblings 32-47, node 1 has 16-31 and 48-63), with an ixgbe-style NIC eth0
// on node 1: 8 queue pairs on IRQs 100-107 ("eth0-TxRx-N") and a link
// vector, IRQ 108, named "eth0".
func twoSocket64() map[string]string {
	f := map[string]string{
		"sys/devices/system/cpu/possible":         "0-63\n",
		"sys/devices/system/cpu/present":          "0-63\n",
		"sys/devices/system/cpu/online":           "0-63\n",
		"sys/devices/system/node/online":          "0-1\n",
		"sys/devices/system/node/node0/cpulist":   "0-15,32-47\n",
		"sys/devices/system/node/node1/cpulist":   "16-31,48-63\n",
		"sys/class/net/eth0/device/numa_node":     "1\n",
		"sys/class/net/eth0/device/local_cpulist": "16-31,48-63\n",
		"proc/self/status":                        status("ffffffff,ffffffff", "0-63"),
	}
	for cpu := range 64 {
		core := cpu % 32
		f[fmt.Sprintf("sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu)] = fmt.Sprintf("%d,%d\n", core, core+32)
	}
	for q := range 8 {
		f[fmt.Sprintf("sys/class/net/eth0/queues/rx-%d/rps_cpus", q)] = "00000000,00000000\n"
		f[fmt.Sprintf("sys/class/net/eth0/queues/tx-%d/xps_cpus", q)] = "00000000,00000000\n"
	}
	for irq := 100; irq <= 108; irq++ {
		f[fmt.Sprintf("sys/class/net/eth0/device/msi_irqs/%d", irq)] = "msix\n"
		f[fmt.Sprintf("proc/irq/%d/smp_affinity_list", irq)] = "0-63\n"
	}
	lines := []interruptLine{
		{"0", "IO-APIC", "2-edge", "timer", -1},
		{"8", "IO-APIC", "8-edge", "rtc0", -1},
		{"9", "IO-APIC", "9-fasteoi", "acpi", -1},
		{"16", "IO-APIC", "16-fasteoi", "ehci_hcd:usb1, i801_smbus", 0},
		{"24", "PCI-MSI", "65536-edge", "nvme0q0", 0},
		{"25", "PCI-MSI", "65537-edge", "nvme0q1", 1},
	}
	for q := range 8 {
		lines = append(lines, interruptLine{fmt.Sprint(100 + q), "IR-PCI-MSI", fmt.Sprintf("%d-edge", 1572864+q), fmt.Sprintf("eth0-TxRx-%d", q), 16 + q})
	}
	lines = append(lines,
		interruptLine{"108", "IR-PCI-MSI", "1572872-edge", "eth0", 16},
		interruptLine{"NMI", "", "", "Non-maskable interrupts", -1},
		interruptLine{"LOC", "", "", "Local timer interrupts", -1},
	)
	f["proc/interrupts"] = interrupts(64, lines)
	return f
}

// small4 is a small machine without SMT: 4 present CPUs on one node, CPU 3
// offline, the process confined to CPUs 1-3 (taskset -c 1-3), only the
// loopback interface.
func small4() map[string]string {
	f := map[string]string{
		"sys/devices/system/cpu/possible":       "0-7\n",
		"sys/devices/system/cpu/present":        "0-3\n",
		"sys/devices/system/cpu/online":         "0-2\n",
		"sys/devices/system/cpu/cpu3/online":    "0\n",
		"sys/devices/system/cpu/cpu3/node0":     "", // a link to node0 in sysfs
		"sys/devices/system/node/online":        "0\n",
		"sys/devices/system/node/node0/cpulist": "0-2\n",
		"sys/class/net/lo/queues/rx-0/rps_cpus": "0\n",
		"sys/class/net/lo/queues/tx-0/xps_cpus": "0\n",
		"proc/self/status":                      status("e", "1-3"),
		"proc/irq/24/smp_affinity_list":         "0-2\n",
		"proc/interrupts": interrupts(3, []interruptLine{
			{"0", "IO-APIC", "2-edge", "timer", 0},
			{"24", "PCI-MSI", "65536-edge", "ahci[0000:00:1f.2]", 1},
		}),
	}
	for cpu := range 3 {
		dir := fmt.Sprintf("sys/devices/system/cpu/cpu%d/", cpu)
		f[dir+"topology/thread_siblings_list"] = fmt.Sprintf("%d\n", cpu)
		f[dir+"topology/core_id"] = fmt.Sprintf("%d\n", cpu)
		f[dir+"topology/physical_package_id"] = "0\n"
		f[dir+"node0"] = ""
		if cpu > 0 {
			f[dir+"online"] = "1\n"
		}
	}
	return f
}

func status(mask, list string) string {
	return "Name:\tmkstack\nState:\tR (running)\nTgid:\t4242\nPid:\t4242\n" +
		"Cpus_allowed:\t" + mask + "\nCpus_allowed_list:\t" + list + "\n" +
		"Mems_allowed_list:\t0-1\n"
}

// interruptLine is a line of a generated /proc/interrupts; busyCPU gets a
// non-zero count, -1 none.
type interruptLine struct {
	irq, chip, handler, names string
	busyCPU                   int
}

// interrupts lays lines out as the kernel's show_interrupts does.
func interrupts(cpus int, lines []interruptLine) string {
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", 11))
	for c := range cpus {
		fmt.Fprintf(&b, "CPU%-8d", c)
	}
	b.WriteString("\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "%4s: ", l.irq)
		for c := range cpus {
			n := 0
			if c == l.busyCPU {
				n = 1000 + c
			}
			fmt.Fprintf(&b, "%10d ", n)
		}
		if l.chip != "" {
			fmt.Fprintf(&b, " %8s %-14s  %s\n", l.chip, l.handler, l.names)
		} else {
			fmt.Fprintf(&b, "  %s\n", l.names)
		}
	}
	return b.String()
}

func TestFixturesMatchGenerators(t *testing.T) {
	for name, gen := range fixtures {
		dir := filepath.Join("testdata", name)
		want := gen()
		if *update {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			for p, content := range want {
				p = filepath.Join(dir, filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		got := map[string]string{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			got[filepath.ToSlash(rel)] = string(b)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v (regenerate with -update)", dir, err)
		}
		for _, p := range slices.Sorted(maps.Keys(want)) {
			if g, ok := got[p]; !ok {
				t.Errorf("%s: missing %s (regenerate with -update)", dir, p)
			} else if g != want[p] {
				t.Errorf("%s: %s is %q, generator says %q (regenerate with -update)", dir, p, g, want[p])
			}
		}
		for _, p := range slices.Sorted(maps.Keys(got)) {
			if _, ok := want[p]; !ok {
				t.Errorf("%s: %s is not generated (regenerate with -update)", dir, p)
			}
		}
	}
}
