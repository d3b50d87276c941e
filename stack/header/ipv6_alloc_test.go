package header

import "testing"

func TestIPv6ParsersAndEncodersDoNotAllocate(t *testing.T) {
	pkts := ipv6Seeds()
	ns := mustPayload(capturedIPv6NS)
	out := make([]byte, 2*IPv6MinimumMTU)
	ra := NDPRouterAdvertisementFields{CurrentHopLimit: 64, RouterLifetime: 1800}
	prefix := NDPPrefixInformation{PrefixLength: 64, Flags: NDPPrefixFlagAutonomous}
	frag := IPv6FragmentFields{NextHeader: ProtocolUDP, FragmentOffset: 1232, MoreFragments: true, Identification: 7}
	n := testing.AllocsPerRun(200, func() {
		for _, p := range pkts {
			ip, _ := ParseIPv6(p)
			w := ip.WalkExtensions()
			_, _, _ = w.ParameterProblem(IsIPv6Multicast(ip.Destination()))
			if w.Fragment != 0 {
				f, _ := ParseIPv6Fragment(ip[w.Fragment:])
				_ = f.Fields()
			}
			_ = ICMPv6ErrorAllowed(ICMPv6ParameterProblem, 0, ip, false)
			m := ICMPv6(out[:EncodeICMPv6ParameterProblem(out, 0, uint32(w.Pointer), ip)])
			m.SetChecksum(m.ComputeChecksum(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))))
		}
		ip, _ := ParseIPv6(ns)
		m, _ := ParseICMPv6(ip.Payload())
		_ = ValidateNDP(ip, m)
		it := IterateNDPOptions(NDPNeighborSolicitation(m).Options())
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			_, _ = o.LinkLayerAddress()
			_, _ = o.PrefixInformation()
			_, _ = o.MTU()
		}
		oi := IterateIPv6Options(pkts[2][40:48])
		for _, ok := oi.Next(); ok; _, ok = oi.Next() {
		}
		k := EncodeNDPRouterAdvertisement(out, &ra)
		k += EncodeNDPPrefixInformationOption(out[k:], &prefix)
		k += EncodeNDPLinkLayerAddressOption(out[k:], NDPOptionSourceLinkLayerAddress, IPv6MulticastMAC(SolicitedNodeMulticast(ip.Source())))
		k += EncodeNDPMTUOption(out[k:], 1500)
		_ = EncodeNDPNeighborAdvertisement(out[k:], NDPFlagSolicited, LinkLocalFromMAC(macLL))
		_ = EncodeNDPNeighborSolicitation(out, ip.Destination())
		_ = EncodeNDPRouterSolicitation(out)
		_ = EncodeICMPv6Echo(out, ICMPv6EchoReply, 1, 2, ns)
		IPv6Fragment(out).Encode(&frag)
	})
	if n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}

func BenchmarkWalkIPv6ExtensionsFourHeaders(b *testing.B) {
	ip := IPv6(ipv6Seeds()[2])
	for b.Loop() {
		if w := ip.WalkExtensions(); w.Protocol != ProtocolUDP {
			b.Fatal(w)
		}
	}
}

func BenchmarkValidateNDPNeighborSolicitation(b *testing.B) {
	ip, _ := ParseIPv6(mustPayload(capturedIPv6NS))
	m := ICMPv6(ip.Payload())
	for b.Loop() {
		if ValidateNDP(ip, m) != NDPValid {
			b.Fatal("invalid")
		}
	}
}
