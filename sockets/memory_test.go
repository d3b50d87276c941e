package sockets

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// TestIdleConnectionsHoldNoQueueMemory opens connections that each carry
// a small request and response and then wait, as keep-alive connections
// do: the server's goroutine parked in Read for the next request, the
// client quiet once it has read its answer (no Read waiting). Every one
// must have stayed on its small queues (no bulk side moved to a big one)
// and hold no queue memory while it waits, and the heap they hold, both
// ends together, must stay under a bound that 8 KiB of queues per end
// could not meet.
func TestIdleConnectionsHoldNoQueueMemory(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 300
	accepted := make(chan net.Conn, n+1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				var buf [100]byte
				for {
					if _, err := io.ReadFull(c, buf[:]); err != nil {
						return
					}
					if _, err := c.Write(buf[:]); err != nil {
						return
					}
				}
			}()
		}
	}()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
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
	// One connection first, so the pools and tables exist before the count.
	open()
	before := heap()
	for range n {
		open()
	}
	// The readers park and the cores finish their drains a moment after
	// the last exchange.
	holding := func() (held int) {
		for _, c := range conns {
			sc := connOf(c)
			if sc.rqSmall.holdsMemory() || sc.wqSmall.holdsMemory() {
				held++
			}
		}
		return held
	}
	deadline := time.Now().Add(5 * time.Second)
	for holding() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if held := holding(); held > 0 {
		t.Errorf("%d of %d idle connections hold queue memory", held, len(conns))
	}
	per := float64(heap()-before) / n
	for _, c := range conns {
		sc := connOf(c)
		if sc.wqBig.Load() != nil || sc.rqBig.Load() != nil {
			t.Fatalf("a connection that carried 100 bytes each way moved to a big queue")
		}
	}
	t.Logf("%.1f KiB of heap per connection, both ends", per/1024)
	// Both ends: 2 × (the conn, the stack's TCPConn and its table entry)
	// and the test's own buffers; 16 KiB of queues would not fit.
	const maxKiB = 12
	if per > maxKiB*1024 {
		t.Errorf("%.1f KiB of heap per connection (both ends); want at most %d", per/1024, maxKiB)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestBulkTransferMovesToBigQueues: as docs/ARCHITECTURE.md says, a
// connection's write queue moves on to a 128 KiB one the first time a
// Write fills it, and its read queue to a 128 KiB one the first time it
// fills. A 1 MiB transfer one way does both: the writer's conn takes its
// big write queue, the reader's its big read queue, and neither takes the
// other side's.
func TestBulkTransferMovesToBigQueues(t *testing.T) {
	srv, cli := pair(t, 1)
	reader, writer := acceptedPair(t, srv, cli, "4100")
	rc, wc := connOf(reader), connOf(writer)
	src := make([]byte, 1<<20)
	for i := range src {
		src[i] = byte(i * 31)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := writer.Write(src)
		wrote <- err
	}()
	// Read only once the core has filled the small read queue, so that it
	// fills however fast this reader would have been.
	deadline := time.Now().Add(5 * time.Second)
	for rc.rqSmall.free() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the small read queue never filled")
		}
		time.Sleep(time.Millisecond)
	}
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(src))
	if _, err := io.ReadFull(reader, got); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("the reader read other bytes than the writer wrote")
	}
	// The sizes the documentation gives.
	const bigWrite, bigRead = 128 << 10, 128 << 10
	if big := wc.wqBig.Load(); big == nil || len(big.buf) != bigWrite {
		t.Errorf("the writer's conn has big write queue %v, want one of %d bytes", queueSize(big), bigWrite)
	}
	if big := rc.rqBig.Load(); big == nil || len(big.buf) != bigRead {
		t.Errorf("the reader's conn has big read queue %v, want one of %d bytes", queueSize(big), bigRead)
	}
	// Each side that moved on gave its small queue's memory back.
	if rc.rqSmall.holdsMemory() {
		t.Error("the reader's small read queue kept its memory after the reader moved to the big one")
	}
	deadline = time.Now().Add(2 * time.Second)
	for wc.wqSmall.holdsMemory() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the core's last drain may still be running
	}
	if wc.wqSmall.holdsMemory() {
		t.Error("the writer's small write queue kept its memory after the core moved to the big one")
	}
	if wc.rqBig.Load() != nil || rc.wqBig.Load() != nil {
		t.Errorf("a side that only carried ACKs moved to a big queue (writer's read queue %v, reader's write queue %v)",
			queueSize(wc.rqBig.Load()), queueSize(rc.wqBig.Load()))
	}
}

// queueSize describes a big queue for a failure message.
func queueSize(q *writeQueue) string {
	if q == nil {
		return "none"
	}
	return fmt.Sprintf("of %d bytes", len(q.buf))
}

// TestReceivedBytesSkipTheRingWhenTheReadQueueHasRoom: while the read
// queue has room, an arriving segment's bytes go straight into it
// (segmentToConn), not through the TCP receive ring first; they arrive
// whole and in order either way.
func TestReceivedBytesSkipTheRingWhenTheReadQueueHasRoom(t *testing.T) {
	srv, cli := pair(t, 1)
	reader, writer := acceptedPair(t, srv, cli, "4101")
	src := make([]byte, 4<<20)
	for i := range src {
		src[i] = byte(i*7 + i>>12)
	}
	go writer.Write(src)
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(src))
	if _, err := io.ReadFull(reader, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("the reader read other bytes than the writer wrote")
	}
	var zc uint64
	onCore(t, srv, connOf(reader).core, func(s *stack.Stack) { zc = s.TCPStats().ZeroCopyBytes })
	t.Logf("%d of %d bytes went straight into the read queue", zc, len(src))
	if zc == 0 {
		t.Error("no byte skipped the receive ring")
	}
}
