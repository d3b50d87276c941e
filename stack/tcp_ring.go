package stack

// byteRing is a fixed ring of bytes: a connection's send or receive buffer.
// Its memory is allocated at the first byte stored, not with the
// connection, so that half-open connections (a SYN flood fills a SYN queue
// with them) cost no buffer; a connection taken from the free list keeps
// the memory it had. Nothing after that allocates.
type byteRing struct {
	buf  []byte
	size int // capacity, whether or not buf is allocated yet
	head int // index of the oldest byte
	n    int // bytes held
}

func (r *byteRing) init(size int) {
	r.size = size
	if len(r.buf) != size {
		r.buf = nil
	}
}

func (r *byteRing) alloc() {
	if r.buf == nil {
		r.buf = make([]byte, r.size)
	}
}

func (r *byteRing) len() int  { return r.n }
func (r *byteRing) free() int { return r.size - r.n }

// write appends as much of p as fits and returns how much did.
func (r *byteRing) write(p []byte) int {
	p = p[:min(len(p), r.free())]
	if len(p) == 0 {
		return 0
	}
	r.alloc()
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
	// head moves even when the ring empties: out-of-order bytes may be
	// stored past the held ones (writeAt) and must stay where they are.
	if n > 0 {
		r.head = (r.head + n) % len(r.buf)
	}
}

// read takes up to len(p) of the oldest bytes.
func (r *byteRing) read(p []byte) int {
	n := r.peek(0, p)
	r.discard(n)
	return n
}

// reset empties the ring, keeping its memory.
func (r *byteRing) reset() { r.head, r.n = 0, 0 }

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
// fills); off+len(p) must not exceed free().
func (r *byteRing) writeAt(off int, p []byte) {
	if len(p) == 0 {
		return
	}
	r.alloc()
	pos := (r.head + r.n + off) % len(r.buf)
	k := copy(r.buf[pos:], p)
	copy(r.buf, p[k:])
}

// commit takes n bytes already stored by writeAt at offset 0.
func (r *byteRing) commit(n int) { r.n += n }
