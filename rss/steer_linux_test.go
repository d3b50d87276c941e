package rss

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// requireBPF skips t unless this process may load eBPF programs.
func steerRequireBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("loading eBPF needs root (CAP_BPF); euid is %d", os.Geteuid())
	}
}

// loadSteering loads the steering program for cfg, the queue variant or
// the hash variant, and closes it when t ends.
func loadSteering(t testing.TB, cfg *Config, returnHash bool) *SteeringProgram {
	t.Helper()
	steerRequireBPF(t)
	p, err := newSteeringProgram(cfg, returnHash)
	if errors.Is(err, unix.EPERM) {
		t.Skipf("loading eBPF not permitted here: %v", err)
	}
	if err != nil {
		t.Fatalf("load steering program: %+v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close steering program: %v", err)
		}
	})
	return p
}

// runSteering runs p on frame with BPF_PROG_TEST_RUN.
func runSteering(t testing.TB, p *SteeringProgram, frame []byte) uint32 {
	t.Helper()
	ret, ok := tryRunSteering(t, p, frame)
	if !ok {
		t.Skipf("BPF_PROG_TEST_RUN refuses the %d-byte frame %x: its ether type is IP but the frame is shorter than the IP header, which this kernel rejects before the program runs", len(frame), frame)
	}
	return ret
}

// tryRunSteering runs p on frame and reports false if the kernel refuses
// to run it: since Linux 6.x BPF_PROG_TEST_RUN rejects (EINVAL) a frame of
// ether type IPv4 or IPv6 that is shorter than 14+20 or 14+40 bytes. Any
// other failure fails t.
func tryRunSteering(t testing.TB, p *SteeringProgram, frame []byte) (uint32, bool) {
	t.Helper()
	ret, err := p.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		if errors.Is(err, unix.EINVAL) && len(frame) >= etherHeaderLen {
			switch binary.BigEndian.Uint16(frame[12:]) {
			case etherTypeIPv4:
				if len(frame) < etherHeaderLen+ipv4MinHeader {
					return 0, false
				}
			case etherTypeIPv6:
				if len(frame) < etherHeaderLen+ipv6HeaderLen {
					return 0, false
				}
			}
		}
		t.Fatalf("run steering program on %d-byte frame %x: %v", len(frame), frame, err)
	}
	return ret, true
}

// steerConfig builds cfg from o or fails t.
func steerConfig(t testing.TB, o Options) *Config {
	t.Helper()
	cfg, err := NewConfig(o)
	if err != nil {
		t.Fatalf("NewConfig: %v", err)
	}
	return cfg
}

// Frame building. Addresses and ports are placed exactly where the
// expected hash takes them from, so a parser that reads the wrong bytes
// cannot agree with the expectation by accident.

var (
	steerDstMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	steerSrcMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
)

// ether returns an Ethernet header with the given VLAN tags (each a TPID)
// and ether type.
func steerEther(etherType uint16, vlanTPIDs ...uint16) []byte {
	f := append(append([]byte{}, steerDstMAC...), steerSrcMAC...)
	for i, tpid := range vlanTPIDs {
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, uint16(100+i)) // TCI: VLAN id
	}
	return binary.BigEndian.AppendUint16(f, etherType)
}

// ipv4Header returns an IPv4 header of 20+len(options) bytes.
func steerIPv4Header(src, dst [4]byte, proto uint8, flagsFrag uint16, options []byte, payloadLen int) []byte {
	if len(options)%4 != 0 {
		panic("IPv4 options must be a multiple of 4 bytes")
	}
	h := make([]byte, 20, 20+len(options))
	h[0] = 0x40 | byte((20+len(options))/4)
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(options)+payloadLen))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], flagsFrag)
	h[8] = 64
	h[9] = proto
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	return append(h, options...)
}

// ipv6Header returns a fixed IPv6 header.
func steerIPv6Header(src, dst [16]byte, next uint8, payloadLen int) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(payloadLen))
	h[6] = next
	h[7] = 64
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	return h
}

// l4 returns 8 bytes starting with the two ports (a UDP header, or the
// start of a TCP one).
func steerPorts(srcPort, dstPort uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, srcPort)
	b = binary.BigEndian.AppendUint16(b, dstPort)
	return append(b, 0, 8, 0, 0)
}

