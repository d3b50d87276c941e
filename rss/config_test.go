package rss

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func mustConfig(t testing.TB, o Options) *Config {
	t.Helper()
	c, err := NewConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigQueueIndexesTheTableWithTheHashLowBits(t *testing.T) {
	c := mustConfig(t, Options{Queues: 4})
	if c.Queues() != 4 || len(c.RETA()) != DefaultRETASize {
		t.Fatalf("Queues %d, RETA size %d", c.Queues(), len(c.RETA()))
	}
	v := specIPv4Vectors[1] // with TCP: 0xc626b0ea; low 7 bits 0x6a = 106; 106 % 4 = 2
	src, dst := netip.MustParseAddr(v.src).As4(), netip.MustParseAddr(v.dst).As4()
	if got := c.QueueIPv4Ports(src, dst, v.srcPort, v.dstPort); got != 2 {
		t.Errorf("QueueIPv4Ports = %d, want 2", got)
	}
	// IPv4 only: 0xd718262a; 0x2a = 42; 42 % 4 = 2.
	if got := c.QueueIPv4(src, dst); got != 2 {
		t.Errorf("QueueIPv4 = %d, want 2", got)
	}
	for h := uint32(0); h < 1000; h++ {
		x := h * 0x9e3779b9
		if got, want := c.Queue(x), int(x&127)%4; got != want {
			t.Fatalf("Queue(%#x) = %d, want %d", x, got, want)
		}
	}
	// A table whose length is not a power of two takes hash % len.
	odd := mustConfig(t, Options{Queues: 3, RETASize: 100})
	if got, want := odd.Queue(0xc626b0ea), int(uint32(0xc626b0ea)%100%3); got != want {
		t.Errorf("100 entries: Queue = %d, want %d", got, want)
	}
	v6 := specIPv6Vectors[0] // 0x40207d3d: 0x3d = 61, 61 % 4 = 1; 0x2cc18cd5: 0x55 = 85, 85 % 4 = 1
	s6, d6 := netip.MustParseAddr(v6.src).As16(), netip.MustParseAddr(v6.dst).As16()
	if got := c.QueueIPv6Ports(s6, d6, v6.srcPort, v6.dstPort); got != 1 {
		t.Errorf("QueueIPv6Ports = %d, want 1", got)
	}
	if got := c.QueueIPv6(s6, d6); got != 1 {
		t.Errorf("QueueIPv6 = %d, want 1", got)
	}
}

func TestConfigHashesEachProtocolOnItsChosenTuple(t *testing.T) {
	c := mustConfig(t, Options{Queues: 2, UDP4: Tuple2, TCP6: Tuple2})
	v4, v6 := specIPv4Vectors[0], specIPv6Vectors[0]
	s4, d4 := netip.MustParseAddr(v4.src).As4(), netip.MustParseAddr(v4.dst).As4()
	s6, d6 := netip.MustParseAddr(v6.src).As16(), netip.MustParseAddr(v6.dst).As16()
	for _, tc := range []struct {
		name string
		got  uint32
		want uint32
	}{
		{"tcp4 default 4-tuple", c.HashIPv4Flow(ProtoTCP, s4, d4, v4.srcPort, v4.dstPort), v4.ports},
		{"udp4 set to 2-tuple", c.HashIPv4Flow(ProtoUDP, s4, d4, v4.srcPort, v4.dstPort), v4.addrsOnly},
		{"icmp always 2-tuple", c.HashIPv4Flow(1, s4, d4, v4.srcPort, v4.dstPort), v4.addrsOnly},
		{"tcp6 set to 2-tuple", c.HashIPv6Flow(ProtoTCP, s6, d6, v6.srcPort, v6.dstPort), v6.addrsOnly},
		{"udp6 default 4-tuple", c.HashIPv6Flow(ProtoUDP, s6, d6, v6.srcPort, v6.dstPort), v6.ports},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %#08x, want %#08x", tc.name, tc.got, tc.want)
		}
	}
	if got := c.QueueIPv4Flow(ProtoTCP, s4, d4, v4.srcPort, v4.dstPort); got != c.Queue(v4.ports) {
		t.Errorf("QueueIPv4Flow = %d", got)
	}
	h, err := c.HashAddrPorts(ProtoUDP, netip.AddrPortFrom(netip.MustParseAddr(v6.src), v6.srcPort), netip.AddrPortFrom(netip.MustParseAddr(v6.dst), v6.dstPort))
	if err != nil || h != v6.ports {
		t.Errorf("HashAddrPorts udp6 = %#08x, %v; want %#08x", h, err, v6.ports)
	}
	if _, err := c.HashAddrPorts(ProtoTCP, netip.MustParseAddrPort("1.2.3.4:1"), netip.MustParseAddrPort("[::1]:2")); err == nil {
		t.Error("HashAddrPorts accepted mixed families")
	}
}

func TestNewConfigRejectsBadOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"no queues", Options{}, "0 queues"},
		{"short key", Options{Queues: 2, Key: make([]byte, 20)}, "20 bytes"},
		{"small table", Options{Queues: 2, RETASize: 8}, "8 entries, want 64 to 512"},
		{"weights per queue", Options{Queues: 2, Weights: []int{1}}, "1 weights for 2 queues"},
		{"table beyond queues", Options{Queues: 2, RETA: RETA{0, 1, 2}}, "entry 2 is queue 2, but there are 2 queues"},
		{"table with size", Options{RETA: RETA{0, 1}, RETASize: 64}, "excludes RETASize"},
		{"bad tuple", Options{Queues: 2, TCP4: 9}, "TCP4 hashes Tuple(9)"},
	} {
		_, err := NewConfig(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", c.name, err, c.want)
		}
	}
}

func TestConfigTakesATableReadFromANIC(t *testing.T) {
	// A 2048-entry table, as ice has, steering everything to queues 0 and 5.
	reta := make(RETA, 2048)
	for i := range reta {
		reta[i] = uint16(i % 2 * 5)
	}
	c := mustConfig(t, Options{RETA: reta, Key: SymmetricKey[:]})
	if c.Queues() != 6 {
		t.Fatalf("Queues() = %d, want 6 (largest entry plus one)", c.Queues())
	}
	if got := c.Queue(0x801); got != 5 {
		t.Fatalf("Queue(0x801) = %d, want 5", got)
	}
	reta[1] = 0 // NewConfig copied the table
	if got := c.Queue(0x801); got != 5 {
		t.Fatal("changing the caller's table changed the Config")
	}
}

