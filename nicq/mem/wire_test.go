package mem_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/rss"
)

func TestUnicastFramesArriveIntactOnTheQueueTheReceiversRSSChooses(t *testing.T) {
	clock := nicq.NewVirtualClock(1_700_000_000_000_000_000)
	c := twoNICs(1, 4)
	c.Clock = clock
	w := newWire(t, c)
	a, b := w.NIC(0), w.NIC(1)
	var sent [][]byte
	for port := range uint16(64) {
		sent = append(sent, udp(40000+port, uint32(port)))
	}
	if n := send(t, a.Queue(0), sent...); n != len(sent) {
		t.Fatalf("Send took %d of %d", n, len(sent))
	}
	perQueue := make([]int, 4)
	got := 0
	for qi := range 4 {
		for _, r := range recvAll(b.Queue(qi)) {
			want := sent[seqOf(r.frame)]
			if !bytes.Equal(r.frame, want) {
				t.Fatalf("frame %d arrived as % x, sent % x", seqOf(r.frame), r.frame, want)
			}
			hash, ok := b.RSS().HashFrame(want)
			if !ok || r.flags != nicq.FlagHashValid || r.hash != hash {
				t.Fatalf("frame %d: hash %#x flags %b, want %#x with FlagHashValid", seqOf(r.frame), r.hash, r.flags, hash)
			}
			if wantQ := b.RSS().QueueFrame(want); r.queue != wantQ || int(r.rxQueue) != wantQ {
				t.Fatalf("frame %d arrived on queue %d (RxQueue %d), RSS steers it to %d", seqOf(r.frame), r.queue, r.rxQueue, wantQ)
			}
			if r.rxTime != clock.Now() {
				t.Fatalf("RxTime %d, want the clock's %d", r.rxTime, clock.Now())
			}
			perQueue[qi]++
			got++
		}
	}
	if got != len(sent) {
		t.Fatalf("received %d of %d frames", got, len(sent))
	}
	for qi, n := range perQueue {
		if n == 0 {
			t.Fatalf("no flow of 64 landed on queue %d: RSS is not spreading (%v)", qi, perQueue)
		}
	}
	if nothing := recvNIC(a); len(nothing) != 0 {
		t.Fatalf("the sender received %d of its own frames", len(nothing))
	}
	ca, cb := a.Queue(0).Counters(), nicq.Counters{}
	for qi := range 4 {
		c := b.Queue(qi).Counters()
		cb.RxPackets += c.RxPackets
		cb.RxBytes += c.RxBytes
	}
	if ca.TxPackets != 64 || ca.TxBytes != 64*64 || cb.RxPackets != 64 || cb.RxBytes != 64*64 || ca.TotalDrops() != 0 {
		t.Fatalf("counters: sender %+v, receivers rx %d packets %d bytes", ca, cb.RxPackets, cb.RxBytes)
	}
}

func TestSendersBuffersComeBackToItsPool(t *testing.T) {
	w := newWire(t, twoNICs(1, 1))
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	send(t, tx, udp(1, 0), udp(1, 1), udp(1, 2))
	if inUse := tx.Pool().InUse(); inUse != 3 {
		t.Fatalf("sender has %d buffers in flight, want 3 until the receiver copies them", inUse)
	}
	got := recvAll(rx)
	if len(got) != 3 {
		t.Fatalf("received %d, want 3", len(got))
	}
	if rx.Pool().InUse() != 0 {
		t.Fatalf("receiver holds %d buffers after freeing all it received", rx.Pool().InUse())
	}
	tx.Send(nil) // reclaims the completions
	if inUse := tx.Pool().InUse(); inUse != 0 {
		t.Fatalf("sender has %d buffers out after the receiver finished, want 0", inUse)
	}
	send(t, tx, udp(1, 3))
	recvAll(rx)
	tx.Recv(make([]*nicq.Buf, 1)) // Recv reclaims too
	if inUse := tx.Pool().InUse(); inUse != 0 {
		t.Fatalf("Recv did not reclaim the sender's completed buffers: %d out", inUse)
	}
}

