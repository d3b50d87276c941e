package checksum

import "testing"

func benchmarkSum(b *testing.B, n, off int) {
	buf := make([]byte, n+off)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	data := buf[off:]
	b.SetBytes(int64(n))
	b.ReportAllocs()
	var s uint16
	for b.Loop() {
		s += Sum(data, 0)
	}
	_ = s
}

// BenchmarkChecksum1500 is a full Ethernet-MTU IPv4 packet.
func BenchmarkChecksum1500(b *testing.B) { benchmarkSum(b, 1500, 0) }

// BenchmarkChecksum1500Unaligned starts at an odd address, as a payload
// behind a 14-byte Ethernet header and an options-bearing IP header can.
func BenchmarkChecksum1500Unaligned(b *testing.B) { benchmarkSum(b, 1500, 1) }

// BenchmarkChecksum20 is an IPv4 header without options.
func BenchmarkChecksum20(b *testing.B) { benchmarkSum(b, 20, 0) }

// BenchmarkChecksum64 is a small TCP segment: header, options, a few bytes.
func BenchmarkChecksum64(b *testing.B) { benchmarkSum(b, 64, 0) }

func BenchmarkChecksum9000(b *testing.B) { benchmarkSum(b, 9000, 0) }

func BenchmarkUpdate32(b *testing.B) {
	b.ReportAllocs()
	ck := uint16(0x1234)
	for i := uint32(0); b.Loop(); i++ {
		ck = Update32(ck, i, i+1)
	}
	_ = ck
}