// frame builds an Ethernet frame: vlans VLAN tags, then an IPv4 or IPv6
// packet from src to dst with protocol proto whose payload begins with the
// two ports. ipv4Options adds 4-byte words of IPv4 options; ext puts IPv6
// extension headers (next-header values) before the transport header.
func frame(src, dst netip.Addr, proto Proto, srcPort, dstPort uint16, o frameOpts) []byte {
	b := make([]byte, 12, 128)
	for range o.vlans {
		b = binary.BigEndian.AppendUint16(b, etherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, 42)
	}
	if src.Is4() {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
		ihl := 5 + o.ipv4Options
		ip := make([]byte, ihl*4)
		ip[0] = 0x40 | byte(ihl)
		binary.BigEndian.PutUint16(ip[6:], o.fragment)
		ip[9] = byte(proto)
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		b = append(b, ip...)
	} else {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
		ip := make([]byte, ipv6HeaderLen)
		ip[0] = 0x60
		ip[6] = byte(proto)
		if len(o.ext) > 0 {
			ip[6] = o.ext[0]
		}
		copy(ip[8:], src.AsSlice())
		copy(ip[24:], dst.AsSlice())
		b = append(b, ip...)
		for i := range o.ext {
			next := byte(proto)
			if i+1 < len(o.ext) {
				next = o.ext[i+1]
			}
			// 16 bytes: header length field 1 means (1+1)*8.
			b = append(b, next, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		}
	}
	b = binary.BigEndian.AppendUint16(b, srcPort)
	b = binary.BigEndian.AppendUint16(b, dstPort)
	b = append(b, make([]byte, 16)...) // the rest of a transport header
	return b[:len(b)-o.truncate]
}

type frameOpts struct {
	vlans       int
	ipv4Options int
	fragment    uint16 // IPv4 flags and fragment offset
	ext         []byte
	truncate    int
}

func TestHashFrameHashesAsTheNICDoes(t *testing.T) {
	c := mustConfig(t, Options{Queues: 4})
	udp2 := mustConfig(t, Options{Queues: 4, UDP4: Tuple2, UDP6: Tuple2})
	v4, v6 := specIPv4Vectors[0], specIPv6Vectors[0]
	s4, d4 := netip.MustParseAddr(v4.src), netip.MustParseAddr(v4.dst)
	s6, d6 := netip.MustParseAddr(v6.src), netip.MustParseAddr(v6.dst)
	const transportHeader = 20
	for _, tc := range []struct {
		name  string
		cfg   *Config
		frame []byte
		want  uint32
	}{
		{"ipv4 tcp", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{}), v4.ports},
		{"ipv4 udp", c, frame(s4, d4, ProtoUDP, v4.srcPort, v4.dstPort, frameOpts{}), v4.ports},
		{"ipv4 udp on 2-tuple", udp2, frame(s4, d4, ProtoUDP, v4.srcPort, v4.dstPort, frameOpts{}), v4.addrsOnly},
		{"ipv4 icmp", c, frame(s4, d4, 1, v4.srcPort, v4.dstPort, frameOpts{}), v4.addrsOnly},
		{"ipv4 options skipped", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{ipv4Options: 3}), v4.ports},
		{"vlan", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{vlans: 1}), v4.ports},
		{"qinq", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{vlans: 2}), v4.ports},
		{"first fragment", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{fragment: 0x2000}), v4.addrsOnly},
		{"later fragment", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{fragment: 0x00b9}), v4.addrsOnly},
		{"don't fragment is not a fragment", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{fragment: 0x4000}), v4.ports},
		{"ipv4 without ports", c, frame(s4, d4, ProtoTCP, v4.srcPort, v4.dstPort, frameOpts{truncate: transportHeader - 3}), v4.addrsOnly},
		{"ipv6 tcp", c, frame(s6, d6, ProtoTCP, v6.srcPort, v6.dstPort, frameOpts{}), v6.ports},
		{"ipv6 udp on 2-tuple", udp2, frame(s6, d6, ProtoUDP, v6.srcPort, v6.dstPort, frameOpts{}), v6.addrsOnly},
		{"ipv6 extension headers skipped", c, frame(s6, d6, ProtoTCP, v6.srcPort, v6.dstPort, frameOpts{ext: []byte{ipv6HopByHop, ipv6DestOptions, ipv6Routing}}), v6.ports},
		{"ipv6 fragment", c, frame(s6, d6, ProtoTCP, v6.srcPort, v6.dstPort, frameOpts{ext: []byte{ipv6Fragment}}), v6.addrsOnly},
		{"ipv6 without ports", c, frame(s6, d6, ProtoTCP, v6.srcPort, v6.dstPort, frameOpts{truncate: transportHeader - 3}), v6.addrsOnly},
	} {
		got, ok := tc.cfg.HashFrame(tc.frame)
		if !ok || got != tc.want {
			t.Errorf("%s: HashFrame = %#08x, %v; want %#08x", tc.name, got, ok, tc.want)
		}
		if q := tc.cfg.QueueFrame(tc.frame); q != tc.cfg.Queue(tc.want) {
			t.Errorf("%s: QueueFrame = %d, want %d", tc.name, q, tc.cfg.Queue(tc.want))
		}
	}
}

