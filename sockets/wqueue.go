package sockets

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// writeQueue is a ring of bytes with one producer and one consumer, each
// publishing its own index with one atomic store (the indexes only grow).
// A connection has two: its bytes on their way from the application's
// Write to the core (producer: the writing goroutine, serialized by
// conn.wrMu; consumer: the owning core), so Write copies and returns
// without waiting for the core, as a kernel socket's send buffer lets it;
// and its received bytes on their way from the core to Read (producer:
// the core; consumer: the reading goroutine, serialized by conn.rdMu), so
// Read takes what has arrived without a message to the core.
//
// A small queue lends its memory back (lend) while nothing is staged in
// it, so that a connection waiting for its next request holds no queue
// memory, as a kernel socket holds no buffer while idle: its consumer
// lends it when it runs dry (a Read that took every byte, the core when it has
// drained a write), and its producer takes memory again with the next
// bytes. lease makes the two exclusive: the producer holds it while it
// puts, the consumer while it lends; the consumer reads buf only for
// bytes the producer published after attaching it, so peek needs no lease.
type writeQueue struct {
	buf  []byte        // nil while lent
	size int           // len(buf) whenever it is attached
	head atomic.Uint64 // consumed up to here (core)
	tail atomic.Uint64 // produced up to here (application)
	// lease is 0 when free, leaseProducer or leaseConsumer when held;
	// only lending queues use it.
	lease   atomic.Uint32
	lending bool
	// limit, if above 0, is what the ring holds at most, below its
	// memory (SetReadBuffer, SetWriteBuffer). Any side may set it; the
	// producer reads it.
	limit atomic.Int32
}

// setLimit bounds the ring at n bytes; 0, or n at least its memory,
// removes the bound.
func (q *writeQueue) setLimit(n int) {
	if n <= 0 || n >= q.size {
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
	return q.size
}

// The queues' sizes. Every connection starts with a small write queue and
// a small read queue, which is all a request/response connection needs
// (and which hold memory only while bytes pass: an idle connection holds
// none); the first time one fills, that side goes on in a big one: a bulk
// writer's or reader's, kept until the connection closes.
const (
	// writeQueueSize bounds what Write stages beyond the TCP send ring
	// at first; bigWriteQueueSize once the small queue has filled. A
	// big queue of 32 KiB held a bulk writer to the core's pace: a 1 GiB
	// net/http download over the TAP ran at 1.07-1.38 GB/s with it and
	// 2.21-2.49 GB/s with 128 KiB.
	writeQueueSize    = smallQueueSize
	bigWriteQueueSize = 128 << 10
	// readQueueSize bounds what the core stages for Read beyond the TCP
	// receive ring at first (what is left in the ring still holds the
	// window shut); bigReadQueueSize once the small queue has filled.
	readQueueSize    = smallQueueSize
	bigReadQueueSize = 128 << 10
)

func newByteRing(size int) *writeQueue { return &writeQueue{buf: make([]byte, size), size: size} }

// smallQueueSize is both small queues' size, so they share one pool of
// memory to lend to and borrow from.
const smallQueueSize = 4 << 10

// smallQueueMemory holds the memory small queues have lent.
var smallQueueMemory = sync.Pool{New: func() any { return new([smallQueueSize]byte) }}

// newLendingQueue is a small queue that holds memory only while bytes are
// staged in it (or since its consumer last ran dry).
func newLendingQueue() *writeQueue { return &writeQueue{size: smallQueueSize, lending: true} }

const (
	leaseProducer = 1
	leaseConsumer = 2
)

// put copies as much of p as fits and publishes it; producer side.
func (q *writeQueue) put(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	if !q.lending {
		return q.copyIn(p)
	}
	// The consumer holds the lease only for a few stores.
	for !q.lease.CompareAndSwap(0, leaseProducer) {
		runtime.Gosched()
	}
	if q.buf == nil {
		q.buf = smallQueueMemory.Get().(*[smallQueueSize]byte)[:]
	}
	n := q.copyIn(p)
	q.lease.Store(0)
	return n
}

// copyIn is put once the queue holds memory.
func (q *writeQueue) copyIn(p []byte) int {
	tail := q.tail.Load()
	free := max(q.capacity()-int(tail-q.head.Load()), 0)
	p = p[:min(len(p), free)]
	if len(p) == 0 {
		return 0
	}
	at := int(tail % uint64(q.size))
	k := copy(q.buf[at:], p)
	copy(q.buf, p[k:])
	q.tail.Store(tail + uint64(len(p)))
	return len(p)
}

// lend gives a lending queue's memory back while nothing is staged;
// consumer side. The next put takes memory again.
func (q *writeQueue) lend() {
	if !q.lending || q.head.Load() != q.tail.Load() || !q.lease.CompareAndSwap(0, leaseConsumer) {
		return
	}
	var mem []byte
	if q.buf != nil && q.head.Load() == q.tail.Load() {
		mem, q.buf = q.buf, nil
	}
	q.lease.Store(0)
	if mem != nil {
		smallQueueMemory.Put((*[smallQueueSize]byte)(mem))
	}
}

// holdsMemory reports whether the queue holds memory now (for tests and
// metrics: it waits for the lease, so it must not run on a side that
// holds it).
func (q *writeQueue) holdsMemory() bool {
	if !q.lending {
		return true
	}
	for !q.lease.CompareAndSwap(0, leaseConsumer) {
		runtime.Gosched()
	}
	held := q.buf != nil
	q.lease.Store(0)
	return held
}

// peek returns the oldest staged bytes in place (up to the ring's end);
// consumer side.
func (q *writeQueue) peek() []byte {
	head := q.head.Load()
	n := q.tail.Load() - head
	if n == 0 {
		return nil // a lending queue may hold no memory
	}
	at := int(head % uint64(q.size))
	return q.buf[at:min(at+int(n), q.size)]
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

// reset empties the ring for a new connection, and a lending one gives
// its memory back; no other side may use it.
func (q *writeQueue) reset() {
	if q.lending && q.buf != nil {
		smallQueueMemory.Put((*[smallQueueSize]byte)(q.buf))
		q.buf = nil
	}
	q.head.Store(0)
	q.tail.Store(0)
	q.limit.Store(0)
}

// empty reports whether nothing is staged.
func (q *writeQueue) empty() bool { return q.head.Load() == q.tail.Load() }
