package memcache

import (
	"bytes"
	"hash/maphash"
)

// index finds a core's items by key: a chained hash table over the key
// bytes, so a lookup neither converts the key to a string nor hashes it
// twice, and a store reuses the item's own key buffer. The chains go
// through item.chain; the table doubles when it holds twice as many items
// as buckets.
type index struct {
	seed    maphash.Seed
	buckets []*item
	n       int
}

const minBuckets = 1024

func newIndex() index {
	return index{seed: maphash.MakeSeed(), buckets: make([]*item, minBuckets)}
}

func (x *index) hash(key []byte) uint64 { return maphash.Bytes(x.seed, key) }

// get returns the item stored under key, or nil.
func (x *index) get(key []byte) *item {
	h := x.hash(key)
	for it := x.buckets[h&uint64(len(x.buckets)-1)]; it != nil; it = it.chain {
		if it.hash == h && bytes.Equal(it.key, key) {
			return it
		}
	}
	return nil
}

// put adds it, whose key no item in the index has.
func (x *index) put(it *item) {
	if x.n >= 2*len(x.buckets) {
		x.grow()
	}
	it.hash = x.hash(it.key)
	b := &x.buckets[it.hash&uint64(len(x.buckets)-1)]
	it.chain, *b = *b, it
	x.n++
}

// remove takes it out of the index.
func (x *index) remove(it *item) {
	for p := &x.buckets[it.hash&uint64(len(x.buckets)-1)]; *p != nil; p = &(*p).chain {
		if *p == it {
			*p, it.chain = it.chain, nil
			x.n--
			return
		}
	}
}

func (x *index) grow() {
	old := x.buckets
	x.buckets = make([]*item, 2*len(old))
	mask := uint64(len(x.buckets) - 1)
	for _, it := range old {
		for it != nil {
			next := it.chain
			b := &x.buckets[it.hash&mask]
			it.chain, *b = *b, it
			it = next
		}
	}
}

func (x *index) len() int { return x.n }
