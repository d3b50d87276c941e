package sockets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
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

// TestConnStateIsReusedAndOldHandlesCannotReachIt: a closed connection's
// state (the conn behind its net.Conn) serves later connections, so a
// connection allocates little more than its handle; a handle the
// application keeps past Close fails every call with net.ErrClosed, keeps
// its addresses, and cannot disturb the connection its old state now
// serves.
func TestConnStateIsReusedAndOldHandlesCannotReachIt(t *testing.T) {
	srv, cli := pair(t, 1)
	serveEcho(t, srv, ":13")
	msg := []byte("the state is someone else's now")
	echo := func(c net.Conn) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %q, %v", got, err)
		}
	}
	var old []net.Conn
	states := map[*conn]bool{}
	for range 200 {
		c, err := cli.Dial("tcp", "10.0.0.1:13")
		if err != nil {
			t.Fatal(err)
		}
		states[connOf(c)] = true
		echo(c)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		old = append(old, c)
	}
	if !raceEnabled && len(states) > 100 {
		// The race detector makes sync.Pool drop a share of what it is given.
		t.Errorf("200 connections one after another used %d states", len(states))
	}
	live, err := cli.Dial("tcp", "10.0.0.1:13")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	echo(live)
	buf := make([]byte, 8)
	for i, c := range old {
		closed := func(what string, err error) {
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("old handle %d: %s: %v, want net.ErrClosed", i, what, err)
			}
		}
		_, err := c.Write([]byte("garbage"))
		closed("Write", err)
		_, err = c.Read(buf)
		closed("Read", err)
		closed("SetDeadline", c.SetDeadline(time.Now()))
		closed("SetReadDeadline", c.SetReadDeadline(time.Now()))
		closed("CloseWrite", c.(*tcpConn).CloseWrite())
		closed("SetNoDelay", c.(*tcpConn).SetNoDelay(false))
		closed("Close", c.Close())
		if a, ok := c.LocalAddr().(*net.TCPAddr); !ok || a.Port == 0 {
			t.Fatalf("old handle %d: LocalAddr %v", i, c.LocalAddr())
		}
		if c.RemoteAddr().String() != "10.0.0.1:13" {
			t.Fatalf("old handle %d: RemoteAddr %v", i, c.RemoteAddr())
		}
	}
	// The calls above did nothing to the connection that may hold one of
	// their states: no deadline, no FIN, no bytes.
	echo(live)
	live.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := live.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("live connection after the old handles' calls: %d bytes (%q), %v", n, buf[:n], err)
	}
}

// TestCloseRacesCallsOnPooledConns: Close on one goroutine while others
// Read, Write and set deadlines on the same connection, over many
// connections in a row, so states go back to the pool and serve the next
// ones while calls on closed handles still come in. Every connection that
// is not closed early must echo intact; the race detector (CI runs this
// package with -race) sees any call that reached a state after its
// handle's Close let go of it.
func TestCloseRacesCallsOnPooledConns(t *testing.T) {
	srv, cli := pair(t, 2)
	serveEcho(t, srv, ":14")
	rounds := 60
	if testing.Short() {
		rounds = 20
	}
	for round := range rounds {
		var wg sync.WaitGroup
		for k := range 4 {
			wg.Go(func() {
				c, err := cli.Dial("tcp", "10.0.0.1:14")
				if err != nil {
					t.Error(err)
					return
				}
				if k == 0 {
					// This one echoes to the end: its state may be one a
					// closed handle below had.
					defer c.Close()
					msg := []byte(fmt.Sprintf("round %d intact", round))
					for range 20 {
						c.SetDeadline(time.Now().Add(5 * time.Second))
						if _, err := c.Write(msg); err != nil {
							t.Error(err)
							return
						}
						got := make([]byte, len(msg))
						if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
							t.Errorf("echo %q: %q, %v", msg, got, err)
							return
						}
					}
					return
				}
				var calls sync.WaitGroup
				calls.Go(func() {
					buf := make([]byte, 64)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				})
				calls.Go(func() {
					for {
						if _, err := c.Write([]byte("noise")); err != nil {
							return
						}
					}
				})
				calls.Go(func() {
					for c.SetReadDeadline(time.Now().Add(time.Hour)) == nil {
						runtime.Gosched()
					}
				})
				time.Sleep(time.Duration(k) * 100 * time.Microsecond)
				c.Close()
				calls.Wait()
			})
		}
		wg.Wait()
	}
}
