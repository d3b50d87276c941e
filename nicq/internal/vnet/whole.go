package vnet

import "github.com/mkstack/mkstack/nicq"

// MaxLargeFrame is the largest large frame a driver takes whole or cuts.
const MaxLargeFrame = nicq.MaxLargeFrameLen

// largeBuffers is the number of buffers of a queue's large pool. The
// stack copies a TCP segment's payload out during Input, so a large buffer
// comes back within the burst that brought it: a burst of 64 frames, all
// large, is the most a queue needs at once.
const largeBuffers = 64

// largeFrameSize holds the default headroom and the largest frame with its
// virtio-net header.
const largeFrameSize = nicq.DefaultHeadroom + HdrLen + MaxLargeFrame

// Whole is where a driver makes a large frame whole (virtio-net header
// first) and, for a TCP segment the kernel vouches for, hands it to the
// stack as it is: GRO's result, without GRO's work, and one copy fewer
// than cutting it (Segmenter). Its memory is a spare buffer of a pool of
// large buffers (made on first use, on the core that drives the queue,
// which claims it), or, while that pool is dry, a scratch buffer whose
// frames the driver cuts. The zero value is ready. It belongs to the
// queue's core.
type Whole struct {
	pool    *nicq.Pool
	spare   *nicq.Buf
	room    []byte // spare's data area, from the virtio-net header on
	scratch []byte
	taken   uint64
}

// Room returns the memory the next large frame is to be made whole in,
// MaxLargeFrame bytes behind its virtio-net header. name names the large
// pool (the queue's pool's name and "/large"). The memory stays the same
// until Take hands it over, so a Segmenter may cut a frame from it as
// long as Room is not called again meanwhile.
func (w *Whole) Room(name string) []byte {
	if w.spare == nil {
		if w.pool == nil {
			if p, err := nicq.NewPool(nicq.PoolConfig{Name: name + "/large", Buffers: largeBuffers, FrameSize: largeFrameSize}); err == nil {
				p.Claim()
				w.pool = p
			}
		}
		if w.pool != nil {
			if w.spare = w.pool.Get(); w.spare != nil {
				w.room = w.spare.Append(HdrLen + MaxLargeFrame)
			}
		}
	}
	if w.spare != nil {
		return w.room
	}
	if w.scratch == nil {
		w.scratch = make([]byte, HdrLen+MaxLargeFrame)
	}
	return w.scratch
}

// TakesWhole reports whether a frame with header h goes to the stack
// whole: a TCP segment of a local sender's TSO, or of a NIC's GRO, whose
// checksum the kernel vouches for. The stack takes a TCP segment of any
// length its receive window admits; UDP's segments are datagrams of their
// own and are cut.
func TakesWhole(h Hdr) bool {
	typ := h.GSOType &^ GSOECN
	return (typ == GSOTCPv4 || typ == GSOTCPv6) && h.Flags&(FlagNeedsCsum|FlagDataValid) != 0
}

// Take hands over the large frame of n bytes (with its virtio-net header)
// made whole in Room's memory, as a buffer marked from queue, counted in
// c, if it goes whole (TakesWhole) and the memory is a large buffer.
// Otherwise it returns nil and the driver cuts the frame.
func (w *Whole) Take(n, queue int, c *nicq.Counters) *nicq.Buf {
	h, ok := Parse(w.room)
	if w.spare == nil || !ok || !TakesWhole(h) || n < HdrLen+nicq.EthernetHeaderLen || n > len(w.room) {
		return nil
	}
	b := w.spare
	w.spare, w.room = nil, nil
	b.Truncate(n)
	b.Pull(HdrLen)
	b.Flags = h.BufFlags()
	b.RxQueue = uint16(queue)
	w.taken++
	c.RxPackets++
	c.RxBytes += uint64(n - HdrLen)
	return b
}

// Taken returns how many large frames went to the stack whole.
func (w *Whole) Taken() uint64 { return w.taken }

// Pool returns the large pool, nil before the first large frame (tests
// take its buffers to see the frames cut).
func (w *Whole) Pool() *nicq.Pool { return w.pool }

// DropSpare gives the spare buffer back to the large pool (tests, to
// leave the pool's buffers all to the caller).
func (w *Whole) DropSpare() {
	if w.spare != nil {
		w.spare.Free()
		w.spare, w.room = nil, nil
	}
}