func TestHashFrameLeavesNonIPFramesUnhashed(t *testing.T) {
	c := mustConfig(t, Options{Queues: 4})
	ipv4 := frame(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), ProtoTCP, 1, 2, frameOpts{})
	arp := append([]byte(nil), ipv4...)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	badVersion := append([]byte(nil), ipv4...)
	badVersion[14] = 0x65
	badIHL := append([]byte(nil), ipv4...)
	badIHL[14] = 0x44
	for name, f := range map[string][]byte{
		"empty":             nil,
		"short ethernet":    ipv4[:13],
		"arp":               arp,
		"short ipv4":        ipv4[:14+19],
		"version 6 in 0800": badVersion,
		"ihl below 5":       badIHL,
		"short vlan":        append(append([]byte(nil), make([]byte, 12)...), 0x81, 0x00, 0),
		"three vlan tags":   frame(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), ProtoTCP, 1, 2, frameOpts{vlans: 3}),
		"short ipv6":        frame(netip.MustParseAddr("::1"), netip.MustParseAddr("::2"), ProtoTCP, 1, 2, frameOpts{})[:14+39],
	} {
		if h, ok := c.HashFrame(f); ok {
			t.Errorf("%s: hashed to %#08x", name, h)
		}
		if q := c.QueueFrame(f); q != 0 {
			t.Errorf("%s: QueueFrame = %d, want 0", name, q)
		}
	}
}

func TestConfigHashAndQueueDoNotAllocate(t *testing.T) {
	c := mustConfig(t, Options{Queues: 4})
	f4 := frame(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), ProtoTCP, 1, 2, frameOpts{vlans: 1})
	f6 := frame(netip.MustParseAddr("::1"), netip.MustParseAddr("::2"), ProtoUDP, 1, 2, frameOpts{ext: []byte{ipv6HopByHop}})
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		sink += c.QueueIPv4Ports([4]byte{1}, [4]byte{2}, 3, 4) + c.QueueIPv6Flow(ProtoTCP, [16]byte{1}, [16]byte{2}, 3, 4)
		sink += c.QueueFrame(f4) + c.QueueFrame(f6)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
	_ = sink
}

func FuzzHashFrame(f *testing.F) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	f.Add(frame(a4, b4, ProtoTCP, 1, 2, frameOpts{}))
	f.Add(frame(a4, b4, ProtoUDP, 1, 2, frameOpts{vlans: 2, ipv4Options: 2}))
	f.Add(frame(a4, b4, ProtoTCP, 1, 2, frameOpts{fragment: 0x2000}))
	f.Add(frame(a6, b6, ProtoTCP, 1, 2, frameOpts{ext: []byte{ipv6HopByHop, ipv6Routing}}))
	f.Add(frame(a6, b6, ProtoUDP, 1, 2, frameOpts{ext: []byte{ipv6Fragment}}))
	f.Add([]byte{})
	c := mustConfig(f, Options{Queues: 3, RETASize: 96})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := c.HashFrame(b)
		q := c.QueueFrame(b)
		if q < 0 || q >= 3 || (ok && q != c.Queue(h)) || (!ok && q != 0) {
			t.Fatalf("HashFrame = %#08x, %v; QueueFrame = %d", h, ok, q)
		}
	})
}

func BenchmarkConfigQueue(b *testing.B) {
	c := mustConfig(b, Options{Queues: 8})
	src, dst := [4]byte{66, 9, 149, 187}, [4]byte{161, 142, 100, 80}
	b.ReportAllocs()
	var sink int
	for i := 0; b.Loop(); i++ {
		sink += c.QueueIPv4Ports(src, dst, uint16(i), 1766)
	}
	benchQueue = sink
}

func BenchmarkConfigQueueFrame(b *testing.B) {
	c := mustConfig(b, Options{Queues: 8})
	f := frame(netip.MustParseAddr("66.9.149.187"), netip.MustParseAddr("161.142.100.80"), ProtoTCP, 2794, 1766, frameOpts{})
	b.ReportAllocs()
	var sink int
	for b.Loop() {
		sink += c.QueueFrame(f)
	}
	benchQueue = sink
}

var benchQueue int
