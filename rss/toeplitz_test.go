package rss

import (
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The verification tables of the Microsoft RSS specification, "Verifying
// the RSS Hash Calculation" (learn.microsoft.com/windows-hardware/drivers/
// network/verifying-the-rss-hash-calculation), every row, with the key
// DefaultKey. The specification lists destination before source; here each
// row is written source first, the order the hash input takes.
type specVector struct {
	src, dst         string
	srcPort, dstPort uint16
	addrsOnly, ports uint32 // the "IPvN only" and "IPvN with TCP" columns
}

var specIPv4Vectors = []specVector{
	{"66.9.149.187", "161.142.100.80", 2794, 1766, 0x323e8fc2, 0x51ccc178},
	{"199.92.111.2", "65.69.140.83", 14230, 4739, 0xd718262a, 0xc626b0ea},
	{"24.19.198.95", "12.22.207.184", 12898, 38024, 0xd2d0a5de, 0x5c2b394a},
	{"38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xafc7327f},
	{"153.39.163.191", "202.188.127.2", 44251, 1303, 0x5d1809c5, 0x10e828a2},
}

var specIPv6Vectors = []specVector{
	{"3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2cc18cd5, 0x40207d3d},
	{"3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0f0c461c, 0xdde51bbf},
	{"3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024, 0x4b61e985, 0x02d1feef},
}

func mustToeplitz(t testing.TB, key []byte) *Toeplitz {
	t.Helper()
	tz, err := NewToeplitz(key)
	if err != nil {
		t.Fatal(err)
	}
	return tz
}

// hashInput is the byte string the specification hashes: addresses, then
// ports if withPorts.
func hashInput(src, dst netip.Addr, srcPort, dstPort uint16, withPorts bool) []byte {
	b := append(src.AsSlice(), dst.AsSlice()...)
	if withPorts {
		b = append(b, byte(srcPort>>8), byte(srcPort), byte(dstPort>>8), byte(dstPort))
	}
	return b
}

func TestToeplitzMatchesMicrosoftIPv4Vectors(t *testing.T) {
	tz := mustToeplitz(t, DefaultKey[:])
	for _, v := range specIPv4Vectors {
		src, dst := netip.MustParseAddr(v.src), netip.MustParseAddr(v.dst)
		if got := tz.HashIPv4(src.As4(), dst.As4()); got != v.addrsOnly {
			t.Errorf("HashIPv4(%s, %s) = %#08x, want %#08x", v.src, v.dst, got, v.addrsOnly)
		}
		if got := tz.HashIPv4Ports(src.As4(), dst.As4(), v.srcPort, v.dstPort); got != v.ports {
			t.Errorf("HashIPv4Ports(%s:%d, %s:%d) = %#08x, want %#08x", v.src, v.srcPort, v.dst, v.dstPort, got, v.ports)
		}
		if got := tz.Hash(hashInput(src, dst, v.srcPort, v.dstPort, false)); got != v.addrsOnly {
			t.Errorf("Hash(2-tuple %s, %s) = %#08x, want %#08x", v.src, v.dst, got, v.addrsOnly)
		}
		if got := tz.Hash(hashInput(src, dst, v.srcPort, v.dstPort, true)); got != v.ports {
			t.Errorf("Hash(4-tuple %s:%d, %s:%d) = %#08x, want %#08x", v.src, v.srcPort, v.dst, v.dstPort, got, v.ports)
		}
	}
}

func TestToeplitzMatchesMicrosoftIPv6Vectors(t *testing.T) {
	tz := mustToeplitz(t, DefaultKey[:])
	for _, v := range specIPv6Vectors {
		src, dst := netip.MustParseAddr(v.src), netip.MustParseAddr(v.dst)
		if got := tz.HashIPv6(src.As16(), dst.As16()); got != v.addrsOnly {
			t.Errorf("HashIPv6(%s, %s) = %#08x, want %#08x", v.src, v.dst, got, v.addrsOnly)
		}
		if got := tz.HashIPv6Ports(src.As16(), dst.As16(), v.srcPort, v.dstPort); got != v.ports {
			t.Errorf("HashIPv6Ports([%s]:%d, [%s]:%d) = %#08x, want %#08x", v.src, v.srcPort, v.dst, v.dstPort, got, v.ports)
		}
		if got := tz.Hash(hashInput(src, dst, v.srcPort, v.dstPort, false)); got != v.addrsOnly {
			t.Errorf("Hash(2-tuple %s, %s) = %#08x, want %#08x", v.src, v.dst, got, v.addrsOnly)
		}
		if got := tz.Hash(hashInput(src, dst, v.srcPort, v.dstPort, true)); got != v.ports {
			t.Errorf("Hash(4-tuple [%s]:%d, [%s]:%d) = %#08x, want %#08x", v.src, v.srcPort, v.dst, v.dstPort, got, v.ports)
		}
	}
}

// referenceToeplitz is the specification's pseudocode, bit by bit, with
// the key as one big register shifted left (zeros shifted in):
//
//	For each bit b in input[] from left to right
//	    if (b == 1) result ^= (left-most 32 bits of K)
//	    shift K left 1 bit position
func referenceToeplitz(key, input []byte) uint32 {
	k := new(big.Int).SetBytes(key)
	keyBits := uint(len(key) * 8)
	mask := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), keyBits), big.NewInt(1))
	var result uint32
	for _, b := range input {
		for bit := 7; bit >= 0; bit-- {
			if b>>bit&1 == 1 {
				result ^= uint32(new(big.Int).Rsh(k, keyBits-32).Uint64())
			}
			k.Lsh(k, 1).And(k, mask)
		}
	}
	return result
}

func TestToeplitzAgreesWithBitwiseReferenceOnRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{KeySize, KeySize52} {
		for range 20 {
			key := make([]byte, size)
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			tz := mustToeplitz(t, key)
			for range 50 {
				// Up to 8 bytes beyond the key, to pin the zero-fill rule.
				input := make([]byte, rng.IntN(size+8))
				for i := range input {
					input[i] = byte(rng.Uint32())
				}
				if got, want := tz.Hash(input), referenceToeplitz(key, input); got != want {
					t.Fatalf("key %x input %x (%d bytes): Hash = %#08x, reference %#08x", key, input, len(input), got, want)
				}
			}
			var src4, dst4 [4]byte
			var src6, dst6 [16]byte
			fill(rng, src4[:], dst4[:], src6[:], dst6[:])
			sp, dp := uint16(rng.Uint32()), uint16(rng.Uint32())
			ports := []byte{byte(sp >> 8), byte(sp), byte(dp >> 8), byte(dp)}
			cat := slices.Concat[[]byte]
			checks := []struct {
				name      string
				got, want uint32
			}{
				{"HashIPv4", tz.HashIPv4(src4, dst4), referenceToeplitz(key, cat(src4[:], dst4[:]))},
				{"HashIPv4Ports", tz.HashIPv4Ports(src4, dst4, sp, dp), referenceToeplitz(key, cat(src4[:], dst4[:], ports))},
				{"HashIPv6", tz.HashIPv6(src6, dst6), referenceToeplitz(key, cat(src6[:], dst6[:]))},
				{"HashIPv6Ports", tz.HashIPv6Ports(src6, dst6, sp, dp), referenceToeplitz(key, cat(src6[:], dst6[:], ports))},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Fatalf("key %x: %s = %#08x, reference %#08x", key, c.name, c.got, c.want)
				}
			}
		}
	}
}