func threeNICs() mem.WireConfig {
	key := rss.SymmetricKey
	cfgC, err := rss.NewConfig(rss.Options{Key: key[:], Queues: 2, RETASize: 64})
	if err != nil {
		panic(err)
	}
	return mem.WireConfig{NICs: []mem.NICConfig{
		{Name: "a", MAC: frametest.MACA, Queues: 1, PoolBuffers: 64},
		{Name: "b", MAC: frametest.MACB, Queues: 4, PoolBuffers: 64},
		{Name: "c", MAC: frametest.MACC, Queues: 2, PoolBuffers: 64, RSS: cfgC},
	}}
}

func TestGroupFramesReachEveryOtherNICOnce(t *testing.T) {
	w := newWire(t, threeNICs())
	a, b, c := w.NIC(0), w.NIC(1), w.NIC(2)
	arp := frametest.ARPRequest(frametest.MACA, [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2})
	multicast := udp(7, 7)
	copy(multicast, []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}) // 224.0.0.251's MAC
	send(t, a.Queue(0), arp, multicast)
	for _, n := range []nicq.NIC{b, c} {
		got := recvNIC(n)
		if len(got) != 2 || !bytes.Equal(got[0].frame, arp) && !bytes.Equal(got[1].frame, arp) {
			t.Fatalf("NIC %s received %d frames, want the ARP broadcast and the multicast once each", n.Name(), len(got))
		}
		for _, r := range got {
			if bytes.Equal(r.frame, arp) {
				if r.queue != 0 || r.flags&nicq.FlagHashValid != 0 {
					t.Fatalf("NIC %s: ARP on queue %d flags %b; a frame RSS cannot hash goes to queue 0 without a hash", n.Name(), r.queue, r.flags)
				}
			} else if want := n.RSS().QueueFrame(multicast); r.queue != want || !bytes.Equal(r.frame, multicast) {
				t.Fatalf("NIC %s: multicast on queue %d, its RSS says %d", n.Name(), r.queue, want)
			}
		}
	}
	if got := recvNIC(a); len(got) != 0 {
		t.Fatalf("the sender heard its own broadcast %d times", len(got))
	}
	a.Queue(0).Send(nil)
	if inUse := a.Queue(0).Pool().InUse(); inUse != 0 {
		t.Fatalf("%d of the sender's buffers (originals and copies for each NIC) did not come back", inUse)
	}
}

func TestUndeliverableFramesAreCountedDrops(t *testing.T) {
	w := newWire(t, twoNICs(1, 1))
	a, b := w.NIC(0), w.NIC(1)
	tx := a.Queue(0)
	unknown := udp(1, 1)
	copy(unknown, []byte{0x02, 0, 0, 0, 0, 0x99})
	toSelf := udp(1, 2)
	copy(toSelf, frametest.MACA[:])
	runt := make([]byte, 13)
	oversize := make([]byte, nicq.MaxFrameLen(1500)+1)
	copy(oversize, frametest.MACB[:])
	if n := send(t, tx, unknown, toSelf, runt, oversize); n != 4 {
		t.Fatalf("Send took %d of 4 undeliverable frames; it takes them and drops them", n)
	}
	want := nicq.Counters{TxPackets: 4, TxBytes: uint64(len(unknown) + len(toSelf) + 13 + len(oversize))}
	want.Drops[nicq.DropNoDestination] = 2
	want.Drops[nicq.DropRunt] = 1
	want.Drops[nicq.DropOversize] = 1
	if got := tx.Counters(); got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
	if tx.Pool().InUse() != 0 {
		t.Fatalf("dropped frames' buffers were not freed: %d in use", tx.Pool().InUse())
	}

	b.SetLinkUp(false)
	send(t, tx, udp(1, 3))
	if !a.LinkUp() || b.LinkUp() {
		t.Fatal("SetLinkUp(false) on B did not take effect")
	}
	b.SetLinkUp(true)
	a.SetLinkUp(false)
	send(t, tx, udp(1, 4))
	a.SetLinkUp(true)
	if got := tx.Counters().Drops[nicq.DropLinkDown]; got != 2 {
		t.Fatalf("DropLinkDown = %d, want 2 (receiver down, then sender down)", got)
	}
	send(t, tx, udp(1, 5))
	if got := recvAll(b.Queue(0)); len(got) != 1 || seqOf(got[0].frame) != 5 {
		t.Fatalf("after the links came back B received %d frames, want only frame 5", len(got))
	}
}

