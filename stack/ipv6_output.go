package stack

// IPv6 output for TCP and UDP: the next hop (on-link for our prefixes and
// link-local addresses, else Config.Gateway6), and neighbour resolution
// (RFC 4861 7.2.2): a packet for a neighbour the cache does not know waits,
// a bounded number per neighbour, while solicitations go to the target's
// solicited-node group every ARPRetry, up to ARPAttempts; an advertisement
// or solicitation from the target sends what waited, and a resolution
// nobody answers drops it as neighbour_timeout, as ARP does.

import (
	"errors"
	"net/netip"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
	"github.com/mkstack/mkstack/stack/timer"
)

// errNoIPv6 is returned for an IPv6 destination when the stack has no IPv6
// address (Config.Addrs6).
var errNoIPv6 = errors.New("no IPv6 address configured (Config.Addrs6, serve --addr fd00::1/64)")

// errNoIPv4 is returned for an IPv4 destination by an IPv6-only stack.
var errNoIPv4 = errors.New("no IPv4 address configured (an IPv6-only stack: Config.Addr, serve --addr 10.0.0.1/24)")

// sourceTo picks our address for a connection to dst (RFC 6724, the part a
// host with one interface needs): the link-local address for a link-local
// destination, else the first configured address whose prefix holds dst,
// else the first configured one.
func (st *ipv6State) sourceTo(dst [16]byte) ([16]byte, error) {
	if !st.enabled {
		return [16]byte{}, errNoIPv6
	}
	if !header.IsIPv6LinkLocalUnicast(dst) {
		for i, p := range st.prefixes {
			if p.Contains(netip.AddrFrom16(dst)) && !st.duplicate[i+1] {
				return st.addrs[i+1], nil
			}
		}
		for i := 1; i < len(st.addrs); i++ {
			if !st.duplicate[i] {
				return st.addrs[i], nil
			}
		}
	}
	if st.duplicate[0] {
		return [16]byte{}, errNoIPv6
	}
	return st.linkLocal(), nil
}

