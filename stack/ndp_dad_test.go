package stack

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// dadSolicits returns the targets of the duplicate address detection
// solicitations (from the unspecified address) among frames.
func dadSolicits(t *testing.T, frames [][]byte) [][16]byte {
	t.Helper()
	var out [][16]byte
	for _, f := range frames {
		eth := header.Ethernet(f)
		if eth.PayloadType() != header.EtherTypeIPv6 {
			continue
		}
		ip := header.IPv6(eth.Payload())
		m := header.ICMPv6(ip.Payload())
		if ip.NextHeader() == header.ProtocolICMPv6 && m.Type() == header.ICMPv6NeighborSolicitation && header.IsIPv6Unspecified(ip.Source()) {
			target := header.NDPNeighborSolicitation(m).TargetAddress()
			if ip.Destination() != header.SolicitedNodeMulticast(target) || ip.HopLimit() != 255 || len(header.NDPNeighborSolicitation(m).Options()) != 0 {
				t.Errorf("DAD solicitation for %v: to %v, hop limit %d, options %x", netip.AddrFrom16(target), netip.AddrFrom16(ip.Destination()), ip.HopLimit(), header.NDPNeighborSolicitation(m).Options())
			}
			out = append(out, target)
		}
	}
	return out
}

func TestDuplicateAddressDetectionWithdrawsAnAddressAnotherNodeHolds(t *testing.T) {
	var warned string
	var reported [][16]byte
	n, s := newIPv6Stack(t, func(c *Config) {
		c.Warn = func(m string) { warned += m }
		c.OnDuplicateAddress6 = func(a [16]byte) { reported = append(reported, a) }
	})
	s.Start()
	if got := dadSolicits(t, sent(s)); len(got) != 2 || got[0] != oursLL6 || got[1] != ours6 {
		t.Fatalf("DAD solicitations for %v; want the link-local and the global address", got)
	}
	// Optimistic: the address answers while it is tentative.
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 1, nil)))
	if s.Stats().ICMPv6EchoRepliesSent != 1 {
		t.Fatal("a tentative address did not answer a ping")
	}
	sent(s)
	// Another node advertises it: it is a duplicate.
	n.clock.Advance(300 * time.Millisecond)
	s.Advance()
	all := header.IPv6AllNodesMulticast
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(all), packet6(ours6, all, 255, header.ProtocolICMPv6, nil, na6(ours6, all, ours6, header.NDPFlagOverride, peerMAC)))
	if s.Stats().DuplicateAddresses6 != 1 || len(reported) != 1 || reported[0] != ours6 || !strings.Contains(warned, "2001:db8::2 is already used") {
		t.Fatalf("duplicates %d, reported %v, warned %q", s.Stats().DuplicateAddresses6, reported, warned)
	}
	inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolICMPv6, nil, echo6(peer6, ours6, 1, 2, nil)))
	if s.Stats().ICMPv6EchoRepliesSent != 1 || drops(s, DropIPv6NotForUs) != 1 {
		t.Fatalf("the withdrawn address still answers: %d replies, drops %v", s.Stats().ICMPv6EchoRepliesSent, nonZero(s))
	}
	// Connections now leave from the link-local address only.
	if src, err := s.ip6.sourceTo(peer6); err != nil || src != oursLL6 {
		t.Fatalf("source for %v: %v, %v; want the link-local address", netip.AddrFrom16(peer6), netip.AddrFrom16(src), err)
	}
	// Once detection is over, a rival's solicitation is answered (the
	// address is defended), not taken as a duplicate.
	n.clock.Advance(2 * time.Second)
	s.Advance()
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(header.SolicitedNodeMulticast(oursLL6)), packet6([16]byte{}, header.SolicitedNodeMulticast(oursLL6), 255, header.ProtocolICMPv6, nil, ns6([16]byte{}, header.SolicitedNodeMulticast(oursLL6), oursLL6, header.MAC{})))
	if s.Stats().DuplicateAddresses6 != 1 || len(sent(s)) != 1 {
		t.Fatalf("after detection: %d duplicates; want the link-local address defended with one advertisement", s.Stats().DuplicateAddresses6)
	}
	n.checkNoLeaks()
}

