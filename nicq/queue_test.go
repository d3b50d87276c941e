package nicq_test

import (
	"testing"

	"github.com/mkstack/mkstack/nicq"
)

func TestEveryDropReasonHasAMetricLabel(t *testing.T) {
	seen := map[string]bool{}
	for r := range nicq.NumDropReasons {
		s := r.String()
		if s == "" || seen[s] || s[0] == 'D' {
			t.Fatalf("drop reason %d has label %q (empty, duplicate or unnamed)", r, s)
		}
		seen[s] = true
	}
	if s := nicq.NumDropReasons.String(); s != "DropReason(7)" {
		t.Fatalf("out-of-range reason prints %q", s)
	}
	c := nicq.Counters{}
	c.Drops[nicq.DropRunt] = 2
	c.Drops[nicq.DropRxRingFull] = 3
	if c.TotalDrops() != 5 {
		t.Fatalf("TotalDrops = %d, want 5", c.TotalDrops())
	}
}

func TestFeaturesPrintAsEthtoolLikeNames(t *testing.T) {
	cases := map[nicq.Features]string{
		0:                  "none",
		nicq.FeatureRxHash: "rx-hash",
		nicq.FeatureRxHash | nicq.FeatureRxTimestamp: "rx-hash,rx-timestamp",
		nicq.FeatureRxChecksum | 1<<9:                "rx-checksum,0x200",
	}
	for f, want := range cases {
		if got := f.String(); got != want {
			t.Errorf("Features(%#x).String() = %q, want %q", uint32(f), got, want)
		}
	}
	if nicq.MaxFrameLen(1500) != 1518 {
		t.Fatalf("MaxFrameLen(1500) = %d, want 1518", nicq.MaxFrameLen(1500))
	}
}
