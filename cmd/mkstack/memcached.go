package main

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"time"

	"github.com/mkstack/mkstack/cmd/mkstack/internal/memcache"
	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

// The memcached application (serve --app memcached): the text protocol
// over the per-core handler API, items sharded across the cores by a hash
// of the key. A connection belongs to the core its packets land on; each
// request goes, as a core.Call, to the core that owns its key (inline when
// that is the connection's own), and the answer comes back to the
// connection's core, which writes the replies in the order of the requests.
//
// Per connection: requests are parsed in place from the received bytes
// (only an incomplete request is copied, into the connection's buffer);
// each request takes a place in the connection's queue of replies, which
// are written in order as they complete. The connection stops reading (its
// bytes wait in the stack's receive ring, and the TCP window closes) when a
// call is refused for back-pressure (core.ErrBusy; a core.Waiter resumes
// it), when too many replies are pending, or when the client does not read
// its replies; it never drops a request it has taken.

// mcVersion is what version answers: memcached 1.6's protocol.
const mcVersion = "1.6.21-mkstack"

// Per-connection bounds.
const (
	mcMaxPending = 1024    // replies queued and not yet written
	mcMaxOut     = 4 << 20 // reply bytes the TCP send ring has not taken
	mcDirectOut  = 16 << 10
)

// mcConfig configures the application.
type mcConfig struct {
	// MemoryBytes bounds the items of all cores together (memcached's
	// -m); each core gets an equal share.
	MemoryBytes int64
	// MaxValue bounds a value (memcached's -I); 0: 1 MiB.
	MaxValue int
	// Now is the time in Unix seconds (nil: the system's).
	Now func() int64
}

// mcServer is a running memcached application.
type mcServer struct {
	rt      *core.Runtime
	sh      *core.Sharded[mcShard]
	op      *core.Call[mcShard, mcArg, mcRes]
	srv     *sockets.Server
	cfg     mcConfig
	seed    maphash.Seed
	started time.Time
}

// mcShard is one core's part: its items and its connections' counters.
type mcShard struct {
	core  int
	store *memcache.Store
	// Only this core touches these.
	currConns, totalConns uint64
	protocolErrors        uint64
	busyStalls            uint64 // requests that waited for room to call another core
	freeConns             []*mcConn
}

// mcArg is a call's argument: a request for the owner of a key, and where
// its reply goes.
type mcArg struct {
	cn      *mcConn
	ent     *mcEntry // nil: noreply
	op      memcache.Op
	inline  bool // key and data are views of the input, valid during the call
	key     []byte
	data    []byte
	flags   uint32
	exptime int64
	cas     uint64
	delta   uint64
	reset   bool // stats reset
	keyBuf  []byte
	dataBuf []byte
}

// mcRes is a call's result.
type mcRes struct {
	result memcache.Result
	found  bool
	flags  uint32
	cas    uint64
	number uint64
	value  []byte // a copy, or for an inline call a view of the store
	valBuf []byte
	stats  mcStats
}

// mcStats are one shard's statistics.
type mcStats struct {
	store                 memcache.Stats
	currConns, totalConns uint64
	protocolErrors        uint64
	busyStalls            uint64
	items                 uint64
}

func (s *mcStats) add(o *mcStats) {
	s.store.Add(&o.store)
	s.currConns += o.currConns
	s.totalConns += o.totalConns
	s.protocolErrors += o.protocolErrors
	s.busyStalls += o.busyStalls
	s.items += o.items
}

// startMemcached builds the shards on every core and serves port.
func startMemcached(n *sockets.Network, port uint16, cfg mcConfig) (*mcServer, error) {
	rt := n.Runtime()
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = memcache.DefaultMaxValue
	}
	if cfg.Now == nil {
		cfg.Now = func() int64 { return time.Now().Unix() }
	}
	if cfg.MemoryBytes <= 0 {
		return nil, errors.New("memcached: --memory must be positive")
	}
	per := cfg.MemoryBytes / int64(rt.NumCores())
	if per < int64(cfg.MaxValue)+memcache.ItemOverhead+memcache.MaxKeyLen {
		return nil, fmt.Errorf("memcached: %d bytes per core cannot hold one value of %d bytes: raise --memory", per, cfg.MaxValue)
	}
	s := &mcServer{rt: rt, cfg: cfg, seed: maphash.MakeSeed(), started: time.Now()}
	sh, err := core.NewSharded(context.Background(), rt, func(c int) *mcShard {
		return &mcShard{core: c, store: memcache.NewStore(memcache.StoreConfig{MaxBytes: per, Core: c, Cores: rt.NumCores(), Now: cfg.Now})}
	})
	if err != nil {
		return nil, err
	}
	s.sh = sh
	s.op = core.NewCall(sh, serveOp, completeOp)
	s.srv, err = n.ServeTCPCores(port, s.handler)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops listening; connections go on until the network shuts down.
