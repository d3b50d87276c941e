package header

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestCapturedDADNeighbourSolicitationIsValidAndAddressed(t *testing.T) {
	e := mustEthernet(t, capturedIPv6NS)
	ip, _ := ParseIPv6(e.Payload())
	w := ip.WalkExtensions()
	if w.Err != IPv6ExtOK || w.Protocol != ProtocolICMPv6 || w.Offset != IPv6FixedHeaderSize {
		t.Fatalf("walk %+v", w)
	}
	m, _ := ParseICMPv6(ip[w.Offset:])
	if r := ValidateNDP(ip, m); r != NDPValid {
		t.Fatalf("ValidateNDP: %v", r)
	}
	ns := NDPNeighborSolicitation(m)
	target := ns.TargetAddress()
	// Linux formed the tentative address from the MAC, and sent its
	// solicitation to that address's solicited-node group.
	if target != LinkLocalFromMAC(e.Source()) || netip.AddrFrom16(target) != netip.MustParseAddr("fe80::ff:fe00:1") {
		t.Fatalf("target %v, MAC %v", netip.AddrFrom16(target), e.Source())
	}
	if SolicitedNodeMulticast(target) != ip.Destination() || !IsSolicitedNodeMulticast(ip.Destination()) {
		t.Fatalf("solicited-node %v, sent to %v", netip.AddrFrom16(SolicitedNodeMulticast(target)), ip.DestinationAddr())
	}
	if IPv6MulticastMAC(ip.Destination()) != e.Destination() {
		t.Fatalf("multicast MAC %v, sent to %v", IPv6MulticastMAC(ip.Destination()), e.Destination())
	}
	// Its one option is a nonce (RFC 7527), which DAD reads.
	it := IterateNDPOptions(ns.Options())
	o, ok := it.Next()
	if !ok || o.Type != NDPOptionNonce || !bytes.Equal(o.Data, []byte{0x84, 0x6c, 0x9c, 0x60, 0xe2, 0x41}) {
		t.Fatalf("option %+v", o)
	}
	if _, ok := it.Next(); ok || it.Err() {
		t.Fatal("more than one option")
	}
}

func TestIPv6AddressHelpers(t *testing.T) {
	// RFC 4291 appendix A: 34-56-78-9A-BC-DE gives 3656:78ff:fe9a:bcde.
	m := MAC{0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde}
	if got := netip.AddrFrom16(LinkLocalFromMAC(m)); got != netip.MustParseAddr("fe80::3656:78ff:fe9a:bcde") {
		t.Fatalf("link-local %v", got)
	}
	a := netip.MustParseAddr("2001:db8::4:5a6b:7c8d").As16()
	sn := SolicitedNodeMulticast(a)
	if netip.AddrFrom16(sn) != netip.MustParseAddr("ff02::1:ff6b:7c8d") || !IsSolicitedNodeMulticast(sn) {
		t.Fatalf("solicited-node %v", netip.AddrFrom16(sn))
	}
	if IPv6MulticastMAC(sn) != (MAC{0x33, 0x33, 0xff, 0x6b, 0x7c, 0x8d}) || !IPv6MulticastMAC(sn).IsMulticast() {
		t.Fatalf("MAC %v", IPv6MulticastMAC(sn))
	}
	if IsSolicitedNodeMulticast(IPv6AllNodesMulticast) || IsSolicitedNodeMulticast(a) {
		t.Fatal("not solicited-node multicast")
	}
	for s, want := range map[string][3]bool{ // multicast, link-local, unspecified
		"ff02::1": {true, false, false}, "fe80::1": {false, true, false}, "febf::1": {false, true, false},
		"fec0::1": {false, false, false}, "::": {false, false, true}, "2001:db8::1": {false, false, false},
	} {
		x := netip.MustParseAddr(s).As16()
		if got := [3]bool{IsIPv6Multicast(x), IsIPv6LinkLocalUnicast(x), IsIPv6Unspecified(x)}; got != want {
			t.Fatalf("%s: %v, want %v", s, got, want)
		}
	}
}

// ndpPacket wraps the NDP message m in an IPv6 packet with hop limit 255
// from src to dst, and sets the checksum.
func ndpPacket(src, dst [16]byte, m []byte) (IPv6, ICMPv6) {
	b := make([]byte, IPv6FixedHeaderSize+len(m))
	IPv6(b).Encode(&IPv6Fields{PayloadLength: uint16(len(m)), NextHeader: ProtocolICMPv6,
		HopLimit: NDPHopLimit, Source: src, Destination: dst})
	copy(b[IPv6FixedHeaderSize:], m)
	ip := IPv6(b)
	msg := ICMPv6(ip.Payload())
	if len(msg) >= ICMPv6MinimumSize {
		fixICMPv6(ip, msg)
	}
	return ip, msg
}

var (
	llA   = netip.MustParseAddr("fe80::1").As16()
	llB   = netip.MustParseAddr("fe80::2").As16()
	macLL = MAC{2, 0, 0, 0, 0, 0xa}
)

