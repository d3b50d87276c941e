package stack

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrNoRoute is returned (wrapped) when no route covers a destination.
var ErrNoRoute = errors.New("no route to host")

// route is one entry of the routing table: destinations inside prefix go to
// gateway, or directly when gateway is the zero address (a connected subnet).
type route struct {
	prefix  netip.Prefix
	gateway netip.Addr
}

// routeTable is a small longest-prefix-match table. A core's table holds its
// interface's connected subnet, perhaps a few static routes and a default
// route; a linear scan over a handful of entries sorted by prefix length
// beats a trie at that size and allocates nothing.
type routeTable struct {
	routes []route // longest prefix first
}

// add inserts a route; gateway is the zero Addr for a connected subnet.
func (t *routeTable) add(prefix netip.Prefix, gateway netip.Addr) error {
	if !prefix.Addr().Is4() || (gateway.IsValid() && !gateway.Is4()) {
		return fmt.Errorf("route %v via %v: only IPv4 routes are supported", prefix, gateway)
	}
	prefix = prefix.Masked()
	r := route{prefix: prefix, gateway: gateway}
	i := 0
	for i < len(t.routes) && t.routes[i].prefix.Bits() >= prefix.Bits() {
		if t.routes[i].prefix == prefix {
			t.routes[i] = r
			return nil
		}
		i++
	}
	t.routes = append(t.routes, route{})
	copy(t.routes[i+1:], t.routes[i:])
	t.routes[i] = r
	return nil
}

// nextHop returns the address to resolve with ARP to reach dst: dst itself
// on a connected subnet, else the gateway of the longest matching route.
func (t *routeTable) nextHop(dst [4]byte) ([4]byte, bool) {
	a := netip.AddrFrom4(dst)
	for _, r := range t.routes {
		if r.prefix.Contains(a) {
			if r.gateway.IsValid() {
				return r.gateway.As4(), true
			}
			return dst, true
		}
	}
	return [4]byte{}, false
}
