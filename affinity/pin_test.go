package affinity_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/affinity"
)

// twoAllowedCPUs returns the two lowest CPUs this process may use, or skips
// the test saying how many it has.
func twoAllowedCPUs(t *testing.T) (int, int) {
	t.Helper()
	set, err := affinity.AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpus := affinity.ListCPUs(set)
	if len(cpus) < 2 {
		t.Skipf("pinning test needs 2 allowed CPUs; this process may use %v", cpus)
	}
	return cpus[0], cpus[1]
}

// threadAllowedList reads Cpus_allowed_list of one of our threads straight
// from procfs, without this package's parser.
func threadAllowedList(tid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no Cpus_allowed_list in /proc/self/task/%d/status", tid)
}

// threadProcessor reads the CPU a thread last ran on (field 39 of stat).
func threadProcessor(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it do not.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	fields := strings.Fields(rest) // fields[0] is field 3
	if len(fields) < 37 {
		return 0, fmt.Errorf("/proc/self/task/%d/stat: %d fields", tid, len(fields)+2)
	}
	return strconv.Atoi(fields[39-3])
}

// checkPinned says whether the calling thread is confined to cpu and runs
// there.
func checkPinned(cpu int) error {
	tid := unix.Gettid()
	list, err := threadAllowedList(tid)
	if err != nil {
		return err
	}
	if list != strconv.Itoa(cpu) {
		return fmt.Errorf("thread %d pinned to cpu %d has Cpus_allowed_list %q", tid, cpu, list)
	}
	on, err := threadProcessor(tid)
	if err != nil {
		return err
	}
	if on != cpu {
		return fmt.Errorf("thread %d pinned to cpu %d runs on cpu %d", tid, cpu, on)
	}
	return nil
}

func TestPinTwoGoroutinesToTwoCPUs(t *testing.T) {
	a, b := twoAllowedCPUs(t)
	var (
		pinned, done sync.WaitGroup
		tids         [2]int
		errs         [2]error
	)
	pinned.Add(2)
	done.Add(2)
	release := make(chan struct{})
	for i, cpu := range []int{a, b} {
		go func() {
			defer done.Done()
			errs[i] = affinity.Pin(cpu)
			if errs[i] == nil {
				errs[i] = checkPinned(cpu)
			}
			tids[i] = unix.Gettid()
			pinned.Done()
			// Both stay pinned until both have checked, so they cannot
			// have shared a thread.
			<-release
			if errs[i] == nil && unix.Gettid() != tids[i] {
				errs[i] = fmt.Errorf("pinned goroutine moved from thread %d to %d", tids[i], unix.Gettid())
			}
		}()
	}
	pinned.Wait()
	close(release)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if tids[0] == tids[1] {
		t.Errorf("both goroutines ran on thread %d", tids[0])
	}
}

// TestPinnedGoroutineSeesTheProcessSetAndCanMove pins a goroutine, then
// asks for the allowed set and re-pins from that goroutine: a set read from
// the calling thread would now be one CPU, and the move would be refused.
func TestPinnedGoroutineSeesTheProcessSetAndCanMove(t *testing.T) {
	a, b := twoAllowedCPUs(t)
	before, _ := affinity.AllowedCPUs()
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			if err := affinity.Pin(a); err != nil {
				return err
			}
			if err := checkPinned(a); err != nil {
				return err
			}
			after, err := affinity.AllowedCPUs()
			if err != nil {
				return err
			}
			if after != before {
				return fmt.Errorf("AllowedCPUs from a goroutine pinned to %d = %v, before %v", a, affinity.ListCPUs(after), affinity.ListCPUs(before))
			}
			if err := affinity.Pin(b); err != nil {
				return fmt.Errorf("moving from cpu %d: %w", a, err)
			}
			return checkPinned(b)
		}()
	}()
	if err := <-errc; err != nil {
		t.Error(err)
	}
}

func TestPinRejectsCPUsThatDoNotExist(t *testing.T) {
	b, err := os.ReadFile("/sys/devices/system/cpu/present")
	if err != nil {
		t.Skipf("cannot read the present CPUs: %v", err)
	}
	present, err := affinity.ParseCPUList(string(b))
	if err != nil {
		t.Fatal(err)
	}
	beyond := present[len(present)-1] + 1
	for _, cpu := range []int{-1, beyond, 1 << 20} {
		errc := make(chan error, 1)
		tidc := make(chan int, 1)
		go func() {
			errc <- affinity.Pin(cpu)
			tidc <- unix.Gettid()
		}()
		err := <-errc
		tid := <-tidc
		if !errors.Is(err, affinity.ErrNoSuchCPU) {
			t.Errorf("Pin(%d) = %v, want ErrNoSuchCPU", cpu, err)
			continue
		}
		want := fmt.Sprintf("affinity: pin cpu %d: cpu does not exist (present: %s)", cpu, affinity.FormatCPUList(present))
		if err.Error() != want {
			t.Errorf("Pin(%d) says %q, want %q", cpu, err, want)
		}
		var ce *affinity.CPUError
		if !errors.As(err, &ce) || ce.CPU != cpu || ce.SetName != "present" {
			t.Errorf("Pin(%d) = %#v, want a *CPUError for that cpu and the present set", cpu, err)
		}
		// A refused Pin leaves the thread alone: its mask is still the
		// process's (the thread, never locked, went back to the pool).
		set, _ := affinity.AllowedCPUs()
		if list, err := threadAllowedList(tid); err == nil && list != affinity.FormatCPUList(affinity.ListCPUs(set)) {
			t.Errorf("after a refused Pin(%d) thread %d has Cpus_allowed_list %q", cpu, tid, list)
		}
	}
}