func (s *mcServer) Close() error { return s.srv.Close() }

// owner is the core that holds key.
func (s *mcServer) owner(key []byte) int {
	n := s.sh.NumCores()
	if n == 1 {
		return 0
	}
	return int(maphash.Bytes(s.seed, key) % uint64(n))
}

// handler is core c's connection handler.
func (s *mcServer) handler(c int) sockets.Handler {
	shard := s.sh.Local(c)
	return sockets.Handler{
		Open: func(tc *stack.TCPConn) {
			cn := shard.newConn(s, tc)
			tc.Context = cn
		},
		Data: func(tc *stack.TCPConn, a, b []byte) int {
			cn, ok := tc.Context.(*mcConn)
			if !ok {
				return len(a) + len(b)
			}
			k := cn.onData(a, b)
			cn.flush()
			return k
		},
		Writable: func(tc *stack.TCPConn) {
			if cn, ok := tc.Context.(*mcConn); ok {
				cn.onWritable()
			}
		},
		PeerClosed: func(tc *stack.TCPConn) {
			if cn, ok := tc.Context.(*mcConn); ok {
				cn.peerClosed = true
				cn.maybeClose()
			} else {
				tc.Close()
			}
		},
		Closed: func(tc *stack.TCPConn, err error) {
			if cn, ok := tc.Context.(*mcConn); ok {
				tc.Context = nil
				cn.onClosed()
			}
		},
	}
}

func (sh *mcShard) newConn(s *mcServer, tc *stack.TCPConn) *mcConn {
	var cn *mcConn
	if k := len(sh.freeConns); k > 0 {
		cn = sh.freeConns[k-1]
		sh.freeConns[k-1] = nil
		sh.freeConns = sh.freeConns[:k-1]
	} else {
		cn = &mcConn{srv: s, shard: sh, core: sh.core}
		cn.waiter.Init(cn.resume)
	}
	cn.tc = tc
	sh.currConns++
	sh.totalConns++
	return cn
}

// mcConn is one connection's state, on its core.
type mcConn struct {
	srv   *mcServer
	shard *mcShard
	core  int
	tc    *stack.TCPConn // nil once closed

	cmd      memcache.Command
	in       []byte // received bytes taken from the stack and not yet parsed
	skip     int    // bytes of a refused value still to swallow
	progress int    // keys (or cores) of the current request already sent

	// The replies, in request order: a ring of entries.
	q       []*mcEntry
	qHead   int
	qLen    int
	freeEnt []*mcEntry

	out    []byte // replies the TCP send ring has not taken, from outOff
	outOff int

	outstanding int // calls in flight for this connection
	waiter      core.Waiter
	stall       stallReason
	processing  bool
	closing     bool // quit or a fatal error is queued: read no more
	closeAfter  bool // the closing reply is in out: close once it is written
	peerClosed  bool
	fin         bool // Close was called
	closed      bool
}

type stallReason uint8

const (
	notStalled   stallReason = iota
	stallBusy                // a call was refused: the waiter resumes
	stallPending             // too many replies pending: completions resume
	stallOutput              // the client is not reading: Writable resumes
)

// mcEntry is one reply in a connection's queue.
type mcEntry struct {
	buf    []byte
	ready  bool
	parts  int  // calls still to answer (stats and flush_all ask every core)
	close  bool // close the connection after this reply
	silent bool // flush_all noreply
	stats  mcStats
	reset  bool
	op     memcache.Op
}

