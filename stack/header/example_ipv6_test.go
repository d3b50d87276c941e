package header_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/mkstack/mkstack/stack/header"
)

// Parse a captured IPv6 neighbor solicitation (duplicate address detection
// by Linux): the fixed header, the extension header walk to the upper
// layer, then the NDP checks of RFC 4861 and its options.
func ExampleIPv6_WalkExtensions() {
	frame, _ := hex.DecodeString("3333ff00000102000000000186dd6000000000203aff00000000" +
		"000000000000000000000000ff0200000000000000000001ff00000187006c0d000000" +
		"00fe80000000000000000000fffe0000010e01846c9c60e241")

	eth, _ := header.ParseEthernet(frame)
	ip, r := header.ParseIPv6(eth.Payload())
	if r != header.DropNone {
		fmt.Println("drop:", r)
		return
	}
	w := ip.WalkExtensions()
	if w.Err != header.IPv6ExtOK {
		if code, ptr, send := w.ParameterProblem(header.IsIPv6Multicast(ip.Destination())); send {
			fmt.Println("parameter problem", code, "at", ptr)
		}
		return
	}
	if w.Protocol != header.ProtocolICMPv6 {
		return
	}
	m, _ := header.ParseICMPv6(ip[w.Offset:])
	fmt.Println(ip.SourceAddr(), "->", ip.DestinationAddr(), "type", m.Type(), "ndp:", header.ValidateNDP(ip, m))
	ns := header.NDPNeighborSolicitation(m)
	target := ns.TargetAddress()
	fmt.Println("target", netip.AddrFrom16(target), "is", header.LinkLocalFromMAC(eth.Source()) == target)
	it := header.IterateNDPOptions(ns.Options())
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		fmt.Printf("option %d: %x\n", o.Type, o.Data)
	}
	// Output:
	// :: -> ff02::1:ff00:1 type 135 ndp: valid
	// target fe80::ff:fe00:1 is true
	// option 14: 846c9c60e241
}
