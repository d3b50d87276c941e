//go:build linux

// Package netnstest gives driver tests network namespaces of their own:
// uniquely named, removed when the test ends (also when it fails), so that
// test traffic never leaves devices the test made.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var seq atomic.Uint32

// New creates a namespace with its loopback up, named from prefix, the
// process id and a counter, and removes it at the test's end. It skips the
// test when namespaces cannot be made (not root).
func New(t testing.TB, prefix string) (netns.NsHandle, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
	var h netns.NsHandle
	err := onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		h, err = netns.NewNamed(name)
		if err != nil {
			return err
		}
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("remove network namespace %s: %v", name, err)
		}
	})
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("loopback up in %s: %v", name, err)
	}
	return h, name
}

// Do runs fn on a locked OS thread inside h: sockets and devices fn opens
// belong to h and stay usable from any goroutine afterwards.
func Do(h netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			return err
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			return errors.Join(ferr, err, errThreadLost)
		}
		return ferr
	})
}

var errThreadLost = errors.New("netnstest: could not return the thread to its namespace; it dies with its goroutine")

// onThread runs fn on a fresh locked thread; if fn leaves the thread in a
// foreign namespace, the thread exits with the goroutine instead of going
// back to the scheduler.
func onThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := fn()
		if !errors.Is(err, errThreadLost) {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}
