package sockets

import "sync/atomic"

// writeQueue is a connection's bytes on their way from the application's
// Write to the core: a ring with one producer (the writing goroutine,
// serialized by conn.wrMu) and one consumer (the owning core), so Write
// copies and returns without waiting for the core, as a kernel socket's
// send buffer lets it. The indexes only grow; each side publishes its own
// with one atomic store.
type writeQueue struct {
	buf  []byte
	head atomic.Uint64 // consumed up to here (core)
	tail atomic.Uint64 // produced up to here (application)
}

// writeQueueSize bounds what Write stages beyond the TCP send ring.
const writeQueueSize = 32 << 10

func newWriteQueue() *writeQueue { return &writeQueue{buf: make([]byte, writeQueueSize)} }

// put copies as much of p as fits and publishes it; application side.
func (q *writeQueue) put(p []byte) int {
	tail := q.tail.Load()
	free := uint64(len(q.buf)) - (tail - q.head.Load())
	p = p[:min(uint64(len(p)), free)]
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
// core side.
func (q *writeQueue) peek() []byte {
	head := q.head.Load()
	n := q.tail.Load() - head
	at := int(head % uint64(len(q.buf)))
	return q.buf[at:min(at+int(n), len(q.buf))]
}

// advance consumes n bytes; core side.
func (q *writeQueue) advance(n int) { q.head.Add(uint64(n)) }

// discard drops everything staged; core side.
func (q *writeQueue) discard() { q.head.Store(q.tail.Load()) }

// empty reports whether nothing is staged.
func (q *writeQueue) empty() bool { return q.head.Load() == q.tail.Load() }
