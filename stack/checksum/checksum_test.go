package checksum

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// referenceSum is RFC 1071 section 4.1 word for word: 16-bit big-endian
// words added into 32 bits, the odd byte padded, the carries folded.
func referenceSum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func TestSumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2
	// (0x2ddf0 with the carry folded back in).
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Sum(b, 0); got != 0xddf2 {
		t.Fatalf("Sum = %#04x, want 0xddf2", got)
	}
	if got := Checksum(b, 0); got != 0x220d {
		t.Fatalf("Checksum = %#04x, want 0x220d", got)
	}
}

func TestChecksumOfIPv4HeaderMatchesKnownValue(t *testing.T) {
	// An IPv4 header from a captured frame (UDP 192.0.2.1 -> 192.0.2.2)
	// with its checksum field 0xfb25 zeroed.
	h := []byte{
		0x45, 0x00, 0x00, 0x20, 0xbb, 0xa3, 0x40, 0x00, 0x40, 0x11,
		0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
	}
	if got := Checksum(h, 0); got != 0xfb25 {
		t.Fatalf("Checksum = %#04x, want 0xfb25", got)
	}
	binary.BigEndian.PutUint16(h[10:], 0xfb25)
	if got := Sum(h, 0); got != 0xffff {
		t.Fatalf("sum over header with checksum = %#04x, want 0xffff", got)
	}
}

func TestSumOfNothingAndOfZerosIsZero(t *testing.T) {
	if got := Sum(nil, 0); got != 0 {
		t.Fatalf("Sum(nil, 0) = %#x", got)
	}
	if got := Sum(make([]byte, 1500), 0); got != 0 {
		t.Fatalf("Sum(zeros, 0) = %#x", got)
	}
	if got := Sum(nil, 0x1234); got != 0x1234 {
		t.Fatalf("Sum(nil, 0x1234) = %#x", got)
	}
}

func TestSumOfAllOnesIsNegativeZero(t *testing.T) {
	// Every word 0xffff: one's complement -0, never folded to +0.
	for n := 2; n <= 130; n += 2 {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0xff
		}
		if got := Sum(b, 0); got != 0xffff {
			t.Fatalf("n=%d: Sum = %#x, want 0xffff", n, got)
		}
	}
}

func TestSumMatchesReferenceAtEveryLengthAndAlignment(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096+16)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	// Every length up to 300 at every offset 0..15, so each tail shape of
	// the 64-byte and 8-byte loops is met at odd and even addresses.
	for off := 0; off < 16; off++ {
		for n := 0; n <= 300; n++ {
			b := buf[off : off+n]
			init := uint16(r.Uint32())
			if got, want := Sum(b, init), referenceSum(b, init); got != want {
				t.Fatalf("off=%d n=%d init=%#x: Sum = %#04x, want %#04x", off, n, init, got, want)
			}
		}
	}
	for i := 0; i < 2000; i++ {
		off := r.IntN(16)
		n := r.IntN(4096)
		b := buf[off : off+n]
		if got, want := Sum(b, 0), referenceSum(b, 0); got != want {
			t.Fatalf("off=%d n=%d: Sum = %#04x, want %#04x", off, n, got, want)
		}
	}
}

func TestSumCarriesFromManyAllOnesWords(t *testing.T) {
	// Bytes near 0xff make every 64-bit addition carry: the deferred carry
	// count must come back in.
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 9000)
	for i := range b {
		b[i] = 0xff - byte(r.IntN(2))
	}
	for _, n := range []int{63, 64, 65, 1500, 9000} {
		if got, want := Sum(b[:n], 0xffff), referenceSum(b[:n], 0xffff); got != want {
			t.Fatalf("n=%d: Sum = %#04x, want %#04x", n, got, want)
		}
	}
}

func TestAccumulatorOverSlicesOfAnyLengthEqualsSumOfWhole(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 1000; i++ {
		whole := make([]byte, r.IntN(200))
		for j := range whole {
			whole[j] = byte(r.Uint32())
		}
		init := uint16(r.Uint32())
		a := NewAccumulator(init)
		rest := whole
		for len(rest) > 0 {
			k := r.IntN(len(rest) + 1)
			a.Add(rest[:k])
			rest = rest[k:]
		}
		if got, want := a.Sum(), referenceSum(whole, init); got != want {
			t.Fatalf("case %d (len %d): Accumulator = %#04x, want %#04x", i, len(whole), got, want)
		}
	}
}