// onData takes received bytes: parsed in place from a when nothing is
// held, else appended to the connection's buffer. It returns how many the
// stack may discard.
func (cn *mcConn) onData(a, b []byte) int {
	if cn.closing {
		return len(a) + len(b) // after quit, the rest is ignored
	}
	if cn.stall != notStalled || cn.processing {
		return 0
	}
	taken := 0
	if len(cn.in) == 0 {
		k := cn.process(a)
		if cn.closing {
			return len(a) + len(b)
		}
		if cn.stall != notStalled || (k == len(a) && len(b) == 0) {
			return k
		}
		// An incomplete request, or one that continues in b: hold it.
		cn.in = append(cn.in, a[k:]...)
		taken, a = len(a), nil
	}
	cn.in = append(cn.in, a...)
	cn.in = append(cn.in, b...)
	taken += len(a) + len(b)
	cn.processIn()
	return taken
}

// processIn processes the held bytes and keeps what is left.
func (cn *mcConn) processIn() {
	k := cn.process(cn.in)
	if cn.closing {
		k = len(cn.in)
	}
	rest := copy(cn.in, cn.in[k:])
	cn.in = cn.in[:rest]
	if rest == 0 && cap(cn.in) > 256<<10 {
		cn.in = nil // a large value passed: do not keep its buffer
	}
}

// process handles the whole requests at the start of p and returns the
// bytes they took; it stops early when the connection stalls or closes.
func (cn *mcConn) process(p []byte) int {
	cn.processing = true
	defer func() { cn.processing = false }()
	done := 0
	for done < len(p) && !cn.closing {
		if cn.skip > 0 {
			k := min(cn.skip, len(p)-done)
			cn.skip -= k
			done += k
			continue
		}
		if cn.qLen >= mcMaxPending {
			cn.stall = stallPending
			return done
		}
		if len(cn.out)-cn.outOff >= mcMaxOut {
			// Stall only once the send ring refuses: Writable resumes.
			if cn.flush(); len(cn.out)-cn.outOff >= mcMaxOut {
				cn.stall = stallOutput
				return done
			}
		}
		n, err := memcache.Parse(p[done:], &cn.cmd, cn.srv.cfg.MaxValue)
		if err != nil {
			var perr *memcache.Error
			errors.As(err, &perr)
			cn.shard.protocolErrors++
			if perr != memcache.ErrBadDataChunk || !cn.cmd.NoReply {
				// (memcached keeps noreply for a bad data chunk.)
				cn.reply(perr.Reply())
			}
			if perr.Close {
				cn.closeQueued()
				return len(p)
			}
			done += n
			cn.skip = cn.cmd.Swallow
			cn.progress = 0
			continue
		}
		if n == 0 {
			if need := cn.cmd.Need; need > 0 && cap(cn.in) < need {
				// A large value is arriving: make room for it once.
				cn.in = append(make([]byte, 0, need), cn.in...)
			}
			return done
		}
		if !cn.dispatch(&cn.cmd) {
			return done
		}
		cn.progress = 0
		done += n
	}
	return done
}

// dispatch runs one request: calls to the owning cores, or a reply of the
// connection's own. It returns false when a call was refused for
// back-pressure; cn.progress then says how far it got, and the request is
// dispatched again, from there, when the connection resumes.
func (cn *mcConn) dispatch(cmd *memcache.Command) bool {
	s := cn.srv
	switch op := cmd.Op; {
	case op.IsRetrieval():
		for i := cn.progress; i < len(cmd.Keys); i++ {
			key := cmd.Keys[i]
			ent := cn.pending(op)
			if !cn.call(s.owner(key), cmd, key, ent) {
				cn.unpend(ent)
				cn.progress = i
				return false
			}
		}
		cn.reply(memcache.ReplyEnd)
	case op.IsStorage(), op == memcache.OpDelete, op == memcache.OpIncr, op == memcache.OpDecr, op == memcache.OpTouch:
		var ent *mcEntry
		if !cmd.NoReply {
			ent = cn.pending(op)
		}
		if !cn.call(s.owner(cmd.Keys[0]), cmd, cmd.Keys[0], ent) {
			if ent != nil {
				cn.unpend(ent)
			}
			return false
		}
	case op == memcache.OpFlushAll, op == memcache.OpStats:
		if op == memcache.OpStats && len(cmd.Stats) != 0 {
			switch string(cmd.Stats) {
			case "reset":
			case "settings":
				cn.reply(s.settings())
				return true
			default:
				cn.shard.protocolErrors++
				cn.reply(memcache.ErrUnknownCommand.Reply())
				return true
			}
		}
		// Every core, in turn; one reply when all have answered.
		var ent *mcEntry
		if cn.progress == 0 || cn.qLen == 0 {
			ent = cn.pending(op)
			ent.parts = s.sh.NumCores()
			ent.reset = len(cmd.Stats) != 0
			// flush_all noreply keeps its place in the queue, so what
			// follows it is answered after it, but says nothing.
			ent.silent = cmd.NoReply
		} else {
			ent = cn.entry(cn.qLen - 1) // the one this request made before it stalled
		}
		for c := cn.progress; c < s.sh.NumCores(); c++ {
			if !cn.call(c, cmd, nil, ent) {
				cn.progress = c
				return false
			}
		}
	case op == memcache.OpVersion:
		cn.reply([]byte("VERSION " + mcVersion + "\r\n"))
	case op == memcache.OpVerbosity:
		if !cmd.NoReply {
			cn.reply(memcache.ReplyOK)
		}
	case op == memcache.OpQuit:
		cn.closeQueued()
	}
	return true
}

