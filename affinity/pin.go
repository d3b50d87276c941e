package affinity

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// processAllowed is the set of CPUs the process may run on, read once while
// the package initialises. See AllowedCPUs.
var processAllowed struct {
	set unix.CPUSet
	err error
}

func init() {
	// Package initialisation runs on the main goroutine, locked to the main
	// thread, before any code of this package could have pinned a thread.
	// Asking by process ID reads the main thread's mask, which is the one
	// the process was started with (taskset) within its cgroup cpuset.
	if err := unix.SchedGetaffinity(unix.Getpid(), &processAllowed.set); err != nil {
		processAllowed.err = fmt.Errorf("affinity: read the process's allowed cpus: sched_getaffinity: %w", err)
	}
}

// AllowedCPUs returns the CPUs this process may run on: its affinity mask
// as it was when the process started (taskset, numactl, a container's
// cgroup cpuset). Use ListCPUs for the CPU numbers.
//
// It is the process's set, not the calling thread's: a goroutine already
// pinned by Pin runs on a thread whose own mask is one CPU, and asking that
// thread (sched_getaffinity(0)) would wrongly say the process may use only
// that CPU. The set is read once, while the package initialises; a cgroup
// cpuset changed later is not seen here, but the kernel still enforces it
// and Pin reports its refusal as ErrCPUNotAllowed.
func AllowedCPUs() (unix.CPUSet, error) {
	return processAllowed.set, processAllowed.err
}

// Pin binds the calling goroutine to its OS thread
// (runtime.LockOSThread) and that thread to cpu (sched_setaffinity): from
// its return until the goroutine exits, the goroutine runs only on cpu, and
// nothing else runs on its thread. A goroutine may call Pin again to move
// to another allowed CPU.
//
// Pin never calls runtime.UnlockOSThread. Once a thread's mask is narrowed
// to one CPU, handing the thread back to the Go scheduler would let any
// other goroutine run on it, silently confined to that CPU, and the
// runtime has no hook to restore the mask when it does. A pinned goroutine
// keeps its thread until it exits (the runtime then ends the thread
// instead of reusing it, so the narrowed mask dies with it) or until it
// calls Unpin, which widens the mask first. (The main thread cannot end; a
// pinned goroutine exiting on it leaves it idle.) The only unlock is on
// failure, when the mask was never changed.
//
// Before asking the kernel, Pin checks cpu against this machine's present
// and online CPUs (read from /sys/devices/system/cpu on every call, as CPUs
// can be hot-plugged) and the process's allowed set (AllowedCPUs). It
// returns a *CPUError wrapping ErrNoSuchCPU, ErrCPUOffline or
// ErrCPUNotAllowed, whose message names the CPU and the set it is not in.
// If sysfs cannot be read, only the allowed set is checked.
func Pin(cpu int) error {
	t, err := readCPUState("/")
	if err != nil {
		set, aerr := AllowedCPUs()
		if aerr != nil {
			return aerr
		}
		t = &Topology{Root: "/", Allowed: ListCPUs(set)}
	}
	if err := t.checkCPU("pin", cpu, true); err != nil {
		return err
	}
	if cpu >= cpuSetSize {
		return &CPUError{Op: "pin", CPU: cpu, Err: fmt.Errorf("%w: beyond what sched_setaffinity here can name (%d cpus)", ErrCPUNotAllowed, cpuSetSize)}
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		// The mask is unchanged, so undoing the lock is safe; a goroutine
		// that was pinned before stays locked (the lock nests).
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EINVAL) {
			return &CPUError{Op: "pin", CPU: cpu, SetName: "allowed at start", Set: t.Allowed,
				Err: fmt.Errorf("%w: the kernel refused it (sched_setaffinity: %w); has the cgroup cpuset shrunk since start?", ErrCPUNotAllowed, err)}
		}
		return &CPUError{Op: "pin", CPU: cpu, Err: fmt.Errorf("sched_setaffinity: %w", err)}
	}
	return nil
}

// Unpin undoes Pin for the calling goroutine: its thread gets set as its
// CPU mask (the mask it had before Pin, read with unix.SchedGetaffinity),
// and then Pin's runtime.LockOSThread is undone, so the thread goes back
// to the Go scheduler able to run where any other may. If the kernel
// refuses the mask the goroutine stays pinned and locked, and the error
// says so.
func Unpin(set *unix.CPUSet) error {
	if err := unix.SchedSetaffinity(0, set); err != nil {
		return fmt.Errorf("unpin: sched_setaffinity to CPUs %s: %w", formatSet(ListCPUs(*set)), err)
	}
	runtime.UnlockOSThread()
	return nil
}