func steerCat(parts ...[]byte) []byte {
	var f []byte
	for _, p := range parts {
		f = append(f, p...)
	}
	return f
}

func steerIPv4Frame(src, dst [4]byte, proto uint8, srcPort, dstPort uint16) []byte {
	return steerCat(steerEther(etherTypeIPv4), steerIPv4Header(src, dst, proto, 0, nil, 8), steerPorts(srcPort, dstPort))
}

func steerIPv6Frame(src, dst [16]byte, proto uint8, srcPort, dstPort uint16) []byte {
	return steerCat(steerEther(etherTypeIPv6), steerIPv6Header(src, dst, proto, 8), steerPorts(srcPort, dstPort))
}

func steerIterations() int {
	if testing.Short() {
		return 300
	}
	return 3000
}

// TestSteeringProgramHashEqualsToeplitzForRandomTuples runs the program on
// TCP and UDP frames of random IPv4 and IPv6 4-tuples and compares both the
// hash it computes and the queue it returns with the Go Toeplitz hash of
// the tuple and RETA rule, for the default, symmetric and a random 52-byte
// key.
func TestSteeringProgramHashEqualsToeplitzForRandomTuples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random52 := make([]byte, KeySize52)
	for i := range random52 {
		random52[i] = byte(rng.Uint32())
	}
	for _, k := range []struct {
		name string
		key  []byte
	}{{"default", DefaultKey[:]}, {"symmetric", SymmetricKey[:]}, {"random52", random52}} {
		t.Run(k.name, func(t *testing.T) {
			cfg := steerConfig(t, Options{Key: k.key, Queues: 7, RETASize: 128})
			tz := cfg.Toeplitz()
			hashProg := loadSteering(t, cfg, true)
			queueProg := loadSteering(t, cfg, false)
			for i := 0; i < steerIterations(); i++ {
				proto := uint8(ProtoTCP)
				if rng.IntN(2) == 1 {
					proto = uint8(ProtoUDP)
				}
				sport, dport := uint16(rng.Uint32()), uint16(rng.Uint32())
				var frame []byte
				var want uint32
				if rng.IntN(2) == 0 {
					var src, dst [4]byte
					binary.BigEndian.PutUint32(src[:], rng.Uint32())
					binary.BigEndian.PutUint32(dst[:], rng.Uint32())
					frame = steerIPv4Frame(src, dst, proto, sport, dport)
					want = tz.HashIPv4Ports(src, dst, sport, dport)
				} else {
					var src, dst [16]byte
					binary.BigEndian.PutUint64(src[:], rng.Uint64())
					binary.BigEndian.PutUint64(src[8:], rng.Uint64())
					binary.BigEndian.PutUint64(dst[:], rng.Uint64())
					binary.BigEndian.PutUint64(dst[8:], rng.Uint64())
					frame = steerIPv6Frame(src, dst, proto, sport, dport)
					want = tz.HashIPv6Ports(src, dst, sport, dport)
				}
				if got := runSteering(t, hashProg, frame); got != want {
					t.Fatalf("frame %x: program hash 0x%08x, Go Toeplitz 0x%08x", frame, got, want)
				}
				if got, want := runSteering(t, queueProg, frame), uint32(cfg.Queue(want)); got != want {
					t.Fatalf("frame %x: program queue %d, Go reta[hash %% 128] %d", frame, got, want)
				}
			}
		})
	}
}

// steerCase is a frame and the hash a NIC computes for it (0 when it does
// not hash it, which also sends it to queue 0).
type steerCase struct {
	name   string
	frame  []byte
	hashed bool
	want   uint32
}

