package nicq

import (
	"errors"
	"fmt"
)

// Sizes of a pool's frames.
const (
	// MinHeadroom is the least headroom a pool gives each buffer: room for
	// an Ethernet header with a VLAN tag, an IPv4 header with options and
	// a TCP header with most options, prepended without a copy.
	MinHeadroom = 128
	// DefaultHeadroom is the headroom of a pool configured with 0.
	DefaultHeadroom = MinHeadroom
	// DefaultFrameSize is the frame size of a pool configured with 0: 2 KiB
	// holds the default headroom and a full 1500-byte-MTU frame, and it is
	// the usual AF_XDP UMEM frame size.
	DefaultFrameSize = 2048
	// MaxFrameSize bounds a frame; offsets in a Buf are 32-bit.
	MaxFrameSize = 1 << 30
)

// ErrInvalidConfig is wrapped by the errors of constructors given a
// configuration they cannot build. Match it with errors.Is.
var ErrInvalidConfig = errors.New("nicq: invalid configuration")

// PoolConfig describes a Pool for NewPool.
type PoolConfig struct {
	// Name identifies the pool in panics and statistics, for example
	// "eth0/q1".
	Name string
	// Buffers is the pool's fixed capacity, at least 1.
	Buffers int
	// FrameSize is the bytes of memory per buffer, headroom included;
	// 0 means DefaultFrameSize.
	FrameSize int
	// Headroom is the bytes in front of an empty buffer's data, at least
	// MinHeadroom and less than FrameSize; 0 means DefaultHeadroom.
	Headroom int
	// Region, if set, is the memory the frames are carved from: buffer i
	// is Region[i*FrameSize : (i+1)*FrameSize]. A driver passes its DMA or
	// AF_XDP UMEM area here so that a Buf is a view of a NIC-visible frame.
	// It must hold Buffers*FrameSize bytes. Nil means the pool allocates its
	// own.
	Region []byte
}

// PoolStats are a pool's counters.
type PoolStats struct {
	Gets       uint64 // buffers handed out
	Puts       uint64 // buffers returned
	EmptyFails uint64 // Get calls, and GetBatch calls that came up short, that found the pool empty
	InUse      int    // buffers handed out and not yet returned
	Capacity   int    // buffers the pool owns
}

// Pool is a fixed set of packet buffers of one size, owned by one core.
//
// Get and Put are O(1): the free buffers are a stack (the most recently
// freed buffer, still warm in the cache, is reused first). There is no
// synchronization at all, because a pool belongs to one core: only the
// goroutine of that core may call Get, GetBatch, Put and Buf.Free on it.
// Debug builds enforce this once the owner has called Claim.
//
// A pool never grows and never allocates after NewPool. When it is empty Get
// returns nil and counts the failure, like a NIC with no free descriptors;
// the caller drops the packet.
//
// A Buf is valid only while its Pool is reachable: the buffer headers live
// outside the Go heap, where the collector does not mark them on every
// cycle, and they are unmapped once the Pool is garbage. Whoever holds
// buffers holds their pool too (a driver its queues' pools, a test the pool
// it made).
type Pool struct {
	free      []*Buf // the free buffers; len is how many, cap the capacity
	frameSize int
	headroom  int
	stats     PoolStats

	bufs   []Buf
	region []byte
	name   string
	dbg    poolDebug //lint:ignore U1000 read by the mkstackdebug build
}

// NewPool builds a pool as c describes.
func NewPool(c PoolConfig) (*Pool, error) {
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	switch {
	case c.Buffers < 1:
		return nil, fmt.Errorf("%w: pool %q: %d buffers, need at least 1", ErrInvalidConfig, c.Name, c.Buffers)
	case c.FrameSize < 0 || c.FrameSize > MaxFrameSize:
		return nil, fmt.Errorf("%w: pool %q: frame size %d outside 1..%d", ErrInvalidConfig, c.Name, c.FrameSize, MaxFrameSize)
	case c.Headroom < MinHeadroom || c.Headroom >= c.FrameSize:
		return nil, fmt.Errorf("%w: pool %q: headroom %d, need %d to %d (below the frame size)", ErrInvalidConfig, c.Name, c.Headroom, MinHeadroom, c.FrameSize-1)
	case c.Buffers > (1<<62)/c.FrameSize:
		return nil, fmt.Errorf("%w: pool %q: %d buffers of %d bytes overflow", ErrInvalidConfig, c.Name, c.Buffers, c.FrameSize)
	}
	size := c.Buffers * c.FrameSize
	region := c.Region
	if region == nil {
		region = make([]byte, size)
	} else if len(region) < size {
		return nil, fmt.Errorf("%w: pool %q: region of %d bytes, %d buffers of %d bytes need %d", ErrInvalidConfig, c.Name, len(region), c.Buffers, c.FrameSize, size)
	}
	// The frames' capacities reach the end of the region (see Buf.frame),
	// so the region is cut to its length first: cap(region) is then exactly
	// the offset origin.
	region = region[:len(region):len(region)]

	bufs, free, mapping, err := poolHeaders(c.Buffers)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", c.Name, err)
	}
	p := &Pool{
		free:      free,
		frameSize: c.FrameSize,
		headroom:  c.Headroom,
		bufs:      bufs,
		region:    region,
		name:      c.Name,
	}
	releaseHeadersWhenUnreachable(p, mapping)
	p.stats.Capacity = c.Buffers
	for i := range p.bufs {
		b := &p.bufs[i]
		lo := i * c.FrameSize
		b.frame = region[lo : lo+c.FrameSize]
		b.pool = p
		b.state = bufFree
		if debugChecks {
			b.debugPoison()
		}
		// Hand out low frames first: the stack is popped from its end.
		p.free[c.Buffers-1-i] = b
	}
	return p, nil
}