// call sends one request to core to: inline when to is this core (key and
// data stay views), else with key and data copied into the call's slot.
func (cn *mcConn) call(to int, cmd *memcache.Command, key []byte, ent *mcEntry) bool {
	s := cn.srv
	r, err := s.op.Reserve(cn.core, to)
	if err != nil {
		if errors.Is(err, core.ErrBusy) && s.op.WhenRoom(cn.core, to, &cn.waiter) {
			cn.stall = stallBusy
			cn.shard.busyStalls++
			return false
		}
		if errors.Is(err, core.ErrBusy) {
			// Room came back between the refusal and the wait: retry.
			return cn.call(to, cmd, key, ent)
		}
		// The runtime is stopping: answer what can be answered.
		if ent != nil {
			ent.buf = append(ent.buf[:0], "SERVER_ERROR shutting down\r\n"...)
			ent.parts = 0
			ent.ready = true
		}
		return true
	}
	a := &r.Arg
	a.cn, a.ent, a.op = cn, ent, cmd.Op
	a.flags, a.exptime, a.cas, a.delta = cmd.Flags, cmd.Exptime, cmd.Cas, cmd.Delta
	a.reset = cmd.Op == memcache.OpStats && len(cmd.Stats) != 0
	if cmd.Op == memcache.OpFlushAll {
		a.exptime = cmd.Delay
	}
	a.inline = to == cn.core
	if a.inline {
		a.key, a.data = key, cmd.Data
	} else {
		a.keyBuf = append(a.keyBuf[:0], key...)
		a.key = a.keyBuf
		a.data = nil
		if cmd.Data != nil {
			a.dataBuf = append(a.dataBuf[:0], cmd.Data...)
			a.data = a.dataBuf
			if cap(a.dataBuf) > 64<<10 {
				a.dataBuf = nil // the slot does not keep a large value's buffer
			}
		}
	}
	cn.outstanding++
	s.op.Send(r)
	return true
}

// serveOp runs a request on the core that owns its key.
func serveOp(sh *mcShard, a *mcArg, r *mcRes) {
	st := sh.store
	r.found = false
	switch a.op {
	case memcache.OpGet, memcache.OpGets, memcache.OpGat, memcache.OpGats:
		var v memcache.Value
		if a.op == memcache.OpGat || a.op == memcache.OpGats {
			v, r.found = st.GetAndTouch(a.key, a.exptime)
		} else {
			v, r.found = st.Get(a.key)
		}
		if r.found {
			r.flags, r.cas = v.Flags, v.Cas
			if a.inline {
				r.value = v.Data
			} else {
				r.valBuf = append(r.valBuf[:0], v.Data...)
				r.value = r.valBuf
				if cap(r.valBuf) > 64<<10 {
					r.valBuf = nil
				}
			}
		}
	case memcache.OpDelete:
		r.result = st.Delete(a.key)
	case memcache.OpTouch:
		r.result = st.Touch(a.key, a.exptime)
	case memcache.OpIncr, memcache.OpDecr:
		r.number, r.result = st.IncrDecr(a.key, a.delta, a.op == memcache.OpIncr)
	case memcache.OpFlushAll:
		st.FlushAll(a.exptime)
	case memcache.OpStats:
		if a.reset {
			st.ResetStats()
			sh.protocolErrors, sh.busyStalls, sh.totalConns = 0, 0, sh.currConns
		}
		sh.snapshot(&r.stats)
	default: // storage
		r.result = st.Store(a.op, a.key, a.flags, a.exptime, a.data, a.cas)
	}
}

