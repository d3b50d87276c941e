package nicq

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// TestPoolHeadersAreOffTheHeap: a large pool's buffer headers and free list
// add nothing to the heap the collector marks, and they are unmapped once
// the pool is garbage.
func TestPoolHeadersAreOffTheHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector the headers stay on the heap, where races on them are seen")
	}
	const buffers = 16384
	region := make([]byte, buffers*DefaultFrameSize)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before, mappings := heap(), headerMappings.Load()
	p, err := NewPool(PoolConfig{Name: "offheap", Buffers: buffers, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(heap()) - int64(before)
	onHeap := int64(buffers * (unsafe.Sizeof(Buf{}) + unsafe.Sizeof((*Buf)(nil))))
	if grew > onHeap/10 {
		t.Errorf("NewPool of %d buffers grew the heap by %d bytes; its headers on the heap would be %d", buffers, grew, onHeap)
	}
	// The headers work: every buffer comes out once, in order, and goes back.
	var got []*Buf
	for b := p.Get(); b != nil; b = p.Get() {
		got = append(got, b)
	}
	if len(got) != buffers || p.FrameOffset(got[1]) != DefaultFrameSize {
		t.Fatalf("got %d buffers, the second at offset %d", len(got), p.FrameOffset(got[1]))
	}
	for _, b := range got {
		b.Free()
	}
	if headerMappings.Load() != mappings+1 {
		t.Fatalf("%d header mappings after NewPool, want %d", headerMappings.Load(), mappings+1)
	}
	runtime.KeepAlive(p)
	got, p = nil, nil
	deadline := time.Now().Add(5 * time.Second)
	for headerMappings.Load() > mappings && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := headerMappings.Load(); n != mappings {
		t.Fatalf("%d header mappings after the pool became garbage, want %d", n, mappings)
	}
}
