package rss

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func mustAllocator(t testing.TB, cfg *Config, proto Proto, queue int, ports PortRange, seed uint64) *PortAllocator {
	t.Helper()
	a, err := NewPortAllocator(cfg, proto, queue, ports, rand.NewPCG(seed, 99))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// replyQueue is the queue cfg steers the reply of a connection from
// local:port to remote to, computed with the hash directly.
func replyQueue(cfg *Config, proto Proto, local netip.Addr, remote netip.AddrPort, port uint16) int {
	h, err := cfg.HashAddrPorts(proto, remote, netip.AddrPortFrom(local, port))
	if err != nil {
		panic(err)
	}
	return cfg.Queue(h)
}

var allocatorConfigs = []struct {
	name string
	o    Options
}{
	{"default key, 4 queues", Options{Queues: 4}},
	{"symmetric key, 2 queues", Options{Queues: 2, Key: SymmetricKey[:]}},
	{"52-byte key, 512 entries, 6 queues", Options{Queues: 6, RETASize: 512, Key: SymmetricKey52[:]}},
	{"weighted 1:3", Options{Queues: 2, Weights: []int{1, 3}, RETASize: 64}},
	{"100 entries (hashing fallback)", Options{Queues: 3, RETASize: 100}},
}

func randomEndpoints(rng *rand.Rand, v6 bool) (netip.Addr, netip.AddrPort) {
	if v6 {
		var l, r [16]byte
		fill(rng, l[:], r[:])
		return netip.AddrFrom16(l), netip.AddrPortFrom(netip.AddrFrom16(r), uint16(rng.Uint32()))
	}
	var l, r [4]byte
	fill(rng, l[:], r[:])
	return netip.AddrFrom4(l), netip.AddrPortFrom(netip.AddrFrom4(r), uint16(rng.Uint32()))
}

func TestPortAllocatorRepliesToEveryPortHandedOutReachItsQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, cc := range allocatorConfigs {
		cfg := mustConfig(t, cc.o)
		for q := range cfg.Queues() {
			a := mustAllocator(t, cfg, ProtoTCP, q, PortRange{}, uint64(q))
			seen := map[uint16]bool{}
			for i := range 400 {
				local, remote := randomEndpoints(rng, i%2 == 1)
				p, err := a.Pick(local, remote)
				if err != nil {
					t.Fatalf("%s, queue %d: %v", cc.name, q, err)
				}
				if !DefaultPortRange.Contains(p) || seen[p] || !a.InUse(p) {
					t.Fatalf("%s, queue %d: port %d out of range, repeated or not marked", cc.name, q, p)
				}
				seen[p] = true
				if got := replyQueue(cfg, ProtoTCP, local, remote, p); got != q {
					t.Fatalf("%s: port %d for %v->%v: reply lands on queue %d, want %d", cc.name, p, local, remote, got, q)
				}
			}
			if a.Len() != 400 {
				t.Fatalf("%s: Len() = %d after 400 picks", cc.name, a.Len())
			}
		}
	}
}

// Drain every queue's allocator for one destination: the ports handed out
// must be exactly the range, each port once, each on the queue its reply
// hashes to; then the next pick fails with ErrNoPort.
func TestPortPoolsPartitionTheEphemeralRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ranges := []PortRange{{First: 40000, Last: 42999}, {First: 1, Last: 1000}}
	if !testing.Short() {
		ranges = append(ranges, DefaultPortRange)
	}
	for _, cc := range allocatorConfigs {
		cfg := mustConfig(t, cc.o)
		for _, pr := range ranges {
			for _, v6 := range []bool{false, true} {
				local, remote := randomEndpoints(rng, v6)
				owner := map[uint16]int{}
				for q := range cfg.Queues() {
					a := mustAllocator(t, cfg, ProtoUDP, q, pr, 1)
					want := 0
					for p := int(pr.First); p <= int(pr.Last); p++ {
						if replyQueue(cfg, ProtoUDP, local, remote, uint16(p)) == q {
							want++
						}
					}
					got := 0
					for {
						p, err := a.Pick(local, remote)
						if err != nil {
							if !errors.Is(err, ErrNoPort) {
								t.Fatalf("%s: error %v does not wrap ErrNoPort", cc.name, err)
							}
							break
						}
						if prev, dup := owner[p]; dup {
							t.Fatalf("%s %v: port %d handed out by queues %d and %d", cc.name, pr, p, prev, q)
						}
						owner[p] = q
						if rq := replyQueue(cfg, ProtoUDP, local, remote, p); rq != q || !pr.Contains(p) {
							t.Fatalf("%s %v: port %d from queue %d replies to queue %d", cc.name, pr, p, q, rq)
						}
						got++
					}
					if got != want {
						t.Fatalf("%s %v v6=%v: queue %d handed out %d ports, %d of the range reply to it", cc.name, pr, v6, q, got, want)
					}
				}
				if len(owner) != pr.Len() {
					t.Fatalf("%s %v v6=%v: the pools cover %d ports of %d", cc.name, pr, v6, len(owner), pr.Len())
				}
			}
		}
	}
}

