package mem

import "github.com/mkstack/mkstack/nicq"

// arrival is a received frame waiting in a delay line for its time.
type arrival struct {
	due int64
	seq uint64 // order of entry, to break ties: equal times keep wire order
	buf *nicq.Buf
}

// delayLine holds the frames a receive queue has taken off its links but
// whose arrival time has not come: a binary min-heap by (due, seq) of fixed
// capacity, so it never allocates. It belongs to the receiving core.
type delayLine struct {
	items []arrival // len is the number held, cap the capacity
	seq   uint64
}

func newDelayLine(capacity int) delayLine {
	return delayLine{items: make([]arrival, 0, capacity)}
}

func (d *delayLine) len() int   { return len(d.items) }
func (d *delayLine) full() bool { return len(d.items) == cap(d.items) }

func less(a, b *arrival) bool {
	return a.due < b.due || a.due == b.due && a.seq < b.seq
}

// push adds b to arrive at due. The caller checks full first.
func (d *delayLine) push(due int64, b *nicq.Buf) {
	d.seq++
	d.items = append(d.items, arrival{due: due, seq: d.seq, buf: b})
	h := d.items
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !less(&h[i], &h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

// popDue removes and returns the earliest frame if it is due by now.
func (d *delayLine) popDue(now int64) (*nicq.Buf, bool) {
	h := d.items
	if len(h) == 0 || h[0].due > now {
		return nil, false
	}
	b := h[0].buf
	last := len(h) - 1
	h[0] = h[last]
	h[last] = arrival{}
	h = h[:last]
	d.items = h
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && less(&h[l], &h[m]) {
			m = l
		}
		if r < len(h) && less(&h[r], &h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return b, true
}

// next returns when the earliest frame is due.
func (d *delayLine) next() (int64, bool) {
	if len(d.items) == 0 {
		return 0, false
	}
	return d.items[0].due, true
}
