package core

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
)

var overloadOut = flag.String("overload-out", "", "write the overload curve as JSON to this file (for docs/RELIABILITY.md)")

// overloadMinTCPShare is the least share of its rate without the flood
// that the established TCP flow must keep while the server is offered three
// times its peak. The flood and the flow arrive on separate link rings (one
// per sending queue, as separate queues of a NIC would carry them), so the
// flow's segments are never dropped at the flood's full ring; what it loses
// is the wait for the datagrams the core takes in the same iterations (a
// budget of 64, about 20 µs; the mem queue starts each Recv at the next
// link, so a segment waits one or two of them), against a round trip of a
// few µs without the flood. In the quieter windows measured it did 13 000
// to 19 000 transactions/s under 3x, against up to 190 000 alone: a share
// of about 0.09, the least to expect; on a busy machine its neighbours slow
// the flow alone more than the loaded one (0.19 to 0.76 measured, see
// docs/RELIABILITY.md). The bound is about half the least. A flow that
// moved only by retransmission timeouts (its ring starved, or transmit or
// timers starved by the receive work) would keep well under 0.001.
const overloadMinTCPShare = 0.05

// overloadAppWork is what the server's application spends on each
// datagram. With none, the server's peak (some 6M datagrams/s here) is more
// than a third of what one CPU can offer through the mem wire (some 20M/s:
// the sending queue routes and RSS-hashes every frame, the work a NIC does
// in hardware), so the generator could not reach 3x. With it the peak is
// some 1-3M/s and the generator has room to spare, also on a CPU shared with
// a neighbour. The excess is still dropped at the ring before any of the
// stack's or the application's work is spent on it, which is what the test
// checks.
const overloadAppWork = 100 * time.Nanosecond

