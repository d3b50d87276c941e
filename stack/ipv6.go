// IPv6 (RFC 8200): a stack given Config.Addrs6 carries TCP and UDP over
// IPv6 on those addresses and on the link-local address formed from its
// MAC, answers ping6 and ICMPv6 errors (icmpv6.go), resolves and answers
// neighbour discovery (ndp.go, ipv6_output.go), reassembles fragments
// (reasm.go), and counts and drops the rest. Duplicate address detection
// of our own addresses and router discovery are later work.

package stack

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
)

// defaultHopLimit is the Hop Limit of IPv6 packets we originate, other than
// NDP's (RFC 8200 leaves it to the node; 64 as Linux and as our IPv4 TTL).
const defaultHopLimit = 64

// ipv6State is a stack's IPv6 configuration and state. Its zero value is
// IPv6 off: every IPv6 frame is dropped as not_supported, as before IPv6.
type ipv6State struct {
	enabled bool
	// addrs are our unicast addresses, the link-local one first;
	// prefixes[i] is the configured prefix of addrs[i+1].
	addrs    [][16]byte
	prefixes []netip.Prefix
	// macs are the Ethernet groups we listen to: all-nodes and the
	// solicited-node group of each address (RFC 4861 7.2.1).
	macs     []header.MAC
	neigh    neighbour6Table
	resolver resolver6
	// duplicate[i] is set when addrs[i] was found duplicate and
	// withdrawn; tentativeUntil ends duplicate address detection.
	duplicate      []bool
	tentativeUntil int64
	// router is the default router a router advertisement gave, until
	// routerUntil (RFC 4861 6.3.4).
	router      [16]byte
	routerUntil int64
	// fragmentID is the Identification of the last packet we fragmented
	// (RFC 7739: from a random start, so it is not predictable).
	fragmentID uint32
}

// linkLocal returns our link-local address.
func (st *ipv6State) linkLocal() [16]byte { return st.addrs[0] }

// isOurs reports whether a is one of our unicast addresses (and not
// withdrawn as a duplicate).
func (st *ipv6State) isOurs(a [16]byte) bool {
	for i := range st.addrs {
		if st.addrs[i] == a {
			return !st.duplicate[i]
		}
	}
	return false
}

// acceptsDestination reports whether a packet to dst is for us: one of our
// addresses, the solicited-node group of one, or all-nodes.
func (st *ipv6State) acceptsDestination(dst [16]byte) bool {
	if !header.IsIPv6Multicast(dst) {
		return st.isOurs(dst)
	}
	if dst == header.IPv6AllNodesMulticast {
		return true
	}
	for i := range st.addrs {
		if header.SolicitedNodeMulticast(st.addrs[i]) == dst {
			return true
		}
	}
	return false
}

// acceptsMAC reports whether a frame to the multicast Ethernet address m is
// for one of the groups we listen to.
func (st *ipv6State) acceptsMAC(m header.MAC) bool {
	for _, g := range st.macs {
		if g == m {
			return true
		}
	}
	return false
}

// sourceFor returns the address we answer a packet sent to dst from: dst
// itself when it is one of ours, else (a multicast group) the link-local
// address.
func (st *ipv6State) sourceFor(dst [16]byte) [16]byte {
	if st.isOurs(dst) {
		return dst
	}
	return st.linkLocal()
}

// initIPv6 checks and installs cfg.Addrs6; with none, IPv6 stays off.
func (s *Stack) initIPv6() error {
	if len(s.cfg.Addrs6) == 0 {
		return nil
	}
	if s.cfg.MTU < header.IPv6MinimumMTU {
		return fmt.Errorf("%w: MTU %d is below IPv6's minimum of %d", ErrInvalidConfig, s.cfg.MTU, header.IPv6MinimumMTU)
	}
	st := &s.ip6
	st.addrs = append(st.addrs, header.LinkLocalFromMAC(s.mac))
	st.duplicate = make([]bool, 1+len(s.cfg.Addrs6))
	for _, p := range s.cfg.Addrs6 {
		a := p.Addr()
		if !p.IsValid() || !a.Is6() || a.Is4In6() || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() {
			return fmt.Errorf("%w: Addrs6 entry %v is not an IPv6 unicast prefix", ErrInvalidConfig, p)
		}
		if !slices.Contains(st.addrs, a.As16()) {
			st.addrs = append(st.addrs, a.As16())
			st.prefixes = append(st.prefixes, p.Masked())
		}
	}
	st.macs = append(st.macs, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast))
	for _, a := range st.addrs {
		if m := header.IPv6MulticastMAC(header.SolicitedNodeMulticast(a)); !st.acceptsMAC(m) {
			st.macs = append(st.macs, m)
		}
	}
	if g := s.cfg.Gateway6; g.IsValid() && (!g.Is6() || g.Is4In6() || g.IsMulticast() || g.IsUnspecified() || !st.onLink(g.As16())) {
		return fmt.Errorf("%w: Gateway6 %v is not an on-link IPv6 unicast address", ErrInvalidConfig, g)
	}
	st.neigh.init(s)
	st.resolver.init(s)
	st.fragmentID = uint32(s.cfg.TCP.ISNKey[0]) | uint32(s.cfg.TCP.ISNKey[1])<<8 | uint32(s.cfg.TCP.ISNKey[2])<<16 | uint32(s.cfg.TCP.ISNKey[3])<<24
	st.enabled = true
	return nil
}