func TestRivalDetectionDuringOursIsADuplicate(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	s.Start()
	sent(s)
	g := header.SolicitedNodeMulticast(ours6)
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(g), packet6([16]byte{}, g, 255, header.ProtocolICMPv6, nil, ns6([16]byte{}, g, ours6, header.MAC{})))
	if s.Stats().DuplicateAddresses6 != 1 || s.ip6.isOurs(ours6) || len(sent(s)) != 0 {
		t.Fatalf("%d duplicates, still ours %v; want the address withdrawn and no answer", s.Stats().DuplicateAddresses6, s.ip6.isOurs(ours6))
	}
}

func TestDADRunsOnCoreZeroUnlessDisabled(t *testing.T) {
	for _, c := range []struct {
		name  string
		tweak func(*Config)
	}{{"core 1", func(c *Config) { c.Core = 1 }}, {"disabled", func(c *Config) { c.DisableDAD = true }}} {
		_, s := newIPv6Stack(t, c.tweak)
		s.Start()
		if got := dadSolicits(t, sent(s)); len(got) != 0 {
			t.Errorf("%s: DAD solicitations for %v", c.name, got)
		}
	}
}

// ra6 is a router advertisement from peerLL6 with a source link-layer
// address option.
func ra6(life uint16) []byte {
	all := header.IPv6AllNodesMulticast
	m := make([]byte, header.NDPRouterAdvertisementSize+header.NDPLinkLayerAddressOptionSize)
	k := header.EncodeNDPRouterAdvertisement(m, &header.NDPRouterAdvertisementFields{CurrentHopLimit: 64, RouterLifetime: life})
	header.EncodeNDPLinkLayerAddressOption(m[k:], header.NDPOptionSourceLinkLayerAddress, peerMAC)
	return packet6(peerLL6, all, 255, header.ProtocolICMPv6, nil, icmp6(peerLL6, all, m))
}

func TestRouterAdvertisementGivesTheDefaultRoute(t *testing.T) {
	var told []time.Duration
	n, s := newIPv6Stack(t, func(c *Config) { c.OnRouter6 = func(_ [16]byte, life time.Duration) { told = append(told, life) } })
	offLink := ip6("2001:db8:77::1")
	u, err := s.BindUDP(0, UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SendTo6([]byte("x"), offLink, 9); !errors.Is(err, ErrNoRoute) || drops(s, DropNoRoute) != 1 {
		t.Fatalf("before any advertisement: %v, drops %v; want no_route", err, nonZero(s))
	}
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast), ra6(1800))
	if r, ok := s.Router6(); !ok || r != netip.AddrFrom16(peerLL6) || len(told) != 1 || told[0] != 1800*time.Second {
		t.Fatalf("router %v %v, told %v", r, ok, told)
	}
	if err := u.SendTo6([]byte("x"), offLink, 9); err != nil {
		t.Fatal(err)
	}
	frames := sent(s)
	if len(frames) != 1 || header.Ethernet(frames[0]).Destination() != peerMAC || header.IPv6(header.Ethernet(frames[0]).Payload()).Destination() != offLink {
		t.Fatalf("%d frames; want the datagram to %v through the router's MAC", len(frames), netip.AddrFrom16(offLink))
	}
	// Lifetime 0 ends it.
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast), ra6(0))
	if _, ok := s.Router6(); ok {
		t.Fatal("a router advertisement with lifetime 0 left the router in place")
	}
	// The lifetime runs out.
	inject6(n, s, peerMAC, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast), ra6(2))
	n.clock.Advance(3 * time.Second)
	if _, ok := s.Router6(); ok {
		t.Fatal("the router outlived its lifetime")
	}
	// A configured gateway wins; advertisements are then not taken.
	_, g := newIPv6Stack(t, func(c *Config) { c.Gateway6 = netip.MustParseAddr("fe80::77") })
	inject6(n, g, peerMAC, header.IPv6MulticastMAC(header.IPv6AllNodesMulticast), ra6(1800))
	if _, ok := g.Router6(); ok {
		t.Fatal("an advertisement was taken over Gateway6")
	}
	n.checkNoLeaks()
}
