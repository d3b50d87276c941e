package core

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// This file is the core's side of cross-core calls (see sharded.go for the
// typed API): the bound on calls in flight per peer, the queue of handlers
// waiting for room, the call messages, the per-pair counters and their
// publication.

// DefaultMaxCallsInFlight bounds the calls one core has made to one other
// core and not yet seen complete.
const DefaultMaxCallsInFlight = 256

// callImpl is the typed half of a call slot (a *slot[T, A, R]).
type callImpl interface {
	// serve runs the call's function on the target core with its shard.
	serve()
	// complete runs the continuation on the calling core and frees the
	// slot.
	complete()
}

// callSlot is what a call message carries: the untyped header of a slot,
// which holds the call's argument and result. The slot belongs to the
// calling core; the target core has it between the request and the
// reply, and the ring's ordering hands it over each way.
type callSlot struct {
	impl     callImpl
	from, to int32
	state    slotState
}

type slotState uint8

const (
	slotFree     slotState = iota
	slotReserved           // the caller fills the argument
	slotSent               // at the target core, or its reply on the way home
)

// callState is one core's cross-core call bookkeeping. Only the core
// touches it; publish copies the counters out.
type callState struct {
	limit int // calls in flight to one peer
	n     int // cores
	// total is the calls this core has in flight to every peer together.
	total int
	// settled: the core is stopping and has no call in flight, and says
	// so once (Runtime.callsSettled).
	settled bool

	inFlight  []int      // by peer
	waiting   []waitList // by peer: handlers waiting for room
	sent      []uint64   // by peer; the core's own index counts inline calls
	received  []uint64   // by peer, then one for application goroutines (Wait)
	highWater []uint64   // by peer: the most calls in flight at once
	busy      []uint64   // by peer: calls refused with ErrBusy
	pub       *callsPublished
}

func (s *callState) init(cores, limit int) {
	s.n, s.limit = cores, limit
	s.inFlight = make([]int, cores)
	s.waiting = make([]waitList, cores)
	s.sent = make([]uint64, cores)
	s.received = make([]uint64, cores+1)
	s.highWater = make([]uint64, cores)
	s.busy = make([]uint64, cores)
	s.pub = newCallsPublished(cores)
}

// reserveCall takes room for one call from c to peer to (not c itself).
func (c *core) reserveCall(to int) error {
	s := &c.calls
	if c.settling {
		return ErrStopped
	}
	if s.inFlight[to] >= s.limit {
		s.busy[to]++
		return ErrBusy
	}
	s.inFlight[to]++
	s.total++
	if hw := uint64(s.inFlight[to]); hw > s.highWater[to] {
		s.highWater[to] = hw
	}
	return nil
}

// unreserveCall gives back the room of a call that completed or was never
// sent.
func (c *core) unreserveCall(to int) {
	s := &c.calls
	s.inFlight[to]--
	s.total--
}

// postCall sends a reserved call to its target core: on the ring, or
// behind what already waits in the backlog for that peer. It never fails:
// the backlog has room for every call this core may have in flight.
func (c *core) postCall(to int, slot *callSlot) {
	c.calls.sent[to]++
	c.sendTo(to, message{kind: msgCallRequest, call: slot})
}

// countInline counts a call a core made to itself.
func (c *core) countInline() {
	c.calls.sent[c.id]++
	c.calls.received[c.id]++
}

// serveCall runs a call that core from made to this core and sends the
// slot home. The reply always fits: the backlog has room for every call a
// peer may have in flight here.
func (c *core) serveCall(from int, slot *callSlot) {
	c.calls.received[from]++
	slot.impl.serve()
	c.sendTo(from, message{kind: msgCallReply, call: slot})
}

// completeCall takes the reply to a call this core made to core from: the
// room is given back first, so the continuation may call again, then the
// continuation runs, then handlers waiting for room to that peer are
// woken while there is room.
func (c *core) completeCall(from int, slot *callSlot) {
	c.unreserveCall(from)
	slot.impl.complete()
	c.wakeWaiters(from)
}

