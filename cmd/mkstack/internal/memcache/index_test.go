package memcache

import (
	"fmt"
	"testing"
)

// TestIndexFindsWhatItHoldsAcrossGrowth puts, finds and removes enough
// items to double the table several times, and checks every key maps to
// its own item and removed ones are gone.
func TestIndexFindsWhatItHoldsAcrossGrowth(t *testing.T) {
	x := newIndex()
	const n = 10 * minBuckets
	items := make([]*item, n)
	for i := range items {
		items[i] = &item{key: fmt.Appendf(nil, "key-%d", i)}
		x.put(items[i])
	}
	if x.len() != n || len(x.buckets) <= minBuckets {
		t.Fatalf("%d items in %d buckets", x.len(), len(x.buckets))
	}
	for i, it := range items {
		if got := x.get(it.key); got != it {
			t.Fatalf("key %d: got %p, want %p", i, got, it)
		}
	}
	for i := 0; i < n; i += 2 {
		x.remove(items[i])
	}
	for i, it := range items {
		got := x.get(it.key)
		if (i%2 == 0) != (got == nil) || (got != nil && got != it) {
			t.Fatalf("after removing the even keys, key %d: %p", i, got)
		}
	}
	if x.len() != n/2 || x.get([]byte("absent")) != nil {
		t.Fatalf("%d items; absent key found", x.len())
	}
}

func TestIndexLookupDoesNotAllocate(t *testing.T) {
	x := newIndex()
	x.put(&item{key: []byte("hello")})
	key := []byte("hello")
	if a := testing.AllocsPerRun(100, func() {
		if x.get(key) == nil {
			t.Fatal("not found")
		}
	}); a != 0 {
		t.Fatalf("%v allocations per lookup", a)
	}
}