func TestNDPMessagesBuildThenParse(t *testing.T) {
	b := make([]byte, 128)

	// Neighbor solicitation with a source link-layer address.
	n := EncodeNDPNeighborSolicitation(b, llB)
	n += EncodeNDPLinkLayerAddressOption(b[n:], NDPOptionSourceLinkLayerAddress, macLL)
	ip, m := ndpPacket(llA, SolicitedNodeMulticast(llB), b[:n])
	if r := ValidateNDP(ip, m); r != NDPValid || m.Type() != ICMPv6NeighborSolicitation || len(m) != 32 {
		t.Fatalf("NS: %v, type %d, %d bytes", r, m.Type(), len(m))
	}
	ns := NDPNeighborSolicitation(m)
	it := IterateNDPOptions(ns.Options())
	o, _ := it.Next()
	if mac, ok := o.LinkLayerAddress(); ns.TargetAddress() != llB || o.Type != NDPOptionSourceLinkLayerAddress || !ok || mac != macLL {
		t.Fatalf("NS target %v option %+v", ns.TargetAddress(), o)
	}

	// Neighbor advertisement, solicited, with a target link-layer address.
	n = EncodeNDPNeighborAdvertisement(b, NDPFlagSolicited|NDPFlagOverride, llA)
	n += EncodeNDPLinkLayerAddressOption(b[n:], NDPOptionTargetLinkLayerAddress, macLL)
	ip, m = ndpPacket(llA, llB, b[:n])
	na := NDPNeighborAdvertisement(m)
	if r := ValidateNDP(ip, m); r != NDPValid || na.Router() || !na.Solicited() || !na.Override() ||
		na.Flags() != NDPFlagSolicited|NDPFlagOverride || na.TargetAddress() != llA || len(na.Options()) != 8 {
		t.Fatalf("NA: %v, flags %#x, target %v", r, na.Flags(), na.TargetAddress())
	}
	if want := []byte{136, 0, 0, 0, 0x60, 0, 0, 0}; !bytes.Equal(want, []byte{m[0], m[1], 0, 0, m[4], m[5], m[6], m[7]}) {
		t.Fatalf("NA header %x", []byte(m[:8]))
	}

	// Router solicitation from the unspecified address, no options.
	n = EncodeNDPRouterSolicitation(b)
	ip, m = ndpPacket([16]byte{}, IPv6AllRoutersMulticast, b[:n])
	if r := ValidateNDP(ip, m); r != NDPValid || len(NDPRouterSolicitation(m).Options()) != 0 {
		t.Fatalf("RS: %v", r)
	}

	// Router advertisement with MTU, source link-layer address and prefix.
	ra := NDPRouterAdvertisementFields{CurrentHopLimit: 64, Flags: NDPFlagOtherConfig, RouterLifetime: 1800,
		ReachableTime: 30000, RetransTimer: 1000}
	prefix := NDPPrefixInformation{PrefixLength: 64, Flags: NDPPrefixFlagOnLink | NDPPrefixFlagAutonomous,
		ValidLifetime: 2592000, PreferredLifetime: 604800, Prefix: netip.MustParseAddr("2001:db8:1::").As16()}
	n = EncodeNDPRouterAdvertisement(b, &ra)
	n += EncodeNDPMTUOption(b[n:], 1500)
	n += EncodeNDPLinkLayerAddressOption(b[n:], NDPOptionSourceLinkLayerAddress, macLL)
	n += EncodeNDPPrefixInformationOption(b[n:], &prefix)
	ip, m = ndpPacket(llA, IPv6AllNodesMulticast, b[:n])
	adv := NDPRouterAdvertisement(m)
	if r := ValidateNDP(ip, m); r != NDPValid || adv.Fields() != ra || adv.Managed() || !adv.OtherConfig() || len(m) != 64 {
		t.Fatalf("RA: %v, %+v, %d bytes", r, adv.Fields(), len(m))
	}
	var mtu uint32
	var got NDPPrefixInformation
	var types []uint8
	it = IterateNDPOptions(adv.Options())
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		types = append(types, o.Type)
		switch o.Type {
		case NDPOptionMTU:
			mtu, _ = o.MTU()
		case NDPOptionPrefixInformation:
			got, _ = o.PrefixInformation()
		}
	}
	if it.Err() || mtu != 1500 || got != prefix || !bytes.Equal(types, []byte{5, 1, 3}) {
		t.Fatalf("options %v, MTU %d, prefix %+v", types, mtu, got)
	}
	// Option accessors refuse options of the wrong length.
	if _, ok := (NDPOption{Type: 5, Data: make([]byte, 14)}).MTU(); ok {
		t.Fatal("16-byte MTU option read")
	}
	if _, ok := (NDPOption{Type: 3, Data: make([]byte, 6)}).PrefixInformation(); ok {
		t.Fatal("8-byte prefix option read")
	}
	if _, ok := (NDPOption{Type: 1, Data: make([]byte, 14)}).LinkLayerAddress(); ok {
		t.Fatal("16-byte link-layer option read as Ethernet")
	}
}