// wakeWaiters runs, in the order they queued, the waiters for room to
// peer, while there is room; a waiter that queues again goes to the back
// and is not run twice in one wake.
func (c *core) wakeWaiters(peer int) {
	l := &c.calls.waiting[peer]
	for k := l.len; k > 0 && l.head != nil && c.calls.inFlight[peer] < c.calls.limit; k-- {
		w := l.head
		l.remove(w)
		w.fn()
	}
}

// Waiter is a function a handler queues, with Runtime.WhenRoom, after a
// call was refused with ErrBusy: it runs on the same core once a call from
// that core to that peer has completed and there is room again. It is
// meant to live in the state of one connection (a field, set up once), so
// queueing it allocates nothing. A Waiter is used by one core only.
type Waiter struct {
	fn         func()
	prev, next *Waiter
	list       *waitList
}

// NewWaiter returns a waiter that runs fn.
func NewWaiter(fn func()) *Waiter { return &Waiter{fn: fn} }

// Init sets the function of a waiter that is part of a larger value.
func (w *Waiter) Init(fn func()) { w.fn = fn }

// Queued reports whether the waiter waits for room.
func (w *Waiter) Queued() bool { return w.list != nil }

// Cancel takes the waiter off its queue (a connection that closes while it
// waits), if it is on one.
func (w *Waiter) Cancel() {
	if w.list != nil {
		w.list.remove(w)
	}
}

// waitList is a FIFO of waiters, linked through them.
type waitList struct {
	head, tail *Waiter
	len        int
}

func (l *waitList) push(w *Waiter) {
	w.list, w.prev, w.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.len++
}

func (l *waitList) remove(w *Waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.list = nil, nil, nil
	l.len--
}

// WhenRoom queues w to run on core from once a call from that core to
// core to completes and leaves room. It reports false, and queues
// nothing, when there is room now (the caller may call at once) or when to
// is from (calls to self run inline and are never refused). A waiter
// already queued is moved to the back of this queue. It must be called on
// core from (a handler, a continuation, a function passed to Do).
func (rt *Runtime) WhenRoom(from, to int, w *Waiter) bool {
	c := rt.cores[from]
	if from == to || c.calls.inFlight[to] < c.calls.limit {
		return false
	}
	w.Cancel()
	c.calls.waiting[to].push(w)
	return true
}

// publish stores the counters that changed.
func (s *callState) publish() {
	p := s.pub
	for peer := range s.n {
		storeChanged(&p.sent[peer], s.sent[peer])
		storeChanged(&p.highWater[peer], s.highWater[peer])
		storeChanged(&p.busy[peer], s.busy[peer])
		storeChanged(&p.inFlight[peer], uint64(s.inFlight[peer]))
	}
	for peer, v := range s.received {
		storeChanged(&p.received[peer], v)
	}
}

// storeChanged stores v in a if it differs: a load of a line only this
// core writes is cheaper than a store that other cores' scrapes may share.
func storeChanged(a *atomic.Uint64, v uint64) {
	if a.Load() != v {
		a.Store(v)
	}
}

// callsPublished is the copy of one core's call counters that other
// goroutines read.
type callsPublished struct {
	sent, received, highWater, busy, inFlight []atomic.Uint64
}

func newCallsPublished(cores int) *callsPublished {
	return &callsPublished{
		sent:      make([]atomic.Uint64, cores),
		received:  make([]atomic.Uint64, cores+1),
		highWater: make([]atomic.Uint64, cores),
		busy:      make([]atomic.Uint64, cores),
		inFlight:  make([]atomic.Uint64, cores),
	}
}