func TestCombineIsOnesComplementAddition(t *testing.T) {
	cases := []struct{ a, b, want uint16 }{
		{0, 0, 0},
		{0xffff, 0, 0xffff},
		{0xffff, 0xffff, 0xffff},
		{0xffff, 1, 1},
		{0x8000, 0x8000, 1},
		{0x1234, 0x4321, 0x5555},
	}
	for _, c := range cases {
		if got := Combine(c.a, c.b); got != c.want {
			t.Errorf("Combine(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
}

func TestPseudoHeaderIPv4MatchesSumOverItsBytes(t *testing.T) {
	src := [4]byte{192, 0, 2, 1}
	dst := [4]byte{198, 51, 100, 200}
	ph := []byte{192, 0, 2, 1, 198, 51, 100, 200, 0, 6, 0x05, 0xdc}
	if got, want := PseudoHeaderIPv4(src, dst, 6, 1500), referenceSum(ph, 0); got != want {
		t.Fatalf("PseudoHeaderIPv4 = %#04x, want %#04x", got, want)
	}
}

func TestPseudoHeaderIPv6MatchesSumOverItsBytes(t *testing.T) {
	var src, dst [16]byte
	for i := range src {
		src[i] = byte(0xf0 + i)
		dst[i] = byte(0x20 + 7*i)
	}
	// RFC 8200 8.1: source, destination, 32-bit length, 3 zero bytes,
	// next header.
	ph := make([]byte, 0, 40)
	ph = append(ph, src[:]...)
	ph = append(ph, dst[:]...)
	ph = binary.BigEndian.AppendUint32(ph, 0x0001_0203)
	ph = append(ph, 0, 0, 0, 17)
	if got, want := PseudoHeaderIPv6(src, dst, 17, 0x0001_0203), referenceSum(ph, 0); got != want {
		t.Fatalf("PseudoHeaderIPv6 = %#04x, want %#04x", got, want)
	}
}

func TestUpdateRFC1624Section3Example(t *testing.T) {
	// RFC 1624 section 3: the other header octets sum to 0xcd7a, a field
	// m = 0x5555 becomes m' = 0x3285. HC = ~(0xcd7a + 0x5555) = 0xdd2f.
	// Equation 2 would give 0xffff; the right answer, and equation 3's,
	// is ~(0xcd7a + 0x3285) = ~0xffff = 0x0000.
	if got := Update(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Fatalf("Update = %#04x, want 0x0000", got)
	}
}

func TestUpdateEqualsFullRecomputationOnRandomEdits(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 20000; i++ {
		n := 4 + 2*r.IntN(40)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		// Bias towards the edge values that trip naive updates.
		if r.IntN(4) == 0 {
			for j := range b {
				b[j] = 0xff
			}
			b[0] = 0x45 // never all zeros, as no real header is
		}
		ck := ^referenceSum(b, 0)
		if r.IntN(2) == 0 {
			at := 2 * r.IntN(n/2)
			old := binary.BigEndian.Uint16(b[at:])
			nu := uint16(r.Uint32())
			switch r.IntN(4) {
			case 0:
				nu = 0
			case 1:
				nu = 0xffff
			}
			binary.BigEndian.PutUint16(b[at:], nu)
			if allZero(b) {
				continue
			}
			if got, want := Update(ck, old, nu), ^referenceSum(b, 0); got != want {
				t.Fatalf("case %d: Update(%#x, %#x, %#x) = %#04x, want %#04x", i, ck, old, nu, got, want)
			}
		} else {
			at := 2 * r.IntN(n/2-1)
			old := binary.BigEndian.Uint32(b[at:])
			nu := r.Uint32()
			binary.BigEndian.PutUint32(b[at:], nu)
			if allZero(b) {
				continue
			}
			if got, want := Update32(ck, old, nu), ^referenceSum(b, 0); got != want {
				t.Fatalf("case %d: Update32(%#x, %#x, %#x) = %#04x, want %#04x", i, ck, old, nu, got, want)
			}
		}
	}
}

func TestUpdateOfTTLDecrementKeepsHeaderValid(t *testing.T) {
	// Forwarding a captured header: TTL 64 -> 63 changes the word that
	// holds TTL and protocol.
	h := []byte{
		0x45, 0x00, 0x00, 0x20, 0xbb, 0xa3, 0x40, 0x00, 0x40, 0x11,
		0xfb, 0x25, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
	}
	old := binary.BigEndian.Uint16(h[8:])
	h[8]--
	ck := Update(binary.BigEndian.Uint16(h[10:]), old, binary.BigEndian.Uint16(h[8:]))
	if ck != 0xfc25 {
		t.Fatalf("updated checksum = %#04x, want 0xfc25", ck)
	}
	binary.BigEndian.PutUint16(h[10:], ck)
	if got := Sum(h, 0); got != 0xffff {
		t.Fatalf("sum after update = %#04x, want 0xffff", got)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestSumDoesNotAllocate(t *testing.T) {
	b := make([]byte, 1500)
	var a Accumulator
	n := testing.AllocsPerRun(100, func() {
		_ = Sum(b, 0)
		_ = PseudoHeaderIPv4([4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, 6, 1480)
		_ = Update32(0x1234, 1, 2)
		a.Add(b[:37])
	})
	if n != 0 {
		t.Fatalf("allocs per run = %v, want 0", n)
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, uint16(0), uint8(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(0xffff), uint8(1))
	f.Add(make([]byte, 131), uint16(1), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, init uint16, off uint8) {
		if int(off) < len(b) {
			b = b[off:]
		}
		if got, want := Sum(b, init), referenceSum(b, init); got != want {
			t.Fatalf("len %d: Sum = %#04x, reference %#04x", len(b), got, want)
		}
		var a Accumulator = NewAccumulator(init)
		half := len(b) / 3
		a.Add(b[:half])
		a.Add(b[half:])
		if got, want := a.Sum(), referenceSum(b, init); got != want {
			t.Fatalf("len %d split %d: Accumulator = %#04x, reference %#04x", len(b), half, got, want)
		}
	})
}
