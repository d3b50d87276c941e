package affinity

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrCPUNotAllowed is returned (wrapped) by Pin when the CPU exists but is
// outside the set this process may run on (taskset, cgroup cpuset).
var ErrCPUNotAllowed = errors.New("cpu not in the allowed set")

// Pin binds the calling goroutine to its OS thread and that thread to cpu.
//
// It never calls runtime.UnlockOSThread: once a thread's affinity mask has
// been narrowed, handing it back to the Go scheduler would let unrelated
// goroutines run confined to that one CPU. A pinned goroutine keeps its
// thread until it exits, and then the runtime destroys the thread.
func Pin(cpu int) error {
	allowed, err := AllowedCPUs()
	if err != nil {
		return err
	}
	if cpu < 0 || !allowed.IsSet(cpu) {
		return fmt.Errorf("pin to cpu %d: %w (allowed: %s)", cpu, ErrCPUNotAllowed, cpuSetString(allowed))
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to cpu %d: sched_setaffinity: %w", cpu, err)
	}
	return nil
}

// AllowedCPUs returns the CPUs the calling thread may run on.
func AllowedCPUs() (unix.CPUSet, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return set, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return set, nil
}

func cpuSetString(set unix.CPUSet) string {
	s := ""
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			if s != "" {
				s += ","
			}
			s += fmt.Sprint(i)
		}
	}
	return s
}