func TestPortAllocatorReleaseMakesAPortAvailableAgain(t *testing.T) {
	for _, cc := range allocatorConfigs {
		cfg := mustConfig(t, cc.o)
		a := mustAllocator(t, cfg, ProtoTCP, 0, PortRange{First: 50000, Last: 50999}, 3)
		local, remote := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddrPort("10.0.0.2:80")
		var taken []uint16
		for {
			p, err := a.Pick(local, remote)
			if err != nil {
				if !errors.Is(err, ErrNoPort) || !strings.Contains(err.Error(), "taken") {
					t.Fatalf("%s: exhausted with %v", cc.name, err)
				}
				break
			}
			taken = append(taken, p)
		}
		if len(taken) == 0 {
			t.Fatalf("%s: no port at all for queue 0", cc.name)
		}
		freed := taken[len(taken)/2]
		if !a.Release(freed) {
			t.Fatalf("%s: Release(%d) of a taken port reported false", cc.name, freed)
		}
		if a.Release(freed) {
			t.Fatalf("%s: second Release(%d) reported true", cc.name, freed)
		}
		if p, err := a.Pick(local, remote); err != nil || p != freed {
			t.Fatalf("%s: after releasing %d, Pick = %d, %v", cc.name, freed, p, err)
		}
		if _, err := a.Pick(local, remote); !errors.Is(err, ErrNoPort) {
			t.Fatalf("%s: pool refilled beyond the released port: %v", cc.name, err)
		}
	}
}

func TestPortAllocatorSkipsReservedPorts(t *testing.T) {
	cfg := mustConfig(t, Options{Queues: 2})
	pr := PortRange{First: 20000, Last: 20999}
	local, remote := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddrPort("198.51.100.7:443")
	reserved := map[uint16]bool{}
	a := mustAllocator(t, cfg, ProtoTCP, 1, pr, 4)
	for p := pr.First; p <= pr.Last; p += 3 {
		if !a.Reserve(p) {
			t.Fatalf("Reserve(%d) of a free port reported false", p)
		}
		reserved[p] = true
	}
	if a.Reserve(pr.First) {
		t.Fatal("Reserve of a reserved port reported true")
	}
	if !a.Reserve(80) || !a.InUse(80) { // outside the range: tracked, never handed out
		t.Fatal("Reserve(80) failed")
	}
	for {
		p, err := a.Pick(local, remote)
		if err != nil {
			break
		}
		if reserved[p] {
			t.Fatalf("Pick handed out reserved port %d", p)
		}
	}
	if !a.Release(80) || a.InUse(80) {
		t.Fatal("Release(80) failed")
	}
}

func TestPortAllocatorRandomizesWithinThePool(t *testing.T) {
	cfg := mustConfig(t, Options{Queues: 2})
	local, remote := netip.MustParseAddr("10.1.1.1"), netip.MustParseAddrPort("10.2.2.2:8080")
	picks := func(seed uint64) []uint16 {
		a := mustAllocator(t, cfg, ProtoTCP, 1, PortRange{}, seed)
		var ps []uint16
		for range 64 {
			p, err := a.Pick(local, remote)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	a, b, c := picks(1), picks(1), picks(2)
	same, lo, hi := 0, a[0], a[0]
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("the same seed gave different ports at pick %d: %d, %d", i, a[i], b[i])
		}
		if a[i] == c[i] {
			same++
		}
		lo, hi = min(lo, a[i]), max(hi, a[i])
	}
	if same > 4 {
		t.Fatalf("seeds 1 and 2 agree on %d of 64 picks", same)
	}
	// 64 random ports of a 28232-port range spread over most of it.
	if spread := int(hi) - int(lo); spread < DefaultPortRange.Len()/2 {
		t.Fatalf("64 picks span only %d ports (%d-%d)", spread, lo, hi)
	}
	// Sequential ports would make consecutive differences small.
	small := 0
	for i := 1; i < len(a); i++ {
		if d := int(a[i]) - int(a[i-1]); d > -64 && d < 64 {
			small++
		}
	}
	if small > 8 {
		t.Fatalf("%d of 63 consecutive picks are within 64 ports of each other: %v", small, a)
	}
}

