// Neighbour discovery (RFC 4861), the part a host on one link needs: a
// neighbour solicitation for one of our addresses is answered with an
// advertisement, and the solicitor's link-layer address is learned into
// the IPv6 neighbour cache (ipv6.go); advertisements refresh or correct
// the entries the cache has, or complete a resolution (ipv6_output.go).
// Without Config.Gateway6, a router advertisement with a lifetime makes
// its sender the default router (6.3.4); router solicitations are
// discarded, as hosts do (6.2.6).
//
// Duplicate address detection (RFC 4862 5.4) is optimistic (RFC 4429):
// core 0's stack solicits each of its addresses from the unspecified
// address at Start and uses them meanwhile; a node that answers for one,
// or solicits it for its own detection within RetransTimer (ARPRetry),
// shows it duplicate, and the address is withdrawn on every core
// (OnDuplicateAddress6, WithdrawAddress6), reported to Config.Warn and
// counted.

package stack

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// inputNDP handles a router or neighbour solicitation or advertisement m,
// ip's upper-layer packet, whose checksum was checked; b starts at ip.
func (s *Stack) inputNDP(b *nicq.Buf, ip header.IPv6, m header.ICMPv6, srcMAC header.MAC) {
	if header.ValidateNDP(ip, m) != header.NDPValid {
		s.drop(b, DropNDPInvalid)
		return
	}
	switch m.Type() {
	case header.ICMPv6NeighborSolicitation:
		s.inputNeighbourSolicitation(b, ip, header.NDPNeighborSolicitation(m), srcMAC)
	case header.ICMPv6NeighborAdvertisement:
		s.inputNeighbourAdvertisement(b, header.NDPNeighborAdvertisement(m), srcMAC)
	case header.ICMPv6RouterAdvertisement:
		s.stats.RouterAdvertsIn++
		s.inputRouterAdvert(ip, header.NDPRouterAdvertisement(m), srcMAC)
		bufFree(b)
	default: // a router solicitation: hosts discard them (RFC 4861 6.2.6)
		s.drop(b, DropICMPv6Unhandled)
	}
}

// ndpLinkLayerAddress returns the Ethernet address of the first option of
// type typ (source or target link-layer address) in opts, if there is one
// that holds a unicast Ethernet address.
func ndpLinkLayerAddress(opts []byte, typ uint8) (header.MAC, bool) {
	it := header.IterateNDPOptions(opts)
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Type == typ {
			mac, ok := o.LinkLayerAddress()
			return mac, ok && !mac.IsMulticast() && mac != header.MAC{}
		}
	}
	return header.MAC{}, false
}

// inputNeighbourSolicitation answers a solicitation for one of our
// addresses (RFC 4861 7.2.3, 7.2.4): to its source with S and O set, after
// learning the solicitor's link-layer address from its option; or, from
// the unspecified address (another node's duplicate address detection), to
// all-nodes with S clear.
func (s *Stack) inputNeighbourSolicitation(b *nicq.Buf, ip header.IPv6, ns header.NDPNeighborSolicitation, srcMAC header.MAC) {
	target := ns.TargetAddress()
	if !s.ip6.isOurs(target) {
		s.drop(b, DropIPv6NotForUs)
		return
	}
	s.stats.NeighbourSolicitsIn++
	src := ip.Source()
	dst, flags := src, header.NDPFlagSolicited|header.NDPFlagOverride
	if header.IsIPv6Unspecified(src) && srcMAC != s.mac && s.now < s.ip6.tentativeUntil {
		// Another node is detecting the address we are detecting: it is
		// a duplicate for both (RFC 4862 5.4.3).
		bufFree(b)
		s.duplicate6(target)
		return
	}
	if header.IsIPv6Unspecified(src) {
		dst, flags = header.IPv6AllNodesMulticast, header.NDPFlagOverride
	} else if mac, ok := ndpLinkLayerAddress(ns.Options(), header.NDPOptionSourceLinkLayerAddress); ok {
		s.learned6(src, mac, true)
	}
	bufFree(b)
	s.sendNeighbourAdvert(target, dst, flags, srcMAC)
}

// inputNeighbourAdvertisement updates the entry of the advertised target,
// if the cache has one (RFC 4861 7.2.5: an advertisement creates none): a
// new link-layer address replaces the cached one only with the Override
// flag; a solicited advertisement confirms the entry. An advertisement of
// one of our own addresses (a duplicate) changes nothing.
func (s *Stack) inputNeighbourAdvertisement(b *nicq.Buf, na header.NDPNeighborAdvertisement, srcMAC header.MAC) {
	s.stats.NeighbourAdvertsIn++
	target := na.TargetAddress()
	if s.ip6.isOurs(target) && srcMAC != s.mac && s.now < s.ip6.tentativeUntil {
		bufFree(b)
		s.duplicate6(target) // another node holds it (RFC 4862 5.4.4)
		return
	}
	if !s.ip6.isOurs(target) {
		t := &s.ip6.neigh
		mac, ok := ndpLinkLayerAddress(na.Options(), header.NDPOptionTargetLinkLayerAddress)
		if ok && (na.Solicited() || s.ip6.resolver.resolving(target)) {
			// The answer to a solicitation: ours, or another core's
			// (RSS may steer the answer to any core; the entry is
			// replicated to the one resolving).
			s.learned6(target, mac, true)
		} else if cur, have := t.entries[target]; have && ok && (na.Override() || cur.mac == mac) {
			s.learned6(target, mac, false)
		} else if have && na.Solicited() && (!ok || cur.mac == mac) {
			t.confirm(target)
		}
	}
	bufFree(b)
}

