package mem

import (
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
)

// batch is how many descriptors or completions move per ring operation:
// one index publication per batch rather than per frame.
const batch = 64

// Queue is one queue pair of a mem NIC. It implements nicq.Queue; all of its
// methods except SetTap are for the one core that drives it.
type Queue struct {
	nic   *NIC
	index int
	pool  *nicq.Pool
	large *nicq.Pool // TSO frames taken whole, made at the first
	bell  *msgring.Doorbell
	clock nicq.Clock
	tap   nicq.TapSwitch

	counters nicq.Counters

	// Transmit side.
	out       [][]*outLink // [destination NIC][destination queue]; nil row for the own NIC
	outAll    []*outLink
	touched   []*outLink // links with staged descriptors in this Send
	targets   []target   // scratch: where one frame goes
	plan      faultPlan
	rng       rand.PCG
	wireFree  int64 // when the transmit queue's (bandwidth-limited) wire is next idle
	faults    FaultStats
	lastMAC   [6]byte // destination cache: most bursts go to one peer
	lastNIC   int
	reclaimed [batch]*nicq.Buf
	flowCtl   bool

	// Receive side.
	in     []*link
	next   int // link Recv starts with, rotated for fairness
	descs  [batch]desc
	done   [batch]*nicq.Buf
	faulty bool      // some sender injects faults: frames pass the delay line
	line   delayLine // faulty path only
}

// outLink is the sender's side of a link: what it has put on the link and
// not yet had back, and the descriptors staged in the current Send.
type outLink struct {
	l           *link
	outstanding int // frames enqueued on fwd whose buffers have not come back on done
	stage       []desc
	ringFull    uint64 // tail drops in the current Send, published at its end
	touched     bool   // in Queue.touched
}

// target is one destination of a frame: the link to the receiving queue and
// the frame's hash under the receiving NIC's RSS configuration.
type target struct {
	o      *outLink
	hash   uint32
	hashed bool
}

func newQueue(n *NIC, i int) (*Queue, error) {
	pc := n.qConfig
	pc.Name = fmt.Sprintf("%s/q%d", n.name, i)
	pool, err := nicq.NewPool(pc)
	if err != nil {
		return nil, fmt.Errorf("mem: NIC %s queue %d: %w", n.name, i, err)
	}
	bell, err := msgring.NewDoorbell()
	if err != nil {
		return nil, fmt.Errorf("mem: NIC %s queue %d: %w", n.name, i, err)
	}
	q := &Queue{
		nic:     n,
		index:   i,
		pool:    pool,
		bell:    bell,
		clock:   n.wire.clock,
		plan:    planFaults(n.faults),
		lastNIC: -1,
		flowCtl: n.wire.cfg.FlowControl,
	}
	q.rng.Seed(n.wire.cfg.Seed, uint64(n.index)<<32|uint64(i))
	return q, nil
}

// buildLinks makes q's links to every queue of every other NIC, once all
// NICs exist.
func (q *Queue) buildLinks(ringSize int) {
	w := q.nic.wire
	q.out = make([][]*outLink, len(w.nics))
	for _, dn := range w.nics {
		if dn == q.nic {
			continue
		}
		if planFaults(dn.faults).active {
			q.faulty = true
		}
		q.out[dn.index] = make([]*outLink, len(dn.queues))
		for _, to := range dn.queues {
			l := &link{
				fwd:  msgring.NewRing[desc](ringSize),
				done: msgring.NewRing[*nicq.Buf](ringSize),
				bell: to.bell,
				to:   to,
			}
			to.in = append(to.in, l)
			o := &outLink{l: l, stage: make([]desc, 0, batch)}
			q.out[dn.index][to.index] = o
			q.outAll = append(q.outAll, o)
		}
	}
	q.touched = make([]*outLink, 0, len(q.outAll))
	q.targets = make([]target, 0, len(w.nics))
	q.line = newDelayLine(2 * ringSize)
}

// Index returns the queue's number in its NIC.
func (q *Queue) Index() int { return q.index }

// NIC returns the queue's NIC.
func (q *Queue) NIC() *NIC { return q.nic }

// Pool returns the pool the queue receives into and its core sends from.
func (q *Queue) Pool() *nicq.Pool { return q.pool }

// RSS returns the NIC's RSS configuration.
func (q *Queue) RSS() *rss.Config { return q.nic.rss }

// Doorbell returns the queue's doorbell, rung when frames land, for a core
// that drives msgring doorbells directly.
func (q *Queue) Doorbell() *msgring.Doorbell { return q.bell }

// WaitFD returns the doorbell's eventfd.
func (q *Queue) WaitFD() int { return q.bell.Fd() }

