//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
)

// The link: packetdrill speaks IPv4 packets, the stack Ethernet frames.
var (
	stackMAC = header.MAC{0x02, 0, 0, 0, 0, 0x01}
	peerMAC  = header.MAC{0x02, 0, 0, 0, 0, 0x02}
)

const (
	frameSize   = 16 << 10 // room for the large segments GRO scripts inject
	poolBuffers = 2048
	// defaultHorizon bounds how far netdev_receive, and a blocking call on
	// the main thread, move the clock looking for something to happen.
	defaultHorizon = 10 * time.Minute
	// settleTimeout bounds, in real time, the wait for a woken blocking call
	// to finish before the main thread goes on.
	settleTimeout = 2 * time.Second
)

// options are the plugin's flags (--so_flags, comma-separated key=value).
type options struct {
	local   netip.Prefix // the stack's address and subnet
	gateway netip.Addr
	sysctl  string // where the net.ipv4 sysctls are read
	horizon time.Duration
	verbose bool
}

func parseOptions(s string) (options, error) {
	o := options{
		local:   netip.MustParsePrefix("192.168.0.2/16"),
		gateway: netip.MustParseAddr("192.168.0.1"),
		sysctl:  "/proc/sys/net/ipv4",
		horizon: defaultHorizon,
	}
	for _, kv := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "local":
			o.local, err = netip.ParsePrefix(v)
		case "gateway":
			o.gateway, err = netip.ParseAddr(v)
		case "sysctl":
			o.sysctl = v
		case "horizon":
			o.horizon, err = time.ParseDuration(v)
		case "verbose":
			o.verbose = true
		default:
			err = fmt.Errorf("unknown flag")
		}
		if err != nil {
			return o, fmt.Errorf("so_flags %q: %v", kv, err)
		}
	}
	return o, nil
}

// packet is an IPv4 packet the stack sent and when.
type packet struct {
	data []byte
	at   int64 // ns on the virtual clock
}

// waiter is a blocking call asleep in the plugin.
type waiter struct {
	seen     uint64 // the state generation it last evaluated
	deadline int64  // virtual ns, 0 for none
}

// plugin is one stack and the socket table over it. One mutex serializes
// every call: packetdrill calls from its main thread and from its system
// call thread.
type plugin struct {
	mu    sync.Mutex
	cond  *sync.Cond
	opts  options
	clock *nicq.VirtualClock
	pool  *nicq.Pool
	st    *stack.Stack
	cfg   stack.TCPConfig
	log   io.Writer

	out []packet

	fds map[int]*sock

	mainTid int
	gtodTid int // the thread whose gettimeofday was the last call, 0 if another call was

	gen     uint64 // bumped on every change of the stack's state or clock
	waiters map[*waiter]bool
	stamp   map[int]bool // threads that returned from a blocking call and owe a gettimeofday

	nextPort uint16 // ephemeral ports, as Linux's range
	bindPort uint16 // the port a bound socket's connect asks PickIPv4 for

	sysctls map[string]string // as read when the stack was made
}

func newPlugin(opts options, mainTid int) (*plugin, error) {
	pool, err := nicq.NewPool(nicq.PoolConfig{Name: "packetdrill", Buffers: poolBuffers, FrameSize: frameSize})
	if err != nil {
		return nil, err
	}
	// Start on a millisecond boundary of the real time, so the times the
	// plugin reports look like the wall clock packetdrill expects.
	start := time.Now().Truncate(time.Second).UnixNano()
	p := &plugin{
		opts:     opts,
		clock:    nicq.NewVirtualClock(start),
		pool:     pool,
		log:      os.Stderr,
		fds:      make(map[int]*sock),
		mainTid:  mainTid,
		waiters:  make(map[*waiter]bool),
		stamp:    make(map[int]bool),
		nextPort: 40000,
	}
	p.cond = sync.NewCond(&p.mu)
	return p, nil
}

func (p *plugin) logf(format string, args ...any) {
	fmt.Fprintf(p.log, "mkstack plugin: "+format+"\n", args...)
}

func (p *plugin) debugf(format string, args ...any) {
	if p.opts.verbose {
		p.logf(format, args...)
	}
}

