//go:build linux

// Package nsthread runs code inside a network namespace on an OS thread of
// its own, and makes namespaces, without moving any other thread. It owns
// the rule every namespace helper of the project follows: a thread that
// entered a namespace goes back before it is unlocked, and a thread that
// cannot go back stays locked, so the Go runtime ends it with its
// goroutine instead of running other goroutines in the wrong namespace.
package nsthread

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn inside h on a locked thread and returns fn's error. Sockets
// and devices fn opens belong to h and keep working from any thread. fn
// runs on another goroutine: in a test it must not call t.Fatal.
func Do(h netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			done <- errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// New makes an unnamed namespace, holding only a loopback device; it lives
// while a handle on it (or a socket or device in it) is open.
func New() (netns.NsHandle, error) {
	return create(netns.New, "create network namespace")
}

// NewNamed makes a namespace called name, as ip netns add does: it lives
// until it is deleted (netns.DeleteNamed), whatever the process does.
func NewNamed(name string) (netns.NsHandle, error) {
	return create(func() (netns.NsHandle, error) { return netns.NewNamed(name) }, "create network namespace "+name)
}

// Current returns a handle on the namespace the process's threads run in.
func Current() (netns.NsHandle, error) {
	// Any thread will do: the helpers here put every thread back.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return netns.Get()
}

// create runs enter, which moves its thread into the namespace it makes,
// on a locked thread, and puts the thread back.
func create(enter func() (netns.NsHandle, error), what string) (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		h, err := enter()
		// enter may have moved the thread before it failed.
		if serr := netns.Set(orig); serr != nil {
			if h.IsOpen() {
				h.Close()
			}
			done <- result{err: errors.Join(err, fmt.Errorf("return thread to its namespace: %w", serr))}
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		done <- result{h: h, err: err}
	}()
	r := <-done
	return r.h, r.err
}
