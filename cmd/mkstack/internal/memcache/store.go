package memcache

import "bytes"

// ItemOverhead is what an item costs beyond its key and value: the item
// itself and its share of the index, counted against the store's bound
// (memcached counts its item header the same way).
const ItemOverhead = 136 // the 128-byte item and its share of the index's buckets

// maxRelativeExptime is memcached's bound between a relative expiry (in
// seconds from now) and an absolute one (a Unix time): 30 days.
const maxRelativeExptime = 60 * 60 * 24 * 30

// StoreConfig sizes a store.
type StoreConfig struct {
	// MaxBytes bounds the items' memory: key, value and ItemOverhead
	// each. Storing beyond it evicts the least recently used items.
	MaxBytes int64
	// Core and Cores make CAS uniques distinct across the stores of a
	// server: every unique of this store is Core modulo Cores.
	Core, Cores int
	// Now returns the time in Unix seconds (expiry, delayed flush).
	Now func() int64
}

// Result is the outcome of a store or update.
type Result uint8

// The results.
const (
	Stored Result = iota
	NotStored
	Exists
	NotFound
	Deleted
	Touched
	NonNumeric
	OutOfMemory
)

// Reply returns the protocol's reply line for r.
func (r Result) Reply() []byte {
	switch r {
	case Stored:
		return ReplyStored
	case NotStored:
		return ReplyNotStored
	case Exists:
		return ReplyExists
	case NotFound:
		return ReplyNotFound
	case Deleted:
		return ReplyDeleted
	case Touched:
		return ReplyTouched
	case NonNumeric:
		return ReplyNonNumeric
	}
	return ReplyOutOfMemory
}

// Stats are a store's counters, named as memcached's stats command names
// them.
type Stats struct {
	CmdGet, CmdSet, CmdTouch, CmdFlush     uint64
	GetHits, GetMisses                     uint64
	GetExpired, GetFlushed                 uint64
	DeleteHits, DeleteMisses               uint64
	IncrHits, IncrMisses                   uint64
	DecrHits, DecrMisses                   uint64
	CasHits, CasMisses, CasBadval          uint64
	TouchHits, TouchMisses                 uint64
	Evictions, Reclaimed, Expired          uint64
	OutOfMemory                            uint64
	CurrItems, TotalItems, Bytes, MaxBytes uint64
}

// Add adds o into s (a total over stores).
func (s *Stats) Add(o *Stats) {
	s.CmdGet += o.CmdGet
	s.CmdSet += o.CmdSet
	s.CmdTouch += o.CmdTouch
	s.CmdFlush += o.CmdFlush
	s.GetHits += o.GetHits
	s.GetMisses += o.GetMisses
	s.GetExpired += o.GetExpired
	s.GetFlushed += o.GetFlushed
	s.DeleteHits += o.DeleteHits
	s.DeleteMisses += o.DeleteMisses
	s.IncrHits += o.IncrHits
	s.IncrMisses += o.IncrMisses
	s.DecrHits += o.DecrHits
	s.DecrMisses += o.DecrMisses
	s.CasHits += o.CasHits
	s.CasMisses += o.CasMisses
	s.CasBadval += o.CasBadval
	s.TouchHits += o.TouchHits
	s.TouchMisses += o.TouchMisses
	s.Evictions += o.Evictions
	s.Reclaimed += o.Reclaimed
	s.Expired += o.Expired
	s.OutOfMemory += o.OutOfMemory
	s.CurrItems += o.CurrItems
	s.TotalItems += o.TotalItems
	s.Bytes += o.Bytes
	s.MaxBytes += o.MaxBytes
}

// item is one key's value. Items are linked in LRU order, most recent at
// the head.
type item struct {
	key        []byte // the item's own copy, reused with the item
	value      []byte
	flags      uint32
	exp        int64  // Unix seconds; 0: never
	time       int64  // when it was last stored, for a delayed flush_all
	seq        uint64 // store sequence when stored, for flush_all
	cas        uint64
	size       int64 // counted against the bound
	prev, next *item
	hash       uint64 // of key, under the index's seed
	chain      *item  // the next item in the index's bucket
}