// readSysctl returns the net.ipv4 sysctl name as the script left it.
func (p *plugin) readSysctl(name string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(p.opts.sysctl, name))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// tcpConfig maps the sysctls scripts set onto TCPConfig, with Linux's
// values for the policies the sysctls do not name.
func (p *plugin) tcpConfig() stack.TCPConfig {
	cfg := stack.TCPConfig{
		ISNKey:     [16]byte{'p', 'a', 'c', 'k', 'e', 't', 'd', 'r', 'i', 'l', 'l'},
		MSL:        30 * time.Second, // TIME-WAIT 60s
		InitialRTO: time.Second,
		MinRTO:     200 * time.Millisecond,
		MaxRTO:     120 * time.Second, // TCP_RTO_MAX
		MaxRetries: 15,
		DelayedACK: 40 * time.Millisecond,
		QuickACKs:  16, // TCP_MAX_QUICKACKS
		// Linux's tcp_rmem/tcp_wmem defaults before defaults.sh runs.
		ReceiveBuffer:    6 << 20,
		ReceiveBufferMax: 6 << 20,
		SendBuffer:       256 << 10,
		SendBufferMax:    4 << 20,
		Ports:            p,
	}
	p.sysctls = make(map[string]string)
	get := func(name string) (string, bool) {
		v, ok := p.readSysctl(name)
		if ok {
			p.sysctls[name] = v
		}
		return v, ok
	}
	if v, ok := get("tcp_timestamps"); ok && v == "0" {
		cfg.DisableTimestamps = true
	}
	if v, ok := get("tcp_sack"); ok && v == "0" {
		cfg.DisableSACK = true
	}
	// Linux derives its window scale from the largest receive buffer
	// (tcp_rmem[2]) and the stack from ReceiveBufferMax, so the largest
	// one gives the same scale (8 for defaults.sh's 15 MiB). The initial
	// bound is the largest too: the windows the scripts expect are those
	// of a receive buffer that autotuning has no need to grow.
	if v, ok := get("tcp_rmem"); ok {
		if f := strings.Fields(v); len(f) == 3 {
			if n, err := strconv.Atoi(f[2]); err == nil && n >= 1024 {
				cfg.ReceiveBuffer = min(n, 1<<30)
				cfg.ReceiveBufferMax = cfg.ReceiveBuffer
			}
		}
	}
	// The send buffer starts at tcp_wmem[1] and grows up to tcp_wmem[2],
	// as Linux's does.
	if v, ok := get("tcp_wmem"); ok {
		if f := strings.Fields(v); len(f) == 3 {
			if n, err := strconv.Atoi(f[1]); err == nil && n >= 1024 {
				cfg.SendBuffer = min(n, 1<<30)
				cfg.SendBufferMax = max(cfg.SendBuffer, cfg.SendBufferMax)
				if m, err := strconv.Atoi(f[2]); err == nil {
					cfg.SendBufferMax = max(cfg.SendBuffer, min(m, 1<<30))
				}
			}
		}
	}
	if v, ok := get("tcp_congestion_control"); ok {
		switch v {
		case "reno":
			cfg.Congestion = "newreno"
		default:
			cfg.Congestion = "cubic"
		}
	}
	if v, ok := get("tcp_syncookies"); ok && v == "0" {
		cfg.DisableSYNCookies = true
	}
	return cfg
}

// ensureStack makes the stack at the first call that needs it, after the
// script's first shell lines set its sysctls.
func (p *plugin) ensureStack() error {
	if p.st != nil {
		return nil
	}
	p.cfg = p.tcpConfig()
	gw := p.opts.gateway
	st, err := stack.New(stack.Config{
		MAC:          stackMAC,
		Addr:         p.opts.local,
		Gateway:      gw,
		Clock:        p.clock,
		Pool:         p.pool,
		NeighbourTTL: 24 * time.Hour,
		TxQueue:      4096,
		TCP:          p.cfg,
	})
	if err != nil {
		return err
	}
	p.st = st
	if gw.Is4() {
		st.LearnNeighbour(gw.As4(), peerMAC)
	}
	p.debugf("stack %v gateway %v config %+v sysctls %v", p.opts.local, gw, p.cfg, p.sysctls)
	return nil
}

// PickIPv4 and Release make the plugin the stack's PortPicker, so a bound
// socket connects from its port.
func (p *plugin) PickIPv4(local, remote [4]byte, remotePort uint16) (uint16, error) {
	if p.bindPort != 0 {
		return p.bindPort, nil
	}
	return p.ephemeral(), nil
}

func (p *plugin) Release(port uint16) bool { return true }

func (p *plugin) ephemeral() uint16 {
	for range 30000 {
		port := p.nextPort
		p.nextPort++
		if p.nextPort > 60999 {
			p.nextPort = 32768
		}
		if !p.portBound(port) {
			return port
		}
	}
	return 0
}

// ---- time and output ----

