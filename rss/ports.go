package rss

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// ErrNoPort is returned (possibly wrapped) when no free local port steers
// replies to the allocator's queue. Test for it with errors.Is.
var ErrNoPort = errors.New("rss: no free local port steers replies to this queue")

// PortRange is an inclusive range of local ports, as Linux's
// net.ipv4.ip_local_port_range.
type PortRange struct{ First, Last uint16 }

// DefaultPortRange is Linux's default ephemeral range.
var DefaultPortRange = PortRange{First: 32768, Last: 60999}

// Len is the number of ports in r.
func (r PortRange) Len() int { return int(r.Last) - int(r.First) + 1 }

// Contains reports whether port is in r.
func (r PortRange) Contains(port uint16) bool { return port >= r.First && port <= r.Last }

// PortAllocator chooses local ports for the active opens of one core (one
// receive queue) and one transport protocol, so that the reply to each
// connection is steered by the NIC to that same queue: the core that sends
// the SYN is the one that receives the SYN-ACK, and the connection never
// needs forwarding (Seastar and mTCP do the same).
//
// # Design
//
// The reply arrives with source = remote, destination = local, so the NIC
// hashes (remote, local, remotePort, localPort). Toeplitz is linear over
// XOR: that hash equals H(remote, local, remotePort, 0) XOR H(0, 0, 0,
// localPort). With a power-of-two indirection table the queue is
// reta[hash & mask], and so
//
//	index(localPort) = c XOR class(localPort)
//	c                = H(remote, local, remotePort, 0) & mask   (one hash per pick)
//	class(p)         = H(0, 0, 0, p) & mask                     (depends on the key only)
//
// NewPortAllocator sorts the ports of the range by class once. A pick
// hashes the destination once to get c, walks the table entries that name
// its queue from a random one, and takes a port of class entry^c, starting
// at a random offset in that class: the pool of ports for (destination,
// queue) is never materialized, so there is no per-destination table or
// cache to bound, and a pick is O(1) while the pool is not nearly full. For
// a fixed destination the pools of the queues partition the range, which is
// why cores need not coordinate: no two cores can choose the same 4-tuple.
// The randomness (a random entry, a random offset) is in the spirit of
// RFC 6056: ports are not predictable from outside.
//
// Fallbacks: with a table whose length is not a power of two the index is
// hash % len, which does not commute with XOR, so a pick tries ports from a
// random one on, hashing each (about Queues() hashes per pick). When the
// protocol is hashed on the 2-tuple, the port does not matter: either every
// port reaches the queue or none does (ErrNoPort).
//
// # In use
//
// The allocator keeps one in-use bit per port for its core, whatever the
// destination: a port stays taken until Release, even though another
// destination could reuse it. That bounds a core to one connection per port
// of the range across all destinations, and buys a pick and release that
// never allocate and need no table keyed by destination.
//
// A PortAllocator belongs to one core and is not safe for concurrent use.
type PortAllocator struct {
	cfg   *Config
	proto Proto
	queue int
	ports PortRange
	rng   rand.Source

	inUse [1 << 16 / 64]uint64
	count int // ports in use

	// entries are the indices of the table entries naming queue.
	entries []uint16
	// v4 and v6 sort the range by class; nil when the family's tuple for
	// proto is Tuple2 or the table is not a power of two.
	v4, v6 *portClasses
}

// portClasses sorts the ports of a range by class, for one address family
// (the port's position in the hash input differs between IPv4 and IPv6).
type portClasses struct {
	hiTab, loTab *[256]uint32 // table rows of the destination port's bytes
	mask         uint32
	byClass      []uint16 // the range's ports, grouped by class
	start        []uint32 // class v is byClass[start[v]:start[v+1]]
	used         []uint32 // ports of class v in use
}

func (pc *portClasses) class(port uint16) uint32 {
	return (pc.hiTab[port>>8] ^ pc.loTab[port&0xff]) & pc.mask
}

