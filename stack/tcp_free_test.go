package stack

import (
	"testing"
	"time"
)

// TestTimeWaitBurstIsReusedWithoutAllocating: thousands of TIME-WAITs
// that run out together all go on the free list, so the next thousands
// of dials allocate no TCPConn (a list capped at 1024 dropped the rest,
// and a tcp-crr run allocated them again the next moment: the GCs the
// bench counted); and once churn stops, the trims give all but freeKeep
// of them back within seconds.
func TestTimeWaitBurstIsReusedWithoutAllocating(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and nicq's debug checks allocate")
	}
	// TIME-WAIT lasts 200 ms, longer than a round of dials takes.
	m := tcpBenchPair(t, func(c *Config) { c.TCP.MSL = 100 * time.Millisecond }, echoServer)
	a := m.stacks[0]
	const n = 3 * freeKeep
	closed := 0
	handler := func(c *TCPConn, ev TCPEvent) {
		if ev == TCPEventEstablished {
			c.Close() // the client closes first: the TIME-WAIT is a's
			closed++
		}
	}
	round := func() {
		// In batches the wire's 32-frame queues hold.
		for range n / 16 {
			want := closed + 16
			for range 16 {
				if _, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: handler}); err != nil {
					t.Fatal(err)
				}
			}
			if !runUntil(m, func() bool { return closed >= want }, 10) {
				t.Fatalf("%d of 16 dials closed", closed-want+16)
			}
		}
		if !runUntil(m, func() bool { return a.TCPStats().TimeWait >= n }, 10) {
			t.Fatalf("%d of %d connections in TIME-WAIT", a.TCPStats().TimeWait, n)
		}
		// Every TIME-WAIT runs out in the same Advance.
		m.clock.Advance(300 * time.Millisecond)
		m.step()
		if tw := a.TCPStats().TimeWait; tw != 0 {
			t.Fatalf("%d connections still in TIME-WAIT", tw)
		}
	}
	round() // the table grows to n connections once
	if got := len(a.tcp.free); got < n {
		t.Fatalf("%d of the %d closed connections on the free list", got, n)
	}
	// A TCPConn is six allocations (itself and its timers' method
	// values): a list that kept 1024 would show 12 000. What remains is
	// the connection map's occasional rehash of its tombstones (0 to 13
	// in a round).
	if allocs := testing.AllocsPerRun(2, round); allocs > 64 {
		t.Errorf("a round of %d dials allocated %.0f times", n, allocs)
	}
	for range 8 {
		m.clock.Advance(freeTrimEvery)
		m.step()
	}
	if got := len(a.tcp.free); got > freeKeep+freeKeep/4 {
		t.Errorf("%d connections still free 8 s after the churn stopped, want about %d", got, freeKeep)
	}
}
