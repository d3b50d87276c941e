package sockets

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestWriteQueueWrapsAndBounds(t *testing.T) {
	q := newByteRing(writeQueueSize)
	src := make([]byte, 3*writeQueueSize)
	for i := range src {
		src[i] = byte(i * 7)
	}
	var got []byte
	in := 0
	for len(got) < len(src) {
		in += q.put(src[in:min(len(src), in+5000)])
		if n := q.tail.Load() - q.head.Load(); n > writeQueueSize {
			t.Fatalf("%d bytes staged, bound %d", n, writeQueueSize)
		}
		// Consume in odd pieces, so the ring wraps at every position.
		p := q.peek()
		k := min(len(p), 3001)
		got = append(got, p[:k]...)
		q.advance(k)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("the bytes came out changed or out of order")
	}
	if !q.empty() {
		t.Fatal("not empty after everything was consumed")
	}
}

// TestWriteThenCloseDeliversEverything: Write returns once its bytes are
// staged, before they are sent; a Close (or CloseWrite) right after must
// still deliver every byte, then the FIN.
func TestWriteThenCloseDeliversEverything(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":8")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// More than the peer's window and our send ring hold together (64 KiB
	// each in these tests), less than that plus the staging queue: Write
	// returns with bytes still staged, and Close finds them there.
	msg := make([]byte, 128<<10+bigWriteQueueSize/2)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	for _, half := range []bool{false, true} {
		got := make(chan []byte, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			// Read late: the send ring fills and Write's last bytes are
			// still staged when the client closes.
			time.Sleep(200 * time.Millisecond)
			b, _ := io.ReadAll(c)
			got <- b
		}()
		c, err := cli.Dial("tcp", "10.0.0.1:8")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := c.Write(msg); n != len(msg) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if half {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		} else {
			err = c.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, msg) {
			t.Fatalf("close-write %v: the server read %d of %d bytes (intact prefix: %v)", half, len(b), len(msg), bytes.Equal(b, msg[:min(len(b), len(msg))]))
		}
		if half {
			c.Close()
		}
	}
}

// TestWriteAfterResetReportsIt: a connection the peer reset fails the next
// Write with ECONNRESET, as a kernel socket does.
func TestWriteAfterResetReportsIt(t *testing.T) {
	srv, cli := pair(t, 1)
	l, err := srv.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := cli.Dial("tcp", "10.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	// Unread data makes Close a reset.
	c.Write([]byte("unread"))
	time.Sleep(50 * time.Millisecond)
	sc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Write([]byte("x"))
		if err != nil {
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("Write after the reset: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Write kept succeeding after the peer reset the connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
