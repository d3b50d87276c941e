package sockets

import "sync/atomic"

// writeQueue is a ring of bytes with one producer and one consumer, each
// publishing its own index with one atomic store (the indexes only grow).
// A connection has two: its bytes on their way from the application's
// Write to the core (producer: the writing goroutine, serialized by
// conn.wrMu; consumer: the owning core), so Write copies and returns
// without waiting for the core, as a kernel socket's send buffer lets it;
// and its received bytes on their way from the core to Read (producer:
// the core; consumer: the reading goroutine, serialized by conn.rdMu), so
// Read takes what has arrived without a message to the core.
type writeQueue struct {
	buf  []byte
	head atomic.Uint64 // consumed up to here (core)
	tail atomic.Uint64 // produced up to here (application)
	// limit, if above 0, is what the ring holds at most, below its
	// memory (SetReadBuffer, SetWriteBuffer). Any side may set it; the
	// producer reads it.
	limit atomic.Int32
}

// setLimit bounds the ring at n bytes; 0, or n at least its memory,
// removes the bound.
func (q *writeQueue) setLimit(n int) {
	if n <= 0 || n >= len(q.buf) {
		n = 0
	}
	q.limit.Store(int32(n))
}

// limited returns the ring's bound, 0 for none.
func (q *writeQueue) limited() int { return int(q.limit.Load()) }

// capacity is what the ring holds at most.
func (q *writeQueue) capacity() int {
	if l := int(q.limit.Load()); l > 0 {
		return l
	}
	return len(q.buf)
}

// The queues' sizes. Every connection starts with a small write queue and
// a small read queue, which is all a request/response connection needs
// (an idle one holds 8 KiB of queues, not 48); the first time one fills,
// that side goes on in a big one: a bulk writer's or reader's.
const (
	// writeQueueSize bounds what Write stages beyond the TCP send ring
	// at first; bigWriteQueueSize once the small queue has filled.
	writeQueueSize    = 4 << 10
	bigWriteQueueSize = 32 << 10
	// readQueueSize bounds what the core stages for Read beyond the TCP
	// receive ring at first (what is left in the ring still holds the
	// window shut); bigReadQueueSize once the small queue has filled.
	readQueueSize    = 4 << 10
	bigReadQueueSize = 128 << 10
)

func newByteRing(size int) *writeQueue { return &writeQueue{buf: make([]byte, size)} }

// put copies as much of p as fits and publishes it; producer side.
func (q *writeQueue) put(p []byte) int {
	tail := q.tail.Load()
	free := max(q.capacity()-int(tail-q.head.Load()), 0)
	p = p[:min(len(p), free)]
	if len(p) == 0 {
		return 0
	}
	at := int(tail % uint64(len(q.buf)))
	k := copy(q.buf[at:], p)
	copy(q.buf, p[k:])
	q.tail.Store(tail + uint64(len(p)))
	return len(p)
}

// peek returns the oldest staged bytes in place (up to the ring's end);
// consumer side.
func (q *writeQueue) peek() []byte {
	head := q.head.Load()
	n := q.tail.Load() - head
	at := int(head % uint64(len(q.buf)))
	return q.buf[at:min(at+int(n), len(q.buf))]
}

// advance consumes n bytes; consumer side.
func (q *writeQueue) advance(n int) { q.head.Add(uint64(n)) }

// get copies the oldest staged bytes into p and consumes them; consumer
// side.
func (q *writeQueue) get(p []byte) int {
	n := 0
	for n < len(p) {
		b := q.peek()
		if len(b) == 0 {
			break
		}
		k := copy(p[n:], b)
		q.advance(k)
		n += k
	}
	return n
}

// free is the room left; exact on the producer side, a lower bound
// elsewhere.
func (q *writeQueue) free() int {
	return max(q.capacity()-int(q.tail.Load()-q.head.Load()), 0)
}

// discard drops everything staged; consumer side.
func (q *writeQueue) discard() { q.head.Store(q.tail.Load()) }

// reset empties the ring for a new connection; no other side may use it.
func (q *writeQueue) reset() {
	q.head.Store(0)
	q.tail.Store(0)
	q.limit.Store(0)
}

// empty reports whether nothing is staged.
func (q *writeQueue) empty() bool { return q.head.Load() == q.tail.Load() }