// Addrs6 returns the stack's IPv6 addresses, the link-local one first, or
// none when IPv6 is not configured. Addresses withdrawn as duplicates are
// left out.
func (s *Stack) Addrs6() []netip.Addr {
	out := make([]netip.Addr, 0, len(s.ip6.addrs))
	for i, a := range s.ip6.addrs {
		if !s.ip6.duplicate[i] {
			out = append(out, netip.AddrFrom16(a))
		}
	}
	return out
}

func isMartian6(a [16]byte) bool {
	return header.IsIPv6Multicast(a) || a == [16]byte{15: 1} // multicast, loopback
}

// inputIPv6 handles a packet whose Ethernet header was pulled. srcMAC is
// the frame's source; linkMulticast tells whether the frame went to a
// multicast or broadcast Ethernet address.
//
// The fixed header is checked (version, Payload Length within the frame;
// the Hop Limit matters only to NDP, which wants 255, since a host forwards
// nothing), then the destination, then the extension headers are walked
// (header.WalkIPv6Extensions), whose errors are answered with a Parameter
// Problem as RFC 8200 4 asks. Fragments are reassembled (inputFragment6,
// within the IPv4 reassembler's bounds: Config.ReassemblyMemory,
// ReassemblyTimeout, MaxFragments; an atomic fragment, RFC 6946, is taken
// as the whole packet it is). TCP, UDP and ICMPv6 go to their inputs; No
// Next Header is counted as ipv6_unsupported_protocol.
func (s *Stack) inputIPv6(b *nicq.Buf, srcMAC header.MAC, linkMulticast bool) {
	if !s.ip6.enabled {
		s.drop(b, DropNotSupported)
		return
	}
	ip, r := header.ParseIPv6(bufData(b))
	if r != header.DropNone {
		s.drop(b, DropIPv6BadHeader)
		return
	}
	bufTruncate(b, len(ip)) // drop link padding
	dst, src := ip.Destination(), ip.Source()
	if !s.ip6.acceptsDestination(dst) {
		s.drop(b, DropIPv6NotForUs)
		return
	}
	// Our own address as source is martian, but while it is tentative a
	// node defending it answers from it (RFC 4862 5.4.4).
	if isMartian6(src) || s.ip6.isOurs(src) && s.now >= s.ip6.tentativeUntil {
		s.drop(b, DropMartianSource)
		return
	}
	w := ip.WalkExtensions()
	if w.Err != header.IPv6ExtOK {
		if code, ptr, send := w.ParameterProblem(header.IsIPv6Multicast(dst)); send {
			s.sendICMPv6Error(ip, srcMAC, linkMulticast, header.ICMPv6ParameterProblem, code, ptr)
		}
		if w.Err == header.IPv6ExtUnknownNextHeader || w.Err == header.IPv6ExtHopByHopNotFirst {
			s.drop(b, DropIPv6UnknownNextHeader)
		} else {
			s.drop(b, DropIPv6BadExtension)
		}
		return
	}
	if w.Protocol == header.ProtocolIPv6Fragment {
		s.inputFragment6(b, ip, &w, srcMAC, linkMulticast)
		return
	}
	s.deliverIPv6(b, ip, w.Protocol, w.Offset, srcMAC)
}