// PrepareWait announces that the core is about to sleep.
func (q *Queue) PrepareWait() { q.bell.PrepareSleep() }

// CancelWait withdraws PrepareWait.
func (q *Queue) CancelWait() { q.bell.CancelSleep() }

// ClearWait consumes a pending wake-up and marks the core awake, whatever
// woke it.
func (q *Queue) ClearWait() {
	q.bell.CancelSleep()
	q.bell.Clear()
}

// Pending reports whether frames wait on the queue's links or in its delay
// line. Frames in the delay line that are not yet due count, so that a
// core keeps polling rather than sleep past their arrival time.
func (q *Queue) Pending() bool {
	if q.line.len() > 0 {
		return true
	}
	for _, l := range q.in {
		if l.fwd.Len() > 0 {
			return true
		}
	}
	return false
}

// NextArrival returns when the earliest frame in the delay line is due, for
// a test stepping a virtual clock to it.
func (q *Queue) NextArrival() (int64, bool) { return q.line.next() }

// SetTap starts or stops capturing the queue's frames into w.
func (q *Queue) SetTap(w *nicq.PcapWriter) { q.tap.Set(w) }

// Counters returns the queue's counters. Tail drops on the links into this
// queue, which the senders count, are included in DropRxRingFull.
func (q *Queue) Counters() nicq.Counters {
	c := q.counters
	for _, l := range q.in {
		c.Drops[nicq.DropRxRingFull] += l.ringFull.Load()
	}
	return c
}

// FaultStats returns the faults this queue injected into the frames it
// sent. Owner core only.
func (q *Queue) FaultStats() FaultStats { return q.faults }

// reclaim frees the buffers that receivers have finished copying: the TX
// completions. It runs at every Send and Recv, on the owning core.
func (q *Queue) reclaim() {
	for _, o := range q.outAll {
		for o.outstanding > 0 {
			m := o.l.done.DequeueBatch(q.reclaimed[:])
			if m == 0 {
				break
			}
			for i, b := range q.reclaimed[:m] {
				b.Free()
				q.reclaimed[i] = nil
			}
			o.outstanding -= m
		}
	}
}

// Send puts frames on the wire (see nicq.Queue for who owns what after).
// Each frame goes to the NIC its destination address names, or to every
// other NIC for a group (broadcast or multicast) address, and there to the
// queue that NIC's RSS configuration picks. The frames' buffers come back
// once the receivers have copied them, and are freed to their pools at a
// later Send or Recv on this queue, on this core.
//
// Send takes fewer than len(bufs) frames only when the wire pushes back:
// with FlowControl, when a destination's ring is full; with a bandwidth
// limit, when the queue is scheduled MaxQueueDelay ahead. Frames it takes
// and cannot deliver are freed and counted (see nicq.DropReason).
func (q *Queue) Send(bufs []*nicq.Buf) int {
	q.reclaim()
	if len(bufs) == 0 {
		return 0
	}
	tap := q.tap.Writer()
	var now int64
	if q.plan.active || tap != nil {
		now = q.clock.Now()
	}
	linkUp := q.nic.linkUp.Load()
	taken, txBytes := 0, 0
	for _, b := range bufs {
		frame := b.Bytes()
		var departs int64
		if q.plan.bandwidth != 0 {
			start := max(now, q.wireFree)
			if start-now > q.plan.maxQueueDelay {
				break // the transmit ring is full, in effect
			}
			departs = start + int64(len(frame)+wireOverhead)*8*1e9/q.plan.bandwidth
		}
		// A TSO segment this NIC carries whole, past its MTU.
		tso := b.SegmentSize > 0 && q.nic.tso && len(frame) <= nicq.MaxLargeFrameLen
		if linkUp && !q.route(frame, tso) {
			break // flow control: a destination ring is full
		}
		q.wireFree = departs
		taken++
		txBytes += len(frame)
		if tap != nil {
			tap.WriteFrame(now, frame)
		}
		if !linkUp {
			q.counters.Drops[nicq.DropLinkDown]++
			b.Free()
			continue
		}
		q.transmit(b, frame, tso, max(now, departs))
	}
	q.counters.TxPackets += uint64(taken)
	q.counters.TxBytes += uint64(txBytes)
	q.flush()
	return taken
}

