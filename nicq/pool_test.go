package nicq_test

import (
	"errors"
	"testing"

	"github.com/mkstack/mkstack/nicq"
)

func TestPoolCountsGetsPutsEmptyFailsAndInUse(t *testing.T) {
	p := newPool(t, 3)
	var bufs []*nicq.Buf
	for range 3 {
		b := p.Get()
		if b == nil {
			t.Fatal("Get returned nil from a pool with free buffers")
		}
		bufs = append(bufs, b)
	}
	if b := p.Get(); b != nil {
		t.Fatalf("Get from an empty pool returned %v", b)
	}
	if b := p.Get(); b != nil {
		t.Fatalf("Get from an empty pool returned %v", b)
	}
	want := nicq.PoolStats{Gets: 3, EmptyFails: 2, InUse: 3, Capacity: 3}
	if s := p.Stats(); s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
	bufs[1].Free()
	p.Put(bufs[0])
	want = nicq.PoolStats{Gets: 3, Puts: 2, EmptyFails: 2, InUse: 1, Capacity: 3}
	if s := p.Stats(); s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
	if p.Available() != 2 || p.InUse() != 1 || p.Cap() != 3 {
		t.Fatalf("Available %d InUse %d Cap %d, want 2 1 3", p.Available(), p.InUse(), p.Cap())
	}
	bufs[2].Free()
}

func TestPoolReusesTheMostRecentlyFreedBufferFirst(t *testing.T) {
	p := newPool(t, 4)
	a, b := p.Get(), p.Get()
	a.Free()
	b.Free()
	if got := p.Get(); got != b {
		t.Fatalf("Get returned %v, want the last freed %v (still warm in the cache)", got, b)
	}
	if got := p.Get(); got != a {
		t.Fatalf("Get returned %v, want %v", got, a)
	}
	a.Free()
	b.Free()
}

func TestPoolBuffersAreDistinctFrames(t *testing.T) {
	p := newPool(t, 16)
	seen := map[*byte]bool{}
	var bufs []*nicq.Buf
	for range 16 {
		b := p.Get()
		b.Append(1)[0] = 1
		if seen[&b.Bytes()[0]] {
			t.Fatalf("%v shares its frame with another buffer", b)
		}
		seen[&b.Bytes()[0]] = true
		bufs = append(bufs, b)
	}
	nicq.FreeAll(bufs)
	for i, b := range bufs {
		if b != nil {
			t.Fatalf("FreeAll left entry %d", i)
		}
	}
	if p.InUse() != 0 {
		t.Fatalf("%d in use after FreeAll", p.InUse())
	}
}

func TestPoolGetBatchStopsWhenEmpty(t *testing.T) {
	p := newPool(t, 5)
	bufs := make([]*nicq.Buf, 4)
	if n := p.GetBatch(bufs); n != 4 {
		t.Fatalf("GetBatch got %d of 4 from a pool of 5", n)
	}
	for _, b := range bufs {
		if b.Len() != 0 || b.Headroom() != nicq.DefaultHeadroom {
			t.Fatalf("GetBatch returned a buffer not reset: %v", b)
		}
	}
	more := make([]*nicq.Buf, 4)
	if n := p.GetBatch(more); n != 1 {
		t.Fatalf("GetBatch got %d, want the 1 left", n)
	}
	if s := p.Stats(); s.Gets != 5 || s.EmptyFails != 1 || s.InUse != 5 {
		t.Fatalf("stats %+v, want 5 gets, 1 empty fail, 5 in use", s)
	}
	nicq.FreeAll(bufs)
	nicq.FreeAll(more[:1])
}

func TestPutOfAnotherPoolsBufferPanics(t *testing.T) {
	p, q := newPool(t, 1), newPool(t, 1)
	b := q.Get()
	mustPanic(t, "a buffer goes back to its own pool", func() { p.Put(b) })
	b.Free()
	if p.Available() != 1 || q.Available() != 1 {
		t.Fatalf("pools hold %d and %d, want 1 and 1", p.Available(), q.Available())
	}
}

