package frametest_test

import (
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
)

// BenchmarkFloodIntoFullRing is the generator's cost per frame on the mem
// wire when the receiver takes nothing: every frame is tail-dropped at the
// full ring, which is where an overload test's generator spends its time.
// The figure is frames offered per second on one CPU.
func BenchmarkFloodIntoFullRing(b *testing.B) {
	for _, yield := range []bool{false, true} {
		name := "spin"
		if yield {
			name = "yield"
		}
		b.Run(name, func(b *testing.B) {
			w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
				{MAC: frametest.MACA, Queues: 1},
				{MAC: frametest.MACB, Queues: 1},
			}})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			f := &frametest.Flood{
				Queue: w.NIC(0).Queue(0),
				Frame: frametest.UDP4{SrcMAC: frametest.MACA, DstMAC: frametest.MACB, Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{10, 0, 0, 2}, SrcPort: 4000, DstPort: 9, Payload: make([]byte, 22)}.Frame(),
				Burst: 256,
				Yield: yield,
			}
			b.ReportAllocs()
			total, secs := 0, 0.0
			for b.Loop() {
				n, s := f.Run(0, time.Millisecond)
				total += n
				secs += s
			}
			b.ReportMetric(float64(total)/secs/1e6, "Mpps")
		})
	}
}