func steerEdgeCases(t testing.TB, cfg *Config) []steerCase {
	tz := cfg.Toeplitz()
	src4, dst4 := [4]byte{192, 0, 2, 1}, [4]byte{198, 51, 100, 7}
	src6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	dst6 := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xee, 15: 0x42}
	h4, h4p := tz.HashIPv4(src4, dst4), tz.HashIPv4Ports(src4, dst4, 1234, 80)
	h6, h6p := tz.HashIPv6(src6, dst6), tz.HashIPv6Ports(src6, dst6, 1234, 80)
	if h4 == 0 || h4p == 0 || h6 == 0 || h6p == 0 {
		t.Fatal("a hash of the edge-case tuples is 0: choose other addresses so 'not hashed' stays distinct")
	}
	tcp, udp, icmp := uint8(ProtoTCP), uint8(ProtoUDP), uint8(1)
	ports := steerPorts(1234, 80)
	v4 := func(proto uint8, flagsFrag uint16, options []byte) []byte {
		return steerCat(steerEther(etherTypeIPv4), steerIPv4Header(src4, dst4, proto, flagsFrag, options, 8), ports)
	}
	// ext returns an IPv6 extension header (hop-by-hop, routing or
	// destination options) of 8*(1+lenUnits) bytes.
	ext := func(next uint8, lenUnits int) []byte {
		h := make([]byte, 8*(1+lenUnits))
		h[0], h[1] = next, byte(lenUnits)
		return h
	}
	fragHdr := func(next uint8) []byte { return []byte{next, 0, 0, 1, 0, 0, 0, 9} }
	v6 := func(next uint8, rest ...[]byte) []byte {
		return steerCat(steerEther(etherTypeIPv6), steerIPv6Header(src6, dst6, next, 64), steerCat(rest...))
	}
	nineExt := func() []byte {
		var b []byte
		for i := 0; i < 8; i++ {
			b = append(b, ext(60, 0)...) // each names another dest-options header
		}
		return append(append(b, ext(tcp, 0)...), ports...)
	}
	withIHL := func(f []byte, ihl byte) []byte {
		f = append([]byte{}, f...)
		f[14] = 0x40 | ihl
		return f
	}
	withVersion := func(f []byte, off int, v byte) []byte {
		f = append([]byte{}, f...)
		f[off] = f[off]&0x0f | v<<4
		return f
	}
	plainV4, plainV6 := v4(tcp, 0, nil), v6(tcp, ports)
	arp := steerCat(steerEther(0x0806), make([]byte, 28))
	return []steerCase{
		{"ipv4 tcp", plainV4, true, h4p},
		{"ipv4 udp", v4(udp, 0, nil), true, h4p},
		{"ipv4 icmp hashes addresses", v4(icmp, 0, nil), true, h4},
		{"ipv4 options skipped by IHL", v4(tcp, 0, []byte{1, 1, 1, 1, 7, 7, 4, 0, 1, 1, 1, 0}), true, h4p},
		{"ipv4 IHL 15 with 40 bytes of options", v4(udp, 0, make([]byte, 40)), true, h4p},
		{"ipv4 don't-fragment is not a fragment", v4(tcp, 0x4000, nil), true, h4p},
		{"ipv4 first fragment hashes addresses", v4(udp, 0x2000, nil), true, h4},
		{"ipv4 later fragment hashes addresses", v4(udp, 0x00b9, nil), true, h4},
		{"ipv4 last fragment hashes addresses", v4(tcp, 0x4000|0x0001, nil), true, h4},
		{"ipv4 tcp without ports hashes addresses", plainV4[:14+20+3], true, h4},
		{"ipv4 tcp with only ports", plainV4[:14+20+4], true, h4p},
		{"ipv4 header cut short", plainV4[:14+19], false, 0},
		{"ipv4 options cut short", v4(tcp, 0, make([]byte, 8))[:14+27], false, 0},
		{"ipv4 IHL 4", withIHL(plainV4, 4), false, 0},
		{"ipv4 IHL 0", withIHL(plainV4, 0), false, 0},
		{"ipv4 ether type with version 6", withVersion(plainV4, 14, 6), false, 0},
		{"ipv4 in 802.1Q", steerCat(steerEther(etherTypeIPv4, etherTypeVLAN), plainV4[14:]), true, h4p},
		{"ipv4 in QinQ", steerCat(steerEther(etherTypeIPv4, etherTypeQinQ, etherTypeVLAN), plainV4[14:]), true, h4p},
		{"ipv4 under three VLAN tags is not parsed", steerCat(steerEther(etherTypeIPv4, etherTypeQinQ, etherTypeVLAN, etherTypeVLAN), plainV4[14:]), false, 0},
		{"VLAN tag cut short", steerEther(etherTypeIPv4, etherTypeVLAN)[:16], false, 0},
		{"ipv6 tcp", plainV6, true, h6p},
		{"ipv6 udp", v6(udp, ports), true, h6p},
		{"ipv6 icmpv6 hashes addresses", v6(58, ports), true, h6},
		{"ipv6 hop-by-hop, routing, dest options then tcp", v6(0, ext(43, 1), ext(60, 2), ext(tcp, 0), ports), true, h6p},
		{"ipv6 fragment header hashes addresses", v6(44, fragHdr(udp), ports), true, h6},
		{"ipv6 fragment after hop-by-hop hashes addresses", v6(0, ext(44, 0), fragHdr(tcp), ports), true, h6},
		{"ipv6 extension header cut short", v6(0, []byte{tcp}), true, h6},
		{"ipv6 extension header longer than the frame", v6(0, ext(tcp, 200)[:16], ports), true, h6},
		{"ipv6 nine extension headers hashes addresses", v6(60, nineExt()), true, h6},
		{"ipv6 tcp without ports hashes addresses", plainV6[:14+40+3], true, h6},
		{"ipv6 header cut short", plainV6[:14+39], false, 0},
		{"ipv6 ether type with version 4", withVersion(plainV6, 14, 4), false, 0},
		{"ipv6 in 802.1Q", steerCat(steerEther(etherTypeIPv6, etherTypeVLAN), plainV6[14:]), true, h6p},
		{"arp", arp, false, 0},
		{"ether header only", steerEther(etherTypeIPv4), false, 0},
		{"ether header only, ARP", steerEther(0x0806), false, 0},
		{"ipv4 in 802.1Q cut short", steerCat(steerEther(etherTypeIPv4, etherTypeVLAN), plainV4[14:14+19]), false, 0},
		{"ipv6 in 802.1Q cut short", steerCat(steerEther(etherTypeIPv6, etherTypeVLAN), plainV6[14:14+39]), false, 0},
		{"802.3 length field", steerCat(steerEther(46), make([]byte, 46)), false, 0},
	}
}