func TestAFullRingTailDropsAndCountsEveryDrop(t *testing.T) {
	c := twoNICs(1, 1)
	c.RingSize = 8
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	var frames [][]byte
	for i := range 20 {
		frames = append(frames, udp(1, uint32(i)))
	}
	if n := send(t, tx, frames...); n != 20 {
		t.Fatalf("Send took %d of 20; without flow control the wire takes all and the receiver drops", n)
	}
	got := recvAll(rx)
	if len(got) != 8 {
		t.Fatalf("received %d, want the 8 the ring holds", len(got))
	}
	for i, r := range got {
		if seqOf(r.frame) != uint32(i) {
			t.Fatalf("frame %d is %d: the ring must keep the first 8 and drop the tail", i, seqOf(r.frame))
		}
	}
	if drops := rx.Counters().Drops[nicq.DropRxRingFull]; drops != 12 {
		t.Fatalf("receiver counts %d ring-full drops, want 12", drops)
	}
	if tx.Counters().TxPackets != 20 || tx.Counters().TotalDrops() != 0 {
		t.Fatalf("sender counters %+v: 20 sent, the drops are the receiver's", tx.Counters())
	}
	// Once drained, the ring takes frames again.
	send(t, tx, frames[:8]...)
	if got := recvAll(rx); len(got) != 8 {
		t.Fatalf("after draining, received %d of 8", len(got))
	}
}

func TestFlowControlPushesBackInsteadOfDropping(t *testing.T) {
	c := twoNICs(1, 1)
	c.RingSize = 8
	c.FlowControl = true
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	bufs := make([]*nicq.Buf, 20)
	for i := range bufs {
		bufs[i] = tx.Pool().Get()
		copy(bufs[i].Append(64), udp(1, uint32(i)))
	}
	n := tx.Send(bufs)
	if n != 8 {
		t.Fatalf("Send took %d, want the 8 the ring holds", n)
	}
	for i, b := range bufs[n:] { // still ours: readable and intact
		if seqOf(b.Bytes()) != uint32(n+i) {
			t.Fatalf("a refused buffer was changed: frame %d reads %d", n+i, seqOf(b.Bytes()))
		}
	}
	if got := tx.Send(bufs[n:]); got != 0 {
		t.Fatalf("Send took %d more while the ring is full", got)
	}
	received := recvAll(rx)
	n += tx.Send(bufs[n:])
	received = append(received, recvAll(rx)...)
	n += tx.Send(bufs[n:])
	received = append(received, recvAll(rx)...)
	if n != 20 || len(received) != 20 {
		t.Fatalf("sent %d received %d, want all 20", n, len(received))
	}
	for i, r := range received {
		if seqOf(r.frame) != uint32(i) {
			t.Fatalf("frame %d is %d: out of order", i, seqOf(r.frame))
		}
	}
	if d := rx.Counters().TotalDrops() + tx.Counters().TotalDrops(); d != 0 {
		t.Fatalf("%d drops with flow control", d)
	}
}

// TestSendTakesBuffersOfTheCoresOtherPools: a core may send a buffer of any
// pool it owns (a stack's large reassembly buffers, say); the driver frees
// it to that pool, on that core.
func TestSendTakesBuffersOfTheCoresOtherPools(t *testing.T) {
	w := newWire(t, twoNICs(1, 1))
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	big, err := nicq.NewPool(nicq.PoolConfig{Name: "big", Buffers: 1, FrameSize: 16384})
	if err != nil {
		t.Fatal(err)
	}
	b := big.Get()
	copy(b.Append(64), udp(1, 9))
	if tx.Send([]*nicq.Buf{b}) != 1 {
		t.Fatal("Send refused a buffer of another pool of the core")
	}
	if got := recvAll(rx); len(got) != 1 || seqOf(got[0].frame) != 9 {
		t.Fatalf("received %d frames", len(got))
	}
	tx.Send(nil)
	if big.InUse() != 0 || tx.Pool().InUse() != 0 {
		t.Fatalf("the buffer did not go back to its own pool: big %d, queue %d in use", big.InUse(), tx.Pool().InUse())
	}
}

