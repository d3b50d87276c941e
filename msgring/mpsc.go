package msgring

import "sync/atomic"

// MPSC is a bounded ring for many producers and one consumer. Enqueue is
// lock-free (producers race with compare-and-swap on the enqueue index);
// dequeue is wait-free for the single consumer. The zero value is not usable;
// call NewMPSC.
//
// Each slot carries a sequence number. For the lap that starts at index pos,
// seq == pos means the slot is free for a producer, seq == pos+1 means a
// value is written and ready for the consumer. The consumer frees a slot by
// setting seq to pos+size, the index at which a producer may next use it.
// Values of one producer are dequeued in the order that producer enqueued
// them; values of different producers interleave in claim order.
type MPSC[T any] struct {
	_ [cacheLine]byte

	enq atomic.Uint64 // next index a producer claims; shared by producers
	_   [cacheLine - 8]byte

	deq uint64 // next index to read; consumer only
	_   [cacheLine - 8]byte

	mask  uint64
	slots []mpscSlot[T]
	_     [cacheLine - 32]byte
}

type mpscSlot[T any] struct {
	seq atomic.Uint64
	val T
}

// NewMPSC returns an empty MPSC ring holding at least capacity values,
// rounded up to a power of two (minimum 2).
func NewMPSC[T any](capacity int) *MPSC[T] {
	return newMPSCAt[T](capacity, 0)
}

func newMPSCAt[T any](capacity int, start uint64) *MPSC[T] {
	n := roundUpPow2(capacity)
	q := &MPSC[T]{mask: uint64(n - 1), slots: make([]mpscSlot[T], n)}
	for i := uint64(0); i < uint64(n); i++ {
		idx := start + i
		q.slots[idx&q.mask].seq.Store(idx)
	}
	q.enq.Store(start)
	q.deq = start
	return q
}

// Cap returns the number of values the ring holds when full.
func (q *MPSC[T]) Cap() int { return len(q.slots) }

// Len returns a snapshot of the number of claimed slots (values written or
// being written and not yet dequeued).
func (q *MPSC[T]) Len() int {
	return int(q.enq.Load() - atomic.LoadUint64(&q.deq))
}

// Enqueue appends v and reports whether there was room. Safe for any number
// of concurrent producers.
func (q *MPSC[T]) Enqueue(v T) bool {
	pos := q.enq.Load()
	for {
		s := &q.slots[pos&q.mask]
		seq := s.seq.Load()
		switch dif := int64(seq - pos); {
		case dif == 0:
			if q.enq.CompareAndSwap(pos, pos+1) {
				s.val = v
				s.seq.Store(pos + 1)
				return true
			}
			pos = q.enq.Load()
		case dif < 0:
			// The slot still holds the value from one lap ago: full.
			return false
		default:
			// Another producer claimed pos since we loaded it.
			pos = q.enq.Load()
		}
	}
}

// Dequeue removes and returns the oldest ready value. ok is false when the
// ring is empty, or when the oldest slot is claimed by a producer that has
// not finished writing it (its value comes on a later call). Consumer only.
func (q *MPSC[T]) Dequeue() (v T, ok bool) {
	pos := q.deq
	s := &q.slots[pos&q.mask]
	if s.seq.Load() != pos+1 {
		return v, false
	}
	v = s.val
	var zero T
	s.val = zero // drop references so the ring does not keep garbage alive
	s.seq.Store(pos + q.mask + 1)
	atomic.StoreUint64(&q.deq, pos+1)
	return v, true
}

// DequeueBatch removes up to len(vs) ready values into vs, oldest first, and
// returns how many. Consumer only.
func (q *MPSC[T]) DequeueBatch(vs []T) int {
	pos := q.deq
	var zero T
	n := 0
	for n < len(vs) {
		s := &q.slots[pos&q.mask]
		if s.seq.Load() != pos+1 {
			break
		}
		vs[n] = s.val
		s.val = zero
		s.seq.Store(pos + q.mask + 1)
		pos++
		n++
	}
	atomic.StoreUint64(&q.deq, pos)
	return n
}