// NewPortAllocator returns an allocator of local ports for protocol proto
// whose replies cfg steers to queue. ports is the range to choose from (the
// zero PortRange means DefaultPortRange; port 0 is never handed out). src is
// the randomness; nil means a ChaCha8 seeded from crypto/rand, and a seeded
// source makes the choices reproducible, as a simulation replayed from its
// seed needs.
func NewPortAllocator(cfg *Config, proto Proto, queue int, ports PortRange, src rand.Source) (*PortAllocator, error) {
	if ports == (PortRange{}) {
		ports = DefaultPortRange
	}
	if ports.First == 0 || ports.First > ports.Last {
		return nil, fmt.Errorf("rss: local port range %d-%d, want 1 <= first <= last", ports.First, ports.Last)
	}
	if queue < 0 || queue >= cfg.queues {
		return nil, fmt.Errorf("rss: queue %d, want 0 to %d", queue, cfg.queues-1)
	}
	if src == nil {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("rss: seed port randomization: %w", err)
		}
		src = rand.NewChaCha8(seed)
	}
	a := &PortAllocator{cfg: cfg, proto: proto, queue: queue, ports: ports, rng: src}
	for i, q := range cfg.reta {
		if int(q) == queue {
			a.entries = append(a.entries, uint16(i))
		}
	}
	if cfg.pow2 {
		if cfg.Tuple(proto, false) == Tuple4 {
			a.v4 = newPortClasses(cfg, ports, &cfg.t.tab[10], &cfg.t.tab[11])
		}
		if cfg.Tuple(proto, true) == Tuple4 {
			a.v6 = newPortClasses(cfg, ports, &cfg.t.tab[34], &cfg.t.tab[35])
		}
	}
	return a, nil
}

func newPortClasses(cfg *Config, ports PortRange, hiTab, loTab *[256]uint32) *portClasses {
	pc := &portClasses{
		hiTab: hiTab, loTab: loTab, mask: cfg.mask,
		byClass: make([]uint16, ports.Len()),
		start:   make([]uint32, len(cfg.reta)+1),
		used:    make([]uint32, len(cfg.reta)),
	}
	// Counting sort: count each class, turn counts into starts, place.
	for p := int(ports.First); p <= int(ports.Last); p++ {
		pc.start[pc.class(uint16(p))+1]++
	}
	for v := 1; v < len(pc.start); v++ {
		pc.start[v] += pc.start[v-1]
	}
	next := append([]uint32(nil), pc.start[:len(pc.start)-1]...)
	for p := int(ports.First); p <= int(ports.Last); p++ {
		v := pc.class(uint16(p))
		pc.byClass[next[v]] = uint16(p)
		next[v]++
	}
	return pc
}

// Queue returns the queue the allocator chooses ports for.
func (a *PortAllocator) Queue() int { return a.queue }

// Range returns the range the allocator chooses from.
func (a *PortAllocator) Range() PortRange { return a.ports }

// InUse reports whether port is taken (handed out or reserved).
func (a *PortAllocator) InUse(port uint16) bool {
	return a.inUse[port/64]&(1<<(port%64)) != 0
}

// Len is the number of ports taken.
func (a *PortAllocator) Len() int { return a.count }

// Reserve takes port without choosing it, say for an explicit bind, so that
// it is not handed out; it reports false if port was already taken.
func (a *PortAllocator) Reserve(port uint16) bool {
	if a.InUse(port) {
		return false
	}
	a.take(port)
	return true
}

// Release returns port, handed out or reserved, to the free ports, and
// reports false if it was not taken.
func (a *PortAllocator) Release(port uint16) bool {
	if !a.InUse(port) {
		return false
	}
	a.inUse[port/64] &^= 1 << (port % 64)
	a.count--
	if a.ports.Contains(port) {
		if a.v4 != nil {
			a.v4.used[a.v4.class(port)]--
		}
		if a.v6 != nil {
			a.v6.used[a.v6.class(port)]--
		}
	}
	return true
}

func (a *PortAllocator) take(port uint16) {
	a.inUse[port/64] |= 1 << (port % 64)
	a.count++
	if a.ports.Contains(port) {
		if a.v4 != nil {
			a.v4.used[a.v4.class(port)]++
		}
		if a.v6 != nil {
			a.v6.used[a.v6.class(port)]++
		}
	}
}

// PickIPv4 takes and returns a free local port such that a reply from
// remote:remotePort to local:port is steered to the allocator's queue. It
// returns an error wrapping ErrNoPort when there is none. It does not
// allocate.
func (a *PortAllocator) PickIPv4(local, remote [4]byte, remotePort uint16) (uint16, error) {
	if a.cfg.Tuple(a.proto, false) == Tuple2 {
		if q := a.cfg.QueueIPv4(remote, local); q != a.queue {
			return 0, a.unreachable(q)
		}
		return a.pickAny()
	}
	if a.v4 != nil {
		c := a.cfg.t.HashIPv4Ports(remote, local, remotePort, 0) & a.cfg.mask
		return a.pickByClass(a.v4, c)
	}
	return a.pickByHash(flow{remote4: remote, local4: local, remotePort: remotePort})
}

