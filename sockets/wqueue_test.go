package sockets

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/affinity"
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

// TestLendingQueueKeepsEveryByte runs a lending queue's producer and
// consumer on different pinned CPUs, the consumer lending the memory back
// every time it runs dry (as a parking reader and a core that drained a
// write do): every byte must come out once and in order, and the lends
// must have given memory back while the producer was putting, or the
// test did not test the race it is for.
func TestLendingQueueKeepsEveryByte(t *testing.T) {
	total := 4 << 20
	if testing.Short() {
		total = 1 << 20
	}
	q := newLendingQueue()
	if q.holdsMemory() {
		t.Fatal("a new lending queue holds memory")
	}
	done := make(chan error, 1)
	go func() {
		pinTo(t, 0)
		defer runtime.UnlockOSThread()
		var chunk [700]byte
		for sent := 0; sent < total; {
			n := min(len(chunk), total-sent, 1+sent%len(chunk))
			for i := range n {
				chunk[i] = byte((sent + i) * 131 >> 3)
			}
			for k := 0; k < n; {
				k += q.put(chunk[k:n])
			}
			sent += n
			if sent/len(chunk)%16 == 0 {
				// A request/response rhythm now and then: the consumer
				// runs dry and lends while the next put is on its way.
				for !q.empty() {
					runtime.Gosched()
				}
			}
		}
		done <- nil
	}()
	pinTo(t, 1)
	defer runtime.UnlockOSThread()
	lentWhileFull := 0
	for got := 0; got < total; {
		p := q.peek()
		if len(p) == 0 {
			held := q.holdsMemory()
			q.lend()
			if held && !q.holdsMemory() {
				lentWhileFull++
			}
			continue
		}
		for i, b := range p {
			if want := byte((got + i) * 131 >> 3); b != want {
				t.Fatalf("byte %d is %d, want %d", got+i, b, want)
			}
		}
		q.advance(len(p))
		got += len(p)
	}
	<-done
	q.lend()
	if q.holdsMemory() {
		t.Error("an empty queue kept its memory after lend")
	}
	if lentWhileFull == 0 {
		t.Error("the consumer never gave the memory back: the race between lend and put was not exercised")
	}
	t.Logf("%d lends gave memory back", lentWhileFull)
}

// pinTo locks the goroutine to its thread and pins it to cpu where the
// machine has it (a test still runs, less faithfully, where it cannot).
func pinTo(t *testing.T, cpu int) {
	runtime.LockOSThread()
	if runtime.NumCPU() <= cpu {
		return
	}
	if err := affinity.Pin(cpu); err != nil {
		t.Logf("running unpinned: %v", err)
	}
}
