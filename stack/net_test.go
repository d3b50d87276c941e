package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
)

// testNet is a broadcast domain of stacks stepped by one virtual clock.
// Frames each stack flushes are copied into every other stack's pool that
// should see them (its MAC or broadcast), as a switch would, so each
// stack's buffers stay its own. filter, if set, may drop a frame in flight.
type testNet struct {
	t      *testing.T
	clock  *nicq.VirtualClock
	stacks []*Stack
	pools  []*nicq.Pool
	filter func(from int, frame []byte) bool
	frames int
	large  *nicq.Pool // for frames larger than a buffer of a stack's pool
}

func newTestNet(t *testing.T) *testNet {
	return &testNet{t: t, clock: nicq.NewVirtualClock(1_000_000_000)}
}

// add creates a stack at addr (CIDR) with MAC 02:00:00:00:00:idx.
func (n *testNet) add(addr string, tweak func(*Config)) *Stack {
	n.t.Helper()
	idx := len(n.stacks)
	pool, err := nicq.NewPool(nicq.PoolConfig{Name: addr, Buffers: 512})
	if err != nil {
		n.t.Fatal(err)
	}
	cfg := Config{
		MAC:   header.MAC{2, 0, 0, 0, 0, byte(idx + 1)},
		Addr:  netip.MustParsePrefix(addr),
		Clock: n.clock,
		Pool:  pool,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.stacks = append(n.stacks, s)
	n.pools = append(n.pools, pool)
	return s
}

// step moves every waiting frame across the wire once and returns how many
// crossed.
func (n *testNet) step() int {
	moved := 0
	for i, s := range n.stacks {
		s.Flush(func(bufs []*nicq.Buf) int {
			for _, b := range bufs {
				frame := b.Bytes()
				if n.filter == nil || n.filter(i, frame) {
					dst := header.MAC(frame[:6])
					for j, r := range n.stacks {
						if j == i || (dst != r.mac && !dst.IsMulticast()) { // broadcast and multicast reach all
							continue
						}
						c := n.pools[j].Get()
						if c != nil && c.Tailroom() < len(frame) {
							// A frame larger than a buffer (Config.LargeFrames)
							// arrives in a large one, as a multi-buffer
							// driver makes it whole.
							c.Free()
							c = n.largeBuf()
						}
						if c == nil {
							n.t.Fatalf("pool of stack %d empty", j)
						}
						copy(c.Append(len(frame)), frame)
						r.Input([]*nicq.Buf{c})
					}
				}
				b.Free()
				moved++
			}
			return len(bufs)
		})
	}
	n.frames += moved
	return moved
}

// largeBuf returns a buffer of the net's pool of large buffers, made on
// first use.
func (n *testNet) largeBuf() *nicq.Buf {
	if n.large == nil {
		p, err := nicq.NewPool(nicq.PoolConfig{Name: "large", Buffers: 64, FrameSize: 65536 + nicq.DefaultHeadroom})
		if err != nil {
			n.t.Fatal(err)
		}
		n.large = p
	}
	return n.large.Get()
}

// run steps until the wire is quiet.
func (n *testNet) run() {
	for i := 0; i < 1000; i++ {
		if n.step() == 0 {
			return
		}
	}
	n.t.Fatal("wire never went quiet")
}

// advance moves the clock by d in steps of at most 100 ms, running timers
// and the wire at each.
func (n *testNet) advance(d time.Duration) {
	for d > 0 {
		st := min(d, 100*time.Millisecond)
		n.clock.Advance(st)
		d -= st
		for _, s := range n.stacks {
			s.Advance()
		}
		n.run()
	}
}

// checkNoLeaks fails if a pool holds buffers nobody owns any more.
func (n *testNet) checkNoLeaks() {
	n.t.Helper()
	for i, p := range n.pools {
		if p.InUse() != 0 {
			n.t.Errorf("stack %d: %d buffers still in use", i, p.InUse())
		}
	}
}

func ip4(s string) [4]byte { return netip.MustParseAddr(s).As4() }

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// runTimers steps the clock from one of s's timers to the next (at least
// 1 ms on) for d, running s's timers and then after each step.
func runTimers(n *testNet, s *Stack, d time.Duration, then func()) {
	end := n.clock.Now() + int64(d)
	for {
		next, ok := s.NextTimer()
		if !ok || next > end {
			return
		}
		n.clock.Set(max(next, n.clock.Now()+int64(time.Millisecond)))
		s.Advance()
		then()
	}
}
