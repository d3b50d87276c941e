package affinity

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// NIC is what the topology knows about one network interface: where its
// device sits (NUMA node) and which interrupts serve its queues.
type NIC struct {
	Name string

	// Device is the base name of the interface's device directory: a PCI
	// address ("0000:3b:00.0"), or a virtio device ("virtio2") whose PCI
	// function is its parent. "" for a virtual interface (lo, veth, tap).
	Device string

	// Node is the NUMA node of the device, -1 when unknown: a virtual
	// interface, or a machine or device that reports -1.
	Node int

	RxQueues, TxQueues int // entries rx-N and tx-N of /sys/class/net/IF/queues

	// IRQs are all MSI/MSI-X interrupts of the device (msi_irqs), queue
	// interrupts and others (link, mailbox, config) alike. Empty when the
	// device has none or sysfs does not list them.
	IRQs []int

	// QueueIRQs are the interrupts that serve the interface's queues,
	// ordered by queue and then IRQ. A queue may have more than one (virtio
	// has one for input and one for output). See Topology.NIC for how they
	// are recognised.
	QueueIRQs []QueueIRQ
}

// QueueIRQ is one interrupt of a NIC queue.
type QueueIRQ struct {
	Queue int    // the queue number at the end of the interrupt's name
	IRQ   int    // the Linux IRQ number: /proc/irq/IRQ
	Name  string // the name in /proc/interrupts: "eth0-TxRx-3", "virtio2-input.0"
}

// QueueIRQsOf returns the IRQs of queue q, ascending.
func (n *NIC) QueueIRQsOf(q int) []int {
	var irqs []int
	for _, qi := range n.QueueIRQs {
		if qi.Queue == q {
			irqs = append(irqs, qi.IRQ)
		}
	}
	return irqs
}

// NIC reads what sysfs and /proc/interrupts say about the network interface
// iface, below t.Root. It returns an error wrapping ErrNoSuchInterface if
// there is no ROOT/sys/class/net/IFACE.
//
// The device is ROOT/sys/class/net/IFACE/device with links followed. When
// it is not itself a PCI function but sits on one (virtio), the PCI parent
// gives the NUMA node and the MSI interrupts.
//
// Queue interrupts are recognised by name, because the kernel records the
// queue of an interrupt nowhere else: an interrupt that is one of the
// device's MSI vectors, or whose name mentions the interface or device as a
// whole word ("eth0-TxRx-3", "i40e-eth0-TxRx-3", "virtio2-input.0",
// "mlx5_comp3@pci:0000:3b:00.0"), is a queue interrupt if its name, after
// the interface or device name and before any "@", ends in a number, the
// queue's, and does not name a known non-queue vector (config, async, ctrl,
// misc, link, mbx). A driver that names its vectors otherwise has its
// interrupts in IRQs but not in QueueIRQs.
func (t *Topology) NIC(iface string) (*NIC, error) {
	if iface == "" || iface == "." || iface == ".." || strings.ContainsRune(iface, '/') {
		return nil, fmt.Errorf("affinity: interface %q: %w", iface, ErrNoSuchInterface)
	}
	dir := t.path("sys/class/net", iface)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("affinity: interface %s: %w (no %s)", iface, ErrNoSuchInterface, dir)
		}
		return nil, fmt.Errorf("affinity: interface %s: %w", iface, err)
	}
	n := &NIC{Name: iface, Node: -1}
	var err error
	if n.RxQueues, n.TxQueues, err = countQueues(filepath.Join(dir, "queues")); err != nil {
		return nil, fmt.Errorf("affinity: interface %s: queues: %w", iface, err)
	}
	dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device"))
	if errors.Is(err, fs.ErrNotExist) {
		return n, nil // a virtual interface: no device, no node, no IRQs
	}
	if err != nil {
		return nil, fmt.Errorf("affinity: interface %s: device: %w", iface, err)
	}
	n.Device = filepath.Base(dev)
	pci := dev
	if onPCIParent(dev) {
		pci = filepath.Dir(dev)
	}
	if n.Node, err = readIntFile(filepath.Join(pci, "numa_node"), -1); err != nil {
		return nil, fmt.Errorf("affinity: interface %s: numa node: %w", iface, err)
	}
	if n.Node < 0 {
		n.Node = -1
	}
	if n.IRQs, err = numberedEntries(filepath.Join(pci, "msi_irqs"), ""); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("affinity: interface %s: msi irqs: %w", iface, err)
	}
	f, err := os.Open(t.path("proc/interrupts"))
	if errors.Is(err, fs.ErrNotExist) {
		return n, nil
	}
	if err != nil {
		return nil, fmt.Errorf("affinity: interface %s: %w", iface, err)
	}
	defer f.Close()
	lines, err := parseInterrupts(f)
	if err != nil {
		return nil, fmt.Errorf("affinity: interface %s: %s: %w", iface, f.Name(), err)
	}
	n.QueueIRQs = queueIRQs(lines, n.IRQs, []string{iface, n.Device})
	return n, nil
}

// onPCIParent says whether dev is a device on a bus that a PCI function
// provides (virtio-pci), so its parent directory is the PCI function. The
// subsystem links say so; in a tree without them (a fixture), a device
// without numa_node whose parent has one is taken to be such a device.
func onPCIParent(dev string) bool {
	parent := filepath.Dir(dev)
	if sub := subsystem(dev); sub != "" {
		return sub != "pci" && subsystem(parent) == "pci"
	}
	return !exists(filepath.Join(dev, "numa_node")) && exists(filepath.Join(parent, "numa_node"))
}

