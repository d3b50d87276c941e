package nicq_test

import (
	"fmt"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
)

// A frame is built from the payload outwards, each layer pushing its header
// into the headroom, and taken apart by pulling the headers off in turn. The
// payload never moves.
func ExampleBuf_Push() {
	pool, err := nicq.NewPool(nicq.PoolConfig{Name: "core0", Buffers: 64})
	if err != nil {
		panic(err)
	}
	b := pool.Get()
	copy(b.Append(5), "hello")
	copy(b.Push(8), "UDP.hdr.")
	copy(b.Push(20), "IPv4.header.20.bytes")
	copy(b.Push(14), "Ethernet.hdr14")
	fmt.Printf("%d bytes, %d of headroom left\n", b.Len(), b.Headroom())

	eth := b.Pull(14)
	ip := b.Pull(20)
	b.Pull(8)
	fmt.Printf("%s | %s | %s\n", eth, ip, b.Bytes())
	b.Free()
	// Output:
	// 47 bytes, 86 of headroom left
	// Ethernet.hdr14 | IPv4.header.20.bytes | hello
}

// A pool is bounded: when every buffer is out, Get returns nil and counts
// it, and the caller drops the packet.
func ExamplePool_Get() {
	pool, err := nicq.NewPool(nicq.PoolConfig{Name: "small", Buffers: 2})
	if err != nil {
		panic(err)
	}
	a, b, c := pool.Get(), pool.Get(), pool.Get()
	fmt.Println(c == nil)
	a.Free()
	b.Free()
	fmt.Printf("%+v\n", pool.Stats())
	// Output:
	// true
	// {Gets:2 Puts:2 EmptyFails:1 InUse:0 Capacity:2}
}

// A core's loop over its queue: receive a burst, work on it, send what it
// produced, and sleep on the queue's wait handle when there is nothing to
// do. Here the "stack" bounces every frame back to where it came from, over
// the in-memory wire.
func ExampleQueue() {
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{Name: "peer", MAC: frametest.MACA, Queues: 1, PoolBuffers: 64},
		{Name: "echo", MAC: frametest.MACB, Queues: 1, PoolBuffers: 64},
	}})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	peer, echo := w.NIC(0).Queue(0), w.NIC(1).Queue(0)

	// The peer sends three frames.
	for i := range 3 {
		f := frametest.UDP4{DstMAC: frametest.MACB, SrcMAC: frametest.MACA, SrcPort: uint16(1000 + i), DstPort: 7, Payload: []byte("ping")}.Frame()
		b := peer.Pool().Get()
		copy(b.Append(len(f)), f)
		if peer.Send([]*nicq.Buf{b}) == 0 {
			b.Free() // not taken: still ours
		}
	}

	// The echo core.
	bufs := make([]*nicq.Buf, 32)
	for handled := 0; handled < 3; {
		n := echo.Recv(bufs)
		if n == 0 {
			if _, err := nicq.Wait(echo, 10*time.Millisecond); err != nil {
				panic(err)
			}
			continue
		}
		for _, b := range bufs[:n] {
			f := b.Bytes()
			var dst, src [6]byte
			copy(dst[:], f[0:6])
			copy(src[:], f[6:12])
			copy(f[0:6], src[:])
			copy(f[6:12], dst[:])
		}
		sent := echo.Send(bufs[:n]) // the driver owns bufs[:sent] now
		nicq.FreeAll(bufs[sent:n])  // and we still own the rest
		handled += n
	}

	back := peer.Recv(bufs)
	fmt.Printf("peer got %d frames back; echo counters: %d in, %d out\n", back, echo.Counters().RxPackets, echo.Counters().TxPackets)
	nicq.FreeAll(bufs[:back])
	// Output: peer got 3 frames back; echo counters: 3 in, 3 out
}
