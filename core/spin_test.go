//go:build linux

package core

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/affinity"
)

// TestSpinningCoreGivesItsCPUAway: a core in its spin window (here one
// that never ends) shares its CPU with a busy thread of the application.
// The core must take almost none of the CPU: it yields between looks. A
// core that polled without yielding took its fair half (the scheduler
// splits a CPU between two runnable threads), and the application's
// thread ran at half speed.
func TestSpinningCoreGivesItsCPUAway(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for c := 0; c < 1024; c++ {
		if allowed.IsSet(c) {
			cpu = c
		}
	}
	w := newWire(t, 1)
	rt := start(t, w.NIC(0), addrA, func(c *Config) {
		c.CPUs = []int{cpu}
		c.SpinWindow = time.Hour
	})
	coreTID := rt.cores[0].tid

	const busy = 400 * time.Millisecond
	type result struct {
		coreCPU, appCPU time.Duration
		err             error
	}
	done := make(chan result)
	go func() {
		// The thread ends with the goroutine: it stays pinned.
		runtime.LockOSThread()
		if err := affinity.Pin(cpu); err != nil {
			done <- result{err: err}
			return
		}
		core0, err := threadCPU(coreTID)
		if err != nil {
			done <- result{err: err}
			return
		}
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
		app0 := ts.Nano()
		for start := time.Now(); time.Since(start) < busy; {
		}
		unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
		core1, err := threadCPU(coreTID)
		done <- result{coreCPU: core1 - core0, appCPU: time.Duration(ts.Nano() - app0), err: err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("over %v on CPU %d: the spinning core ran %v, the application's thread %v", busy, cpu, r.coreCPU, r.appCPU)
	if r.coreCPU > busy/5 {
		t.Errorf("the spinning core took %v of %v from the application's thread on its CPU (which got %v): it should yield between looks", r.coreCPU, busy, r.appCPU)
	}
}

// threadCPU is the time a thread of this process has run, from the
// scheduler's statistics.
func threadCPU(tid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("schedstat of thread %d: %q", tid, b)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns), err
}