// Store is one core's items: an index from key to item, an LRU list, a byte
// bound, lazy expiry and flush. It is not safe for concurrent use: one
// core owns it.
type Store struct {
	cfg      StoreConfig
	items    index
	head     *item // most recently used
	tail     *item // least recently used: evicted first
	seq      uint64
	flushSeq uint64 // items stored at or before it were flushed
	flushAt  int64  // a delayed flush_all takes effect then (0: none)
	free     []*item
	stats    Stats
}

// maxFree bounds the recycled items a store keeps.
const maxFree = 1024

// NewStore returns an empty store.
func NewStore(cfg StoreConfig) *Store {
	if cfg.Cores < 1 {
		cfg.Cores = 1
	}
	s := &Store{cfg: cfg, items: newIndex()}
	s.stats.MaxBytes = uint64(cfg.MaxBytes)
	return s
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats { return s.stats }

// ResetStats zeroes the counters (stats reset), not the gauges.
func (s *Store) ResetStats() {
	st := &s.stats
	*st = Stats{CurrItems: st.CurrItems, Bytes: st.Bytes, MaxBytes: st.MaxBytes, TotalItems: 0}
}

// Len returns the number of items held, expired or flushed ones included
// until they are reclaimed.
func (s *Store) Len() int { return s.items.len() }

// Value is what a retrieval sees of an item: views of the store's memory,
// valid until the store is next changed.
type Value struct {
	Data  []byte
	Flags uint32
	Cas   uint64
}

// Get returns key's value, counting a get.
func (s *Store) Get(key []byte) (Value, bool) {
	s.stats.CmdGet++
	it := s.lookup(key, true)
	if it == nil {
		s.stats.GetMisses++
		return Value{}, false
	}
	s.stats.GetHits++
	s.bump(it)
	return Value{Data: it.value, Flags: it.flags, Cas: it.cas}, true
}

// GetAndTouch returns key's value and sets its expiry (gat, gats).
func (s *Store) GetAndTouch(key []byte, exptime int64) (Value, bool) {
	s.stats.CmdGet++
	s.stats.CmdTouch++
	it := s.lookup(key, true)
	if it == nil {
		s.stats.GetMisses++
		s.stats.TouchMisses++
		return Value{}, false
	}
	s.stats.GetHits++
	s.stats.TouchHits++
	it.exp = s.realtime(exptime)
	s.bump(it)
	return Value{Data: it.value, Flags: it.flags, Cas: it.cas}, true
}

// Touch sets key's expiry.
func (s *Store) Touch(key []byte, exptime int64) Result {
	s.stats.CmdTouch++
	it := s.lookup(key, false)
	if it == nil {
		s.stats.TouchMisses++
		return NotFound
	}
	s.stats.TouchHits++
	it.exp = s.realtime(exptime)
	s.bump(it)
	return Touched
}

// Delete removes key.
func (s *Store) Delete(key []byte) Result {
	it := s.lookup(key, false)
	if it == nil {
		s.stats.DeleteMisses++
		return NotFound
	}
	s.stats.DeleteHits++
	s.remove(it)
	return Deleted
}

// Store runs a storage command: op is one of OpSet, OpAdd, OpReplace,
// OpAppend, OpPrepend, OpCas (cas is its unique).
func (s *Store) Store(op Op, key []byte, flags uint32, exptime int64, data []byte, cas uint64) Result {
	s.stats.CmdSet++
	it := s.lookup(key, false)
	switch op {
	case OpAdd:
		if it != nil {
			// memcached bumps an item an add found.
			s.bump(it)
			return NotStored
		}
	case OpReplace, OpAppend, OpPrepend:
		if it == nil {
			return NotStored
		}
	case OpCas:
		switch {
		case it == nil:
			s.stats.CasMisses++
			return NotFound
		case it.cas != cas:
			s.stats.CasBadval++
			return Exists
		}
		s.stats.CasHits++
	}
	if op == OpAppend || op == OpPrepend {
		return s.concat(it, data, op == OpAppend)
	}
	size := itemSize(len(key), len(data))
	if size > s.cfg.MaxBytes {
		s.stats.OutOfMemory++
		return OutOfMemory
	}
	if it != nil {
		// Reuse the item (and its buffer, if it fits well).
		s.unlink(it)
		s.stats.Bytes -= uint64(it.size)
		it.value = fitBuffer(it.value, len(data))
	} else {
		if !s.makeRoom(size, nil) {
			s.stats.OutOfMemory++
			return OutOfMemory
		}
		it = s.newItem(key, len(data))
		s.items.put(it)
		s.stats.CurrItems++
	}
	copy(it.value, data)
	s.stored(it, flags, s.realtime(exptime))
	if !s.makeRoom(0, it) {
		// Only this item is left and it does not fit: cannot happen,
		// since size <= MaxBytes; keep the books right anyway.
		s.remove(it)
		s.stats.OutOfMemory++
		return OutOfMemory
	}
	return Stored
}

// concat appends or prepends data to it's value; flags and expiry stay.
func (s *Store) concat(it *item, data []byte, appendData bool) Result {
	n := len(it.value) + len(data)
	if itemSize(len(it.key), n) > s.cfg.MaxBytes {
		s.stats.OutOfMemory++
		return OutOfMemory
	}
	s.unlink(it)
	s.stats.Bytes -= uint64(it.size)
	old := it.value
	if appendData && cap(old) >= n {
		it.value = append(old, data...)
	} else {
		v := make([]byte, n, n+n/4)
		if appendData {
			copy(v[copy(v, old):], data)
		} else {
			copy(v[copy(v, data):], old)
		}
		it.value = v
	}
	s.stored(it, it.flags, it.exp)
	if !s.makeRoom(0, it) {
		s.remove(it)
		s.stats.OutOfMemory++
		return OutOfMemory
	}
	return Stored
}

// IncrDecr adds delta to (incr) or subtracts it from (decr, not below 0)
// key's value, a decimal number, and returns the new value. incr wraps at
// 2^64, as memcached's does.
func (s *Store) IncrDecr(key []byte, delta uint64, incr bool) (uint64, Result) {
	it := s.lookup(key, false)
	if it == nil {
		if incr {
			s.stats.IncrMisses++
		} else {
			s.stats.DecrMisses++
		}
		return 0, NotFound
	}
	v, ok := parseUint(trimSpace(it.value))
	if !ok {
		return 0, NonNumeric
	}
	if incr {
		s.stats.IncrHits++
		v += delta
	} else {
		s.stats.DecrHits++
		if delta > v {
			v = 0
		} else {
			v -= delta
		}
	}
	s.unlink(it)
	s.stats.Bytes -= uint64(it.size)
	it.value = appendUint(it.value[:0], v)
	s.stored(it, it.flags, it.exp)
	s.makeRoom(0, it)
	return v, Stored
}

// FlushAll invalidates every item now (delay <= 0) or in delay seconds.
func (s *Store) FlushAll(delay int64) {
	s.stats.CmdFlush++
	if delay <= 0 {
		s.flushSeq = s.seq
		s.flushAt = 0
		return
	}
	s.flushAt = s.cfg.Now() + delay
}

// realtime turns an exptime as sent into a Unix time (0: never), as
// memcached does: up to 30 days it is relative, beyond it is absolute, and
// a negative one has already passed.
func (s *Store) realtime(exptime int64) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		return 1
	case exptime > maxRelativeExptime:
		return exptime
	}
	return s.cfg.Now() + exptime
}