func (sh *mcShard) snapshot(s *mcStats) {
	s.store = sh.store.Stats()
	s.currConns, s.totalConns = sh.currConns, sh.totalConns
	s.protocolErrors, s.busyStalls = sh.protocolErrors, sh.busyStalls
	s.items = uint64(sh.store.Len())
}

// completeOp runs on the connection's core with the owner's answer.
func completeOp(a *mcArg, r *mcRes) {
	cn, ent := a.cn, a.ent
	a.cn, a.ent = nil, nil
	value := r.value
	r.value = nil
	cn.outstanding--
	if cn.closed {
		a.key, a.data = nil, nil
		cn.maybeRecycle()
		return
	}
	if ent != nil {
		switch a.op {
		case memcache.OpGet, memcache.OpGat:
			if r.found {
				ent.buf = memcache.AppendValue(ent.buf, a.keyOf(), r.flags, value, 0, false)
			}
		case memcache.OpGets, memcache.OpGats:
			if r.found {
				ent.buf = memcache.AppendValue(ent.buf, a.keyOf(), r.flags, value, r.cas, true)
			}
		case memcache.OpIncr, memcache.OpDecr:
			if r.result == memcache.Stored {
				ent.buf = memcache.AppendNumber(ent.buf, r.number)
			} else {
				ent.buf = append(ent.buf, r.result.Reply()...)
			}
		case memcache.OpFlushAll:
			if ent.parts--; ent.parts > 0 {
				return
			}
			if !ent.silent {
				ent.buf = append(ent.buf, memcache.ReplyOK...)
			}
		case memcache.OpStats:
			ent.stats.add(&r.stats)
			if ent.parts--; ent.parts > 0 {
				return
			}
			if ent.reset {
				ent.buf = append(ent.buf, memcache.ReplyReset...)
			} else {
				ent.buf = cn.srv.appendStats(ent.buf, &ent.stats)
			}
		default:
			ent.buf = append(ent.buf, r.result.Reply()...)
		}
		ent.ready = true
	}
	a.key, a.data = nil, nil // views of the input, or of the slot's buffers
	cn.drain()
	if cn.processing {
		return // an inline call: the request loop goes on and flushes
	}
	if cn.qLen == 0 || len(cn.out)-cn.outOff >= mcDirectOut {
		cn.flush()
	}
	if cn.stall == stallPending && cn.qLen < mcMaxPending/2 {
		cn.resume()
	}
}

// keyOf is the key of a retrieval, as the reply names it.
func (a *mcArg) keyOf() []byte {
	if a.inline {
		return a.key
	}
	return a.keyBuf
}

// pending queues a reply that a call will fill.
func (cn *mcConn) pending(op memcache.Op) *mcEntry {
	var e *mcEntry
	if k := len(cn.freeEnt); k > 0 {
		e = cn.freeEnt[k-1]
		cn.freeEnt = cn.freeEnt[:k-1]
	} else {
		e = &mcEntry{}
	}
	e.buf, e.ready, e.parts, e.close, e.silent, e.op, e.reset = e.buf[:0], false, 0, false, false, op, false
	e.stats = mcStats{}
	if cn.qLen == len(cn.q) {
		// Grow the ring, keeping the order.
		q := make([]*mcEntry, max(8, 2*len(cn.q)))
		for i := range cn.qLen {
			q[i] = cn.entry(i)
		}
		cn.q, cn.qHead = q, 0
	}
	cn.q[(cn.qHead+cn.qLen)%len(cn.q)] = e
	cn.qLen++
	return e
}

// unpend takes back the last queued entry (its call was refused).
func (cn *mcConn) unpend(e *mcEntry) {
	cn.qLen--
	cn.q[(cn.qHead+cn.qLen)%len(cn.q)] = nil
	cn.freeEnt = append(cn.freeEnt, e)
}

func (cn *mcConn) entry(i int) *mcEntry { return cn.q[(cn.qHead+i)%len(cn.q)] }