// CallCounters are one core's cross-core call counters, by peer core.
// Received has one more entry, last: calls from application goroutines
// (Call.Wait). The entries for the core itself count inline calls.
type CallCounters struct {
	Sent      []uint64 // calls this core made to the peer
	Received  []uint64 // calls the peer made to this core
	HighWater []uint64 // the most calls this core had in flight to the peer at once
	Busy      []uint64 // calls to the peer refused with ErrBusy (back-pressure)
	InFlight  []uint64 // calls in flight to the peer now
}

// CallCounters returns core's published call counters. Each core publishes
// them with its other counters.
func (rt *Runtime) CallCounters(core int) CallCounters {
	p := rt.cores[core].calls.pub
	load := func(a []atomic.Uint64) []uint64 {
		v := make([]uint64, len(a))
		for i := range a {
			v[i] = a[i].Load()
		}
		return v
	}
	return CallCounters{Sent: load(p.sent), Received: load(p.received), HighWater: load(p.highWater), Busy: load(p.busy), InFlight: load(p.inFlight)}
}

// callDescs are the Prometheus descriptions of the call counters, labelled
// by core, cpu and peer (the calling or called core, "app" for application
// goroutines).
type callDescs struct {
	sent, received, highWater, busy, inFlight *prometheus.Desc
}

func newCallDescs() *callDescs {
	l := []string{"core", "cpu", "peer"}
	return &callDescs{
		sent:      prometheus.NewDesc("mkstack_calls_sent_total", "Cross-core calls this core made to the peer core (peer = core: calls run inline).", l, nil),
		received:  prometheus.NewDesc("mkstack_calls_received_total", "Cross-core calls the peer (a core, or app for application goroutines) made to this core.", l, nil),
		highWater: prometheus.NewDesc("mkstack_calls_in_flight_high_water", "Most calls this core had in flight to the peer core at once.", l, nil),
		busy:      prometheus.NewDesc("mkstack_calls_busy_total", "Calls to the peer core refused because the bound on calls in flight was reached (back-pressure).", l, nil),
		inFlight:  prometheus.NewDesc("mkstack_calls_in_flight", "Calls this core has in flight to the peer core.", l, nil),
	}
}

func (d *callDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- d.sent
	ch <- d.received
	ch <- d.highWater
	ch <- d.busy
	ch <- d.inFlight
}

// collect emits the call counters of every core; it does nothing for a
// collector made without them (NewCollector alone).
func (c *Collector) collectCalls(ch chan<- prometheus.Metric) {
	if c.calls == nil {
		return
	}
	d := c.callDescs
	for i, p := range c.calls {
		core, cpu := strconv.Itoa(i), c.cpus[i]
		for peer := range p.sent {
			ps := strconv.Itoa(peer)
			ch <- prometheus.MustNewConstMetric(d.sent, prometheus.CounterValue, float64(p.sent[peer].Load()), core, cpu, ps)
			ch <- prometheus.MustNewConstMetric(d.highWater, prometheus.GaugeValue, float64(p.highWater[peer].Load()), core, cpu, ps)
			ch <- prometheus.MustNewConstMetric(d.busy, prometheus.CounterValue, float64(p.busy[peer].Load()), core, cpu, ps)
			ch <- prometheus.MustNewConstMetric(d.inFlight, prometheus.GaugeValue, float64(p.inFlight[peer].Load()), core, cpu, ps)
		}
		for peer := range p.received {
			ps := "app"
			if peer < len(p.sent) {
				ps = strconv.Itoa(peer)
			}
			ch <- prometheus.MustNewConstMetric(d.received, prometheus.CounterValue, float64(p.received[peer].Load()), core, cpu, ps)
		}
	}
}

func (c *Collector) describeCalls(ch chan<- *prometheus.Desc) {
	if c.calls != nil {
		c.callDescs.describe(ch)
	}
}

// setCalls makes the collector emit the runtime's call counters too.
func (c *Collector) setCalls(pubs []*callsPublished) {
	c.calls, c.callDescs = pubs, newCallDescs()
}