// onLink reports whether dst is a neighbour: link-local, or in the prefix
// of one of our addresses.
func (st *ipv6State) onLink(dst [16]byte) bool {
	if header.IsIPv6LinkLocalUnicast(dst) {
		return true
	}
	a := netip.AddrFrom16(dst)
	for _, p := range st.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// nextHop6 returns the neighbour a packet to dst goes through.
func (s *Stack) nextHop6(dst [16]byte) ([16]byte, bool) {
	if s.ip6.onLink(dst) {
		return dst, true
	}
	if s.cfg.Gateway6.IsValid() {
		return s.cfg.Gateway6.As16(), true
	}
	if s.ip6.routerUntil > s.now {
		return s.ip6.router, true
	}
	return [16]byte{}, false
}

// pathMTU6 is the MTU towards dst: the link's, or less once a Packet Too
// Big said so (RFC 8201).
func (s *Stack) pathMTU6(dst [16]byte) int {
	return s.pmtu6.lookup(dst, s.cfg.MTU, s.now)
}

// sendIPv6 puts an IPv6 header from src to dst in front of the upper-layer
// packet of protocol next in b and sends it. It does not fragment: TCP's
// segments fit the path MTU and UDP refuses what does not (SendTo6).
func (s *Stack) sendIPv6(b *nicq.Buf, next uint8, src, dst [16]byte, flowLabel uint32) error {
	if !s.ip6.enabled {
		s.drop(b, DropNoRoute)
		return errNoIPv6
	}
	nextHop, ok := s.nextHop6(dst)
	if !ok {
		s.drop(b, DropNoRoute)
		return ErrNoRoute
	}
	n := bufLen(b)
	if n > 0xffff {
		s.drop(b, DropTooBig)
		return ErrMessageTooLong
	}
	header.IPv6(bufPush(b, header.IPv6FixedHeaderSize)).Encode(&header.IPv6Fields{
		PayloadLength: uint16(n), NextHeader: next, HopLimit: defaultHopLimit, FlowLabel: flowLabel, Source: src, Destination: dst,
	})
	s.stats.IPv6PacketsOut++
	s.transmitIPv6(b, nextHop, header.MAC{})
	return nil
}

// resolution6 is one neighbour being resolved: what waits for it, and the
// retry timer.
type resolution6 struct {
	s        *Stack
	ip       [16]byte
	attempts int
	pending  []*nicq.Buf // packets waiting, IPv6 header first
	timer    timer.Timer
}

// resolver6 holds the resolutions in progress, bounded like the neighbour
// table; finished ones are kept for reuse, so resolving allocates nothing
// in steady state.
type resolver6 struct {
	s       *Stack
	active  map[[16]byte]*resolution6
	free    []*resolution6
	pending int // packets waiting, over all resolutions
}

func (r *resolver6) init(s *Stack) {
	r.s = s
	r.active = make(map[[16]byte]*resolution6)
}

// enqueue holds b until ip resolves, starting the resolution if it is new.
func (r *resolver6) enqueue(b *nicq.Buf, ip [16]byte) {
	s := r.s
	res := r.active[ip]
	if res == nil {
		if len(r.active) >= s.cfg.MaxNeighbours {
			s.drop(b, DropNeighbourTableFull)
			return
		}
		if k := len(r.free); k > 0 {
			res = r.free[k-1]
			r.free = r.free[:k-1]
		} else {
			res = &resolution6{s: s, pending: make([]*nicq.Buf, 0, s.cfg.PendingPerNeighbour)}
			res.timer.Init(func(*timer.Timer) { res.onTimer() })
		}
		res.ip, res.attempts = ip, 1
		r.active[ip] = res
		s.sendNeighbourSolicit(ip)
		s.wheel.Schedule(&res.timer, s.now+int64(s.cfg.ARPRetry))
	}
	if len(res.pending) == cap(res.pending) {
		s.drop(b, DropNeighbourQueueFull)
		return
	}
	res.pending = append(res.pending, b)
	r.pending++
}

// resolved sends what waited for ip, now at mac, and ends its resolution.
func (r *resolver6) resolved(ip [16]byte, mac header.MAC) {
	res := r.active[ip]
	if res == nil {
		return
	}
	for i, b := range res.pending {
		r.s.pushEthernet(b, mac, header.EtherTypeIPv6)
		r.s.transmit(b)
		res.pending[i] = nil
	}
	r.end(res)
}

// resolving reports whether a resolution of ip is in progress (an
// advertisement for it then creates the cache entry, RFC 4861 7.2.5).
func (r *resolver6) resolving(ip [16]byte) bool { return r.active[ip] != nil }

func (r *resolver6) end(res *resolution6) {
	r.pending -= len(res.pending)
	res.pending = res.pending[:0]
	r.s.wheel.Cancel(&res.timer)
	delete(r.active, res.ip)
	r.free = append(r.free, res)
}

func (res *resolution6) onTimer() {
	s := res.s
	if res.attempts >= s.cfg.ARPAttempts {
		for i, b := range res.pending {
			s.udp.deliverLocalError6(bufData(b), ErrHostUnreachable)
			s.drop(b, DropNeighbourTimeout)
			res.pending[i] = nil
		}
		s.ip6.resolver.end(res)
		return
	}
	res.attempts++
	s.sendNeighbourSolicit(res.ip)
	s.wheel.Schedule(&res.timer, s.now+int64(s.cfg.ARPRetry))
}

// sendNeighbourSolicit asks target's solicited-node group for its
// link-layer address, from our address that would talk to it, with ours
// as the source link-layer address option (RFC 4861 7.2.2).
func (s *Stack) sendNeighbourSolicit(target [16]byte) {
	dst := header.SolicitedNodeMulticast(target)
	s.sendNeighbourSolicitTo(target, header.IPv6MulticastMAC(dst))
}

// sendNeighbourSolicitTo sends a solicitation for target to the Ethernet
// address mac: its solicited-node group's to resolve it, its own to probe
// a stale entry (RFC 4861 7.3.3, sent to the cached address).
func (s *Stack) sendNeighbourSolicitTo(target [16]byte, mac header.MAC) {
	src, _ := s.ip6.sourceTo(target)
	dst := header.SolicitedNodeMulticast(target)
	if !mac.IsMulticast() {
		dst = target
	}
	s.sendSolicit(src, dst, target, mac)
}

// sendSolicit sends a neighbour solicitation for target from src to dst
// (at the Ethernet address mac), with our link-layer address as its
// option unless src is the unspecified address (duplicate address
// detection, RFC 4862 5.4.2, which must not carry one).
func (s *Stack) sendSolicit(src, dst, target [16]byte, mac header.MAC) {
	b := s.getBuf()
	if b == nil {
		return
	}
	size := header.NDPNeighborMessageSize
	if src != ([16]byte{}) {
		size += header.NDPLinkLayerAddressOptionSize
	}
	msg := bufAppend(b, size)
	n := header.EncodeNDPNeighborSolicitation(msg, target)
	if n < size {
		header.EncodeNDPLinkLayerAddressOption(msg[n:], header.NDPOptionSourceLinkLayerAddress, s.mac)
	}
	m := header.ICMPv6(msg)
	m.SetChecksum(m.ComputeChecksum(checksum.PseudoHeaderIPv6(src, dst, header.ProtocolICMPv6, uint32(len(msg)))))
	encodeIPv6(bufPush(b, header.IPv6FixedHeaderSize), header.ProtocolICMPv6, header.NDPHopLimit, len(msg), src, dst)
	s.stats.NeighbourSolicitsSent++
	s.pushEthernet(b, mac, header.EtherTypeIPv6)
	s.transmit(b)
}

// forwardToOwner6 is forwardToOwner for IPv6: hand b, a packet of the flow
// (src, dst, sport, dport) as it arrived, to the core that owns the flow.
func (s *Stack) forwardToOwner6(b *nicq.Buf, protocol uint8, src, dst [16]byte, sport, dport uint16) bool {
	if s.cfg.FlowOwner6 == nil || s.cfg.Forward == nil {
		return false
	}
	return s.forwardTo(s.cfg.FlowOwner6(protocol, src, dst, sport, dport), b)
}

// fragment6 sends head+body, an upper-layer packet of protocol next, from
// src to dst in fragments that fit mtu (RFC 8200 4.5), each behind a
// Fragment header with one Identification.
func (s *Stack) fragment6(head, body []byte, next uint8, src, dst [16]byte, mtu int) error {
	s.ip6.fragmentID++
	id := s.ip6.fragmentID
	per := (mtu - header.IPv6FixedHeaderSize - header.IPv6FragmentSize) &^ 7
	var sendErr error
	err := s.cutFragments(head, body, per, func(f *nicq.Buf, off, end int, last bool) {
		header.IPv6Fragment(bufPush(f, header.IPv6FragmentSize)).Encode(&header.IPv6FragmentFields{
			NextHeader: next, FragmentOffset: uint16(off), MoreFragments: !last, Identification: id,
		})
		s.stats.FragmentsOut++
		if err := s.sendIPv6(f, header.ProtocolIPv6Fragment, src, dst, 0); err != nil && sendErr == nil {
			sendErr = err
		}
	})
	if err != nil {
		return err
	}
	return sendErr
}