// reply queues a reply that is ready now.
func (cn *mcConn) reply(p []byte) {
	if cn.qLen == 0 {
		cn.out = append(cn.out, p...)
		return
	}
	e := cn.pending(memcache.OpNone)
	e.buf = append(e.buf, p...)
	e.ready = true
}

// closeQueued queues the connection's close after the replies before it.
func (cn *mcConn) closeQueued() {
	cn.closing = true
	e := cn.pending(memcache.OpQuit)
	e.ready, e.close = true, true
	cn.drain()
}

// drain moves the ready replies at the head of the queue to out.
func (cn *mcConn) drain() {
	for cn.qLen > 0 {
		e := cn.q[cn.qHead]
		if !e.ready {
			return
		}
		cn.out = append(cn.out, e.buf...)
		if e.close {
			cn.closeAfter = true
		}
		cn.q[cn.qHead] = nil
		cn.qHead = (cn.qHead + 1) % len(cn.q)
		cn.qLen--
		if cap(e.buf) > 64<<10 {
			e.buf = nil
		}
		cn.freeEnt = append(cn.freeEnt, e)
	}
}

// flush writes what the send ring takes of out, and closes the connection
// if it is done.
func (cn *mcConn) flush() {
	if cn.closed || cn.tc == nil {
		return
	}
	if cn.outOff < len(cn.out) {
		k, err := cn.tc.Write(cn.out[cn.outOff:])
		if err != nil {
			cn.out, cn.outOff = cn.out[:0], 0
			return
		}
		cn.outOff += k
		if cn.outOff == len(cn.out) {
			cn.out, cn.outOff = cn.out[:0], 0
			if cap(cn.out) > 1<<20 {
				cn.out = nil
			}
		}
	}
	cn.maybeClose()
}

// maybeClose closes the connection once a quit's reply is written, or
// once the peer has closed and everything it sent is answered.
func (cn *mcConn) maybeClose() {
	if cn.closed || cn.fin || cn.tc == nil || cn.outOff < len(cn.out) {
		return
	}
	if cn.closeAfter || (cn.peerClosed && cn.qLen == 0 && len(cn.in) == 0 && cn.stall == notStalled && cn.tc.Buffered() == 0) {
		cn.fin = true
		cn.tc.Close()
	}
}

// onWritable writes more of out, and resumes a connection that stopped
// reading because its client did not read.
func (cn *mcConn) onWritable() {
	cn.flush()
	if cn.stall == stallOutput && len(cn.out)-cn.outOff < mcMaxOut/2 {
		cn.resume()
	}
}

// resume goes on reading after a stall: what is held, then what waits in
// the stack's receive ring.
func (cn *mcConn) resume() {
	if cn.closed || cn.processing || cn.tc == nil {
		return
	}
	cn.stall = notStalled
	if len(cn.in) > 0 {
		cn.processIn()
	}
	if cn.stall == notStalled && !cn.closing {
		if a, b := cn.tc.Peek(); len(a)+len(b) > 0 {
			cn.tc.Discard(cn.onData(a, b))
		}
	}
	cn.flush()
}

// onClosed forgets the TCP connection (the stack reuses it) and recycles
// the state once no call for it is in flight.
func (cn *mcConn) onClosed() {
	cn.closed = true
	cn.tc = nil
	cn.waiter.Cancel()
	cn.shard.currConns--
	cn.maybeRecycle()
}

func (cn *mcConn) maybeRecycle() {
	if !cn.closed || cn.outstanding > 0 {
		return
	}
	for cn.qLen > 0 {
		cn.q[cn.qHead] = nil
		cn.qHead = (cn.qHead + 1) % len(cn.q)
		cn.qLen--
	}
	cn.qHead = 0
	cn.in, cn.out, cn.outOff = cn.in[:0], cn.out[:0], 0
	if cap(cn.in) > 64<<10 {
		cn.in = nil
	}
	if cap(cn.out) > 64<<10 {
		cn.out = nil
	}
	cn.skip, cn.progress, cn.stall = 0, 0, notStalled
	cn.closing, cn.closeAfter, cn.peerClosed, cn.fin, cn.closed = false, false, false, false, false
	cn.shard.freeConns = append(cn.shard.freeConns, cn)
}