func subsystem(dev string) string {
	target, err := filepath.EvalSymlinks(filepath.Join(dev, "subsystem"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func countQueues(dir string) (rx, tx int, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), "rx-"):
			rx++
		case strings.HasPrefix(e.Name(), "tx-"):
			tx++
		}
	}
	return rx, tx, nil
}

// irqLine is one numbered line of /proc/interrupts.
type irqLine struct {
	IRQ   int
	Names []string // the actions' names ("eth0-TxRx-0"); several if shared
}

// parseInterrupts reads /proc/interrupts: a header naming one column per
// online CPU, then per interrupt "IRQ:", the counts, the chip, the hardware
// IRQ joined to the flow handler ("524288-edge", or "-edge" without a
// domain; "Level"/"Edge" on some architectures) and the action names,
// separated by ", ". Lines for architecture-specific counters (NMI:, LOC:)
// are skipped. Where no handler field is found, the last field is taken as
// the name.
func parseInterrupts(r io.Reader) ([]irqLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // a line has a column per CPU
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("empty file")
	}
	columns := 0
	for _, f := range strings.Fields(sc.Text()) {
		if strings.HasPrefix(f, "CPU") {
			columns++
		}
	}
	if columns == 0 {
		return nil, fmt.Errorf("header %q names no CPU columns", sc.Text())
	}
	var lines []irqLine
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		num, ok := strings.CutSuffix(fields[0], ":")
		irq, err := strconv.Atoi(num)
		if !ok || err != nil || irq < 0 {
			continue // NMI:, LOC:, ERR: ...
		}
		rest := fields[1:]
		for i := 0; i < columns && len(rest) > 0 && isDigits(rest[0]); i++ {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			lines = append(lines, irqLine{IRQ: irq})
			continue
		}
		names := rest[len(rest)-1:]
		for i := 1; i < len(rest); i++ { // rest[0] is the chip
			if isFlowHandler(rest[i]) {
				names = rest[i+1:]
				break
			}
		}
		l := irqLine{IRQ: irq}
		for name := range strings.SplitSeq(strings.Join(names, " "), ",") {
			if name = strings.TrimSpace(name); name != "" {
				l.Names = append(l.Names, name)
			}
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

// isFlowHandler matches the field after the chip: "1-edge", "-fasteoi",
// "Level", "Edge".
func isFlowHandler(f string) bool {
	if f == "Level" || f == "Edge" {
		return true
	}
	hw, handler, ok := strings.Cut(f, "-")
	if !ok || handler == "" || (hw != "" && !isDigits(hw)) {
		return false
	}
	for _, r := range handler {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// queueIRQs picks the queue interrupts out of /proc/interrupts for a
// device with the MSI vectors devIRQs, named by any of tokens (interface
// and device names; "" is ignored). See Topology.NIC.
func queueIRQs(lines []irqLine, devIRQs []int, tokens []string) []QueueIRQ {
	var qs []QueueIRQ
	for _, l := range lines {
		ofDevice := contains(devIRQs, l.IRQ)
		for _, name := range l.Names {
			_, _, named := findToken(name, tokens)
			if !ofDevice && !named {
				continue
			}
			if q, ok := queueNumber(name, tokens); ok {
				qs = append(qs, QueueIRQ{Queue: q, IRQ: l.IRQ, Name: name})
			}
		}
	}
	slices.SortFunc(qs, func(a, b QueueIRQ) int {
		if a.Queue != b.Queue {
			return a.Queue - b.Queue
		}
		return a.IRQ - b.IRQ
	})
	return qs
}

// nonQueueVectors are words in the names of per-device vectors that serve
// no queue although the name ends in a number ("mlx5_async0").
var nonQueueVectors = []string{"config", "async", "ctrl", "misc", "link", "mbx"}

// queueNumber returns the queue number an interrupt name ends in, looking
// only after the interface or device name (so "eth0" alone is no queue 0)
// and before any "@" suffix.
func queueNumber(name string, tokens []string) (int, bool) {
	base, _, _ := strings.Cut(name, "@")
	if _, end, ok := findToken(base, tokens); ok {
		base = base[end:]
	}
	lower := strings.ToLower(base)
	for _, w := range nonQueueVectors {
		if strings.Contains(lower, w) {
			return 0, false
		}
	}
	i := len(base)
	for i > 0 && base[i-1] >= '0' && base[i-1] <= '9' {
		i--
	}
	if i == len(base) || i == 0 || len(base)-i > 6 {
		return 0, false
	}
	q, err := strconv.Atoi(base[i:])
	return q, err == nil
}

// findToken finds the first of tokens in s as a whole word: not preceded or
// followed by a letter or digit. It returns where the word starts and ends.
func findToken(s string, tokens []string) (start, end int, ok bool) {
	for _, tok := range tokens {
		if tok == "" {
			continue
		}
		for from := 0; from <= len(s)-len(tok); {
			i := strings.Index(s[from:], tok)
			if i < 0 {
				break
			}
			i += from
			j := i + len(tok)
			if (i == 0 || !isAlnum(s[i-1])) && (j == len(s) || !isAlnum(s[j])) {
				return i, j, true
			}
			from = i + 1
		}
	}
	return 0, 0, false
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
