//go:build linux

package afxdp

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one of an AF_XDP socket's four single-producer single-consumer
// rings in memory shared with the kernel. The side we produce on (fill,
// transmit) keeps a cached copy of the kernel's consumer index and reads
// the real one only when the cache says the ring is full; the side we
// consume (receive, completion) does the same with the producer index, so
// a burst costs one shared-memory load and one store.
type ring struct {
	mem        []byte
	producer   *uint32
	consumer   *uint32
	flags      *uint32
	descs      unsafe.Pointer
	mask       uint32
	size       uint32
	cachedProd uint32
	cachedCons uint32
}

func mapRing(fd int, off unix.XDPRingOffset, pgoff int64, entries uint32, descSize uintptr) (*ring, error) {
	length := int(off.Desc) + int(entries)*int(descSize)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	r := &ring{
		mem:      mem,
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		descs:    unsafe.Pointer(&mem[off.Desc]),
		mask:     entries - 1,
		size:     entries,
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r, nil
}

func (r *ring) unmap() {
	if r != nil && r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
}

// free returns how many entries, up to want, we may produce now.
func (r *ring) free(want uint32) uint32 {
	n := r.size - (r.cachedProd - r.cachedCons)
	if n < want {
		r.cachedCons = atomic.LoadUint32(r.consumer)
		n = r.size - (r.cachedProd - r.cachedCons)
	}
	return min(n, want)
}

// submit publishes n produced entries.
func (r *ring) submit(n uint32) {
	r.cachedProd += n
	atomic.StoreUint32(r.producer, r.cachedProd)
}

// available returns how many entries, up to want, we may consume now.
func (r *ring) available(want uint32) uint32 {
	n := r.cachedProd - r.cachedCons
	if n < want {
		r.cachedProd = atomic.LoadUint32(r.producer)
		n = r.cachedProd - r.cachedCons
	}
	return min(n, want)
}

// release gives n consumed entries back.
func (r *ring) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// nonEmpty reports whether the kernel produced entries we have not consumed.
func (r *ring) nonEmpty() bool { return atomic.LoadUint32(r.producer) != r.cachedCons }

// unconsumed reports whether the kernel has entries we produced still to
// consume.
func (r *ring) unconsumed() bool { return atomic.LoadUint32(r.consumer) != r.cachedProd }

func (r *ring) needWakeup() bool { return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0 }

// addr is entry i of a fill or completion ring (a UMEM address).
func (r *ring) addr(i uint32) *uint64 {
	return (*uint64)(unsafe.Add(r.descs, uintptr(i&r.mask)*8))
}

// desc is entry i of a receive or transmit ring.
func (r *ring) desc(i uint32) *unix.XDPDesc {
	return (*unix.XDPDesc)(unsafe.Add(r.descs, uintptr(i&r.mask)*unsafe.Sizeof(unix.XDPDesc{})))
}
