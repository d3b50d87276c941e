package memcache

import (
	"fmt"
	"testing"
)

type clock struct{ now int64 }

func (c *clock) Now() int64 { return c.now }

func newTestStore(max int64) (*Store, *clock) {
	c := &clock{now: 1_700_000_000}
	return NewStore(StoreConfig{MaxBytes: max, Core: 1, Cores: 4, Now: c.Now}), c
}

func get(s *Store, key string) (string, bool) {
	v, ok := s.Get([]byte(key))
	return string(v.Data), ok
}

func set(s *Store, op Op, key, val string) Result {
	return s.Store(op, []byte(key), 0, 0, []byte(val), 0)
}

func TestStoreCommandsFollowMemcachedsRules(t *testing.T) {
	s, _ := newTestStore(1 << 20)
	if r := set(s, OpAdd, "a", "1"); r != Stored {
		t.Fatalf("add: %v", r)
	}
	if r := set(s, OpAdd, "a", "2"); r != NotStored {
		t.Fatalf("second add: %v", r)
	}
	if r := set(s, OpReplace, "b", "2"); r != NotStored {
		t.Fatalf("replace missing: %v", r)
	}
	set(s, OpAppend, "a", "23")
	set(s, OpPrepend, "a", "0")
	if v, _ := get(s, "a"); v != "0123" {
		t.Fatalf("append/prepend: %q", v)
	}
	v, _ := s.Get([]byte("a"))
	if v.Cas%4 != 1 {
		t.Fatalf("cas %d is not core 1 of 4", v.Cas)
	}
	if r := s.Store(OpCas, []byte("a"), 0, 0, []byte("x"), v.Cas+4); r != Exists {
		t.Fatalf("cas with a stale unique: %v", r)
	}
	if r := s.Store(OpCas, []byte("a"), 0, 0, []byte("x"), v.Cas); r != Stored {
		t.Fatalf("cas: %v", r)
	}
	if r := s.Store(OpCas, []byte("zz"), 0, 0, []byte("x"), 1); r != NotFound {
		t.Fatalf("cas of a missing key: %v", r)
	}
	set(s, OpSet, "n", "10")
	if v, r := s.IncrDecr([]byte("n"), 5, true); v != 15 || r != Stored {
		t.Fatalf("incr: %d %v", v, r)
	}
	if v, _ := s.IncrDecr([]byte("n"), 100, false); v != 0 {
		t.Fatalf("decr below zero: %d", v)
	}
	if _, r := s.IncrDecr([]byte("a"), 1, true); r != NonNumeric {
		t.Fatalf("incr of text: %v", r)
	}
	if r := s.Delete([]byte("a")); r != Deleted {
		t.Fatalf("delete: %v", r)
	}
	if r := s.Delete([]byte("a")); r != NotFound {
		t.Fatalf("second delete: %v", r)
	}
	st := s.Stats()
	if st.CasBadval != 1 || st.CasHits != 1 || st.CasMisses != 1 || st.DeleteHits != 1 || st.IncrHits != 1 || st.DecrHits != 1 || st.CurrItems != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStoreExpiresRelativeAbsoluteAndNegativeTimes(t *testing.T) {
	s, c := newTestStore(1 << 20)
	s.Store(OpSet, []byte("rel"), 0, 10, []byte("x"), 0)
	s.Store(OpSet, []byte("abs"), 0, c.now+20, []byte("x"), 0)
	s.Store(OpSet, []byte("neg"), 0, -1, []byte("x"), 0)
	if _, ok := get(s, "neg"); ok {
		t.Fatal("a negative exptime has passed")
	}
	c.now += 10
	if _, ok := get(s, "rel"); ok {
		t.Fatal("rel lives past its 10 s")
	}
	if _, ok := get(s, "abs"); !ok {
		t.Fatal("abs expired early")
	}
	s.Touch([]byte("abs"), 100)
	c.now += 50
	if _, ok := get(s, "abs"); !ok {
		t.Fatal("touch did not extend abs")
	}
	if st := s.Stats(); st.GetExpired != 2 || st.CurrItems != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStoreFlushAllNowAndLater(t *testing.T) {
	s, c := newTestStore(1 << 20)
	set(s, OpSet, "a", "1")
	s.FlushAll(0)
	if _, ok := get(s, "a"); ok {
		t.Fatal("flush_all left a")
	}
	set(s, OpSet, "b", "1")
	if _, ok := get(s, "b"); !ok {
		t.Fatal("an item stored after flush_all is gone")
	}
	s.FlushAll(5)
	c.now += 4
	if _, ok := get(s, "b"); !ok {
		t.Fatal("delayed flush acted early")
	}
	c.now += 1
	if _, ok := get(s, "b"); ok {
		t.Fatal("delayed flush did not act")
	}
	c.now += 1
	set(s, OpSet, "c", "1")
	if _, ok := get(s, "c"); !ok {
		t.Fatal("an item stored after the delayed flush is gone")
	}
}

func TestStoreEvictsLeastRecentlyUsedWithinItsBound(t *testing.T) {
	const each = 100 + ItemOverhead + 2 // key "kN" and a 100-byte value
	s, _ := newTestStore(10 * each)
	val := string(make([]byte, 100))
	for i := range 10 {
		if r := set(s, OpSet, fmt.Sprintf("k%d", i), val); r != Stored {
			t.Fatalf("set k%d: %v", i, r)
		}
	}
	get(s, "k0")             // k0 is now the most recent: k1 goes first
	set(s, OpSet, "kx", val) // the same size as the others
	if _, ok := get(s, "k1"); ok {
		t.Fatal("k1, the least recently used, was kept")
	}
	if _, ok := get(s, "k0"); !ok {
		t.Fatal("k0, just read, was evicted")
	}
	st := s.Stats()
	if st.Evictions != 1 || st.Bytes > uint64(10*each) {
		t.Fatalf("evictions %d, bytes %d of %d", st.Evictions, st.Bytes, 10*each)
	}
	if r := set(s, OpSet, "huge", string(make([]byte, 20*each))); r != OutOfMemory {
		t.Fatalf("an item over the whole bound: %v", r)
	}
}

// TestStoreSoakStaysWithinItsBound writes, overwrites, appends and deletes
// many keys of many sizes, checking the bound and the books after each step
// and that the last write of every key still held reads back.
func TestStoreSoakStaysWithinItsBound(t *testing.T) {
	const limit = 256 << 10
	s, c := newTestStore(limit)
	last := map[string]string{}
	rnd := uint64(1)
	next := func(n uint64) uint64 { rnd = rnd*6364136223846793005 + 1442695040888963407; return (rnd >> 33) % n }
	for i := range 50000 {
		key := fmt.Sprintf("k%d", next(3000))
		switch next(10) {
		case 0:
			s.Delete([]byte(key))
			delete(last, key)
		case 1:
			if set(s, OpAppend, key, "+") == Stored {
				last[key] += "+"
			}
		default:
			v := string(make([]byte, next(2000)))
			if set(s, OpSet, key, v) != Stored {
				t.Fatalf("set %s: not stored", key)
			}
			last[key] = v
		}
		if i%1000 == 0 {
			c.now++
		}
		st := s.Stats()
		if st.Bytes > limit || int(st.CurrItems) != s.Len() {
			t.Fatalf("step %d: bytes %d of %d, items %d vs %d", i, st.Bytes, limit, st.CurrItems, s.Len())
		}
	}
	for k, want := range last {
		if got, ok := get(s, k); ok && got != want {
			t.Fatalf("%s: a stale value", k)
		}
	}
	if s.Stats().Evictions == 0 {
		t.Fatal("no evictions: the soak is not under pressure")
	}
}
