package affinity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseCPUList parses a CPU list in the kernel's list format, as found in
// sysfs (cpu/online, node/nodeN/cpulist, thread_siblings_list), in
// /proc/PID/status (Cpus_allowed_list) and in /proc/irq/N/smp_affinity_list:
// comma-separated CPU numbers and inclusive ranges, such as "0-3,8,10-11".
// Surrounding white space is ignored and an empty string is the empty list.
// The result is sorted and has no duplicates. The kernel's stride form
// ("0-15:2/4") is accepted by some kernel inputs but never printed by one,
// and is rejected here.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := parseCPUNumber(lo)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = parseCPUNumber(hi); err != nil {
				return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
			}
			if last < first {
				return nil, fmt.Errorf("parse cpu list %q: range %s runs backwards", s, part)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// maxCPUNumber bounds the numbers ParseCPUList accepts, so a corrupt file
// cannot make it build an enormous slice. Linux's NR_CPUS is at most 8192.
const maxCPUNumber = 1 << 16

func parseCPUNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a cpu number", s)
	}
	if n >= maxCPUNumber {
		return 0, fmt.Errorf("cpu number %d is out of range", n)
	}
	return n, nil
}

// FormatCPUList formats CPUs in the kernel's list format ("0-3,8,10-11"),
// the form ParseCPUList reads and /proc/irq/N/smp_affinity_list accepts.
// The input need not be sorted; negative numbers and duplicates are dropped.
// An empty list formats as "".
func FormatCPUList(cpus []int) string {
	sorted := slices.Clone(cpus)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var b strings.Builder
	for i := 0; i < len(sorted); {
		if sorted[i] < 0 {
			i++
			continue
		}
		j := i
		for j+1 < len(sorted) && sorted[j+1] == sorted[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(sorted[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(sorted[j]))
		}
		i = j + 1
	}
	return b.String()
}

// ListCPUs returns the CPUs in set, in ascending order.
func ListCPUs(set unix.CPUSet) []int {
	var cpus []int
	for c := range cpuSetSize {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// cpuSetSize is how many CPUs a unix.CPUSet can name (the C library's
// CPU_SETSIZE): sched_setaffinity through it cannot reach a CPU at or above.
const cpuSetSize = len(unix.CPUSet{}) * 64

// formatSet is FormatCPUList for messages: the empty set reads "none".
func formatSet(cpus []int) string {
	if s := FormatCPUList(cpus); s != "" {
		return s
	}
	return "none"
}

func contains(sorted []int, cpu int) bool {
	_, ok := slices.BinarySearch(sorted, cpu)
	return ok
}