// route sets q.targets to the links frame goes to (none for a frame that is
// dropped). With flow control it reports false, and the frame is not
// taken, if one of them is full. tso says the frame is a TSO segment the
// NIC carries whole.
func (q *Queue) route(frame []byte, tso bool) bool {
	q.targets = q.targets[:0]
	if len(frame) < nicq.EthernetHeaderLen || len(frame) > q.nic.maxLen && !tso {
		return true // dropped and counted by transmit
	}
	dst := [6]byte(frame[:6])
	if dst[0]&1 != 0 { // a group address: broadcast or multicast
		for _, dn := range q.nic.wire.nics {
			if dn != q.nic {
				q.targets = append(q.targets, q.targetOn(dn, frame))
			}
		}
	} else if j := q.lookup(dst); j >= 0 {
		q.targets = append(q.targets, q.targetOn(q.nic.wire.nics[j], frame))
	}
	if q.flowCtl {
		for _, t := range q.targets {
			if o := t.o; o.outstanding+len(o.stage) >= o.l.fwd.Cap() {
				return false
			}
		}
	}
	return true
}

// lookup returns the index of the NIC whose address is mac, or -1 (also
// for the sending NIC's own address: a switch does not send a frame back
// out of the port it came in on).
func (q *Queue) lookup(mac [6]byte) int {
	if mac == q.lastMAC && q.lastNIC >= 0 {
		return q.lastNIC
	}
	for i, n := range q.nic.wire.nics {
		if n.mac == mac && n != q.nic {
			q.lastMAC, q.lastNIC = mac, i
			return i
		}
	}
	return -1
}

// targetOn returns the link to the queue of dn that dn's RSS steers frame
// to. Only as much of the frame is read as a NIC's RSS reads: the rss
// package's HashFrame finds the addresses and ports, because nicq must not
// parse protocols and a hardware NIC does exactly this much.
func (q *Queue) targetOn(dn *NIC, frame []byte) target {
	h, ok := dn.rss.HashFrame(frame)
	rxq := 0
	if ok {
		rxq = dn.rss.Queue(h)
	}
	return target{o: q.out[dn.index][rxq], hash: h, hashed: ok}
}

// transmit delivers a taken frame to q.targets, injecting faults, and
// frees it if no link took it. tso is as for route.
func (q *Queue) transmit(b *nicq.Buf, frame []byte, tso bool, departs int64) {
	switch {
	case len(frame) < nicq.EthernetHeaderLen:
		q.counters.Drops[nicq.DropRunt]++
		b.Free()
		return
	case len(frame) > q.nic.maxLen && !tso:
		q.counters.Drops[nicq.DropOversize]++
		b.Free()
		return
	case len(q.targets) == 0:
		q.counters.Drops[nicq.DropNoDestination]++
		b.Free()
		return
	}
	used := false
	for _, t := range q.targets {
		o := t.o
		dn := o.l.to.nic
		if !dn.linkUp.Load() {
			q.counters.Drops[nicq.DropLinkDown]++
			continue
		}
		if len(frame) > dn.maxLen && !(tso && dn.tso) {
			q.counters.Drops[nicq.DropOversize]++
			continue
		}
		var plan fault
		if q.plan.active && !q.injectFaults(&plan, len(frame), departs) {
			continue
		}
		if o.outstanding+len(o.stage) >= o.l.fwd.Cap() {
			q.noteRingFull(o) // the receiver's ring is full: tail drop
			continue
		}
		fb := b
		if used {
			// A second destination of a group frame: each link returns
			// the buffer it carried, so each gets its own copy.
			if fb = q.pool.Get(); fb == nil {
				q.counters.Drops[nicq.DropNoBuffer]++
				continue
			}
			if len(frame) > fb.Tailroom() { // a TSO frame to a group
				fb.Free()
				q.counters.Drops[nicq.DropOversize]++
				continue
			}
			copy(fb.Append(len(frame)), frame)
		}
		used = true
		d := desc{data: &fb.Bytes()[0], buf: fb, lenFlags: uint32(len(frame))}
		if tso {
			d.lenFlags |= descPartial
		}
		if t.hashed {
			d.lenFlags |= descHashValid
			d.hash = t.hash
		}
		if q.plan.active {
			// The driver owns fb until it comes back: its metadata
			// carries the fault plan to the receiver.
			d.lenFlags |= descFaulty
			fb.RxTime = plan.due
			fb.Scratch = plan.flip | plan.copies<<copiesShift
		}
		q.touch(o)
		o.stage = append(o.stage, d)
		if len(o.stage) == cap(o.stage) {
			q.flushLink(o)
		}
	}
	if !used {
		b.Free()
	}
}

// fault is the fate of one frame on one link.
type fault struct {
	due    int64 // arrival time
	flip   int32 // the bit to invert + 1, 0 for none
	copies int32 // 2 for a duplicated frame
}