// PickIPv6 is PickIPv4 for IPv6.
func (a *PortAllocator) PickIPv6(local, remote [16]byte, remotePort uint16) (uint16, error) {
	if a.cfg.Tuple(a.proto, true) == Tuple2 {
		if q := a.cfg.QueueIPv6(remote, local); q != a.queue {
			return 0, a.unreachable(q)
		}
		return a.pickAny()
	}
	if a.v6 != nil {
		c := a.cfg.t.HashIPv6Ports(remote, local, remotePort, 0) & a.cfg.mask
		return a.pickByClass(a.v6, c)
	}
	return a.pickByHash(flow{v6: true, remote16: remote, local16: local, remotePort: remotePort})
}

// Pick is PickIPv4 or PickIPv6 for netip values; both addresses must be of
// one family.
func (a *PortAllocator) Pick(local netip.Addr, remote netip.AddrPort) (uint16, error) {
	r := remote.Addr()
	switch {
	case local.Is4() && r.Is4():
		return a.PickIPv4(local.As4(), r.As4(), remote.Port())
	case local.Is6() && r.Is6():
		return a.PickIPv6(local.As16(), r.As16(), remote.Port())
	}
	return 0, fmt.Errorf("rss: local %v and remote %v: want two IPv4 or two IPv6 addresses", local, r)
}

// unreachable explains why no port helps when only addresses are hashed.
func (a *PortAllocator) unreachable(q int) error {
	return fmt.Errorf("%w: %v is hashed on addresses only, and replies from this remote land on queue %d, not %d",
		ErrNoPort, a.proto, q, a.queue)
}

func (a *PortAllocator) pickByClass(pc *portClasses, c uint32) (uint16, error) {
	k := uint32(len(a.entries))
	if k == 0 {
		return 0, fmt.Errorf("%w: queue %d has no indirection table entries", ErrNoPort, a.queue)
	}
	r := a.rng.Uint64()
	first, offset := uint32(r)%k, uint32(r>>32)
	for j := range k {
		v := uint32(a.entries[(first+j)%k]) ^ c
		lo, n := pc.start[v], pc.start[v+1]-pc.start[v]
		if pc.used[v] == n {
			continue
		}
		o := offset % n
		for m := range n {
			i := o + m
			if i >= n {
				i -= n
			}
			if p := pc.byClass[lo+i]; !a.InUse(p) {
				a.take(p)
				return p, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: all %d ports of the range steering to queue %d for this remote are taken", ErrNoPort, a.poolSize(pc, c), a.queue)
}

// poolSize counts the ports of the range whose class leads to the queue for
// a remote with constant c; only for error messages.
func (a *PortAllocator) poolSize(pc *portClasses, c uint32) uint32 {
	var n uint32
	for _, e := range a.entries {
		v := uint32(e) ^ c
		n += pc.start[v+1] - pc.start[v]
	}
	return n
}

// flow is the reply tuple for the hashing fallback, minus the local port.
type flow struct {
	v6                bool
	remote4, local4   [4]byte
	remote16, local16 [16]byte
	remotePort        uint16
}

// pickByHash tries the ports of the range from a random one on, hashing
// each; for tables whose length is not a power of two.
func (a *PortAllocator) pickByHash(f flow) (uint16, error) {
	n := uint32(a.ports.Len())
	o := uint32(a.rng.Uint64() % uint64(n))
	for m := range n {
		p := a.ports.First + uint16((o+m)%n)
		if a.InUse(p) {
			continue
		}
		var q int
		if f.v6 {
			q = a.cfg.QueueIPv6Ports(f.remote16, f.local16, f.remotePort, p)
		} else {
			q = a.cfg.QueueIPv4Ports(f.remote4, f.local4, f.remotePort, p)
		}
		if q == a.queue {
			a.take(p)
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: every port of %d-%d steering to queue %d for this remote is taken", ErrNoPort, a.ports.First, a.ports.Last, a.queue)
}

// pickAny takes a random free port of the range, for when the port does not
// change the queue. It walks the in-use bitmap a word at a time.
func (a *PortAllocator) pickAny() (uint16, error) {
	n := uint32(a.ports.Len())
	o := uint32(a.rng.Uint64() % uint64(n))
	for m := uint32(0); m < n; {
		p := uint32(a.ports.First) + (o+m)%n
		// Free ports at or above p in p's bitmap word, clipped to the range.
		free := ^a.inUse[p/64] >> (p % 64)
		if free != 0 {
			skip := uint32(bits.TrailingZeros64(free))
			cand := p + skip
			if skip < 64-p%64 && cand <= uint32(a.ports.Last) && m+skip < n {
				a.take(uint16(cand))
				return uint16(cand), nil
			}
		}
		// Move to the next word, or wrap to the start of the range.
		step := 64 - p%64
		if p+step > uint32(a.ports.Last) {
			step = uint32(a.ports.Last) - p + 1
		}
		m += step
	}
	return 0, fmt.Errorf("%w: every port of %d-%d is taken", ErrNoPort, a.ports.First, a.ports.Last)
}
