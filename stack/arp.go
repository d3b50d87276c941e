package stack

import (
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
	"github.com/mkstack/mkstack/stack/timer"
)

type neighbourState uint8

const (
	// neighbourIncomplete: resolution in progress, packets wait.
	neighbourIncomplete neighbourState = iota + 1
	// neighbourReachable: the MAC was confirmed within NeighbourTTL.
	neighbourReachable
	// neighbourProbing: the TTL ran out; the MAC is still used while
	// requests try to confirm it, and the entry goes if none is answered.
	neighbourProbing
)

// neighbour is one ARP cache entry. Entries are allocated when an address is
// first resolved and then reused; the steady state allocates nothing.
type neighbour struct {
	s        *Stack
	ip       [4]byte
	mac      header.MAC
	state    neighbourState
	attempts int
	pending  []*nicq.Buf // frames waiting for the MAC, IPv4 header first
	timer    timer.Timer // retry, expiry or probe, by state
}

// neighbourTable is the ARP cache of one stack. Entries learned here are
// replicated to the other cores by the runtime through OnNeighbour; entries
// replicated from other cores arrive through LearnNeighbour.
type neighbourTable struct {
	s       *Stack
	entries map[[4]byte]*neighbour
	free    []*neighbour
}

func (t *neighbourTable) init(s *Stack) {
	t.s = s
	t.entries = make(map[[4]byte]*neighbour, s.cfg.MaxNeighbours)
}

func (t *neighbourTable) lookup(ip [4]byte) *neighbour { return t.entries[ip] }

func (t *neighbourTable) create(ip [4]byte) *neighbour {
	if len(t.entries) >= t.s.cfg.MaxNeighbours {
		return nil
	}
	var n *neighbour
	if k := len(t.free); k > 0 {
		n = t.free[k-1]
		t.free = t.free[:k-1]
	} else {
		n = &neighbour{s: t.s, pending: make([]*nicq.Buf, 0, t.s.cfg.PendingPerNeighbour)}
		n.timer.Init(func(*timer.Timer) { n.onTimer() })
	}
	n.ip = ip
	n.mac = header.MAC{}
	n.state = neighbourIncomplete
	n.attempts = 0
	t.entries[ip] = n
	return n
}

func (t *neighbourTable) remove(n *neighbour) {
	t.s.wheel.Cancel(&n.timer)
	delete(t.entries, n.ip)
	t.free = append(t.free, n)
}

// update records ip at mac as confirmed now, sends what waited for it, and
// reports whether this is news (a new entry or a changed MAC).
func (t *neighbourTable) update(ip [4]byte, mac header.MAC, create bool) bool {
	n := t.lookup(ip)
	if n == nil {
		if !create {
			return false
		}
		if n = t.create(ip); n == nil {
			t.s.stats.Drops[DropNeighbourTableFull]++
			return false
		}
	}
	news := n.state == neighbourIncomplete || n.mac != mac
	n.mac = mac
	n.state = neighbourReachable
	n.attempts = 0
	t.s.wheel.Schedule(&n.timer, t.s.now+int64(t.s.cfg.NeighbourTTL))
	for i, b := range n.pending {
		t.s.transmitIPv4To(b, mac)
		n.pending[i] = nil
	}
	n.pending = n.pending[:0]
	return news
}

func (n *neighbour) onTimer() {
	s := n.s
	switch n.state {
	case neighbourIncomplete, neighbourProbing:
		if n.attempts >= s.cfg.ARPAttempts {
			n.fail()
			return
		}
		n.attempts++
		dst := header.BroadcastMAC
		if n.state == neighbourProbing {
			dst = n.mac // RFC 1122 2.3.2.1: unicast probes first
		}
		s.sendARP(header.ARPRequest, dst, s.addr, header.MAC{}, n.ip)
		s.wheel.Schedule(&n.timer, s.now+int64(s.cfg.ARPRetry))
	case neighbourReachable:
		// The TTL ran out. Keep using the MAC while we confirm it.
		n.state = neighbourProbing
		n.attempts = 0
		n.onTimer()
	}
}

// fail ends a resolution nobody answered: the waiting packets are dropped
// and their senders told, as an ICMP host unreachable would tell them.
func (n *neighbour) fail() {
	s := n.s
	for i, b := range n.pending {
		s.udp.deliverLocalError(bufData(b), ErrHostUnreachable)
		s.drop(b, DropNeighbourTimeout)
		n.pending[i] = nil
	}
	n.pending = n.pending[:0]
	s.neigh.remove(n)
}

// LearnNeighbour installs an entry another core learned (replication). It
// does not call OnNeighbour again.
func (s *Stack) LearnNeighbour(ip [4]byte, mac header.MAC) {
	s.now = s.clock.Now()
	s.neigh.update(ip, mac, true)
}