// collect takes the frames the stack sent: IPv4 packets go to the output
// queue stamped with the clock, ARP requests are answered.
func (p *plugin) collect() {
	if p.st == nil {
		return
	}
	now := p.clock.Now()
	var arpReplies [][]byte
	p.st.Flush(func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			f := b.Bytes()
			if len(f) >= 14 {
				switch binary.BigEndian.Uint16(f[12:14]) {
				case header.EtherTypeIPv4:
					ip := f[14:]
					if len(ip) >= 20 {
						if tl := int(binary.BigEndian.Uint16(ip[2:4])); tl >= 20 && tl <= len(ip) {
							ip = ip[:tl]
						}
						p.out = append(p.out, packet{data: append([]byte(nil), ip...), at: now})
					}
				case header.EtherTypeARP:
					if r := arpReply(f[14:]); r != nil {
						arpReplies = append(arpReplies, r)
					}
				}
			}
			b.Free()
		}
		return len(bufs)
	})
	for _, r := range arpReplies {
		p.inputFrame(r)
	}
}

// arpReply answers an ARP request for any address with the peer's MAC: the
// whole remote side is one host behind the link.
func arpReply(a []byte) []byte {
	if len(a) < 28 || binary.BigEndian.Uint16(a[6:8]) != 1 {
		return nil
	}
	f := make([]byte, 14+28)
	copy(f[0:6], a[8:14]) // the asker's MAC
	copy(f[6:12], peerMAC[:])
	binary.BigEndian.PutUint16(f[12:14], header.EtherTypeARP)
	r := f[14:]
	copy(r[0:6], a[0:6]) // htype, ptype, hlen, plen
	binary.BigEndian.PutUint16(r[6:8], 2)
	copy(r[8:14], peerMAC[:])
	copy(r[14:18], a[24:28]) // the address asked for
	copy(r[18:24], a[8:14])
	copy(r[24:28], a[14:18])
	return f
}

// inputFrame hands an Ethernet frame to the stack.
func (p *plugin) inputFrame(f []byte) bool {
	b := p.pool.Get()
	if b == nil {
		p.logf("packet pool empty: frame dropped")
		return false
	}
	if len(f) > b.Tailroom() {
		b.Free()
		p.logf("frame of %d bytes too large for the plugin's buffers: dropped", len(f))
		return false
	}
	copy(b.Append(len(f)), f)
	p.st.Input([]*nicq.Buf{b})
	p.collect()
	return true
}

// changed wakes the sleeping calls to look at the stack again.
func (p *plugin) changed() {
	p.gen++
	p.cond.Broadcast()
}

// sync runs the timers due by now and takes the output.
func (p *plugin) sync() {
	if p.st != nil {
		p.st.Advance()
		p.collect()
	}
}

// advanceTo moves the clock to t, running each timer at its own time.
func (p *plugin) advanceTo(t int64) {
	for p.st != nil {
		at, ok := p.st.NextTimer()
		if !ok || at > t {
			break
		}
		if at > p.clock.Now() {
			p.clock.Set(at)
		}
		before := p.clock.Now()
		p.st.Advance()
		p.collect()
		if n, ok2 := p.st.NextTimer(); ok2 && n <= before {
			// A timer due now that did not fire: go on a tick.
			p.clock.Set(before + int64(time.Millisecond))
		}
	}
	p.clock.Set(t)
	p.sync()
	p.changed()
}

// nextEvent returns the time of the next thing that happens by itself: a
// stack timer or the deadline of a sleeping call.
func (p *plugin) nextEvent() (int64, bool) {
	var at int64
	ok := false
	if p.st != nil {
		at, ok = p.st.NextTimer()
	}
	for w := range p.waiters {
		if w.deadline != 0 && (!ok || w.deadline < at) {
			at, ok = w.deadline, true
		}
	}
	if ok && at <= p.clock.Now() {
		at = p.clock.Now() + int64(time.Millisecond)
	}
	return at, ok
}

// quiescent reports whether every sleeping call has seen the latest state
// and every woken one has told packetdrill its end time.
func (p *plugin) quiescent() bool {
	if len(p.stamp) > 0 {
		return false
	}
	for w := range p.waiters {
		if w.seen != p.gen {
			return false
		}
	}
	return true
}

// settle waits (main thread) until the calls woken by the last change
// have finished or gone back to sleep.
func (p *plugin) settle() {
	if p.quiescent() {
		return
	}
	deadline := time.Now().Add(settleTimeout)
	for !p.quiescent() {
		if time.Now().After(deadline) {
			p.logf("a woken blocking call did not finish in %v; going on", settleTimeout)
			clear(p.stamp)
			for w := range p.waiters {
				w.seen = p.gen
			}
			return
		}
		p.cond.Wait()
	}
}

