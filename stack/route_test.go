package stack

import (
	"net/netip"
	"testing"
)

func TestRouteLongestPrefixWinsAndGatewayIsNextHop(t *testing.T) {
	var rt routeTable
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rt.add(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.0.0.1")))
	must(rt.add(netip.MustParsePrefix("10.0.0.0/24"), netip.Addr{}))
	must(rt.add(netip.MustParsePrefix("192.168.5.0/24"), netip.MustParseAddr("10.0.0.254")))
	for _, c := range []struct{ dst, hop string }{
		{"10.0.0.7", "10.0.0.7"},
		{"192.168.5.9", "10.0.0.254"},
		{"8.8.8.8", "10.0.0.1"},
	} {
		hop, ok := rt.nextHop(netip.MustParseAddr(c.dst).As4())
		if !ok || netip.AddrFrom4(hop).String() != c.hop {
			t.Errorf("nextHop(%s) = %v,%v want %s", c.dst, netip.AddrFrom4(hop), ok, c.hop)
		}
	}
	var empty routeTable
	if _, ok := empty.nextHop([4]byte{1, 2, 3, 4}); ok {
		t.Error("empty table found a route")
	}
	if err := rt.add(netip.MustParsePrefix("::/0"), netip.Addr{}); err == nil {
		t.Error("IPv6 route accepted")
	}
}

func TestRouteNextHopDoesNotAllocate(t *testing.T) {
	var rt routeTable
	rt.add(netip.MustParsePrefix("10.0.0.0/24"), netip.Addr{})
	rt.add(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.0.0.1"))
	if a := testing.AllocsPerRun(100, func() { rt.nextHop([4]byte{8, 8, 8, 8}) }); a != 0 {
		t.Fatalf("nextHop allocates %.1f", a)
	}
}