// TestOverloadDoesNotLivelock offers a one-core server more 64-byte UDP
// datagrams than it can take, up to three times its capacity, while a TCP
// connection to the same core keeps doing request/response. At three times
// the peak, delivered throughput must stay at 90% of what the server
// delivers at its peak side by side (the excess is dropped at the receive
// ring before any work is spent on it: the budgeted loop of
// docs/ARCHITECTURE.md's core runtime section), and the TCP flow must keep
// overloadMinTCPShare of its rate without the flood (transmit and timers
// keep their share of each loop iteration).
//
// The generator (frametest.Flood) must reach three times the peak: if it
// cannot, the test fails and says what rate it reached, since a test that
// never overloads the server checks nothing. It writes one prebuilt frame
// into the wire in bursts, pinned to the CPU the server does not use.
func TestOverloadDoesNotLivelock(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("rates under the race detector or the mkstackdebug buffer checks say nothing")
	}
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1},
		{MAC: [6]byte{2, 0, 0, 0, 0, 3}, Queues: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	allowed, err := affinity.AllowedCPUs()
	if err != nil || allowed.Count() < 2 {
		t.Skip("needs two CPUs: the server's core on one, the load on the other")
	}
	var cpus []int
	for c := 0; len(cpus) < 2 && c < 1024; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	var delivered atomic.Uint64
	srv := start(t, w.NIC(0), addrA, func(c *Config) {
		c.CPUs = []int{cpus[1]}
		c.OnStart = func(s *stack.Stack) {
			s.BindUDP(9, stack.UDPOptions{Handler: func(*stack.UDPEndpoint, []byte, [4]byte, uint16) {
				for start := time.Now(); time.Since(start) < overloadAppWork; {
				}
				delivered.Add(1)
			}})
			listenTCPEcho(s, 7)
		}
	})
	// The TCP flow: a client runtime on NIC 2 keeps one request in flight.
	var transactions atomic.Uint64
	cli := start(t, w.NIC(2), netip.MustParseAddr("10.0.0.3").As4(), func(c *Config) {
		c.CPUs = []int{cpus[0]}
		c.SpinWindow = -1 // it shares its CPU with the load generator
	})
	var req [64]byte
	err = cli.DoWait(ctxT(t), 0, func(s *stack.Stack) {
		s.DialTCP(addrA, 7, stack.TCPConnOptions{NoDelay: true, OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
			switch ev {
			case stack.TCPEventEstablished:
				c.Write(req[:])
			case stack.TCPEventReadable:
				for c.Buffered() >= len(req) {
					c.Discard(len(req))
					transactions.Add(1)
					c.Write(req[:])
				}
			}
		}})
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() string { return "the TCP flow to start" }, func() bool { return transactions.Load() > 10 })

	// The flood: raw frames from NIC 1's queue straight at the server. The
	// generator yields its CPU after each burst, so that the TCP client
	// sharing it runs when woken (otherwise the flow would measure the
	// scheduler's time slice, not the server).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := affinity.Pin(cpus[0]); err != nil {
		t.Fatal(err)
	}
	gen := &frametest.Flood{
		Queue: w.NIC(1).Queue(0),
		Frame: frametest.UDP4{SrcMAC: [6]byte{2, 0, 0, 0, 0, 2}, DstMAC: [6]byte{2, 0, 0, 0, 0, 1}, Src: addrB, Dst: addrA, SrcPort: 4000, DstPort: 9, Payload: make([]byte, 22)}.Frame(),
		Burst: 256,
		Yield: true,
	}
	step, substep := 400*time.Millisecond, 100*time.Millisecond
	if testing.Short() {
		step = 250 * time.Millisecond
	}
	sample := func(rate float64, d time.Duration) frametest.OverloadSample {
		d0, t0 := delivered.Load(), transactions.Load()
		offered, secs := gen.Run(rate, d)
		return frametest.OverloadSample{Offered: float64(offered), Delivered: float64(delivered.Load() - d0), Transactions: float64(transactions.Load() - t0), Secs: secs}
	}
	measure := func(rate float64) frametest.OverloadSample { return sample(rate, substep) }
	// The TCP flow without the flood: the generator runs but offers next
	// to nothing (1 frame/s), spinning and yielding as between bursts, so
	// that its CPU stays as awake as under load. (Asleep, it would let
	// the CPU idle and measure the VM's wake-up latency instead: on veth
	// the flow alone then ran slower than under the flood.)
	unloaded := func() frametest.OverloadSample { return sample(1, substep) }
	// Capacity: what the server delivers under an unpaced flood; then the
	// curve, for the record.
	flood := sample(0, step).Rate()
	capacity := flood.Delivered
	var curve []frametest.OverloadRate
	peak := flood.Delivered
	for _, f := range []float64{0.25, 0.5, 0.75, 1, 1.5, 2, 3} {
		p := sample(f*capacity, step).Rate()
		curve = append(curve, p)
		peak = max(peak, p.Delivered)
	}
	curve = append(curve, flood)
	for _, p := range curve {
		t.Logf("offered %9.0f pps (%4.2fx the peak): delivered %9.0f pps (%.2f of the peak), TCP %7.0f trans/s",
			p.Offered, p.Offered/peak, p.Delivered, p.Delivered/peak, p.TCPRate)
	}

	// The verdict, side by side: short steps of the flow alone, the peak
	// and three times the peak, interleaved, so that all three see the
	// same neighbours on a shared machine, summed over the window. A
	// window passes when the generator reached 3x, the server delivered
	// 90% of what it delivers offered its peak and the flow kept its
	// share; a livelock, or a starved flow, fails every window, a
	// neighbour that takes a CPU for a while only some.
	var v frametest.OverloadVerdict
	var sleepsUnderLoad uint64
	for try := 1; try <= 3; try++ {
		sleepsUnderLoad = 0
		v = frametest.OverloadVerdict{}
		for i := 0; i < 8; i++ {
			v.Base.Add(unloaded())
			one := measure(peak)
			v.One.Add(one)
			// The server may take more now than at the sweep (a
			// neighbour left): pace from the best rate seen.
			peak = max(peak, one.Rate().Delivered)
			s0 := srv.Counters().Get(IdleSleeps)
			three := measure(3.5 * peak)
			sleepsUnderLoad += srv.Counters().Get(IdleSleeps) - s0
			v.Three.Add(three)
			peak = max(peak, three.Rate().Delivered)
		}
		v.Judge(overloadMinTCPShare)
		t.Logf("verdict %d: %s", try, v)
		if v.Err == "" {
			break
		}
	}
	if *overloadOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"capacity_pps": capacity, "peak_pps": peak, "curve": curve,
			"verdict": map[string]any{"base": v.Base.Rate(), "one": v.One.Rate(), "three": v.Three.Rate(), "overload": v.Overload, "tcp_share": v.TCPShare}}, "", "  ")
		os.WriteFile(*overloadOut, b, 0o644)
	}
	if v.Err != "" {
		t.Error(v.Err)
	}
	// core's doc: a loaded core makes no system call per packet. The only
	// ones its loop makes on the mem wire are the poll(2) of a sleep and
	// the eventfd writes that wake it, and a loaded core does not sleep.
	t.Logf("the server's core slept %d times in the steps at 3x, which delivered %.0f datagrams", sleepsUnderLoad, v.Three.Delivered)
	if float64(sleepsUnderLoad) > v.Three.Delivered/1000 {
		t.Errorf("the server's core slept %d times while offered 3x its peak (%.0f datagrams delivered): a loaded core must not idle", sleepsUnderLoad, v.Three.Delivered)
	}
	cs := srv.Counters()
	for i, name := range srv.DropReasonNames() {
		if name == "nic_rx_ring_full" {
			t.Logf("dropped at the server's receive ring: %d frames (no work spent on them)", cs.Drops[i])
		}
	}
}