// TestSteeringProgramEdgeCases checks the parsing rules on frames a NIC
// meets: IPv4 options, fragments, VLAN tags, IPv6 extension headers,
// truncated and non-IP frames, each with the exact hash expected from the
// Go Toeplitz hash of the tuple that should be hashed, and agreement with
// Config.HashFrame, the software RSS the program mirrors.
func TestSteeringProgramEdgeCases(t *testing.T) {
	cfg := steerConfig(t, Options{Queues: 4})
	hashProg := loadSteering(t, cfg, true)
	queueProg := loadSteering(t, cfg, false)
	for _, c := range steerEdgeCases(t, cfg) {
		t.Run(c.name, func(t *testing.T) {
			gh, gok := cfg.HashFrame(c.frame)
			if gok != c.hashed || gh != c.want {
				t.Errorf("Config.HashFrame = 0x%08x, %v; the case expects 0x%08x, %v", gh, gok, c.want, c.hashed)
			}
			if got := runSteering(t, hashProg, c.frame); got != c.want {
				t.Errorf("program hash 0x%08x, want 0x%08x (hashed %v)", got, c.want, c.hashed)
			}
			wantQ := uint32(0)
			if c.hashed {
				wantQ = uint32(cfg.Queue(c.want))
			}
			if got := runSteering(t, queueProg, c.frame); got != wantQ {
				t.Errorf("program queue %d, want %d", got, wantQ)
			}
		})
	}
}

// TestSteeringProgramHonoursTupleChoice configures UDP over IPv4 and TCP
// over IPv6 to hash the 2-tuple, as some NICs do by default, and checks
// the program follows while the other two keep the 4-tuple.
func TestSteeringProgramHonoursTupleChoice(t *testing.T) {
	cfg := steerConfig(t, Options{Queues: 4, UDP4: Tuple2, TCP6: Tuple2})
	tz := cfg.Toeplitz()
	p := loadSteering(t, cfg, true)
	src4, dst4 := [4]byte{10, 1, 2, 3}, [4]byte{10, 9, 8, 7}
	src6, dst6 := [16]byte{0xfd, 15: 3}, [16]byte{0xfd, 15: 9}
	for _, c := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"tcp4 4-tuple", steerIPv4Frame(src4, dst4, uint8(ProtoTCP), 40000, 443), tz.HashIPv4Ports(src4, dst4, 40000, 443)},
		{"udp4 2-tuple", steerIPv4Frame(src4, dst4, uint8(ProtoUDP), 40000, 443), tz.HashIPv4(src4, dst4)},
		{"tcp6 2-tuple", steerIPv6Frame(src6, dst6, uint8(ProtoTCP), 40000, 443), tz.HashIPv6(src6, dst6)},
		{"udp6 4-tuple", steerIPv6Frame(src6, dst6, uint8(ProtoUDP), 40000, 443), tz.HashIPv6Ports(src6, dst6, 40000, 443)},
	} {
		if got := runSteering(t, p, c.frame); got != c.want {
			t.Errorf("%s: program hash 0x%08x, want 0x%08x", c.name, got, c.want)
		}
	}
}

