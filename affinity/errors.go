package affinity

import (
	"errors"
	"strconv"
)

// Sentinel errors. Functions return them wrapped (in a *CPUError for the
// CPU checks), so match them with errors.Is.
var (
	// ErrNoSuchCPU: the CPU number is not one of the machine's present CPUs
	// (/sys/devices/system/cpu/present), or is negative.
	ErrNoSuchCPU = errors.New("cpu does not exist")

	// ErrCPUOffline: the CPU is present but offline
	// (not in /sys/devices/system/cpu/online).
	ErrCPUOffline = errors.New("cpu is offline")

	// ErrCPUNotAllowed: the CPU is online but outside the set this process
	// may run on (taskset, cgroup cpuset), or the kernel refused it when
	// asked to run there.
	ErrCPUNotAllowed = errors.New("cpu not in the allowed set")

	// ErrNotEnoughCPUs: Plan was asked for more CPUs than are online and
	// allowed.
	ErrNotEnoughCPUs = errors.New("not enough usable cpus")

	// ErrNoSuchInterface: no /sys/class/net/IF for the named interface.
	ErrNoSuchInterface = errors.New("no such network interface")
)

// CPUError reports a CPU that an operation cannot use, and why: Err is (or
// wraps) ErrNoSuchCPU, ErrCPUOffline or ErrCPUNotAllowed, or a system call's
// error. Set is the set the CPU was checked against, named by SetName
// ("present", "online", "allowed"), so the message says what would have
// worked.
type CPUError struct {
	Op      string // what was being done: "pin", "irq 38 affinity"
	CPU     int
	Err     error
	SetName string // "" when no set is relevant
	Set     []int
}

func (e *CPUError) Error() string {
	s := "affinity: " + e.Op + " cpu " + strconv.Itoa(e.CPU) + ": " + e.Err.Error()
	if e.SetName != "" {
		s += " (" + e.SetName + ": " + formatSet(e.Set) + ")"
	}
	return s
}

func (e *CPUError) Unwrap() error { return e.Err }
