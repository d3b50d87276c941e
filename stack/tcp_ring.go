package stack

// byteRing is a ring of bytes: a connection's send or receive buffer.
// size bounds what it holds (TCPConfig.SendBuffer or ReceiveBuffer at
// first, grown by autotuning, tcp_autotune.go: the receive window is
// offered against it); its memory is taken from the
// stack's ringPool only as bytes need it, smallest class first, and
// grown (the held bytes copied once into the next class) as more arrive,
// so a half-open connection (a SYN flood fills a SYN queue with them)
// costs none and a connection that exchanges small messages a few KiB.
// Growing succeeds unless the stack's memory limit refuses it
// (TCPConfig.MemoryLimit, tcp_mem.go): a send ring then takes fewer bytes
// (space), a receive ring drops the segment, and under memory pressure the
// window offered is kept to memory the ring holds, so that this is rare
// (a window offered is never taken back, RFC 9293 3.8.6). The memory goes
// back to the pool (release) once the ring is empty and the
// connection no longer needs it: see TCPConn.releaseRings. Nothing
// allocates once the pool holds what the connections need.
type byteRing struct {
	buf  []byte // the memory held now (nil: none); len is its capacity
	pool *ringPool
	head int // index of the oldest byte
	n    int // bytes held
	// size is the most the ring holds, whatever buf holds now (bound).
	// want is the capacity the ring last held: taken again at once when
	// it fills after a release, so a connection that moves bulk data does
	// not grow its ring class by class each time it empties. (int32
	// keeps TCPConn in its allocation size class.) limit is the
	// connection's own bound: the pool's initial one, grown by
	// autotuning (tcp_autotune.go) or set by the application
	// (tcp_bufsize.go); size comes down to it as bytes leave, never by
	// taking back room already offered.
	size, want, limit int32
}

// init readies the ring at the pool's initial bound (TCPConfig.SendBuffer
// or ReceiveBuffer), which is also its limit until the application sets
// one (tcp_bufsize.go) or autotuning grows it (tcp_autotune.go).
func (r *byteRing) init(pool *ringPool) {
	r.release()
	size := pool.initial
	r.limit = int32(size)
	if pool.rcv && pool.mem.under {
		size = min(size, ringMin) // under memory pressure: a small window
	}
	r.size, r.pool, r.want = int32(size), pool, 0
}

// bound is the most the ring holds.
func (r *byteRing) bound() int { return int(r.size) }

// reserve makes the ring's memory hold at least end bytes from the
// oldest (end <= size), keeping every byte at its offset, and at least
// hint if the memory limit allows. It reports false, the ring unchanged,
// when the limit refuses even end.
func (r *byteRing) reserve(end, hint int) bool {
	if end <= len(r.buf) {
		return true
	}
	nb := r.pool.get(max(end, hint))
	if nb == nil && hint > end {
		nb = r.pool.get(end)
	}
	if nb == nil {
		return false
	}
	if r.buf != nil {
		// Unwrap the old ring at the front of the new one: offsets from
		// head (held bytes, and out-of-order bytes beyond them) stay.
		k := copy(nb, r.buf[r.head:])
		copy(nb[k:], r.buf[:r.head])
		r.pool.put(r.buf)
		r.pool.mem.stats.RingGrowths++
	}
	r.buf, r.head, r.want = nb, 0, int32(len(nb))
	return true
}

// hint is the capacity the ring takes when it must take memory: what it
// last held (so bulk data does not grow it class by class each time it
// empties), but for a send ring under memory pressure only what the
// bytes need.
func (r *byteRing) hint() int {
	if !r.pool.rcv && r.pool.mem.under {
		return 0
	}
	return int(min(r.want, r.size))
}

// release empties the ring, dropping what it holds and anything stored
// beyond (writeAt), and gives its memory back to the pool.
func (r *byteRing) release() {
	if r.buf != nil {
		r.pool.put(r.buf)
		r.buf = nil
	}
	r.head, r.n = 0, 0
}

func (r *byteRing) len() int  { return r.n }
func (r *byteRing) free() int { return int(r.size) - r.n }

// write appends as much of p as fits (space) and returns how much did.
func (r *byteRing) write(p []byte) int {
	p = p[:min(len(p), r.space())]
	if len(p) == 0 {
		return 0
	}
	r.reserve(r.n+len(p), r.hint()) // space made sure it succeeds
	tail := (r.head + r.n) % len(r.buf)
	k := copy(r.buf[tail:], p)
	copy(r.buf, p[k:])
	r.n += len(p)
	return len(p)
}

// peek copies bytes from offset off (from the oldest byte) into p without
// taking them, and returns how many it copied.
func (r *byteRing) peek(off int, p []byte) int {
	if off >= r.n {
		return 0
	}
	p = p[:min(len(p), r.n-off)]
	start := (r.head + off) % len(r.buf)
	k := copy(p, r.buf[start:])
	copy(p[k:], r.buf)
	return len(p)
}

// discard drops the n oldest bytes.
func (r *byteRing) discard(n int) {
	n = min(n, r.n)
	r.n -= n
	r.boundAfterConsuming(n)
	// head moves even when the ring empties: out-of-order bytes may be
	// stored past the held ones (writeAt) and must stay where they are.
	if n > 0 {
		r.head = (r.head + n) % len(r.buf)
	}
}