// lookup finds key's live item; an expired or flushed one is removed and
// counted (as a get's when get is set).
func (s *Store) lookup(key []byte, get bool) *item {
	it := s.items.get(key)
	if it == nil {
		return nil
	}
	if it.seq <= s.flushSeq {
		if get {
			s.stats.GetFlushed++
		}
		s.remove(it)
		return nil
	}
	if it.exp != 0 || s.flushAt != 0 {
		now := s.cfg.Now()
		if s.flushAt != 0 && now >= s.flushAt && it.time <= s.flushAt {
			if get {
				s.stats.GetFlushed++
			}
			s.remove(it)
			return nil
		}
		if it.exp != 0 && it.exp <= now {
			if get {
				s.stats.GetExpired++
			}
			s.stats.Expired++
			s.remove(it)
			return nil
		}
	}
	return it
}

// dead reports whether an item is expired or flushed (for eviction).
func (s *Store) dead(it *item, now int64) bool {
	return it.seq <= s.flushSeq ||
		(s.flushAt != 0 && now >= s.flushAt && it.time <= s.flushAt) ||
		(it.exp != 0 && it.exp <= now)
}

// stored sets an item's metadata after a store, links it at the head of
// the LRU and counts its size.
func (s *Store) stored(it *item, flags uint32, exp int64) {
	s.seq++
	it.seq = s.seq
	it.cas = s.seq*uint64(s.cfg.Cores) + uint64(s.cfg.Core)
	it.flags, it.exp, it.time = flags, exp, s.cfg.Now()
	it.size = itemSize(len(it.key), cap(it.value))
	s.stats.Bytes += uint64(it.size)
	s.stats.TotalItems++
	s.pushFront(it)
}