func TestNewWireRejectsBadConfigurations(t *testing.T) {
	ok := func() mem.WireConfig { return twoNICs(1, 1) }
	cases := map[string]func(*mem.WireConfig){
		"one NIC":          func(c *mem.WireConfig) { c.NICs = c.NICs[:1] },
		"no queues":        func(c *mem.WireConfig) { c.NICs[0].Queues = 0 },
		"same MAC":         func(c *mem.WireConfig) { c.NICs[1].MAC = c.NICs[0].MAC },
		"group MAC":        func(c *mem.WireConfig) { c.NICs[0].MAC = frametest.Broadcast },
		"zero MAC":         func(c *mem.WireConfig) { c.NICs[0].MAC = [6]byte{} },
		"tiny MTU":         func(c *mem.WireConfig) { c.NICs[0].MTU = 67 },
		"frames too small": func(c *mem.WireConfig) { c.NICs[0].FrameSize = 1024 },
		"negative ring":    func(c *mem.WireConfig) { c.RingSize = -1 },
		"loss above 1":     func(c *mem.WireConfig) { c.Faults.Loss = 1.5 },
		"NaN corrupt":      func(c *mem.WireConfig) { c.Faults.Corrupt = nan() },
		"negative delay":   func(c *mem.WireConfig) { c.NICs[1].Faults = &mem.Faults{Delay: -time.Second} },
		"negative rate":    func(c *mem.WireConfig) { c.Faults.Bandwidth = -1 },
		"RSS beyond queues": func(c *mem.WireConfig) {
			cfg, err := rss.NewConfig(rss.Options{Queues: 4})
			if err != nil {
				panic(err)
			}
			c.NICs[0].RSS = cfg
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok()
			mutate(&c)
			w, err := mem.NewWire(c)
			if !errors.Is(err, nicq.ErrInvalidConfig) {
				if w != nil {
					w.Close()
				}
				t.Fatalf("NewWire = %v; want an error wrapping nicq.ErrInvalidConfig", err)
			}
		})
	}
}

func nan() float64 {
	var zero float64
	return zero / zero
}

func TestNICReportsItsIdentityAndFeatures(t *testing.T) {
	c := twoNICs(2, 1)
	c.NICs[0].MTU = 9000
	c.NICs[0].FrameSize = 10240
	w := newWire(t, c)
	a := w.NIC(0)
	var n nicq.NIC = a
	if n.Name() != "a" || n.MAC() != frametest.MACA || n.MTU() != 9000 || n.NumQueues() != 2 || !n.LinkUp() {
		t.Fatalf("NIC a: name %s mac %x mtu %d queues %d link %v", n.Name(), n.MAC(), n.MTU(), n.NumQueues(), n.LinkUp())
	}
	if f := n.Features(); f != nicq.FeatureRxHash|nicq.FeatureRxTimestamp {
		t.Fatalf("features %v", f)
	}
	if n.RSS() == nil || n.RSS().Queues() != 2 || n.Queue(1).RSS() != n.RSS() || n.Queue(1).Index() != 1 {
		t.Fatal("the queues do not carry their NIC's RSS configuration")
	}
	if name := n.Queue(1).Pool().Name(); name != "a/q1" {
		t.Fatalf("pool name %q, want a/q1", name)
	}
	if w.NumNICs() != 2 || w.NIC(1).Index() != 1 || w.NIC(1).Name() != "b" {
		t.Fatal("wire does not list its NICs in order")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func ExampleNewWire() {
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{Name: "client", MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1},
		{Name: "server", MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 4},
	}})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	client, server := w.NIC(0), w.NIC(1)

	frame := frametest.UDP4{
		DstMAC: server.MAC(), SrcMAC: client.MAC(),
		Src: [4]byte{192, 0, 2, 1}, Dst: [4]byte{192, 0, 2, 2}, SrcPort: 40000, DstPort: 53,
		Payload: []byte("query"),
	}.Frame()

	tx := client.Queue(0)
	b := tx.Pool().Get()
	copy(b.Append(len(frame)), frame)
	if tx.Send([]*nicq.Buf{b}) != 1 { // b now belongs to the driver
		b.Free()
	}

	q := server.Queue(server.RSS().QueueFrame(frame)) // where RSS steers the flow
	bufs := make([]*nicq.Buf, 8)
	n := q.Recv(bufs)
	for _, b := range bufs[:n] {
		fmt.Printf("queue %d received %d bytes, hash valid %v\n", b.RxQueue, b.Len(), b.Flags&nicq.FlagHashValid != 0)
		b.Free()
	}
	// Output: queue 1 received 47 bytes, hash valid true
}