// inputFragment6 reassembles (RFC 8200 4.5) and delivers what completes.
// A first fragment must hold the whole header chain up to the upper-layer
// header (RFC 7112): one that does not is answered with a Parameter
// Problem, code 3, and dropped.
func (s *Stack) inputFragment6(b *nicq.Buf, ip header.IPv6, w *header.IPv6ExtensionWalk, srcMAC header.MAC, linkMulticast bool) {
	if header.IsIPv6Multicast(ip.Destination()) {
		s.drop(b, DropIPv6NotForUs) // no multicast upper layers to reassemble for
		return
	}
	s.stats.FragmentsIn++
	f := header.IPv6Fragment(ip[w.Offset:])
	if f.FragmentOffset() == 0 {
		if chain := header.WalkIPv6Extensions(ip, w.Offset, w.Offset+header.IPv6FragmentSize); chain.Err == header.IPv6ExtTruncated {
			s.sendICMPv6Error(ip, srcMAC, linkMulticast, header.ICMPv6ParameterProblem, header.ICMPv6IncompleteFirstFragment, 0)
			s.drop(b, DropReason(header.DropBadFragment))
			return
		}
	}
	b = s.reasm.add6(b, ip, w)
	if b == nil {
		return // kept until the rest arrives, or dropped and counted
	}
	s.stats.Reassembled++
	whole := header.IPv6(bufData(b))
	ww := whole.WalkExtensions()
	if ww.Err != header.IPv6ExtOK || ww.Protocol == header.ProtocolIPv6Fragment {
		s.drop(b, DropIPv6BadExtension) // a fragment of a fragment, or a chain that broke
		return
	}
	s.deliverIPv6(b, whole, ww.Protocol, ww.Offset, srcMAC)
}

// deliverIPv6 dispatches the upper-layer packet ip[off:] of protocol next.
func (s *Stack) deliverIPv6(b *nicq.Buf, ip header.IPv6, next uint8, off int, srcMAC header.MAC) {
	switch next {
	case header.ProtocolTCP:
		s.tcpInput6(b, ip, off)
	case header.ProtocolUDP:
		s.inputUDP6(b, ip, off)
	case header.ProtocolICMPv6:
		s.inputICMPv6(b, ip, off, srcMAC)
	default: // No Next Header
		s.drop(b, DropIPv6UnsupportedProtocol)
	}
}

// flowAddrs6 returns the addresses of a TCP segment or UDP datagram over
// IPv6 if they are a flow's: to one of our unicast addresses (there are no
// multicast sockets), from one a reply can go to (not the unspecified
// address, not IPv4-mapped); else it drops and counts b.
func (s *Stack) flowAddrs6(b *nicq.Buf, ip header.IPv6) (src, dst [16]byte, ok bool) {
	src, dst = ip.Source(), ip.Destination()
	switch {
	case !s.ip6.isOurs(dst):
		s.drop(b, DropIPv6NotForUs)
	case header.IsIPv6Unspecified(src) || is4(&src):
		s.drop(b, DropMartianSource)
	default:
		return src, dst, true
	}
	return src, dst, false
}

// inputForwarded6 is InputForwarded for an IPv6 packet: its headers were
// checked by the core that forwarded it.
func (s *Stack) inputForwarded6(b *nicq.Buf) {
	ip, r := header.ParseIPv6(bufData(b))
	if r != header.DropNone || !s.ip6.enabled {
		s.drop(b, DropIPv6BadHeader)
		return
	}
	bufTruncate(b, len(ip))
	w := ip.WalkExtensions()
	if w.Err != header.IPv6ExtOK {
		s.drop(b, DropIPv6BadExtension)
		return
	}
	s.deliverIPv6(b, ip, w.Protocol, w.Offset, header.MAC{})
}

// encodeIPv6 writes a fixed header for an upper-layer packet of length n
// and protocol next into h.
func encodeIPv6(h []byte, next uint8, hopLimit uint8, n int, src, dst [16]byte) {
	header.IPv6(h).Encode(&header.IPv6Fields{
		PayloadLength: uint16(n),
		NextHeader:    next,
		HopLimit:      hopLimit,
		Source:        src,
		Destination:   dst,
	})
}

// transmitIPv6 sends b, which starts at a finished IPv6 header, to dst on
// the link: to the group's Ethernet address for a multicast dst, else to
// dst's neighbour entry, else to fallback, the link-layer source of the
// packet being answered (as an ARP reply goes to the requester's
// address); with no fallback (the zero MAC) b waits for dst to resolve.
func (s *Stack) transmitIPv6(b *nicq.Buf, dst [16]byte, fallback header.MAC) {
	mac := fallback
	if header.IsIPv6Multicast(dst) {
		mac = header.IPv6MulticastMAC(dst)
	} else if m, ok := s.ip6.neigh.lookupToSend(dst); ok {
		mac = m
	} else if mac == (header.MAC{}) {
		s.ip6.resolver.enqueue(b, dst) // no link-layer source to answer to
		return
	}
	s.pushEthernet(b, mac, header.EtherTypeIPv6)
	s.transmit(b)
}