// appendStats formats the general statistics, totals over every core.
func (s *mcServer) appendStats(b []byte, st *mcStats) []byte {
	now := time.Now()
	ss := &st.store
	b = memcache.AppendStat(b, "pid", uint64(os.Getpid()))
	b = memcache.AppendStat(b, "uptime", uint64(now.Sub(s.started)/time.Second))
	b = memcache.AppendStat(b, "time", uint64(now.Unix()))
	b = memcache.AppendStatString(b, "version", mcVersion)
	b = memcache.AppendStat(b, "pointer_size", 64)
	b = memcache.AppendStat(b, "curr_connections", st.currConns)
	b = memcache.AppendStat(b, "total_connections", st.totalConns)
	b = memcache.AppendStat(b, "cmd_get", ss.CmdGet)
	b = memcache.AppendStat(b, "cmd_set", ss.CmdSet)
	b = memcache.AppendStat(b, "cmd_flush", ss.CmdFlush)
	b = memcache.AppendStat(b, "cmd_touch", ss.CmdTouch)
	b = memcache.AppendStat(b, "get_hits", ss.GetHits)
	b = memcache.AppendStat(b, "get_misses", ss.GetMisses)
	b = memcache.AppendStat(b, "get_expired", ss.GetExpired)
	b = memcache.AppendStat(b, "get_flushed", ss.GetFlushed)
	b = memcache.AppendStat(b, "delete_misses", ss.DeleteMisses)
	b = memcache.AppendStat(b, "delete_hits", ss.DeleteHits)
	b = memcache.AppendStat(b, "incr_misses", ss.IncrMisses)
	b = memcache.AppendStat(b, "incr_hits", ss.IncrHits)
	b = memcache.AppendStat(b, "decr_misses", ss.DecrMisses)
	b = memcache.AppendStat(b, "decr_hits", ss.DecrHits)
	b = memcache.AppendStat(b, "cas_misses", ss.CasMisses)
	b = memcache.AppendStat(b, "cas_hits", ss.CasHits)
	b = memcache.AppendStat(b, "cas_badval", ss.CasBadval)
	b = memcache.AppendStat(b, "touch_hits", ss.TouchHits)
	b = memcache.AppendStat(b, "touch_misses", ss.TouchMisses)
	b = memcache.AppendStat(b, "threads", uint64(s.sh.NumCores()))
	b = memcache.AppendStat(b, "bytes", ss.Bytes)
	b = memcache.AppendStat(b, "curr_items", ss.CurrItems)
	b = memcache.AppendStat(b, "total_items", ss.TotalItems)
	b = memcache.AppendStat(b, "expired_unfetched", ss.Expired)
	b = memcache.AppendStat(b, "evictions", ss.Evictions)
	b = memcache.AppendStat(b, "reclaimed", ss.Reclaimed)
	b = memcache.AppendStat(b, "limit_maxbytes", ss.MaxBytes)
	b = memcache.AppendStat(b, "out_of_memory", ss.OutOfMemory)
	b = memcache.AppendStat(b, "protocol_errors", st.protocolErrors)
	b = memcache.AppendStat(b, "busy_stalls", st.busyStalls)
	return append(b, memcache.ReplyEnd...)
}

// settings answers "stats settings".
func (s *mcServer) settings() []byte {
	var b []byte
	b = memcache.AppendStat(b, "maxbytes", uint64(s.cfg.MemoryBytes))
	b = memcache.AppendStat(b, "item_size_max", uint64(s.cfg.MaxValue))
	b = memcache.AppendStat(b, "num_threads", uint64(s.sh.NumCores()))
	b = memcache.AppendStatString(b, "evictions", "on")
	b = memcache.AppendStatString(b, "cas_enabled", "yes")
	return append(b, memcache.ReplyEnd...)
}

// Stats returns the statistics of every core, asked with the blocking
// form of the call (from a goroutine: the metrics scrape, a test).
func (s *mcServer) Stats(ctx context.Context) ([]mcStats, error) {
	out := make([]mcStats, s.sh.NumCores())
	for c := range out {
		var r mcRes
		if err := s.op.Wait(ctx, c, &mcArg{op: memcache.OpStats}, &r); err != nil {
			return nil, err
		}
		out[c] = r.stats
	}
	return out, nil
}