func fill(rng *rand.Rand, bufs ...[]byte) {
	for _, b := range bufs {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
}

func TestSymmetricKeyHashesBothDirectionsOfAFlowAlike(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 10000
	for _, key := range [][]byte{SymmetricKey[:], SymmetricKey52[:]} {
		tz := mustToeplitz(t, key)
		for range n {
			var a4, b4 [4]byte
			var a6, b6 [16]byte
			fill(rng, a4[:], b4[:], a6[:], b6[:])
			pa, pb := uint16(rng.Uint32()), uint16(rng.Uint32())
			if x, y := tz.HashIPv4(a4, b4), tz.HashIPv4(b4, a4); x != y {
				t.Fatalf("%d-byte key: IPv4 %v->%v hashes %#08x, reverse %#08x", len(key), a4, b4, x, y)
			}
			if x, y := tz.HashIPv4Ports(a4, b4, pa, pb), tz.HashIPv4Ports(b4, a4, pb, pa); x != y {
				t.Fatalf("%d-byte key: IPv4 %v:%d->%v:%d hashes %#08x, reverse %#08x", len(key), a4, pa, b4, pb, x, y)
			}
			if x, y := tz.HashIPv6(a6, b6), tz.HashIPv6(b6, a6); x != y {
				t.Fatalf("%d-byte key: IPv6 %x->%x hashes %#08x, reverse %#08x", len(key), a6, b6, x, y)
			}
			if x, y := tz.HashIPv6Ports(a6, b6, pa, pb), tz.HashIPv6Ports(b6, a6, pb, pa); x != y {
				t.Fatalf("%d-byte key: IPv6 [%x]:%d->[%x]:%d hashes %#08x, reverse %#08x", len(key), a6, pa, b6, pb, x, y)
			}
		}
	}
}

// The default key is not symmetric; if it were, the symmetry test above
// would prove nothing about SymmetricKey in particular.
func TestDefaultKeyIsNotSymmetric(t *testing.T) {
	tz := mustToeplitz(t, DefaultKey[:])
	v := specIPv4Vectors[0]
	src, dst := netip.MustParseAddr(v.src).As4(), netip.MustParseAddr(v.dst).As4()
	if tz.HashIPv4Ports(src, dst, v.srcPort, v.dstPort) == tz.HashIPv4Ports(dst, src, v.dstPort, v.srcPort) {
		t.Fatal("default key hashes both directions of the first spec flow alike")
	}
}

func TestNewToeplitzRejectsKeyOfWrongLength(t *testing.T) {
	for _, n := range []int{0, 16, 39, 41, 51, 53, 64} {
		_, err := NewToeplitz(make([]byte, n))
		if err == nil {
			t.Errorf("%d-byte key accepted", n)
			continue
		}
		if want := "is " + strconv.Itoa(n) + " bytes"; !strings.Contains(err.Error(), want) {
			t.Errorf("%d-byte key: error %q does not say %q", n, err, want)
		}
	}
}

func TestToeplitzKeyAndMaxInput(t *testing.T) {
	tz := mustToeplitz(t, SymmetricKey52[:])
	if got := tz.MaxInput(); got != 48 {
		t.Errorf("MaxInput of a 52-byte key = %d, want 48", got)
	}
	k := tz.Key()
	if string(k) != string(SymmetricKey52[:]) {
		t.Errorf("Key() = %x", k)
	}
	k[0] ^= 0xff // a copy: changing it must not change the hash
	if mustToeplitz(t, SymmetricKey52[:]).HashIPv4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}) != tz.HashIPv4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}) {
		t.Error("changing the slice Key returned changed the hash")
	}
}