// neighbour6 is an IPv6 neighbour cache entry: the link-layer address
// learned from a solicitation or an advertisement, trusted until expires
// (REACHABLE, RFC 4861 7.3.2). After that the entry is STALE: packets
// still go to mac while unicast solicitations, one per ARPRetry (the
// DELAY and PROBE states folded into one), ask the neighbour to confirm
// it; after ARPAttempts of them unanswered the entry is no longer used and
// the next packet resolves the address again from scratch.
type neighbour6 struct {
	mac       header.MAC
	expires   int64
	lastProbe int64 // when the last unicast probe went
	probes    int   // unicast probes sent since the entry went stale
}

// neighbour6Table is the IPv6 neighbour cache: bounded by
// Config.MaxNeighbours, each entry trusted for Config.NeighbourTTL after it
// was last confirmed, as ARP entries are. It has no timers: an expired
// entry is not used (replies then go to the link-layer source of what
// they answer) and its slot is reused when the table is full. Sending
// solicitations to resolve or probe (RFC 4861 7.2, 7.3) is later work.
type neighbour6Table struct {
	s       *Stack
	entries map[[16]byte]neighbour6
}

func (t *neighbour6Table) init(s *Stack) {
	t.s = s
	t.entries = make(map[[16]byte]neighbour6, s.cfg.MaxNeighbours)
}

// lookup returns ip's link-layer address if it is known and not expired.
func (t *neighbour6Table) lookup(ip [16]byte) (header.MAC, bool) {
	n, ok := t.entries[ip]
	if !ok || n.expires <= t.s.now {
		return header.MAC{}, false
	}
	return n.mac, true
}

// lookupToSend is lookup for a packet to send: a STALE entry still
// answers while its probes run, and sends a unicast probe when one is due
// (the first when the entry is first used stale, as DELAY ends in PROBE).
func (t *neighbour6Table) lookupToSend(ip [16]byte) (header.MAC, bool) {
	n, ok := t.entries[ip]
	if !ok {
		return header.MAC{}, false
	}
	now := t.s.now
	if n.expires > now {
		return n.mac, true
	}
	retry := int64(t.s.cfg.ARPRetry)
	if n.probes > 0 && now-n.lastProbe < retry {
		return n.mac, true
	}
	if n.probes >= t.s.cfg.ARPAttempts {
		delete(t.entries, ip) // the probes went unanswered
		return header.MAC{}, false
	}
	n.probes++
	n.lastProbe = now
	t.entries[ip] = n
	t.s.sendNeighbourSolicitTo(ip, n.mac)
	return n.mac, true
}

// update records ip at mac as confirmed now, and reports whether it did.
// Without create it only refreshes an entry that exists (RFC 4861 7.2.5:
// an advertisement nobody asked for creates none).
func (t *neighbour6Table) update(ip [16]byte, mac header.MAC, create bool) bool {
	if _, ok := t.entries[ip]; !ok {
		if !create {
			return false
		}
		if len(t.entries) >= t.s.cfg.MaxNeighbours && !t.evictExpired() {
			t.s.stats.Drops[DropNeighbourTableFull]++
			return false
		}
	}
	t.entries[ip] = neighbour6{mac: mac, expires: t.s.now + int64(t.s.cfg.NeighbourTTL)}
	return true
}

// confirm extends ip's entry, if it has one, without changing its address.
func (t *neighbour6Table) confirm(ip [16]byte) {
	if n, ok := t.entries[ip]; ok {
		n.expires = t.s.now + int64(t.s.cfg.NeighbourTTL)
		n.probes = 0
		t.entries[ip] = n
	}
}

// evictExpired removes one expired entry and reports whether it found one.
func (t *neighbour6Table) evictExpired() bool {
	for ip, n := range t.entries {
		if n.expires <= t.s.now {
			delete(t.entries, ip)
			return true
		}
	}
	return false
}

// LearnNeighbour6 installs an IPv6 neighbour entry another core learned
// (replication). It does not call OnNeighbour6 again.
func (s *Stack) LearnNeighbour6(ip [16]byte, mac header.MAC) {
	if !s.ip6.enabled {
		return
	}
	s.now = s.clock.Now()
	if s.ip6.neigh.update(ip, mac, true) {
		s.ip6.resolver.resolved(ip, mac)
	}
}

// Neighbour6 returns the link-layer address cached for the IPv6 address ip,
// if it is known and not expired.
func (s *Stack) Neighbour6(ip netip.Addr) (header.MAC, bool) {
	if !s.ip6.enabled {
		return header.MAC{}, false
	}
	return s.ip6.neigh.lookup(ip.As16())
}

// Neighbour6Count returns the number of entries in the IPv6 neighbour
// cache, expired ones not yet reused included.
func (s *Stack) Neighbour6Count() int { return len(s.ip6.neigh.entries) }