// Neighbour returns the MAC cached for ip, if it is resolved.
func (s *Stack) Neighbour(ip [4]byte) (header.MAC, bool) {
	n := s.neigh.lookup(ip)
	if n == nil || n.state == neighbourIncomplete {
		return header.MAC{}, false
	}
	return n.mac, true
}

// NeighbourCount returns the number of entries in the ARP cache, resolved
// or not.
func (s *Stack) NeighbourCount() int { return len(s.neigh.entries) }

func (s *Stack) inputARP(b *nicq.Buf) {
	a, r := header.ParseARP(bufData(b))
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	spa, sha := a.SenderProtocolAddress(), a.SenderHardwareAddress()
	tpa := a.TargetProtocolAddress()
	// 0.0.0.0 only in a request: an address probe (RFC 5227); a reply
	// from it would teach nothing.
	if sha.IsMulticast() || spa == s.addr || spa == s.bcast || spa[0] == 0 && (spa != [4]byte{} || a.Op() != header.ARPRequest) {
		s.drop(b, DropMartianSource)
		return
	}
	forUs := tpa == s.addr
	// RFC 826's merge: update an entry we already have whoever the
	// packet is for; create one only when it is addressed to us.
	// Tell the runtime about news, and about every confirmation addressed
	// to us: ARP lands on one queue, so the other cores' copies of the
	// entry are refreshed only through this hook.
	if spa != [4]byte{} && (s.neigh.update(spa, sha, forUs) || forUs) && s.cfg.OnNeighbour != nil {
		s.cfg.OnNeighbour(spa, sha)
	}
	if !forUs {
		s.drop(b, DropNotForUs)
		return
	}
	if a.Op() != header.ARPRequest {
		bufFree(b)
		return
	}
	// Turn the request into the reply in place: no buffer from the pool.
	a.Encode(&header.ARPFields{
		Op:                    header.ARPReply,
		SenderHardwareAddress: s.mac,
		SenderProtocolAddress: s.addr,
		TargetHardwareAddress: sha,
		TargetProtocolAddress: spa,
	})
	bufTruncate(b, header.ARPSize)
	s.pushEthernet(b, sha, header.EtherTypeARP)
	s.stats.ARPRepliesSent++
	s.transmit(b)
}

func (s *Stack) sendARP(op header.ARPOp, dstMAC header.MAC, spa [4]byte, tha header.MAC, tpa [4]byte) {
	b := s.getBuf()
	if b == nil {
		return
	}
	header.ARP(bufAppend(b, header.ARPSize)).Encode(&header.ARPFields{
		Op:                    op,
		SenderHardwareAddress: s.mac,
		SenderProtocolAddress: spa,
		TargetHardwareAddress: tha,
		TargetProtocolAddress: tpa,
	})
	s.pushEthernet(b, dstMAC, header.EtherTypeARP)
	if op == header.ARPRequest {
		s.stats.ARPRequestsSent++
	} else {
		s.stats.ARPRepliesSent++
	}
	s.transmit(b)
}

func (s *Stack) pushEthernet(b *nicq.Buf, dst header.MAC, typ uint16) {
	header.Ethernet(bufPush(b, header.EthernetMinimumSize)).Encode(&header.EthernetFields{
		Destination: dst, Source: s.mac, Type: typ,
	})
}

// outputIPv4 sends b, which starts at a finished IPv4 header, towards
// nextHop: at once if its MAC is known, else after ARP resolves it.
func (s *Stack) outputIPv4(b *nicq.Buf, nextHop [4]byte) {
	if nextHop == s.bcast || nextHop == [4]byte{255, 255, 255, 255} {
		s.transmitIPv4To(b, header.BroadcastMAC)
		return
	}
	n := s.neigh.lookup(nextHop)
	if n != nil && n.state != neighbourIncomplete {
		s.transmitIPv4To(b, n.mac)
		return
	}
	if n == nil {
		if n = s.neigh.create(nextHop); n == nil {
			s.drop(b, DropNeighbourTableFull)
			return
		}
		n.attempts = 1
		s.sendARP(header.ARPRequest, header.BroadcastMAC, s.addr, header.MAC{}, nextHop)
		s.wheel.Schedule(&n.timer, s.now+int64(s.cfg.ARPRetry))
	}
	if len(n.pending) == cap(n.pending) {
		s.drop(b, DropNeighbourQueueFull)
		return
	}
	n.pending = append(n.pending, b)
}

func (s *Stack) transmitIPv4To(b *nicq.Buf, mac header.MAC) {
	s.pushEthernet(b, mac, header.EtherTypeIPv4)
	s.transmit(b)
}
