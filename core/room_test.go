package core

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// TestDoOrWaitParksOnAFullMailboxAndGoesOnWhenItDrains: with the core held
// and its mailbox full, Do fails at once with ErrMailboxFull (the same
// error value each time: no formatting per call), DoOrWait parks instead
// of spinning, and its call runs once the core drains; a cancelled context
// ends the wait.
func TestDoOrWaitParksOnAFullMailboxAndGoesOnWhenItDrains(t *testing.T) {
	w := newWire(t, 1)
	rt := start(t, w.NIC(0), [4]byte{10, 0, 0, 1}, func(c *Config) { c.SharedRing = 8 })
	release := make(chan struct{})
	held := make(chan struct{})
	if err := rt.Do(0, func(*stack.Stack) { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held
	var ran atomic.Int64
	count := func(*stack.Stack) { ran.Add(1) }
	queued := 0
	for rt.Do(0, count) == nil {
		queued++
	}
	first, second := rt.Do(0, count), rt.Do(0, count)
	if !errors.Is(first, ErrMailboxFull) || first != second {
		t.Fatalf("full mailbox: %v then %v, want one ErrMailboxFull value", first, second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := rt.DoOrWait(ctx, 0, count); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DoOrWait with the core held: %v, want the context's deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.DoOrWait(context.Background(), 0, count) }()
	waitFor(t, 5*time.Second, func() string { return "DoOrWait never parked" }, func() bool { return rt.MailboxWaits(0) >= 2 })
	select {
	case err := <-done:
		t.Fatalf("DoOrWait returned %v with the mailbox full", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := rt.DoWait(ctxT(t), 0, func(*stack.Stack) {}); err != nil {
		t.Fatal(err)
	}
	if got := ran.Load(); got != int64(queued)+1 {
		t.Errorf("%d calls ran, want %d (the queued ones and DoOrWait's)", got, queued+1)
	}
}
