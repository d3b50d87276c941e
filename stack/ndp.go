// Neighbour discovery (RFC 4861), the part a host on one link needs to be
// reached: a neighbour solicitation for one of our addresses is answered
// with an advertisement, and the solicitor's link-layer address is learned
// into the IPv6 neighbour cache (ipv6.go); advertisements refresh or
// correct the entries the cache has. Router advertisements are validated
// and counted, and otherwise ignored for now; router solicitations are
// discarded, as hosts do (6.2.6). Our own addresses are used at once,
// without duplicate address detection (RFC 4862 5.4), which is later work,
// as is sending solicitations.

package stack

import (
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
		s.inputNeighbourAdvertisement(b, header.NDPNeighborAdvertisement(m))
	case header.ICMPv6RouterAdvertisement:
		s.stats.RouterAdvertsIn++
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
func (s *Stack) inputNeighbourAdvertisement(b *nicq.Buf, na header.NDPNeighborAdvertisement) {
	s.stats.NeighbourAdvertsIn++
	target := na.TargetAddress()
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
