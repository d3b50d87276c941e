package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBucketsCoverEveryValueInOrder(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 20, 1<<40 + 12345, 1<<63 + 1, ^uint64(0)} {
		i := histBucket(v)
		lo, hi := histBounds(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if i >= histBuckets {
			t.Errorf("value %d: bucket %d beyond %d", v, i, histBuckets)
		}
	}
	for i := 1; i < histBuckets; i++ {
		_, prevHi := histBounds(i - 1)
		lo, _ := histBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, prevHi)
		}
	}
}

func TestHistogramPercentilesWithinThreePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 100000)
	for i := range vals {
		// Log-normal-ish: microseconds to tens of milliseconds.
		vals[i] = time.Duration(float64(time.Microsecond) * (1 + rng.ExpFloat64()*rng.ExpFloat64()*200))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, p := range []float64{50, 90, 99, 99.9, 100} {
		want := vals[int(float64(len(vals))*p/100+0.5)-1]
		got := h.Percentile(p)
		if d := float64(got-want) / float64(want); d > 0.03 || d < -0.03 {
			t.Errorf("p%v = %v, exact %v (%.1f%% off)", p, got, want, d*100)
		}
	}
	if h.Count() != uint64(len(vals)) || h.Max() != vals[len(vals)-1] {
		t.Errorf("count %d max %v, want %d and %v", h.Count(), h.Max(), len(vals), vals[len(vals)-1])
	}
}

func TestHistogramMergeEqualsRecordingAll(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Nanosecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatalf("merged %+v\nwant %+v", a.Summary(), all.Summary())
	}
	var empty Histogram
	if empty.Percentile(50) != 0 || empty.Summary() != nil {
		t.Error("an empty histogram has percentiles")
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Nanosecond) }); n != 0 {
		t.Errorf("%v allocations per Record", n)
	}
}
