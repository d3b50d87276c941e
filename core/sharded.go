package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// ErrBusy: the calling core has as many calls in flight to the target core
// as Config.MaxCallsInFlight allows. Nothing was sent; the caller stops
// taking work (a connection stops reading) and may queue a Waiter with
// Runtime.WhenRoom to hear when a call completes.
var ErrBusy = errors.New("core: too many calls in flight")

// Sharded is one value of T per core: application state that lives on one
// core, as the stack does, and that other cores reach only by calls.
// A core's handlers reach their core's value with Local, in O(1) and
// without a lock; nothing else may touch it.
type Sharded[T any] struct {
	rt   *Runtime
	vals []*T
}

// NewSharded builds one T per core of rt by calling build on that core's
// goroutine (so its memory is first touched there), concurrently on every
// core, and returns once all are built or ctx is done.
func NewSharded[T any](ctx context.Context, rt *Runtime, build func(core int) *T) (*Sharded[T], error) {
	sh := &Sharded[T]{rt: rt, vals: make([]*T, rt.NumCores())}
	if err := rt.BroadcastWait(ctx, func(s *stack.Stack) {
		c := s.Config().Core
		sh.vals[c] = build(c)
	}); err != nil {
		return nil, fmt.Errorf("core: build sharded state: %w", err)
	}
	for c, v := range sh.vals {
		if v == nil {
			return nil, fmt.Errorf("%w: build returned nil for core %d", ErrInvalidConfig, c)
		}
	}
	return sh, nil
}

// Local returns core's value. Only core's own goroutine (its handlers,
// continuations, functions passed to Do for it, calls served on it) may
// use it.
func (sh *Sharded[T]) Local(core int) *T { return sh.vals[core] }

// NumCores returns the number of cores, hence of values.
func (sh *Sharded[T]) NumCores() int { return len(sh.vals) }

// Runtime returns the runtime the values live on.
func (sh *Sharded[T]) Runtime() *Runtime { return sh.rt }

// Call is one kind of cross-core call on a Sharded[T]: serve runs on the
// target core with that core's T, the call's argument A and its result R;
// done, the continuation, runs afterwards back on the calling core with the
// same argument and result. A handler on core i that needs the state of
// core j (the owner of a key, say) calls j and answers on its own
// connection from done.
//
// Calls travel in the core-to-core rings, among the cores' other
// messages, and wake a sleeping core with its doorbell at the end of the
// sender's loop iteration, as forwarded packets do. Each call's argument
// and result live in a slot that belongs to the calling core and is
// reused, so a call in steady state allocates nothing; a slot's A and R
// keep what the last call left in them (reset what you use: append to a
// buffer from [:0] to reuse it).
//
// A core may have at most Config.MaxCallsInFlight calls (of every kind
// together) in flight to each other core; beyond it Reserve returns
// ErrBusy, counted as back-pressure, and the handler stops taking work
// until a call completes (Runtime.WhenRoom). An accepted call is never
// dropped: if the target's ring is full it waits in the sender's backlog.
// A call from a core to itself runs inline, serve then done, inside Send.
//
// serve must not block, and must not keep the argument's or result's
// memory, or pointers into its T, in the result beyond what the
// continuation may read: done runs on another core while the target core
// goes on changing its T, so a result that shares memory with the T (a
// slice of a stored value) races. Copy into the result instead.
type Call[T, A, R any] struct {
	sh    *Sharded[T]
	n     int
	serve func(shard *T, arg *A, res *R)
	done  func(arg *A, res *R)
	free  []slotLists[T, A, R] // by calling core
	waits sync.Pool            // *waitCall[T, A, R], for Wait
}

// slotLists are one calling core's free slots, by target core.
type slotLists[T, A, R any] struct {
	lists [][]*slot[T, A, R]
	_     [cacheLine - 24]byte
}

// Req is one call: the caller fills Arg between Reserve and Send; serve
// fills Res; done reads both.
type Req[A, R any] struct {
	Arg A
	Res R
	hdr callSlot
}

// slot is a Req with its kind of call.
type slot[T, A, R any] struct {
	Req[A, R]
	call *Call[T, A, R]
}

func (s *slot[T, A, R]) serve() {
	s.call.serve(s.call.sh.vals[s.hdr.to], &s.Arg, &s.Res)
}

func (s *slot[T, A, R]) complete() {
	if s.call.done != nil {
		s.call.done(&s.Arg, &s.Res)
	}
	s.call.release(s)
}

// NewCall returns a kind of call on sh. done may be nil (a call for its
// effect only, as a set that answers nothing).
func NewCall[T, A, R any](sh *Sharded[T], serve func(shard *T, arg *A, res *R), done func(arg *A, res *R)) *Call[T, A, R] {
	c := &Call[T, A, R]{sh: sh, n: len(sh.vals), serve: serve, done: done, free: make([]slotLists[T, A, R], len(sh.vals))}
	for i := range c.free {
		c.free[i].lists = make([][]*slot[T, A, R], c.n)
	}
	c.waits.New = func() any {
		w := &waitCall[T, A, R]{call: c, done: make(chan struct{}, 1)}
		w.run = w.serve
		return w
	}
	return c
}

// Sharded returns the state the calls are made on.
func (c *Call[T, A, R]) Sharded() *Sharded[T] { return c.sh }

