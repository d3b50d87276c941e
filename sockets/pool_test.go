package sockets

import (
	"io"
	"runtime"
	"testing"

	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
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
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	// Small TCP rings: a client connection in TIME-WAIT keeps its own, so
	// they would hide what the queues cost.
	small := func(c *stack.Config) { c.TCP.SendBuffer, c.TCP.ReceiveBuffer = 4<<10, 4<<10 }
	srv := startNetwork(t, w, 0, serverAddr, small)
	cli := startNetwork(t, w, 1, clientAddr, small)
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
