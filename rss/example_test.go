package rss_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/mkstack/mkstack/rss"
)

// The first row of the Microsoft specification's IPv4 table.
func ExampleToeplitz_HashIPv4Ports() {
	t, err := rss.NewToeplitz(rss.DefaultKey[:])
	if err != nil {
		panic(err)
	}
	src := [4]byte{66, 9, 149, 187}
	dst := [4]byte{161, 142, 100, 80}
	fmt.Printf("IPv4 only: %#08x\n", t.HashIPv4(src, dst))
	fmt.Printf("with TCP:  %#08x\n", t.HashIPv4Ports(src, dst, 2794, 1766))
	// Output:
	// IPv4 only: 0x323e8fc2
	// with TCP:  0x51ccc178
}

// With the symmetric key a flow and its reply hash alike, so both land on
// one queue.
func ExampleSymmetricKey() {
	t, _ := rss.NewToeplitz(rss.SymmetricKey[:])
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	fmt.Println(t.HashIPv4Ports(a, b, 40000, 80) == t.HashIPv4Ports(b, a, 80, 40000))
	// Output: true
}

// A key as "ethtool -x" prints it.
func ExampleParseKey() {
	key, err := rss.ParseKey("6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:" +
		"ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa")
	fmt.Println(len(key), err, string(key) == string(rss.DefaultKey[:]))
	_, err = rss.ParseKey("6d:5a:56")
	fmt.Println(err)
	// Output:
	// 40 <nil> true
	// rss: key has 3 bytes, want 40 or 52
}

// Which queue a TCP segment lands on with 4 queues and the default
// 128-entry table: 0x51ccc178 & 127 = 120, and entry 120 is queue 120 % 4.
func ExampleConfig_QueueIPv4Ports() {
	cfg, err := rss.NewConfig(rss.Options{Queues: 4})
	if err != nil {
		panic(err)
	}
	q := cfg.QueueIPv4Ports([4]byte{66, 9, 149, 187}, [4]byte{161, 142, 100, 80}, 2794, 1766)
	fmt.Println("queue", q)
	// Output: queue 0
}

// A table weighted as "ethtool -X eth0 weight 1 3" fills it.
func ExampleWeightedRETA() {
	reta, _ := rss.WeightedRETA(64, []int{1, 3})
	fmt.Println(reta[0], reta[15], reta[16], reta[63])
	// Output: 0 0 1 1
}

// Core 2 of 4 opens a connection: it asks its allocator for a local port
// whose reply the NIC steers back to queue 2.
func ExamplePortAllocator() {
	cfg, _ := rss.NewConfig(rss.Options{Queues: 4})
	// A seeded source for a reproducible example; nil seeds from crypto/rand.
	ports, err := rss.NewPortAllocator(cfg, rss.ProtoTCP, 2, rss.DefaultPortRange, rand.NewPCG(1, 2))
	if err != nil {
		panic(err)
	}
	local := netip.MustParseAddr("192.0.2.10")
	remote := netip.MustParseAddrPort("198.51.100.1:443")
	port, err := ports.Pick(local, remote)
	if err != nil {
		panic(err)
	}
	// The reply: from remote to local:port.
	h, _ := cfg.HashAddrPorts(rss.ProtoTCP, remote, netip.AddrPortFrom(local, port))
	fmt.Println("reply lands on queue", cfg.Queue(h), "in range:", rss.DefaultPortRange.Contains(port))
	ports.Release(port) // when the connection is closed
	// Output: reply lands on queue 2 in range: true
}

// Exhaustion is a sentinel error; Release makes a port available again.
func ExamplePortAllocator_exhaustion() {
	cfg, _ := rss.NewConfig(rss.Options{Queues: 2})
	ports, _ := rss.NewPortAllocator(cfg, rss.ProtoUDP, 0, rss.PortRange{First: 5000, Last: 5099}, rand.NewPCG(1, 2))
	local, remote := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddrPort("10.0.0.2:53")
	var last uint16
	for {
		p, err := ports.Pick(local, remote)
		if errors.Is(err, rss.ErrNoPort) {
			fmt.Println(ports.Len(), "ports of 100 reach queue 0 for this remote")
			break
		}
		last = p
	}
	ports.Release(last)
	p, err := ports.Pick(local, remote)
	fmt.Println(p == last, err)
	// Output:
	// 44 ports of 100 reach queue 0 for this remote
	// true <nil>
}

// The software RSS of a NIC: steer a whole Ethernet frame.
func ExampleConfig_QueueFrame() {
	cfg, _ := rss.NewConfig(rss.Options{Queues: 4})
	frame := make([]byte, 14+20+20)
	frame[12], frame[13] = 0x08, 0x00 // IPv4
	ip := frame[14:]
	ip[0] = 0x45
	ip[9] = 6 // TCP
	copy(ip[12:], []byte{66, 9, 149, 187})
	copy(ip[16:], []byte{161, 142, 100, 80})
	tcp := ip[20:]
	tcp[0], tcp[1] = 2794>>8, 2794&0xff
	tcp[2], tcp[3] = 1766>>8, 1766&0xff
	h, ok := cfg.HashFrame(frame)
	fmt.Printf("%#08x %v queue %d\n", h, ok, cfg.QueueFrame(frame))
	// Output: 0x51ccc178 true queue 0
}