// Get returns a buffer, empty with the full headroom and cleared metadata,
// or nil when the pool is empty. Owner core only.
func (p *Pool) Get() *Buf {
	if debugChecks {
		p.debugCheckOwner("Get")
	}
	n := len(p.free) - 1
	if n < 0 {
		p.stats.EmptyFails++
		return nil
	}
	b := p.free[n]
	p.free = p.free[:n]
	p.stats.Gets++
	if debugChecks {
		b.debugGet()
	}
	b.reset()
	return b
}

// GetBatch fills bufs with buffers as Get returns them and returns how many
// it got: len(bufs), or fewer when the pool runs out. Owner core only.
func (p *Pool) GetBatch(bufs []*Buf) int {
	if debugChecks {
		p.debugCheckOwner("GetBatch")
	}
	n := min(len(bufs), len(p.free))
	if n < len(bufs) {
		p.stats.EmptyFails++
	}
	top := len(p.free)
	for i := range n {
		b := p.free[top-1-i]
		if debugChecks {
			b.debugGet()
		}
		b.reset()
		bufs[i] = b
	}
	p.free = p.free[:top-n]
	p.stats.Gets += uint64(n)
	return n
}

// Put returns b to the pool; it is b.Free for a caller that holds the pool.
// It panics if b belongs to another pool. Owner core only.
func (p *Pool) Put(b *Buf) {
	if b.pool != p {
		panic(fmt.Sprintf("nicq: Put of %v to pool %q: a buffer goes back to its own pool (Buf.Free)", b, p.name))
	}
	p.put(b, "Put")
}

func (p *Pool) put(b *Buf, op string) {
	if debugChecks {
		p.debugCheckOwner(op)
		b.debugPut(op)
	}
	if len(p.free) == cap(p.free) {
		// More returns than the pool has buffers: a buffer was freed twice.
		// Caught here in every build because appending would grow the free
		// list and hand one frame out twice later.
		panicOverflow(p, b, op)
	}
	p.free = append(p.free, b)
	p.stats.Puts++
}

//go:noinline
func panicOverflow(p *Pool, b *Buf, op string) {
	panic(fmt.Sprintf("nicq: %s of %v: pool %q already holds all %d of its buffers; this is a double free (build with -tags mkstackdebug to catch it at the second free)", op, b, p.name, cap(p.free)))
}

// Claim makes the calling goroutine the pool's owner. In debug builds every
// later Get, GetBatch, Put and Free from another goroutine panics, which
// catches a buffer freed by the wrong core; in other builds Claim does
// nothing. A core claims its pools when it starts; a pool handed to another
// core is claimed again by that core.
func (p *Pool) Claim() {
	if debugChecks {
		p.debugClaim()
	}
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Cap returns the number of buffers the pool owns.
func (p *Pool) Cap() int { return cap(p.free) }

// Available returns the number of free buffers.
func (p *Pool) Available() int { return len(p.free) }

// InUse returns the number of buffers handed out and not yet returned.
func (p *Pool) InUse() int { return cap(p.free) - len(p.free) }

// FrameSize returns the bytes of memory per buffer, headroom included.
func (p *Pool) FrameSize() int { return p.frameSize }

// Headroom returns the headroom of an empty buffer.
func (p *Pool) Headroom() int { return p.headroom }

// Stats returns the pool's counters. The counters are plain fields written
// by the owner core, so only the owner may call Stats (a core publishes
// them with its other metrics).
func (p *Pool) Stats() PoolStats {
	s := p.stats
	s.InUse = p.InUse()
	return s
}

// Region returns the memory the frames are carved from.
func (p *Pool) Region() []byte { return p.region }

// FrameOffset returns the offset of b's frame in the pool's region (for
// AF_XDP, the UMEM address a descriptor carries). It panics if b is not one
// of the pool's buffers.
func (p *Pool) FrameOffset(b *Buf) int {
	if b.pool != p {
		panic(fmt.Sprintf("nicq: FrameOffset of %v in pool %q", b, p.name))
	}
	return cap(p.region) - cap(b.frame)
}

// FrameAt returns the buffer whose frame starts at offset in the region, or
// nil if no frame starts there. It is how a driver maps an address the NIC
// returns back to the Buf that it posted; it does not change who owns it.
func (p *Pool) FrameAt(offset int) *Buf {
	if offset < 0 || offset%p.frameSize != 0 || offset/p.frameSize >= len(p.bufs) {
		return nil
	}
	return &p.bufs[offset/p.frameSize]
}

func (p *Pool) frameIndex(b *Buf) int {
	return (cap(p.region) - cap(b.frame)) / p.frameSize
}
