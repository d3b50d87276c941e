//go:build linux

package afxdp

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSolicitedNodeGroup(t *testing.T) {
	a := netip.MustParseAddr("fd77::12:3456:789a")
	want := netip.MustParseAddr("ff02::1:ff56:789a").As16()
	if got := solicitedNode(a.As16()); got != want {
		t.Fatalf("solicited-node group of %v: %v, want %v", a, netip.AddrFrom16(got), netip.AddrFrom16(want))
	}
}

func TestOpenRefusesLinkLocalAndMulticastAddresses(t *testing.T) {
	for _, a := range []string{"fe80::1", "ff02::1", "::"} {
		_, err := Open(Config{Interface: "lo", Queues: 1, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr(a)}})
		if err == nil || !strings.Contains(err.Error(), "address "+a) {
			t.Errorf("Open with %s: %v, want the address refused", a, err)
		}
	}
}