func TestValidateNDPAppliesRFC4861Checks(t *testing.T) {
	b := make([]byte, 64)
	ns := func(target [16]byte, opts ...byte) []byte {
		n := EncodeNDPNeighborSolicitation(b, target)
		return append(bytes.Clone(b[:n]), opts...)
	}
	na := func(flags uint8, target [16]byte) []byte {
		n := EncodeNDPNeighborAdvertisement(b, flags, target)
		return bytes.Clone(b[:n])
	}
	slla := []byte{1, 1, 2, 0, 0, 0, 0, 0xa}
	ra := make([]byte, NDPRouterAdvertisementSize)
	EncodeNDPRouterAdvertisement(ra, &NDPRouterAdvertisementFields{RouterLifetime: 1800})
	rs := make([]byte, NDPRouterSolicitationSize)
	EncodeNDPRouterSolicitation(rs)
	unspec := [16]byte{}
	cases := []struct {
		name     string
		src, dst [16]byte
		msg      []byte
		mutate   func(ip IPv6, m ICMPv6)
		want     NDPError
	}{
		{"valid NS", llA, llB, ns(llB), nil, NDPValid},
		{"hop limit 254", llA, llB, ns(llB), func(ip IPv6, m ICMPv6) { ip.SetHopLimit(254) }, NDPBadHopLimit},
		{"bad checksum", llA, llB, ns(llB), func(ip IPv6, m ICMPv6) { m[2] ^= 1 }, NDPBadChecksum},
		{"code 1", llA, llB, ns(llB), func(ip IPv6, m ICMPv6) { m.SetCode(1); fixICMPv6(ip, m) }, NDPBadCode},
		{"NS of 23 bytes", llA, llB, ns(llB)[:23], nil, NDPTooShort},
		{"RA of 15 bytes", llA, IPv6AllNodesMulticast, ra[:15], nil, NDPTooShort},
		{"option of length 0", llA, llB, ns(llB, 1, 0, 0, 0, 0, 0, 0, 0), nil, NDPBadOptionLength},
		{"option past the end", llA, llB, ns(llB, 1, 2, 0, 0, 0, 0, 0, 0), nil, NDPBadOptionLength},
		{"odd trailing octet", llA, llB, ns(llB, 1), nil, NDPBadOptionLength},
		{"NS for a multicast target", llA, llB, ns(IPv6AllNodesMulticast), nil, NDPTargetMulticast},
		{"DAD NS", unspec, SolicitedNodeMulticast(llB), ns(llB), nil, NDPValid},
		{"DAD NS to unicast", unspec, llB, ns(llB), nil, NDPUnspecifiedSourceNotSolicitedNode},
		{"DAD NS with source link-layer", unspec, SolicitedNodeMulticast(llB), ns(llB, slla...), nil, NDPSourceLinkLayerFromUnspecified},
		{"NA for a multicast target", llA, llB, na(0, IPv6AllNodesMulticast), nil, NDPTargetMulticast},
		{"unsolicited NA to all nodes", llA, IPv6AllNodesMulticast, na(NDPFlagOverride, llA), nil, NDPValid},
		{"solicited NA to multicast", llA, IPv6AllNodesMulticast, na(NDPFlagSolicited, llA), nil, NDPSolicitedToMulticast},
		{"RA from a global address", v6A, IPv6AllNodesMulticast, ra, nil, NDPSourceNotLinkLocal},
		{"RS with source link-layer from unspecified", unspec, IPv6AllRoutersMulticast, append(bytes.Clone(rs), slla...), nil, NDPSourceLinkLayerFromUnspecified},
		{"RS with source link-layer", llA, IPv6AllRoutersMulticast, append(bytes.Clone(rs), slla...), nil, NDPValid},
		{"echo request", llA, llB, []byte{128, 0, 0, 0, 0, 0, 0, 0}, nil, NDPNotNDP},
		{"runt", llA, llB, []byte{135, 0, 0}, nil, NDPTooShort},
	}
	for _, c := range cases {
		ip, m := ndpPacket(c.src, c.dst, c.msg)
		if c.mutate != nil {
			c.mutate(ip, m)
		}
		if got := ValidateNDP(ip, m); got != c.want {
			t.Fatalf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	seen := map[string]bool{}
	for e := NDPValid; e < NumNDPErrors; e++ {
		if s := e.String(); s == "" || s == "unknown" || seen[s] {
			t.Fatalf("NDP error %d named %q", e, s)
		} else {
			seen[s] = true
		}
	}
	if NDPBadHopLimit.String() != "bad_hop_limit" || NumNDPErrors.String() != "unknown" {
		t.Fatal(NDPBadHopLimit.String())
	}
}

func fixICMPv6(ip IPv6, m ICMPv6) {
	m.SetChecksum(m.ComputeChecksum(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))))
}