// ticker wakes every sleeper now and then so settle can time out.
func (p *plugin) ticker() {
	for range time.Tick(20 * time.Millisecond) {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// enter starts a call: the main thread first lets woken calls settle.
func (p *plugin) enter(tid int) {
	p.mu.Lock()
	if tid == p.mainTid {
		p.settle()
	}
}

// leave ends a socket call: a call from another thread is packetdrill's
// blocking call, which reads the clock next for its end time.
func (p *plugin) leave(tid int) {
	if tid != p.mainTid {
		p.stamp[tid] = true
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

// block waits until ready() holds, or the virtual deadline (0: none)
// passes, and reports whether ready() held. Off the main thread it sleeps
// while packetdrill's main thread moves time and injects packets; on the
// main thread nothing else moves time, so it runs the stack's timers
// itself, up to the horizon.
func (p *plugin) block(tid int, ready func() bool, deadline int64) bool {
	if ready() {
		return true
	}
	if tid == p.mainTid {
		limit := p.clock.Now() + int64(p.opts.horizon)
		for !ready() {
			now := p.clock.Now()
			if deadline != 0 && now >= deadline {
				return false
			}
			at, ok := p.nextEvent()
			if deadline != 0 && (!ok || deadline < at) {
				at, ok = deadline, true
			}
			if !ok || at > limit {
				p.logf("a call on packetdrill's main thread would block for good (the script did not mark it blocking)")
				return false
			}
			p.advanceTo(at)
		}
		return true
	}
	w := &waiter{seen: p.gen, deadline: deadline}
	p.waiters[w] = true
	defer delete(p.waiters, w)
	for {
		if ready() {
			return true
		}
		if deadline != 0 && p.clock.Now() >= deadline {
			return false
		}
		if w.seen != p.gen {
			w.seen = p.gen
			p.cond.Broadcast() // settle may be waiting for us
		}
		p.cond.Wait()
	}
}

// ---- the netdev and clock calls ----

// netdevSend injects an IP packet from packetdrill.
func (p *plugin) netdevSend(tid int, pkt []byte) int {
	p.enter(tid)
	defer p.mu.Unlock()
	p.gtodTid = 0
	if err := p.ensureStack(); err != nil {
		p.logf("%v", err)
		return -1
	}
	if len(pkt) == 0 || pkt[0]>>4 != 4 {
		p.debugf("dropping a non-IPv4 packet from packetdrill")
		return 0
	}
	p.sync()
	f := make([]byte, 14+len(pkt))
	copy(f[0:6], stackMAC[:])
	copy(f[6:12], peerMAC[:])
	binary.BigEndian.PutUint16(f[12:14], header.EtherTypeIPv4)
	copy(f[14:], pkt)
	p.inputFrame(f)
	p.changed()
	return 0
}

// netdevReceive returns the next packet the stack sent and its time, or
// no packet (n 0) when none comes within the horizon.
func (p *plugin) netdevReceive(tid int, buf []byte) (n int, atUsec int64) {
	p.enter(tid)
	defer p.mu.Unlock()
	p.gtodTid = 0
	p.sync()
	limit := p.clock.Now() + int64(p.opts.horizon)
	for len(p.out) == 0 {
		at, ok := p.nextEvent()
		if !ok || at > limit {
			p.debugf("netdev_receive: nothing within %v", p.opts.horizon)
			return 0, p.clock.Now() / 1000
		}
		p.advanceTo(at)
		p.settle()
	}
	pk := p.out[0]
	p.out[0] = packet{}
	p.out = p.out[1:]
	n = copy(buf, pk.data)
	return n, pk.at / 1000
}

// usleep moves the clock.
func (p *plugin) usleep(tid int, usec int64) {
	p.enter(tid)
	defer p.mu.Unlock()
	p.gtodTid = 0
	p.advanceTo(p.clock.Now() + usec*1000)
}

// gettimeofday reads the clock in microseconds.
func (p *plugin) gettimeofday(tid int) int64 {
	p.enter(tid)
	defer p.mu.Unlock()
	if p.gtodTid == tid {
		// packetdrill spins for the last microseconds before an event
		// (on whichever thread waits for it): let it arrive.
		p.advanceTo(p.clock.Now() + 1000)
	}
	p.gtodTid = tid
	if p.stamp[tid] {
		delete(p.stamp, tid)
		p.cond.Broadcast()
	}
	return p.clock.Now() / 1000
}