// learned6 records ip at mac from the wire and tells the runtime, so the
// other cores' caches learn it too.
func (s *Stack) learned6(ip [16]byte, mac header.MAC, create bool) {
	if !s.ip6.neigh.update(ip, mac, create) {
		return
	}
	s.ip6.resolver.resolved(ip, mac)
	if s.cfg.OnNeighbour6 != nil {
		s.cfg.OnNeighbour6(ip, mac)
	}
}

// sendNeighbourAdvert sends an advertisement of our address target, with
// flags and our link-layer address as its target link-layer address
// option, to dst; fallback is the solicitor's link-layer source.
func (s *Stack) sendNeighbourAdvert(target, dst [16]byte, flags uint8, fallback header.MAC) {
	b := s.getBuf()
	if b == nil {
		return
	}
	msg := bufAppend(b, header.NDPNeighborMessageSize+header.NDPLinkLayerAddressOptionSize)
	n := header.EncodeNDPNeighborAdvertisement(msg, flags, target)
	header.EncodeNDPLinkLayerAddressOption(msg[n:], header.NDPOptionTargetLinkLayerAddress, s.mac)
	m := header.ICMPv6(msg)
	m.SetChecksum(m.ComputeChecksum(checksum.PseudoHeaderIPv6(target, dst, header.ProtocolICMPv6, uint32(len(msg)))))
	encodeIPv6(bufPush(b, header.IPv6FixedHeaderSize), header.ProtocolICMPv6, header.NDPHopLimit, len(msg), target, dst)
	s.stats.NeighbourAdvertsSent++
	s.transmitIPv6(b, dst, fallback)
}

// startDAD solicits each of our addresses from the unspecified address
// (RFC 4862 5.4.2), once (DupAddrDetectTransmits 1); Start opens the
// window in which an answer or a rival's solicitation shows one duplicate.
func (s *Stack) startDAD() {
	for _, a := range s.ip6.addrs {
		g := header.SolicitedNodeMulticast(a)
		s.sendSolicit([16]byte{}, g, a, header.IPv6MulticastMAC(g))
	}
}

// duplicate6 withdraws our address a, shown duplicate, here and (through
// OnDuplicateAddress6) on the other cores.
func (s *Stack) duplicate6(a [16]byte) {
	if !s.WithdrawAddress6(a) {
		return
	}
	if s.cfg.Warn != nil {
		s.cfg.Warn(fmt.Sprintf("mkstack: IPv6 address %v is already used by another node on the link (duplicate address detection, RFC 4862): the stack no longer uses it; pick another --addr", netip.AddrFrom16(a)))
	}
	if s.cfg.OnDuplicateAddress6 != nil {
		s.cfg.OnDuplicateAddress6(a)
	}
}

// WithdrawAddress6 stops using our IPv6 address a (another core's
// duplicate address detection found it duplicate) and reports whether it
// was ours. Packets to it are no longer for us, and connections from it
// stay as they are until they end.
func (s *Stack) WithdrawAddress6(a [16]byte) bool {
	st := &s.ip6
	for i := range st.addrs {
		if st.addrs[i] == a && !st.duplicate[i] {
			st.duplicate[i] = true
			s.stats.DuplicateAddresses6++
			return true
		}
	}
	return false
}

// inputRouterAdvert makes the sender of a valid router advertisement the
// default router for its Router Lifetime (RFC 4861 6.3.4), unless
// Config.Gateway6 is set or IgnoreRouterAdvertisements; a lifetime of 0
// from the current router ends it. Its source link-layer address option,
// if any, goes into the neighbour cache.
func (s *Stack) inputRouterAdvert(ip header.IPv6, ra header.NDPRouterAdvertisement, srcMAC header.MAC) {
	if s.cfg.Gateway6.IsValid() || s.cfg.IgnoreRouterAdvertisements {
		return
	}
	src := ip.Source() // link-local: ValidateNDP checked it
	if mac, ok := ndpLinkLayerAddress(ra.Options(), header.NDPOptionSourceLinkLayerAddress); ok {
		s.learned6(src, mac, true)
	}
	life := time.Duration(ra.RouterLifetime()) * time.Second
	if life == 0 && s.ip6.router != src {
		return
	}
	s.LearnRouter6(src, life)
	if s.cfg.OnRouter6 != nil {
		s.cfg.OnRouter6(src, life)
	}
}

// LearnRouter6 makes router the default IPv6 router for life (0: it is no
// longer one): what a router advertisement said, here or on another core.
func (s *Stack) LearnRouter6(router [16]byte, life time.Duration) {
	s.now = s.clock.Now()
	if life == 0 {
		if s.ip6.router == router {
			s.ip6.router, s.ip6.routerUntil = [16]byte{}, 0
		}
		return
	}
	s.ip6.router, s.ip6.routerUntil = router, s.now+int64(life)
}

// Router6 returns the default IPv6 router an advertisement gave, if one
// is current.
func (s *Stack) Router6() (netip.Addr, bool) {
	if s.ip6.routerUntil <= s.clock.Now() {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(s.ip6.router), true
}
