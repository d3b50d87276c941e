package rss

import (
	"slices"
	"strings"
	"testing"
)

func TestEqualRETAFillsRoundRobin(t *testing.T) {
	reta, err := EqualRETA(64, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(reta) != 64 {
		t.Fatalf("%d entries", len(reta))
	}
	for i, q := range reta {
		if int(q) != i%3 {
			t.Fatalf("entry %d is queue %d, want %d", i, q, i%3)
		}
	}
	if reta.Queues() != 3 {
		t.Fatalf("Queues() = %d", reta.Queues())
	}
}

func TestWeightedRETAFillsAsEthtoolDoes(t *testing.T) {
	// "ethtool -X IF weight 1 3" on a 64-entry table: 16 entries for queue
	// 0 then 48 for queue 1.
	reta, err := WeightedRETA(64, []int{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Repeat([]uint16{0}, 16), slices.Repeat([]uint16{1}, 48)...)
	if !slices.Equal(reta, want) {
		t.Fatalf("weight 1 3:\n got %v\nwant %v", reta, want)
	}
	// A zero weight leaves a queue out; uneven weights round down per
	// ethtool's integer rule "i >= size*partial/sum": 128*2/7 = 36, so
	// entries 0..35 go to queue 0 and the other 92 to queue 2.
	reta, err = WeightedRETA(128, []int{2, 0, 5})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 3)
	for _, q := range reta {
		counts[q]++
	}
	if !slices.Equal(counts, []int{36, 0, 92}) {
		t.Fatalf("weight 2 0 5: queue counts %v, want [36 0 92]", counts)
	}
	if !slices.IsSorted(reta) {
		t.Fatalf("weight 2 0 5: runs not contiguous: %v", reta)
	}
}

func TestRETAConstructorsRejectBadSizesAndWeights(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"size 32", second(EqualRETA(32, 2)), "32 entries, want 64 to 512"},
		{"size 1024", second(EqualRETA(1024, 2)), "1024 entries"},
		{"0 queues", second(EqualRETA(128, 0)), "0 queues"},
		{"more queues than entries", second(EqualRETA(64, 65)), "65 queues for a 64-entry"},
		{"no weights", second(WeightedRETA(128, nil)), "0 weights"},
		{"zero weights", second(WeightedRETA(128, []int{0, 0})), "all 2 weights are zero"},
		{"negative weight", second(WeightedRETA(128, []int{1, -1})), "weight -1 of queue 1"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", c.name, c.err, c.want)
		}
	}
	// 64..512 need not be powers of two.
	if _, err := EqualRETA(100, 7); err != nil {
		t.Errorf("100-entry table: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestRETAQueueUsesHashModuloSize(t *testing.T) {
	reta := make(RETA, 128)
	for i := range reta {
		reta[i] = uint16(i)
	}
	// Power of two: the low 7 bits index the table.
	if got := reta.Queue(0xdeadbe00 | 0x45); got != 0x45 {
		t.Fatalf("128 entries: hash ...45 went to %d, want 0x45", got)
	}
	odd := make(RETA, 100)
	for i := range odd {
		odd[i] = uint16(i)
	}
	if got, want := odd.Queue(0x51ccc178), int(uint32(0x51ccc178)%100); got != want {
		t.Fatalf("100 entries: queue %d, want %d", got, want)
	}
}

func TestRETAValidate(t *testing.T) {
	if err := (RETA{0, 1, 2, 1}).Validate(3); err != nil {
		t.Fatal(err)
	}
	if err := (RETA{0, 1, 3}).Validate(3); err == nil || !strings.Contains(err.Error(), "entry 2 is queue 3, but there are 3 queues") {
		t.Fatalf("out-of-range entry: %v", err)
	}
	if err := (RETA{}).Validate(1); err == nil {
		t.Fatal("empty table accepted")
	}
}

func TestRETAFromEntriesConvertsAnEthtoolTable(t *testing.T) {
	reta, err := RETAFromEntries([]uint32{0, 1, 7, 65535})
	if err != nil || !slices.Equal(reta, RETA{0, 1, 7, 65535}) {
		t.Fatalf("RETAFromEntries = %v, %v", reta, err)
	}
	if _, err := RETAFromEntries([]uint32{0, 65536}); err == nil || !strings.Contains(err.Error(), "entry 1 is queue 65536") {
		t.Fatalf("queue 65536: %v", err)
	}
	if _, err := RETAFromEntries(nil); err == nil {
		t.Fatal("empty table accepted")
	}
}
