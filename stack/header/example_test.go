package header_test

import (
	"encoding/hex"
	"fmt"

	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// Parse a captured TCP SYN layer by layer, each parser validating what the
// next relies on.
func Example() {
	frame, _ := hex.DecodeString("02000000000202000000000108004500003c045540004006b263" +
		"c0000201c00002029e141f907231fcdb00000000a002faf0eb670000020405b40402080a" +
		"e0f1cffc000000000103030a")

	eth, r := header.ParseEthernet(frame)
	if r != header.DropNone || eth.PayloadType() != header.EtherTypeIPv4 {
		return
	}
	ip, r := header.ParseIPv4(eth.Payload())
	if r != header.DropNone {
		fmt.Println("drop:", r)
		return
	}
	seg, r := header.ParseTCP(ip.Payload())
	if r != header.DropNone {
		fmt.Println("drop:", r)
		return
	}
	pseudo := checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), header.ProtocolTCP, uint16(len(seg)))
	var opts header.TCPOptions
	r = header.ParseTCPOptions(seg.Options(), &opts)

	fmt.Println(ip.SourceAddr(), "->", ip.DestinationAddr(), seg.DestinationPort(), seg.Flags())
	fmt.Println("checksum ok:", seg.IsChecksumValid(pseudo), "options:", r)
	fmt.Println("mss", opts.MSS, "wscale", opts.WindowScale, "sack", opts.SACKPermitted, "tsval", opts.TSVal)
	// Output:
	// 192.0.2.1 -> 192.0.2.2 8080 SYN
	// checksum ok: true options: none
	// mss 1460 wscale 10 sack true tsval 3773943804
}
