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
// thread that ends meanwhile is skipped. A thread the Go runtime starts
// while the list is walked inherits the mask of the thread that starts it,
// which may not have been set yet, so the walk repeats until a pass finds
// every thread already set (a few passes at most).
func setAllThreads(set *unix.CPUSet) error {
	for pass := 0; pass < 10; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var cur unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &cur); err == nil && cur == *set {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("threads kept appearing with another CPU set")
}
