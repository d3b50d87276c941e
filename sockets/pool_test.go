package sockets

import (
	"io"
	"runtime"
	"testing"
)

// TestConnectionQueuesAreReused: a connection's read and write queues (48
// KiB) go back to their pools when both the application and the core are
// done with them, so opening and closing connections one after another
// allocates a small fraction of that per connection (it failed with 48 KiB
// and more before the pools).
func TestConnectionQueuesAreReused(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop a share of what it is given")
	}
	// The stack's own rings come from its pools as bytes need them and
	// go back at TIME-WAIT, so what is left per connection is the queues'.
	srv, cli := pair(t, 1)
	l, err := srv.Listen("tcp", ":12")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(buf)
				}
				io.Copy(io.Discard, c) // until the client's FIN
			}()
		}
	}()
	msg := make([]byte, 64)
	cycle := func() {
		c, err := cli.Dial("tcp", "10.0.0.1:12")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for range 100 {
		cycle()
	}
	const n = 300
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		cycle()
	}
	runtime.ReadMemStats(&after)
	perConn := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per connection (client and server sides)", perConn)
	if perConn > 24<<10 {
		t.Errorf("%d bytes allocated per connection, both sides; the queues alone are 2 x 48 KiB", perConn)
	}
}
