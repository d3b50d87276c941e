package nicq

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Where a pool's buffer headers live, and why.
//
// A pool's []Buf and its free list hold pointers (each Buf's frame and pool,
// each free slot's *Buf), so on the Go heap the collector marks all of them
// on every cycle: 16 384 buffers are 1.2 MB of pointerful memory per pool,
// and marking it was most of the 1-4 ms mark phases that set the p99 of a
// lone net/http connection (docs/ARCHITECTURE.md, "What the collector
// marks"). Nothing in them needs marking: every object they point to, the
// frames' region and the Pool itself, is kept alive by the Pool, and a Buf
// is only valid while its Pool is reachable. So the headers and the free
// list live in one anonymous mapping the collector never scans, and the
// mapping is unmapped by a cleanup when the Pool becomes unreachable.
//
// Under the race detector they stay on the heap: the race runtime only
// tracks heap memory, and races on buffer headers are the ones worth
// finding.

// headerMappings counts the pools' header mappings not yet unmapped.
var headerMappings atomic.Int64

// poolHeaders is where NewPool gets a pool's headers and free list.
func poolHeaders(n int) (bufs []Buf, free []*Buf, mapping []byte, err error) {
	if raceEnabled {
		return make([]Buf, n), make([]*Buf, n), nil, nil
	}
	bufBytes := n * int(unsafe.Sizeof(Buf{}))
	size := bufBytes + n*int(unsafe.Sizeof((*Buf)(nil)))
	mapping, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nicq: mapping %d bytes of buffer headers: %w", size, err)
	}
	headerMappings.Add(1)
	// The mapping is page-aligned and sizeof(Buf) is a multiple of 8, so
	// both arrays are aligned for their pointers.
	bufs = unsafe.Slice((*Buf)(unsafe.Pointer(&mapping[0])), n)
	free = unsafe.Slice((**Buf)(unsafe.Pointer(&mapping[bufBytes])), n)
	return bufs, free, mapping, nil
}

// releaseHeadersWhenUnreachable unmaps mapping once p is garbage.
func releaseHeadersWhenUnreachable(p *Pool, mapping []byte) {
	if mapping == nil {
		return
	}
	runtime.AddCleanup(p, unmapHeaders, mapping)
}

func unmapHeaders(mapping []byte) {
	// The headers' only users were reached through the pool, which is
	// gone; an error here would mean the mapping was never ours.
	if err := unix.Munmap(mapping); err != nil {
		panic(fmt.Sprintf("nicq: unmapping buffer headers: %v", err))
	}
	headerMappings.Add(-1)
}