// Reserve takes a slot for a call from core from (the core running the
// caller: a handler, a continuation, a function passed to Do) to core to.
// It returns ErrBusy when from has Config.MaxCallsInFlight calls in flight
// to to, ErrStopped when the runtime is stopping, ErrNoSuchCore for an
// index out of range. Fill the slot's Arg, then Send it (or Release it).
func (c *Call[T, A, R]) Reserve(from, to int) (*Req[A, R], error) {
	if uint(from) >= uint(c.n) || uint(to) >= uint(c.n) {
		return nil, ErrNoSuchCore
	}
	if from != to {
		if err := c.sh.rt.cores[from].reserveCall(to); err != nil {
			return nil, err
		}
	}
	l := &c.free[from].lists[to]
	var s *slot[T, A, R]
	if k := len(*l); k > 0 {
		s = (*l)[k-1]
		(*l)[k-1] = nil
		*l = (*l)[:k-1]
	} else {
		s = &slot[T, A, R]{call: c}
		s.hdr.impl = s
		s.hdr.from, s.hdr.to = int32(from), int32(to)
	}
	s.hdr.state = slotReserved
	return &s.Req, nil
}

// Send sends a reserved call. To another core, it returns at once and
// done runs later on this core; to this core, serve and done run now,
// before Send returns.
func (c *Call[T, A, R]) Send(r *Req[A, R]) {
	s := c.slotOf(r)
	s.hdr.state = slotSent
	from, to := int(s.hdr.from), int(s.hdr.to)
	co := c.sh.rt.cores[from]
	if from == to {
		co.countInline()
		s.serve()
		s.complete()
		return
	}
	co.postCall(to, &s.hdr)
}

// Release gives back a reserved call that will not be sent.
func (c *Call[T, A, R]) Release(r *Req[A, R]) {
	s := c.slotOf(r)
	from, to := int(s.hdr.from), int(s.hdr.to)
	c.release(s)
	if from != to {
		co := c.sh.rt.cores[from]
		co.unreserveCall(to)
		co.wakeWaiters(to)
	}
}

// Go makes a call with argument arg: Reserve, copy arg in, Send.
func (c *Call[T, A, R]) Go(from, to int, arg A) error {
	r, err := c.Reserve(from, to)
	if err != nil {
		return err
	}
	r.Arg = arg
	c.Send(r)
	return nil
}

// WhenRoom is Runtime.WhenRoom.
func (c *Call[T, A, R]) WhenRoom(from, to int, w *Waiter) bool {
	return c.sh.rt.WhenRoom(from, to, w)
}

func (c *Call[T, A, R]) slotOf(r *Req[A, R]) *slot[T, A, R] {
	s, ok := r.hdr.impl.(*slot[T, A, R])
	if !ok || s.call != c || s.hdr.state == slotFree {
		panic("core: a Req sent or released that this Call did not reserve, or twice")
	}
	return s
}

// release puts a slot back on its calling core's free list.
func (c *Call[T, A, R]) release(s *slot[T, A, R]) {
	s.hdr.state = slotFree
	l := &c.free[s.hdr.from].lists[s.hdr.to]
	*l = append(*l, s)
}

// Wait runs serve on core to with *arg and *res from an application
// goroutine (not a core: a core that waits stalls its packets) and waits
// until it has run; done is not called. If ctx is done before the core
// has begun the call, Wait returns ctx's error and the call does not run;
// once it has begun, Wait waits for it (serve does not block). Either way
// nothing touches arg or res after Wait returns. A full mailbox is retried
// until ctx is done. The call counts as received from "app" on core to.
func (c *Call[T, A, R]) Wait(ctx context.Context, to int, arg *A, res *R) error {
	if uint(to) >= uint(c.n) {
		return fmt.Errorf("core: call on core %d of %d: %w", to, c.n, ErrNoSuchCore)
	}
	w := c.waits.Get().(*waitCall[T, A, R])
	w.to, w.arg, w.res = to, arg, res
	w.state.Store(waitPending)
	for {
		err := c.sh.rt.call(to, w.run, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrMailboxFull) {
			w.reset()
			c.waits.Put(w)
			return err
		}
		select {
		case <-ctx.Done():
			w.reset()
			c.waits.Put(w)
			return fmt.Errorf("core: call on core %d: %w", to, ctx.Err())
		case <-time.After(50 * time.Microsecond):
		}
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		if w.state.CompareAndSwap(waitPending, waitCancelled) {
			// The core will find it cancelled and drop it; it is not
			// reused, since the core still holds it.
			return fmt.Errorf("core: call on core %d: %w", to, ctx.Err())
		}
		<-w.done
	}
	w.reset()
	c.waits.Put(w)
	return nil
}

// waitCall is a call from an application goroutine, reused through a
// sync.Pool: its function is bound once, so a Wait allocates nothing once
// the pool is warm.
type waitCall[T, A, R any] struct {
	call  *Call[T, A, R]
	to    int
	arg   *A
	res   *R
	state atomic.Int32
	done  chan struct{}
	run   func(*stack.Stack)
}

const (
	waitPending int32 = iota
	waitRunning
	waitCancelled
)

// serve runs on core w.to.
func (w *waitCall[T, A, R]) serve(*stack.Stack) {
	if !w.state.CompareAndSwap(waitPending, waitRunning) {
		return
	}
	c := w.call
	c.sh.rt.cores[w.to].calls.received[c.n]++
	c.serve(c.sh.vals[w.to], w.arg, w.res)
	w.done <- struct{}{}
}

func (w *waitCall[T, A, R]) reset() { w.arg, w.res = nil, nil }