// copiesShift packs a fault's copies above its flip in a buffer's Scratch:
// a frame of up to 16 MiB has fewer than 2^27 bits.
const copiesShift = 28

// injectFaults draws this frame's fate on one link into f. It reports false
// if the frame is lost. The draws happen whatever the state of the rings,
// so the sequence of draws depends only on the frames sent: that is what
// makes a run replayable from its seed when cores race.
func (q *Queue) injectFaults(f *fault, frameLen int, departs int64) bool {
	p := &q.plan
	if p.loss != 0 && q.rng.Uint64() < p.loss {
		q.faults.Lost++
		q.counters.Drops[nicq.DropInjectedLoss]++
		return false
	}
	f.copies = 1
	if p.duplicate != 0 && q.rng.Uint64() < p.duplicate {
		q.faults.Duplicated++
		f.copies = 2
	}
	if p.corrupt != 0 && q.rng.Uint64() < p.corrupt && frameLen > nicq.EthernetHeaderLen {
		q.faults.Corrupted++
		// Bits after the Ethernet header; the first 2^27 bytes of a frame
		// at most, so the bit number fits the int32 it travels in.
		covered := uint64(min(frameLen-nicq.EthernetHeaderLen, 1<<27)) * 8
		bit, _ := bits.Mul64(q.rng.Uint64(), covered)
		f.flip = int32(nicq.EthernetHeaderLen*8+bit) + 1
	}
	due := departs + p.delay
	if p.reorder != 0 && q.rng.Uint64() < p.reorder {
		q.faults.Reordered++
		due += p.reorderDelay
	}
	if p.jitter != 0 {
		j, _ := bits.Mul64(q.rng.Uint64(), uint64(p.jitter)+1)
		due += int64(j)
	}
	f.due = due
	return true
}

// touch notes that o has work for flush.
func (q *Queue) touch(o *outLink) {
	if !o.touched {
		o.touched = true
		q.touched = append(q.touched, o)
	}
}

// noteRingFull counts a tail drop on o, published to the receiver when
// the Send ends.
func (q *Queue) noteRingFull(o *outLink) {
	q.touch(o)
	o.ringFull++
}

// flush puts the staged descriptors on their links and rings the
// receivers' doorbells, once per link per Send.
func (q *Queue) flush() {
	for i, o := range q.touched {
		if o.ringFull != 0 {
			o.l.ringFull.Add(o.ringFull)
			o.ringFull = 0
		}
		if len(o.stage) != 0 {
			q.flushLink(o)
		}
		o.l.bell.Ring()
		o.touched = false
		q.touched[i] = nil
	}
	q.touched = q.touched[:0]
}

func (q *Queue) flushLink(o *outLink) {
	n := o.l.fwd.EnqueueBatch(o.stage)
	if n != len(o.stage) {
		// Cannot happen: outstanding counts every descriptor on fwd and every
		// buffer on done, and staging stops at the ring's capacity.
		panic(fmt.Sprintf("mem: link ring of %s/q%d refused %d staged frames", q.nic.name, q.index, len(o.stage)-n))
	}
	o.outstanding += n
	clear(o.stage)
	o.stage = o.stage[:0]
}

// Recv moves up to len(bufs) frames that have arrived into bufs, copied into
// buffers of the queue's pool (as a NIC's DMA writes into the receive
// buffers its driver posted), and returns how many. Each carries its RSS
// hash (FlagHashValid when the frame was hashable), the queue index and its
// arrival time.
func (q *Queue) Recv(bufs []*nicq.Buf) int {
	q.reclaim()
	if len(bufs) == 0 || len(q.in) == 0 {
		return 0
	}
	var got int
	if q.faulty {
		now := q.clock.Now()
		q.fillDelayLine(now)
		for got < len(bufs) {
			b, ok := q.line.popDue(now)
			if !ok {
				break
			}
			bufs[got] = b
			got++
		}
	} else {
		got = q.recvDirect(bufs)
	}
	if got == 0 {
		return 0
	}
	rxBytes := 0
	for _, b := range bufs[:got] {
		rxBytes += b.Len()
	}
	q.counters.RxPackets += uint64(got)
	q.counters.RxBytes += uint64(rxBytes)
	if tap := q.tap.Writer(); tap != nil {
		tap.WriteReceived(bufs[:got])
	}
	return got
}