// TestSteeringProgramQueueIsRETAEntryOfHashModSize gives the program
// identity tables (entry i is i), so the queue it returns is the index
// hash % size itself, for a full 65536-entry table, a non-power-of-two
// one, and after UpdateRETA reverses the table.
func TestSteeringProgramQueueIsRETAEntryOfHashModSize(t *testing.T) {
	identity := func(n int) RETA {
		r := make(RETA, n)
		for i := range r {
			r[i] = uint16(i)
		}
		return r
	}
	rng := rand.New(rand.NewPCG(3, 4))
	frames := make([][]byte, 200)
	for i := range frames {
		var src, dst [4]byte
		binary.BigEndian.PutUint32(src[:], rng.Uint32())
		binary.BigEndian.PutUint32(dst[:], rng.Uint32())
		frames[i] = steerIPv4Frame(src, dst, uint8(ProtoTCP), uint16(rng.Uint32()), uint16(rng.Uint32()))
	}
	cfg := steerConfig(t, Options{RETA: identity(MaxHardwareRETASize)})
	hashProg := loadSteering(t, cfg, true)
	p := loadSteering(t, cfg, false)
	check := func(what string, queue func(h uint32) uint32) {
		t.Helper()
		for _, f := range frames {
			h := runSteering(t, hashProg, f)
			if got, want := runSteering(t, p, f), queue(h); got != want {
				t.Fatalf("%s: hash 0x%08x steered to %d, want %d", what, h, got, want)
			}
		}
	}
	check("identity 65536", func(h uint32) uint32 { return h % MaxHardwareRETASize })
	if err := p.UpdateRETA(identity(100)); err != nil {
		t.Fatal(err)
	}
	check("identity 100", func(h uint32) uint32 { return h % 100 })
	reversed := identity(512)
	for i := range reversed {
		reversed[i] = uint16(511 - i)
	}
	if err := p.UpdateRETA(reversed); err != nil {
		t.Fatal(err)
	}
	check("reversed 512", func(h uint32) uint32 { return 511 - h%512 })
}

func TestSteeringProgramUpdateRETARejectsBadSizes(t *testing.T) {
	p := loadSteering(t, steerConfig(t, Options{Queues: 2}), false)
	for _, n := range []int{0, MaxHardwareRETASize + 1} {
		err := p.UpdateRETA(make(RETA, n))
		if err == nil || !strings.Contains(err.Error(), "want 1 to 65536") {
			t.Errorf("UpdateRETA(%d entries) = %v, want an error naming the bounds", n, err)
		}
	}
}

// TestSteeringProgramMatchesHashFrameOnRandomFrames is the differential
// check over frames of random shape: VLAN tags, IPv4 options and
// fragments, IPv6 extension headers, other protocols, cut at random
// lengths. The program and Config.HashFrame must agree on every one.
func TestSteeringProgramMatchesHashFrameOnRandomFrames(t *testing.T) {
	cfg := steerConfig(t, Options{Key: SymmetricKey[:], Queues: 5, UDP6: Tuple2})
	hashProg := loadSteering(t, cfg, true)
	queueProg := loadSteering(t, cfg, false)
	rng := rand.New(rand.NewPCG(5, 6))
	hashed, refused := 0, 0
	for i := 0; i < steerIterations(); i++ {
		f := steerRandomFrame(rng)
		want, ok := cfg.HashFrame(f)
		if !ok {
			want = 0
		} else {
			hashed++
		}
		got, ran := tryRunSteering(t, hashProg, f)
		if !ran {
			refused++
			continue
		}
		if got != want {
			t.Fatalf("frame %x: program hash 0x%08x, HashFrame 0x%08x (hashed %v)", f, got, want, ok)
		}
		if got, want := runSteering(t, queueProg, f), uint32(cfg.QueueFrame(f)); got != want {
			t.Fatalf("frame %x: program queue %d, QueueFrame %d", f, got, want)
		}
	}
	t.Logf("%d frames, %d hashed, %d too short for BPF_PROG_TEST_RUN", steerIterations(), hashed, refused)
	if hashed < steerIterations()/2 {
		t.Errorf("only %d of %d random frames were hashed: the generator is too destructive to test much", hashed, steerIterations())
	}
}