// boundAfterConsuming moves the bound toward its target (the limit, or
// what memory pressure allows) now that the application consumed n bytes,
// from the ring or where they arrived: down by at most n, so the right
// edge of the window does not move back; up at once when pressure is over.
func (r *byteRing) boundAfterConsuming(n int) {
	if t := r.target(); r.size > t {
		r.shrink(n, t)
	} else if r.size < t {
		r.size = t
	}
}

// read takes up to len(p) of the oldest bytes.
func (r *byteRing) read(p []byte) int {
	n := r.peek(0, p)
	r.discard(n)
	return n
}

// views returns the held bytes in place: a, then b when they wrap.
func (r *byteRing) views() (a, b []byte) {
	if r.n == 0 {
		return nil, nil
	}
	end := r.head + r.n
	if end <= len(r.buf) {
		return r.buf[r.head:end], nil
	}
	return r.buf[r.head:], r.buf[:end-len(r.buf)]
}

// writeAt stores p off bytes past the held bytes without taking it (the
// receive side keeps out-of-order data there until the hole before it
// fills); off+len(p) must not exceed free(). It reports false, storing
// nothing, when the memory limit refuses the ring the memory.
func (r *byteRing) writeAt(off int, p []byte) bool {
	if len(p) == 0 {
		return true
	}
	if !r.reserve(r.n+off+len(p), r.hint()) {
		return false
	}
	pos := (r.head + r.n + off) % len(r.buf)
	k := copy(r.buf[pos:], p)
	copy(r.buf, p[k:])
	return true
}

// commit takes n bytes already stored by writeAt at offset 0.
func (r *byteRing) commit(n int) { r.n += n }

// ringMin is the smallest ring class: a page, a few segments.
const ringMin = 4 << 10

// ringPool is a stack's free ring memory for one kind of ring (send or
// receive), by size class: ringMin, twice that, ... and the largest
// bound autotuning grows a ring to (TCPConfig.SendBufferMax or
// ReceiveBufferMax) as the largest. A ring takes the smallest class that
// holds what it must; released memory is kept for the next ring, up to
// limit bytes (beyond that it is left to the garbage collector), so that
// in steady state no ring allocates.
//
// The memory rings hold (TCPStats.RingBytes, both pools together) is
// bounded by the stack's tcpMem: get refuses what would pass its limit.
// The idle memory kept here is bounded on its own (limit).
type ringPool struct {
	bound   int        // the largest class
	initial int        // a new ring's bound (TCPConfig.SendBuffer or ReceiveBuffer)
	free    [][][]byte // free[k]: idle buffers of class k
	held    int        // bytes in free
	limit   int
	mem     *tcpMem // RingBytes counts what rings hold
	rcv     bool    // receive rings (the window is offered against them)
}

func (p *ringPool) init(initial, bound int, mem *tcpMem, rcv bool) {
	p.initial, p.bound, p.mem, p.rcv = initial, bound, mem, rcv
	p.free = make([][][]byte, p.class(bound)+1)
	p.held = 0
	// Enough for 16 rings of the initial bound or 2 of the largest
	// class (rings autotuning grew), and at least 1 MiB.
	p.limit = max(16*initial, 2*bound, 1<<20)
}

// class returns the smallest class holding n bytes.
func (p *ringPool) class(n int) int {
	k := 0
	for ringMin<<k < min(n, p.bound) {
		k++
	}
	return k
}

// classSize is the capacity of class k.
func (p *ringPool) classSize(k int) int { return min(ringMin<<k, p.bound) }

// get returns memory for a ring that must hold n bytes, or nil if the
// stack's memory limit refuses it.
func (p *ringPool) get(n int) []byte {
	k := p.class(n)
	size := p.classSize(k)
	if !p.mem.fits(size) {
		return nil
	}
	p.mem.took(size)
	if l := p.free[k]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[k] = l[:len(l)-1]
		p.held -= size
		return b
	}
	return make([]byte, size)
}

// put takes back memory get returned. When keeping it would pass the
// pool's limit, idle buffers of smaller classes make room: a bulk
// connection whose ring empties between bursts gives back its largest
// class and takes it again at the next segment, and leftovers of the
// classes it grew through must not push that buffer out (each such miss
// is a fresh allocation of the largest class, several MiB, and a bulk
// receiver can empty its ring thousands of times a second).
func (p *ringPool) put(b []byte) {
	p.mem.gave(len(b))
	k := p.class(len(b))
	if k >= len(p.free) || p.classSize(k) != len(b) || len(b) > p.limit {
		return
	}
	for j := 0; j < k && p.held+len(b) > p.limit; j++ {
		for l := p.free[j]; len(l) > 0 && p.held+len(b) > p.limit; l = p.free[j] {
			p.held -= len(l[len(l)-1])
			l[len(l)-1] = nil
			p.free[j] = l[:len(l)-1]
		}
	}
	if p.held+len(b) > p.limit {
		return
	}
	p.free[k] = append(p.free[k], b)
	p.held += len(b)
}
