package core_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
)

// A counter per key, sharded across cores by the key's hash: each core owns
// its keys' counters, a handler on any core asks the owner with a call and
// gets the answer back on its own core, and an application goroutine uses
// the blocking form.
func ExampleCall() {
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 2},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 2},
	}})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	rt, err := core.Start(core.Config{NIC: w.NIC(0), Cores: 2, StackConfig: func(int) stack.Config {
		return stack.Config{Addr: netip.MustParsePrefix("10.0.0.1/24")}
	}})
	if err != nil {
		panic(err)
	}
	defer rt.Stop(context.Background())
	ctx := context.Background()

	// The state: one map per core, built on that core.
	type counters struct{ n map[string]int }
	sh, err := core.NewSharded(ctx, rt, func(int) *counters { return &counters{n: map[string]int{}} })
	if err != nil {
		panic(err)
	}
	owner := func(key string) int {
		h := fnv.New32a()
		h.Write([]byte(key))
		return int(h.Sum32() % uint32(sh.NumCores()))
	}

	// The call: count a key on its owner (serve), report on the caller
	// (done).
	type arg struct{ key string }
	type result struct{ count, servedOn int }
	answers := make(chan string, 3)
	incr := core.NewCall(sh,
		func(c *counters, a *arg, r *result) {
			c.n[a.key]++
			r.count, r.servedOn = c.n[a.key], owner(a.key)
		},
		func(a *arg, r *result) {
			answers <- fmt.Sprintf("%s=%d (core %d)", a.key, r.count, r.servedOn)
		})

	// From a handler on core 0 (here a function run there by Do): one
	// call per key, to whichever core owns it, itself included (inline).
	rt.Do(0, func(*stack.Stack) {
		for _, key := range []string{"apple", "lime", "apple"} {
			if err := incr.Go(0, owner(key), arg{key: key}); err != nil {
				// core.ErrBusy: stop reading and wait with WhenRoom.
				panic(err)
			}
		}
	})
	var got []string
	for range 3 {
		got = append(got, <-answers)
	}
	slices.Sort(got) // calls to different cores complete in any order
	for _, s := range got {
		fmt.Println(s)
	}

	// From an application goroutine: wait for the owner's answer.
	var r result
	if err := incr.Wait(ctx, owner("apple"), &arg{key: "apple"}, &r); err != nil {
		panic(err)
	}
	fmt.Println("apple:", r.count)
	// Output:
	// apple=1 (core 1)
	// apple=2 (core 1)
	// lime=1 (core 0)
	// apple: 3
}