func TestToeplitzHashesDoNotAllocate(t *testing.T) {
	tz := mustToeplitz(t, DefaultKey[:])
	var a4, b4 [4]byte
	var a6, b6 [16]byte
	buf := make([]byte, 36)
	var sink uint32
	allocs := testing.AllocsPerRun(100, func() {
		sink ^= tz.HashIPv4(a4, b4) ^ tz.HashIPv4Ports(a4, b4, 1, 2)
		sink ^= tz.HashIPv6(a6, b6) ^ tz.HashIPv6Ports(a6, b6, 1, 2)
		sink ^= tz.Hash(buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run of the hashes, want 0", allocs)
	}
	_ = sink
}

var benchSink uint32

func BenchmarkToeplitzIPv4TCP(b *testing.B) {
	tz := mustToeplitz(b, DefaultKey[:])
	src, dst := [4]byte{66, 9, 149, 187}, [4]byte{161, 142, 100, 80}
	b.ReportAllocs()
	var h uint32
	for i := 0; b.Loop(); i++ {
		h ^= tz.HashIPv4Ports(src, dst, uint16(i), 1766)
	}
	benchSink = h
}

func BenchmarkToeplitzIPv6TCP(b *testing.B) {
	tz := mustToeplitz(b, DefaultKey[:])
	src := netip.MustParseAddr("3ffe:2501:200:1fff::7").As16()
	dst := netip.MustParseAddr("3ffe:2501:200:3::1").As16()
	b.ReportAllocs()
	var h uint32
	for i := 0; b.Loop(); i++ {
		h ^= tz.HashIPv6Ports(src, dst, uint16(i), 1766)
	}
	benchSink = h
}
