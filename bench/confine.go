package bench

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Confine restricts every thread of this process to cpus (as taskset
// would, but on a running process: new threads inherit the mask of the
// thread that makes them) and returns how to give them back the set the
// process started with. A point runs confined so that every system, its
// server and client sides and the Go runtime's own threads, gets the same
// CPUs; a goroutine pinned within them (a mkstack core) narrows its own
// thread further.
func Confine(cpus []int) (restore func(), err error) {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return nil, fmt.Errorf("confine to CPUs %v: %w", cpus, err)
	}
	if err := setAllThreads(&set); err != nil {
		setAllThreads(&orig)
		return nil, fmt.Errorf("confine to CPUs %v: %w", cpus, err)
	}
	return func() { setAllThreads(&orig) }, nil
}

// setAllThreads sets the affinity of every thread of the process. A
// thread that ends meanwhile is skipped.
func setAllThreads(set *unix.CPUSet) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