// makeRoom evicts from the LRU tail until extra more bytes fit under the
// bound, never evicting keep. It reports whether they fit.
func (s *Store) makeRoom(extra int64, keep *item) bool {
	var now int64
	for int64(s.stats.Bytes)+extra > s.cfg.MaxBytes {
		victim := s.tail
		if victim == keep {
			victim = victim.prev
		}
		if victim == nil {
			return false
		}
		if now == 0 {
			now = s.cfg.Now()
		}
		if s.dead(victim, now) {
			s.stats.Reclaimed++
		} else {
			s.stats.Evictions++
		}
		s.remove(victim)
	}
	return true
}

func (s *Store) newItem(key []byte, n int) *item {
	if k := len(s.free); k > 0 {
		it := s.free[k-1]
		s.free[k-1] = nil
		s.free = s.free[:k-1]
		it.key = append(it.key[:0], key...)
		it.value = fitBuffer(it.value, n)
		return it
	}
	return &item{key: bytes.Clone(key), value: make([]byte, n)}
}

// remove deletes an item from the map and the LRU and recycles it.
func (s *Store) remove(it *item) {
	s.items.remove(it)
	s.unlink(it)
	s.stats.Bytes -= uint64(it.size)
	s.stats.CurrItems--
	it.key, it.size = it.key[:0], 0
	if len(s.free) < maxFree && cap(it.value) <= 4096 {
		s.free = append(s.free, it)
	}
}

func (s *Store) bump(it *item) {
	if s.head == it {
		return
	}
	s.unlink(it)
	s.pushFront(it)
}

func (s *Store) pushFront(it *item) {
	it.prev, it.next = nil, s.head
	if s.head != nil {
		s.head.prev = it
	} else {
		s.tail = it
	}
	s.head = it
}

func (s *Store) unlink(it *item) {
	if it.prev != nil {
		it.prev.next = it.next
	} else if s.head == it {
		s.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else if s.tail == it {
		s.tail = it.prev
	}
	it.prev, it.next = nil, nil
}

// itemSize is what an item of a key and value of these lengths counts.
func itemSize(key, value int) int64 { return int64(key + value + ItemOverhead) }

// fitBuffer returns b resized to n if its capacity fits n without wasting
// more than half, else a new buffer.
func fitBuffer(b []byte, n int) []byte {
	if cap(b) >= n && cap(b) <= 2*n+64 {
		return b[:n]
	}
	return make([]byte, n)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}