// TestDoubleFreePanicsInEveryBuild: a pool that is handed back more buffers
// than it owns must not grow its free list (that would hand one frame to two
// owners later). Debug builds catch the double free sooner, at the second
// Free of any pool; this catches it in a normal build when the pool is full.
func TestDoubleFreePanicsInEveryBuild(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	b.Free()
	mustPanic(t, "double free", func() { b.Free() })
	if p.Available() != 1 {
		t.Fatalf("pool holds %d after a refused double free, want 1", p.Available())
	}
}

func TestNewPoolRejectsBadConfigurations(t *testing.T) {
	cases := []struct {
		name string
		c    nicq.PoolConfig
	}{
		{"no buffers", nicq.PoolConfig{}},
		{"negative buffers", nicq.PoolConfig{Buffers: -1}},
		{"small headroom", nicq.PoolConfig{Buffers: 1, Headroom: 64}},
		{"headroom fills frame", nicq.PoolConfig{Buffers: 1, FrameSize: 256, Headroom: 256}},
		{"negative frame", nicq.PoolConfig{Buffers: 1, FrameSize: -2048}},
		{"huge frame", nicq.PoolConfig{Buffers: 1, FrameSize: nicq.MaxFrameSize + 1}},
		{"short region", nicq.PoolConfig{Buffers: 2, Region: make([]byte, 2*nicq.DefaultFrameSize-1)}},
		{"overflow", nicq.PoolConfig{Buffers: 1 << 40, FrameSize: 1 << 30}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := nicq.NewPool(c.c)
			if !errors.Is(err, nicq.ErrInvalidConfig) {
				t.Fatalf("NewPool(%+v) = %v, %v; want an error wrapping ErrInvalidConfig", c.c, p, err)
			}
		})
	}
}

// TestPoolCarvesFramesFromAGivenRegion is what an AF_XDP driver relies on:
// each Buf is a view of one frame of the UMEM, and the frame's offset in it
// maps back to the Buf.
func TestPoolCarvesFramesFromAGivenRegion(t *testing.T) {
	const frames, size, headroom = 4, 512, 256
	region := make([]byte, frames*size+100) // larger than needed, as a UMEM may be
	p, err := nicq.NewPool(nicq.PoolConfig{Name: "umem", Buffers: frames, FrameSize: size, Headroom: headroom, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[int]bool{}
	var bufs []*nicq.Buf
	for range frames {
		b := p.Get()
		off := p.FrameOffset(b)
		if off%size != 0 || off < 0 || off >= frames*size || offsets[off] {
			t.Fatalf("FrameOffset %d: not a distinct frame boundary", off)
		}
		offsets[off] = true
		if p.FrameAt(off) != b {
			t.Fatalf("FrameAt(%d) is not the buffer at that offset", off)
		}
		copy(b.Append(3), "xyz")
		if string(region[off+headroom:off+headroom+3]) != "xyz" {
			t.Fatalf("data written to %v is not at region[%d+%d]", b, off, headroom)
		}
		if b.Tailroom() != size-headroom-3 {
			t.Fatalf("tailroom %d, want %d", b.Tailroom(), size-headroom-3)
		}
		bufs = append(bufs, b)
	}
	for _, off := range []int{-size, 1, size / 2, frames * size} {
		if b := p.FrameAt(off); b != nil {
			t.Fatalf("FrameAt(%d) = %v, want nil", off, b)
		}
	}
	nicq.FreeAll(bufs)
}

func TestPoolGetPutAllocatesNothing(t *testing.T) {
	p := newPool(t, 32)
	bufs := make([]*nicq.Buf, 32)
	allocs := testing.AllocsPerRun(1000, func() {
		b := p.Get()
		p.Put(b)
		n := p.GetBatch(bufs)
		if p.Get() != nil { // an empty-pool failure must not allocate either
			panic("pool not empty")
		}
		nicq.FreeAll(bufs[:n])
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Get/Put/GetBatch/FreeAll, want 0", allocs)
	}
}

func BenchmarkPoolGetPut(b *testing.B) {
	p := newPool(b, 1024)
	b.ReportAllocs()
	for b.Loop() {
		p.Get().Free()
	}
}

func BenchmarkPoolGetBatchFree32(b *testing.B) {
	p := newPool(b, 1024)
	bufs := make([]*nicq.Buf, 32)
	b.ReportAllocs()
	for b.Loop() {
		n := p.GetBatch(bufs)
		for _, buf := range bufs[:n] {
			buf.Free()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(32*b.N), "ns/buf")
}