// recvDirect is the path without faults: descriptors are copied straight
// into bufs, links taken in turn from a rotating start. The clock is read
// once, when the first frame is found, so a core polling an idle queue does
// not pay for it.
func (q *Queue) recvDirect(bufs []*nicq.Buf) int {
	got := 0
	now := int64(-1)
	in := q.in
	start := q.next
	q.next++
	if q.next == len(in) {
		q.next = 0
	}
	for k := range in {
		if got == len(bufs) {
			break
		}
		i := start + k
		if i >= len(in) {
			i -= len(in)
		}
		l := in[i]
		for got < len(bufs) {
			want := min(len(bufs)-got, batch)
			m := l.fwd.DequeueBatch(q.descs[:want])
			if m == 0 {
				break
			}
			if now < 0 {
				now = q.clock.Now()
			}
			for j := range q.descs[:m] {
				d := &q.descs[j]
				if b := q.receive(d, 0, now); b != nil {
					bufs[got] = b
					got++
				}
				q.done[j] = d.buf
			}
			q.complete(l, m)
			if m < want {
				break
			}
		}
	}
	return got
}

// fillDelayLine takes descriptors off the links while the delay line has
// room, copying each frame (twice for a duplicate, damaged if corrupted)
// into a buffer that waits in the line until its arrival time.
func (q *Queue) fillDelayLine(now int64) {
	in := q.in
	start := q.next
	q.next++
	if q.next == len(in) {
		q.next = 0
	}
	for k := range in {
		i := start + k
		if i >= len(in) {
			i -= len(in)
		}
		l := in[i]
		// Each descriptor may be a duplicate, so take no more than half
		// the free room: a duplicate is never dropped for want of it.
		for cap(q.line.items)-q.line.len() >= 2 {
			want := min((cap(q.line.items)-q.line.len())/2, batch)
			m := l.fwd.DequeueBatch(q.descs[:want])
			if m == 0 {
				break
			}
			for j := range q.descs[:m] {
				d := &q.descs[j]
				f := fault{due: now, copies: 1}
				if d.lenFlags&descFaulty != 0 {
					// The sender wrote the plan before publishing the
					// descriptor; the ring orders the reads after it.
					f = fault{due: d.buf.RxTime, flip: d.buf.Scratch & (1<<copiesShift - 1), copies: d.buf.Scratch >> copiesShift}
				}
				for range f.copies {
					if q.line.full() {
						q.counters.Drops[nicq.DropRxRingFull]++
						continue
					}
					if b := q.receive(d, f.flip, f.due); b != nil {
						q.line.push(f.due, b)
					}
				}
				q.done[j] = d.buf
			}
			q.complete(l, m)
			if m < want {
				break
			}
		}
	}
}

// receive copies the frame d describes into a buffer of the queue's pool,
// inverting bit flip-1 if flip is not 0 and stamping it with rxTime, or
// counts a drop and returns nil when the pool is empty.
func (q *Queue) receive(d *desc, flip int32, rxTime int64) *nicq.Buf {
	n := int(d.lenFlags & descLenMask)
	var b *nicq.Buf
	if n > q.nic.maxLen {
		b = q.largeBuf() // a TSO frame, taken whole
	} else {
		b = q.pool.Get()
	}
	if b == nil {
		q.counters.Drops[nicq.DropNoBuffer]++
		return nil
	}
	data := b.Append(n)
	copy(data, d.frame())
	if flip != 0 {
		bit := flip - 1
		data[bit/8] ^= 0x80 >> (bit % 8)
	}
	if d.lenFlags&descHashValid != 0 {
		b.Hash = d.hash
		b.Flags = nicq.FlagHashValid
	}
	if d.lenFlags&descPartial != 0 && flip == 0 {
		b.Flags |= nicq.FlagL4ChecksumPartial
	}
	b.RxQueue = uint16(q.index)
	b.RxTime = rxTime
	return b
}

// largeBuffers is the number of buffers per queue for TSO frames taken
// whole: the stack copies a TCP segment's payload out during Input, so
// they come back within the burst that brought them.
const largeBuffers = 64

// largeBuf returns a buffer for a TSO frame from the queue's large pool,
// made (and claimed by the receiving core) at the first one.
func (q *Queue) largeBuf() *nicq.Buf {
	if q.large == nil {
		p, err := nicq.NewPool(nicq.PoolConfig{Name: q.pool.Name() + "/large", Buffers: largeBuffers, FrameSize: nicq.DefaultHeadroom + nicq.MaxLargeFrameLen})
		if err != nil {
			return nil
		}
		p.Claim()
		q.large = p
	}
	return q.large.Get()
}

// complete hands the senders' buffers of the last m descriptors back.
func (q *Queue) complete(l *link, m int) {
	if n := l.done.EnqueueBatch(q.done[:m]); n != m {
		panic(fmt.Sprintf("mem: completion ring into %s/q%d refused %d buffers", l.to.nic.name, l.to.index, m-n))
	}
	clear(q.done[:m])
}
