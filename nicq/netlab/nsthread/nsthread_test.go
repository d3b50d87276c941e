//go:build linux

package nsthread

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// TestDoRunsInsideAndLeavesEveryThreadHome: fn runs in the namespace it is
// given, and the threads that made namespaces or ran fn are back where the
// process runs, so the goroutines after them are too.
func TestDoRunsInsideAndLeavesEveryThreadHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	home, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Equal(home) {
		t.Fatal("New returned the process's own namespace")
	}
	err = Do(h, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(h) {
			return fmt.Errorf("fn ran in %v, not in %v", cur, h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("nsthread-test-%d", os.Getpid())
	named, err := NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.DeleteNamed(name)
	defer named.Close()
	// Every thread the runtime has may have served one of the calls above.
	for range 4 * runtime.GOMAXPROCS(0) {
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cur, err := netns.Get()
			if err == nil && !cur.Equal(home) {
				err = fmt.Errorf("a thread is left in %v", cur)
			}
			cur.Close()
			done <- err
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
