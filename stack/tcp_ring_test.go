package stack

import "testing"

// TestRingPoolKeepsItsLargestClass: a pool at its limit with buffers of
// small classes still takes back a buffer of the largest class, dropping
// small ones to make room, so a bulk receiver that empties its ring and
// takes it again finds it there instead of allocating several MiB each
// time.
func TestRingPoolKeepsItsLargestClass(t *testing.T) {
	var st TCPStats
	mem := &tcpMem{stats: &st, limit: 1 << 40}
	var p ringPool
	const bound = 4 << 20
	p.init(64<<10, bound, mem, true)
	var small [][]byte
	for n := 0; n < p.limit; n += ringMin << 3 {
		b := p.get(ringMin << 3)
		if b == nil {
			t.Fatal("memory refused")
		}
		small = append(small, b)
	}
	// Return the small buffers; the pool keeps them up to its limit.
	for _, b := range small {
		p.put(b)
	}
	if p.held < p.limit-ringMin<<3 {
		t.Fatalf("the pool holds %d bytes of small buffers, want about its limit %d", p.held, p.limit)
	}
	big := p.get(bound)
	if len(big) != bound {
		t.Fatalf("got %d bytes, want %d", len(big), bound)
	}
	p.put(big)
	if p.held > p.limit {
		t.Fatalf("pool holds %d bytes, over its limit %d", p.held, p.limit)
	}
	allocs := testing.AllocsPerRun(100, func() {
		b := p.get(bound)
		p.put(b)
	})
	if allocs != 0 {
		t.Fatalf("taking and giving back the largest class allocates %.0f times: the pool dropped it", allocs)
	}
}
