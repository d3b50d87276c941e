package core

import (
	"runtime"
	"testing"
	"time"
)

// pingPong runs an echo server on runtime A and a client on runtime B
// that sends each reply straight back, from flows ports, until stopped
// (budget 0). It returns the client once the first round trip of every
// port is done.
func pingPong(t testing.TB, a, b *Runtime, flows int) *client {
	t.Helper()
	serveEcho(t, a)
	cl := newClient(t, b, flows)
	for i := range min(flows, b.NumCores()) {
		cl.send(t, i, 1, 64) // ARP on every client core
	}
	cl.waitReplies(t, int64(min(flows, b.NumCores())), a)
	cl.budget.Store(1 << 62)
	for i := range flows {
		cl.send(t, i, 1, 64)
	}
	return cl
}

// waitCount waits, without allocating, until n replies have arrived.
func (cl *client) waitCount(t testing.TB, n int64) {
	deadline := time.Now().Add(20 * time.Second)
	for cl.replies.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out at %d of %d replies", cl.replies.Load(), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestSteadyStateEchoesDoNotAllocate counts the heap allocations of the
// whole process while thousands of datagrams go round between two runtimes
// (four cores: rx, stack, echo handler, tx, and the client's resend):
// nothing on that path may allocate.
func TestSteadyStateEchoesDoNotAllocate(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and the mkstackdebug buffer checks allocate")
	}
	w := newWire(t, 2)
	a := start(t, w.NIC(0), addrA, nil)
	b := start(t, w.NIC(1), addrB, nil)
	cl := pingPong(t, a, b, 8)
	cl.waitCount(t, 5000) // warm up: every socket, neighbour and ring in use
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r0 := cl.replies.Load()
	cl.waitCount(t, r0+20000)
	runtime.ReadMemStats(&m1)
	r1 := cl.replies.Load()
	cl.budget.Store(0)
	mallocs := m1.Mallocs - m0.Mallocs
	echoes := r1 - r0
	t.Logf("%d mallocs over %d echoes", mallocs, echoes)
	// A handful of allocations by the Go runtime itself (a timer, the
	// ReadMemStats) may land in the window; one per 1000 echoes would be
	// a leak on the data path.
	if mallocs > 20 {
		t.Fatalf("%d heap allocations over %d echoes (%.4f per echo): the data path allocates", mallocs, echoes, float64(mallocs)/float64(echoes))
	}
}
