package core

import (
	"net/netip"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// Neighbour replication.
//
// A stack reports a neighbour through OnNeighbour only when it is news (a
// new entry, or a changed MAC), and every ARP frame lands on queue 0, where
// RSS sends what it cannot hash. So the other cores hear of an entry once,
// and when their copy's NeighbourTTL runs out and they probe, the answer
// lands on core 0, which knew already and says nothing: they drop what
// waits for it and cannot resolve the neighbour again. Until stacks report
// confirmations as well, each core keeps the entries it learned from the
// wire and, every half NeighbourTTL, sends those its stack still resolves
// to the others again (LearnNeighbour refreshes their copy's TTL); entries
// its stack has dropped are forgotten, so the other copies then expire as
// they should.

// neighbourAddr is an ARP (v4) or IPv6 neighbour cache (v6, is6) key.
type neighbourAddr struct {
	v4  [4]byte
	v6  [16]byte
	is6 bool
}

// learnedNeighbour is an entry a core learned from the wire.
type learnedNeighbour struct {
	ip  neighbourAddr
	mac header.MAC
}

// refreshBatch is the most entries a core re-sends per loop iteration, so
// a large table does not flood the peers' rings at once.
const refreshBatch = 16

// neighbourCache is a core's record of what it learned, sized once to the
// stack's neighbour table: learning is rare, and a linear search over it
// allocates nothing.
type neighbourCache struct {
	entries []learnedNeighbour
	every   int64 // refresh period, stack clock ns; 0: never (one core)
	next    int64 // when the next round starts
	cursor  int   // next entry of the round in progress, -1 when none
}

func (nc *neighbourCache) init(capacity int, ttl time.Duration, now int64, cores int) {
	nc.entries = make([]learnedNeighbour, 0, capacity)
	nc.cursor = -1
	if cores > 1 && ttl > 0 {
		nc.every = int64(ttl / 2)
		nc.next = now + nc.every
	}
}

// learn records ip at mac; a full table (as full as the stack's) keeps
// what it has.
func (nc *neighbourCache) learn(ip neighbourAddr, mac header.MAC) {
	for i := range nc.entries {
		if nc.entries[i].ip == ip {
			nc.entries[i].mac = mac
			return
		}
	}
	if len(nc.entries) < cap(nc.entries) {
		nc.entries = append(nc.entries, learnedNeighbour{ip: ip, mac: mac})
	}
}

// due reports whether a refresh round should run or go on at now.
func (nc *neighbourCache) due(now int64) bool {
	return nc.every != 0 && len(nc.entries) > 0 && (nc.cursor >= 0 || now >= nc.next)
}

// refreshNeighbours runs a batch of the current refresh round.
func (c *core) refreshNeighbours(now int64) {
	nc := &c.neigh
	if nc.cursor < 0 {
		nc.cursor = 0
	}
	for k := 0; k < refreshBatch && nc.cursor < len(nc.entries); k++ {
		e := nc.entries[nc.cursor]
		var mac header.MAC
		var ok bool
		if e.ip.is6 {
			mac, ok = c.st.Neighbour6(netip.AddrFrom16(e.ip.v6))
		} else {
			mac, ok = c.st.Neighbour(e.ip.v4)
		}
		if !ok {
			// The stack dropped it: forget it, and let the others' copies
			// expire.
			last := len(nc.entries) - 1
			nc.entries[nc.cursor] = nc.entries[last]
			nc.entries = nc.entries[:last]
			continue
		}
		nc.entries[nc.cursor].mac = mac
		c.replicate(e.ip, mac)
		nc.cursor++
	}
	if nc.cursor >= len(nc.entries) {
		nc.cursor = -1
		nc.next = now + nc.every
	}
}

// replicate sends ip at mac to every other core.
func (c *core) replicate(ip neighbourAddr, mac header.MAC) {
	m := message{kind: msgNeighbour, mac: mac}
	if ip.is6 {
		m.kind, m.ip = msgNeighbour6, ip.v6
	} else {
		copy(m.ip[:], ip.v4[:])
	}
	for peer := range c.n {
		if peer != c.id && !c.sendTo(peer, m) {
			c.counters.Values[ReplicationDrops]++
		}
	}
}
