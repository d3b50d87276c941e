package sockets

import (
	"io"
	"net"
	"runtime"
	"testing"
)

// TestRequestResponseConnectionsHoldSmallQueues opens connections that
// each carry a small request and response and stay open: every one must
// still have only its small queues (no bulk side moved to a big one), and
// the heap they hold, both ends together, must stay under a bound a
// connection with 48 KiB of queues per end could not meet.
func TestRequestResponseConnectionsHoldSmallQueues(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 300
	accepted := make(chan net.Conn, n)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 100)
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(buf)
			}
			accepted <- c
		}
	}()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	// One connection first, so the pools and tables exist before the count.
	var conns []net.Conn
	open := func() {
		c, err := cli.Dial("tcp", serverAddr.String()+":9")
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 100)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c, <-accepted)
	}
	open()
	before := heap()
	for range n {
		open()
	}
	per := float64(heap()-before) / n
	for _, c := range conns {
		sc := c.(*conn)
		if sc.wqBig.Load() != nil || sc.rqBig.Load() != nil {
			t.Fatalf("a connection that carried 100 bytes each way moved to a big queue")
		}
	}
	t.Logf("%.1f KiB of heap per connection, both ends", per/1024)
	// Both ends: 2 × (8 KiB of queues, the conn, the stack's TCPConn and
	// its rings while bytes wait) and the test's own buffers.
	const maxKiB = 40
	if per > maxKiB*1024 {
		t.Errorf("%.1f KiB of heap per connection (both ends); want at most %d", per/1024, maxKiB)
	}
	for _, c := range conns {
		c.Close()
	}
}
