package msgring

import "sync/atomic"

// cacheLine is the padding unit that keeps producer and consumer state apart.
// 128 rather than 64 bytes because x86 cores prefetch cache lines in adjacent
// pairs, which makes neighbours on a 64-byte boundary still false-share.
const cacheLine = 128

// Ring is a bounded single-producer, single-consumer ring of values of T.
// The zero value is not usable; call NewRing.
type Ring[T any] struct {
	_ [cacheLine]byte

	// Written by the producer only.
	head       atomic.Uint64 // next index to write; published to the consumer
	cachedTail uint64        // producer's last view of tail
	_          [cacheLine - 16]byte

	// Written by the consumer only.
	tail       atomic.Uint64 // next index to read; published to the producer
	cachedHead uint64        // consumer's last view of head
	_          [cacheLine - 16]byte

	// Read-only after construction.
	mask uint64
	buf  []T
	_    [cacheLine - 32]byte
}

// NewRing returns an empty ring holding at least capacity values. The
// capacity is rounded up to a power of two (minimum 2) so the slot of an
// index is a mask, not a division.
func NewRing[T any](capacity int) *Ring[T] {
	return newRingAt[T](capacity, 0)
}

// newRingAt starts both indices at start, so tests can run a ring across the
// 2^64 wrap-around.
func newRingAt[T any](capacity int, start uint64) *Ring[T] {
	n := roundUpPow2(capacity)
	r := &Ring[T]{mask: uint64(n - 1), buf: make([]T, n)}
	r.head.Store(start)
	r.tail.Store(start)
	r.cachedHead = start
	r.cachedTail = start
	return r
}

func roundUpPow2(n int) int {
	p := 2
	for p < n {
		p <<= 1
	}
	return p
}

// Cap returns the number of values the ring holds when full.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Len returns the number of values in the ring. It is exact only when called
// by the producer or the consumer while the other side is idle; otherwise it
// is a snapshot.
func (r *Ring[T]) Len() int {
	t := r.tail.Load()
	h := r.head.Load()
	return int(h - t)
}

// Enqueue appends v and reports whether there was room. Producer only.
func (r *Ring[T]) Enqueue(v T) bool {
	h := r.head.Load()
	if h-r.cachedTail > r.mask {
		r.cachedTail = r.tail.Load()
		if h-r.cachedTail > r.mask {
			return false
		}
	}
	r.buf[h&r.mask] = v
	r.head.Store(h + 1)
	return true
}

// EnqueueBatch appends as many values from vs as fit, in order, publishes
// them with one store, and returns how many it appended. Producer only.
func (r *Ring[T]) EnqueueBatch(vs []T) int {
	h := r.head.Load()
	size := r.mask + 1
	free := size - (h - r.cachedTail)
	if free < uint64(len(vs)) {
		r.cachedTail = r.tail.Load()
		free = size - (h - r.cachedTail)
	}
	n := uint64(len(vs))
	if n > free {
		n = free
	}
	if n == 0 {
		return 0
	}
	i := h & r.mask
	first := copy(r.buf[i:], vs[:n])
	copy(r.buf, vs[first:n])
	r.head.Store(h + n)
	return int(n)
}

// Dequeue removes and returns the oldest value; ok is false when the ring is
// empty. Consumer only.
func (r *Ring[T]) Dequeue() (v T, ok bool) {
	t := r.tail.Load()
	if t == r.cachedHead {
		r.cachedHead = r.head.Load()
		if t == r.cachedHead {
			return v, false
		}
	}
	v = r.buf[t&r.mask]
	r.tail.Store(t + 1)
	return v, true
}

// DequeueBatch removes up to len(vs) of the oldest values into vs, frees
// their slots with one store, and returns how many it removed. Consumer only.
func (r *Ring[T]) DequeueBatch(vs []T) int {
	t := r.tail.Load()
	avail := r.cachedHead - t
	if avail < uint64(len(vs)) {
		r.cachedHead = r.head.Load()
		avail = r.cachedHead - t
	}
	n := uint64(len(vs))
	if n > avail {
		n = avail
	}
	if n == 0 {
		return 0
	}
	i := t & r.mask
	first := copy(vs[:n], r.buf[i:])
	copy(vs[first:n], r.buf)
	r.tail.Store(t + n)
	return int(n)
}