func TestPortAllocatorWithAddressOnlyHashing(t *testing.T) {
	cfg := mustConfig(t, Options{Queues: 4, TCP4: Tuple2, TCP6: Tuple2})
	// The reply from 66.9.149.187 to 161.142.100.80 hashes to 0x323e8fc2
	// (the first spec row, IPv4 only): 0x42 = 66, 66 % 4 = 2.
	remote := netip.MustParseAddrPort("66.9.149.187:2794")
	local := netip.MustParseAddr("161.142.100.80")
	if got := cfg.QueueIPv4(remote.Addr().As4(), local.As4()); got != 2 {
		t.Fatalf("the spec flow lands on queue %d, want 2", got)
	}
	pr := PortRange{First: 1000, Last: 1099}
	wrong := mustAllocator(t, cfg, ProtoTCP, 1, pr, 1)
	_, err := wrong.Pick(local, remote)
	if !errors.Is(err, ErrNoPort) || !strings.Contains(err.Error(), "tcp is hashed on addresses only") || !strings.Contains(err.Error(), "queue 2, not 1") {
		t.Fatalf("queue 1: %v", err)
	}
	right := mustAllocator(t, cfg, ProtoTCP, 2, pr, 1)
	seen := map[uint16]bool{}
	for range pr.Len() {
		p, err := right.Pick(local, remote)
		if err != nil || !pr.Contains(p) || seen[p] {
			t.Fatalf("queue 2: Pick = %d, %v", p, err)
		}
		seen[p] = true
	}
	if _, err := right.Pick(local, remote); !errors.Is(err, ErrNoPort) || !strings.Contains(err.Error(), "every port of 1000-1099 is taken") {
		t.Fatalf("queue 2 after %d picks: %v", pr.Len(), err)
	}
	right.Release(1050)
	if p, err := right.Pick(local, remote); p != 1050 || err != nil {
		t.Fatalf("after Release(1050): %d, %v", p, err)
	}
	// IPv6 with 2-tuple hashing, a range that ends at 65535 and starts
	// mid bitmap word.
	l6, r6 := netip.MustParseAddr("2001:db8::1"), netip.AddrPortFrom(netip.MustParseAddr("2001:db8::2"), 80)
	q6 := cfg.QueueIPv6(r6.Addr().As16(), l6.As16())
	full := mustAllocator(t, cfg, ProtoTCP, q6, PortRange{First: 65500, Last: 65535}, 2)
	n := 0
	for {
		if _, err := full.Pick(l6, r6); err != nil {
			break
		}
		n++
	}
	if n != 36 {
		t.Fatalf("IPv6 2-tuple: %d ports handed out of 65500-65535, want 36", n)
	}
}

func TestPortAllocatorQueueWithoutTableEntriesGetsNoPort(t *testing.T) {
	cfg := mustConfig(t, Options{Queues: 3, Weights: []int{1, 0, 1}})
	a := mustAllocator(t, cfg, ProtoTCP, 1, PortRange{}, 1)
	_, err := a.PickIPv4([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 80)
	if !errors.Is(err, ErrNoPort) || !strings.Contains(err.Error(), "queue 1 has no indirection table entries") {
		t.Fatalf("queue of weight 0: %v", err)
	}
}

func TestNewPortAllocatorRejectsBadArguments(t *testing.T) {
	cfg := mustConfig(t, Options{Queues: 2})
	for _, c := range []struct {
		queue int
		pr    PortRange
		want  string
	}{
		{2, PortRange{}, "queue 2, want 0 to 1"},
		{-1, PortRange{}, "queue -1"},
		{0, PortRange{First: 0, Last: 10}, "range 0-10"},
		{0, PortRange{First: 5000, Last: 4000}, "range 5000-4000"},
	} {
		_, err := NewPortAllocator(cfg, ProtoTCP, c.queue, c.pr, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("queue %d range %v: %v, want it to say %q", c.queue, c.pr, err, c.want)
		}
	}
	a, err := NewPortAllocator(cfg, ProtoTCP, 0, PortRange{}, nil)
	if err != nil || a.Range() != DefaultPortRange || a.Queue() != 0 {
		t.Fatalf("defaults: %v, %v", a, err)
	}
	if _, err := a.Pick(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddrPort("[::1]:80")); err == nil {
		t.Fatal("Pick accepted mixed families")
	}
}

func TestPortPickAndReleaseDoNotAllocate(t *testing.T) {
	cfg := mustConfig(t, Options{Queues: 4})
	a4 := mustAllocator(t, cfg, ProtoTCP, 3, PortRange{}, 1)
	odd := mustConfig(t, Options{Queues: 4, RETASize: 96})
	aOdd := mustAllocator(t, odd, ProtoTCP, 3, PortRange{}, 1)
	local, remote := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	l6, r6 := [16]byte{0x20, 1, 15: 1}, [16]byte{0x20, 1, 15: 2}
	var rport uint16
	allocs := testing.AllocsPerRun(1000, func() {
		rport++
		for _, a := range []*PortAllocator{a4, aOdd} {
			p, err := a.PickIPv4(local, remote, rport)
			if err != nil {
				panic(err)
			}
			p6, err := a.PickIPv6(l6, r6, rport)
			if err != nil {
				panic(err)
			}
			a.Release(p)
			a.Release(p6)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per pick and release, want 0", allocs)
	}
}

func BenchmarkPortPick(b *testing.B) {
	cfg := mustConfig(b, Options{Queues: 4})
	a := mustAllocator(b, cfg, ProtoTCP, 1, PortRange{}, 1)
	local, remote := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	// Keep the pool a quarter full, as a busy client core would.
	for range DefaultPortRange.Len() / 4 / 4 {
		if _, err := a.PickIPv4(local, remote, 80); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := a.PickIPv4(local, remote, 80)
		if err != nil {
			b.Fatal(err)
		}
		a.Release(p)
	}
}
