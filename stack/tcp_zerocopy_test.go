package stack

import (
	"bytes"
	"testing"
	"time"
	"unsafe"
)

// TestZeroCopyReceive: with OnSegment, in-order data reaches the
// application as views of the packet buffers it arrived in (the slice lies
// inside the receiving pool's memory), never through the ring; what the
// handler leaves goes into the ring and comes out of Read in order after
// it; and an Abort inside the handler is safe.
func TestZeroCopyReceive(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	region := n.pools[1].Region()
	inPool := func(p []byte) bool {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(region)))
		at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
		return at >= start && at+uintptr(len(p)) <= start+uintptr(len(region))
	}
	var got bytes.Buffer
	views, outside, take := 0, 0, -1
	var readable int
	l, err := b.ListenTCP(80, TCPListenOptions{
		OnSegment: func(c *TCPConn, p []byte) int {
			if inPool(p) {
				views++
			} else {
				outside++
			}
			k := len(p)
			if take >= 0 {
				k = min(take, len(p))
			}
			got.Write(p[:k])
			return k
		},
		OnEvent: func(c *TCPConn, ev TCPEvent) {
			if ev == TCPEventReadable {
				readable++
				var buf [4096]byte
				for {
					k := c.Read(buf[:])
					if k == 0 {
						break
					}
					got.Write(buf[:k])
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = l
	c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	msg := make([]byte, 20000)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	// All taken in place.
	c.Write(msg)
	n.run()
	if !bytes.Equal(got.Bytes(), msg) || views == 0 || outside != 0 || readable != 0 {
		t.Fatalf("got %d of %d bytes; %d views in the pool, %d outside; %d Readable events", got.Len(), len(msg), views, outside, readable)
	}
	if zc := b.TCPStats().ZeroCopyBytes; zc != uint64(len(msg)) {
		t.Fatalf("ZeroCopyBytes %d, want %d", zc, len(msg))
	}
	// Half of each taken in place; the rest through the ring, in order.
	got.Reset()
	take = 100
	c.Write(msg)
	n.run()
	if !bytes.Equal(got.Bytes(), msg) || readable == 0 {
		t.Fatalf("partial consumption: got %d of %d bytes (in order: %v), %d Readable events", got.Len(), len(msg), bytes.Equal(got.Bytes(), msg[:min(got.Len(), len(msg))]), readable)
	}
}

func TestZeroCopyHandlerMayAbort(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	calls := 0
	b.ListenTCP(80, TCPListenOptions{OnSegment: func(c *TCPConn, p []byte) int {
		calls++
		c.Abort()
		return 0
	}})
	c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	c.Write([]byte("hello"))
	n.run()
	if calls != 1 || b.TCPConnCount() != 0 || !c.Closed() {
		t.Fatalf("calls %d, b holds %d connections, a's closed %v (err %v)", calls, b.TCPConnCount(), c.Closed(), c.Err())
	}
	c.Close()
	n.advance(time.Second)
	n.checkNoLeaks()
}

// TestZeroCopyReplyCarriesTheACK: a reply written from inside OnSegment
// acknowledges the request it answers, so a request and its response are
// two segments, as on the ring path, not three. (The client acknowledges
// the reply, its first data, at once with quick ACKs: those are off here
// so that only the server's segments count.)
func TestZeroCopyReplyCarriesTheACK(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", func(c *Config) { c.TCP.QuickACKs = -1 })
	b := n.add("10.0.0.2/24", nil)
	b.ListenTCP(80, TCPListenOptions{NoDelay: true, OnSegment: func(c *TCPConn, p []byte) int {
		k, _ := c.Write(p)
		return k
	}})
	c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	n.advance(time.Second) // the handshake's delayed ACKs, if any, are done
	before := n.frames
	c.Write([]byte("ping"))
	n.run()
	if got := n.frames - before; got != 2 {
		t.Fatalf("a request and its zero-copy reply took %d segments; want 2", got)
	}
	if c.Buffered() != 4 {
		t.Fatalf("the client holds %d bytes of reply, want 4", c.Buffered())
	}
}
