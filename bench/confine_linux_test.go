//go:build linux

package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConfineSetsEveryThreadAndRestoreGivesItBack: Confine restricts
// every thread of the process, not only the caller's, to the CPUs it is
// given, and the function it returns gives every thread back the set it
// had. Every like-for-like ratio the harness reports rests on this.
func TestConfineSetsEveryThreadAndRestoreGivesItBack(t *testing.T) {
	// Confine reads the original set from the calling thread: keep this
	// goroutine on one thread so the test reads the same one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Count() < 2 {
		t.Skipf("needs 2 allowed CPUs, this process has %d", orig.Count())
	}
	// Threads beside this one, each held by a goroutine locked to it, so
	// "every thread" means several.
	const extra = 4
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for range extra {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	defer func() {
		close(release)
		done.Wait()
	}()

	// The last allowed CPU: not the set, and not simply its first CPU.
	cpu := -1
	for c := range 1024 {
		if orig.IsSet(c) {
			cpu = c
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	restore, err := Confine([]int{cpu})
	if err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	checkEveryThread(t, "after Confine", one, extra+1)
	restore()
	restored = true
	checkEveryThread(t, "after restore", orig, extra+1)
}

// checkEveryThread fails the test unless each thread of the process (at
// least atLeast of them) has the CPU set want.
func checkEveryThread(t *testing.T, when string, want unix.CPUSet, atLeast int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var got unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &got); err == unix.ESRCH {
			continue // the thread ended meanwhile
		} else if err != nil {
			t.Fatalf("%s: thread %d: %v", when, tid, err)
		}
		checked++
		if got != want {
			t.Errorf("%s: thread %d has CPUs %s, want %s", when, tid, cpuSetString(got), cpuSetString(want))
		}
	}
	if checked < atLeast {
		t.Fatalf("%s: checked %d threads, want at least %d", when, checked, atLeast)
	}
}

// cpuSetString lists the CPUs of a set, such as "[0 3]".
func cpuSetString(s unix.CPUSet) string {
	var cpus []int
	for c := range 1024 {
		if s.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return fmt.Sprint(cpus)
}