// childEnv tells a re-executed test binary that it is the child of
// TestPinRefusesCPUOutsideTheProcessSet, and which CPU it was confined to.
const childEnv = "MKSTACK_AFFINITY_TEST_CHILD_CPU"

// TestPinRefusesCPUOutsideTheProcessSet starts this test binary again from
// a thread pinned to one CPU; the child inherits that one-CPU mask, as a
// process started under "taskset -c CPU" would, and checks that it may not
// pin elsewhere.
func TestPinRefusesCPUOutsideTheProcessSet(t *testing.T) {
	if s := os.Getenv(childEnv); s != "" {
		confinedChild(t, s)
		return
	}
	a, b := twoAllowedCPUs(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		out []byte
		err error
	}
	resc := make(chan result, 1)
	go func() {
		// The child is forked from this goroutine's thread and inherits its
		// mask. The thread dies with the goroutine (Pin never unlocks).
		if err := affinity.Pin(a); err != nil {
			resc <- result{err: err}
			return
		}
		cmd := exec.Command(exe, "-test.run=^TestPinRefusesCPUOutsideTheProcessSet$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", childEnv, a, b))
		out, err := cmd.CombinedOutput()
		resc <- result{out, err}
	}()
	res := <-resc
	if res.err != nil {
		t.Fatalf("child confined to cpu %d: %v\n%s", a, res.err, res.out)
	}
	if !strings.Contains(string(res.out), "--- PASS: TestPinRefusesCPUOutsideTheProcessSet") {
		t.Fatalf("child did not run its checks:\n%s", res.out)
	}
}

// confinedChild runs in a process whose allowed set is the one CPU a, and
// tries CPU b.
func confinedChild(t *testing.T, env string) {
	var a, b int
	if _, err := fmt.Sscanf(env, "%d,%d", &a, &b); err != nil {
		t.Fatalf("%s=%q: %v", childEnv, env, err)
	}
	set, err := affinity.AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if got := affinity.ListCPUs(set); !slices.Equal(got, []int{a}) {
		t.Fatalf("AllowedCPUs in a process started confined to cpu %d = %v", a, got)
	}
	errc := make(chan error, 2)
	go func() {
		err := affinity.Pin(b)
		var ce *affinity.CPUError
		want := fmt.Sprintf("affinity: pin cpu %d: cpu not in the allowed set (allowed: %d)", b, a)
		switch {
		case !errors.Is(err, affinity.ErrCPUNotAllowed):
			errc <- fmt.Errorf("Pin(%d) outside the process's set = %v, want ErrCPUNotAllowed", b, err)
		case err.Error() != want:
			errc <- fmt.Errorf("Pin(%d) says %q, want %q", b, err, want)
		case !errors.As(err, &ce) || ce.CPU != b || !slices.Equal(ce.Set, []int{a}):
			errc <- fmt.Errorf("Pin(%d) = %#v, want a *CPUError naming cpu %d and the set [%d]", b, err, b, a)
		default:
			errc <- nil
		}
	}()
	go func() {
		if err := affinity.Pin(a); err != nil {
			errc <- err
			return
		}
		errc <- checkPinned(a)
	}()
	for range 2 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if got, err := affinity.Plan(1, ""); err != nil || !slices.Equal(got, []int{a}) {
		t.Errorf("Plan(1) confined to cpu %d = %v, %v", a, got, err)
	}
	if _, err := affinity.Plan(2, ""); !errors.Is(err, affinity.ErrNotEnoughCPUs) {
		t.Errorf("Plan(2) confined to cpu %d = %v, want ErrNotEnoughCPUs", a, err)
	}
}

// TestPinnedThreadEndsWithItsGoroutine checks the reason Pin never
// unlocks: the pinned thread must not return to the scheduler's pool with
// its one-CPU mask, so it has to end when its goroutine does.
func TestPinnedThreadEndsWithItsGoroutine(t *testing.T) {
	_, b := twoAllowedCPUs(t)
	tidc := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		err := affinity.Pin(b)
		tidc <- unix.Gettid()
		errc <- err
	}()
	tid, err := <-tidc, <-errc
	if err != nil {
		t.Fatal(err)
	}
	if tid == unix.Getpid() {
		// The runtime cannot end the main thread; it parks it for good.
		t.Skipf("the pinned goroutine ran on the main thread %d, which the runtime parks instead of ending", tid)
	}
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(task)
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			list, _ := threadAllowedList(tid)
			t.Fatalf("thread %d of a pinned goroutine that exited is still alive 5s later (Cpus_allowed_list %q)", tid, list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnpinHandsTheThreadBack: after Unpin the thread has the mask it had
// before Pin and is no longer locked, so it outlives its goroutine (a
// thread still locked would end with it, as the test above shows).
func TestUnpinHandsTheThreadBack(t *testing.T) {
	_, b := twoAllowedCPUs(t)
	type result struct {
		tid        int
		before, in unix.CPUSet
		after      unix.CPUSet
		err        error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.tid = unix.Gettid()
		unix.SchedGetaffinity(0, &r.before)
		if r.err = affinity.Pin(b); r.err == nil {
			unix.SchedGetaffinity(0, &r.in)
			r.err = affinity.Unpin(&r.before)
			unix.SchedGetaffinity(0, &r.after)
		}
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.in.Count() != 1 || !r.in.IsSet(b) {
		t.Fatalf("pinned thread ran on %v, want only CPU %d", affinity.ListCPUs(r.in), b)
	}
	if r.after != r.before {
		t.Fatalf("after Unpin the thread runs on %v, want %v as before Pin", affinity.ListCPUs(r.after), affinity.ListCPUs(r.before))
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", r.tid)); os.IsNotExist(err) {
		t.Fatalf("thread %d ended with its goroutine: Unpin left it locked", r.tid)
	}
}