// randomFrame makes a frame of random shape (see the test above).
func steerRandomFrame(rng *rand.Rand) []byte {
	var tags []uint16
	for n := rng.IntN(4); n > 0 && rng.IntN(3) == 0; n-- {
		tags = append(tags, []uint16{etherTypeVLAN, etherTypeQinQ}[rng.IntN(2)])
	}
	protos := []uint8{6, 17, 6, 17, 1, 58, 132}
	proto := protos[rng.IntN(len(protos))]
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var f []byte
	switch rng.IntN(5) {
	case 0, 1:
		var src, dst [4]byte
		copy(src[:], randBytes(4))
		copy(dst[:], randBytes(4))
		var frag uint16
		if rng.IntN(5) == 0 {
			frag = uint16(rng.Uint32()) & 0x3fff
		}
		f = steerCat(steerEther(etherTypeIPv4, tags...), steerIPv4Header(src, dst, proto, frag, randBytes(4*rng.IntN(11)), 8), randBytes(8))
		if rng.IntN(10) == 0 { // an out-of-range IHL or version
			f[14+4*len(tags)] = byte(rng.Uint32())
		}
	case 2, 3:
		var src, dst [16]byte
		copy(src[:], randBytes(16))
		copy(dst[:], randBytes(16))
		exts := []uint8{0, 43, 60, 44}
		var chain []byte
		n := rng.IntN(11)
		if rng.IntN(2) == 0 {
			n = 0
		}
		// Build the chain back to front so each header names the next.
		next := proto
		for i := 0; i < n; i++ {
			e := exts[rng.IntN(len(exts))]
			var h []byte
			if e == 44 {
				h = append([]byte{next, 0}, randBytes(6)...)
			} else {
				h = append([]byte{next, byte(rng.IntN(3))}, randBytes(6)...)
				h = append(h, randBytes(8*int(h[1]))...)
			}
			chain = append(h, chain...)
			next = e
		}
		f = steerCat(steerEther(etherTypeIPv6, tags...), steerIPv6Header(src, dst, next, len(chain)+8), chain, randBytes(8))
	default:
		types := []uint16{0x0806, 0x88cc, 0x8847, 0x0800, 0x86dd}
		f = steerCat(steerEther(types[rng.IntN(len(types))], tags...), randBytes(rng.IntN(80)))
	}
	if rng.IntN(6) == 0 {
		f = f[:etherHeaderLen+rng.IntN(len(f)-etherHeaderLen+1)]
	}
	return f
}

// FuzzSteeringProgram checks the program against Config.HashFrame on
// arbitrary frames: it must never fail to run and must agree on the hash.
// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
func FuzzSteeringProgram(f *testing.F) {
	cfg, err := NewConfig(Options{Queues: 4})
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range steerEdgeCases(f, cfg) {
		f.Add(c.frame)
	}
	p := loadSteering(f, cfg, true)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < etherHeaderLen || len(frame) > 1500 {
			t.Skip()
		}
		want, ok := cfg.HashFrame(frame)
		if !ok {
			want = 0
		}
		got, ran := tryRunSteering(t, p, frame)
		if ran && got != want {
			t.Fatalf("program hash 0x%08x, HashFrame 0x%08x (hashed %v)", got, want, ok)
		}
	})
}

// TestSteeringProgramSize reports the program's size; the limits are loose
// and only catch an accidental blow-up (the hash is unrolled: one
// load-shift-add-load-xor per input byte).
func TestSteeringProgramSize(t *testing.T) {
	p := loadSteering(t, steerConfig(t, Options{Queues: 4}), false)
	n := p.Instructions()
	info, err := p.prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	verified, _ := info.VerifiedInstructions()
	t.Logf("steering program: %d instructions, %d verified", n, verified)
	if n < 48*5 || n > 700 {
		t.Errorf("steering program has %d instructions, want 240 to 700", n)
	}
}
