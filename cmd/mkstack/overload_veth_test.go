//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/afpacket"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/stack"
)

var overloadVethOut = flag.String("overload-veth-out", "", "write TestOverloadOnVeth's curve as JSON to this file (for docs/RELIABILITY.md)")

// TestOverloadOnVeth is the receive-livelock test on a real device: a
// one-core stack on AF_XDP, whose application spends 12 µs per datagram, is
// offered more 64-byte UDP datagrams than it can take, from an AF_PACKET generator on the veth's other end, up to
// three times its capacity, while a kernel TCP client keeps a
// request/response flow going to the same core. Delivered throughput at
// the highest load must stay at 90% of the peak, and the TCP flow must keep
// making progress.
func TestOverloadOnVeth(t *testing.T) {
	if testing.Short() {
		t.Skip("a load sweep on veth; the full run has it")
	}
	allowed, err := affinity.AllowedCPUs()
	if err != nil || allowed.Count() < 2 {
		t.Skip("needs two CPUs: the stack's core on one, the generator on the other")
	}
	var cpus []int
	for c := 0; len(cpus) < 2 && c < 1024; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	l := newLabQueues(t, "afxdp", 1)
	stackAddr := netip.MustParseAddr(labStackAddr)
	nic, closeNIC, err := l.openInStackNS(t)(driverOptions{iface: l.iface, queues: 1, addrs: []netip.Addr{stackAddr},
		warn: func(string, ...any) {}, info: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNIC()
	var delivered atomic.Uint64
	rt, err := core.Start(core.Config{NIC: nic, Cores: 1, CPUs: []int{cpus[1]}, Pin: true,
		StackConfig: func(int) stack.Config { return stack.Config{Addr: netip.PrefixFrom(stackAddr, 24)} },
		OnStart: func(s *stack.Stack) {
			// Each datagram costs the application 12 µs: the generator,
			// whose CPU also carries the veth's and XDP's per-frame work,
			// then reaches three times what the stack can take.
			s.BindUDP(9, stack.UDPOptions{Handler: func(*stack.UDPEndpoint, []byte, [4]byte, uint16) {
				for start := time.Now(); time.Since(start) < 12*time.Microsecond; {
				}
				delivered.Add(1)
			}})
			s.ListenTCP(7, stack.TCPListenOptions{NoDelay: true, OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
				if ev == stack.TCPEventReadable {
					a, _ := c.Peek()
					n, _ := c.Write(a)
					c.Discard(n)
				}
			}})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(context.Background())

	// The established flow: a kernel client, one 64-byte request in flight.
	conn := l.dial(t, labStackAddr+":7")
	defer conn.Close()
	var transactions atomic.Uint64
	go func() {
		var req [64]byte
		for {
			if _, err := conn.Write(req[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(conn, req[:]); err != nil {
				return
			}
			transactions.Add(1)
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); transactions.Load() < 10; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the TCP flow did not start")
		}
	}

	// The generator: AF_PACKET on the kernel's end of the veth, frames
	// built once, sent in batches with sendmmsg.
	var gen *afpacket.NIC
	if err := inNS(l.ns(t, l.clientNS), func() (err error) {
		gen, err = afpacket.Open(afpacket.Config{Interface: l.peerIf, Queues: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	frame := frametest.UDP4{SrcMAC: gen.MAC(), DstMAC: nic.MAC(), Src: [4]byte{10, 77, 0, 2}, Dst: stackAddr.As4(), SrcPort: 4000, DstPort: 9, Payload: make([]byte, 22)}.Frame()
	gq := gen.Queue(0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := affinity.Pin(cpus[0]); err != nil {
		t.Fatal(err)
	}
	type point struct {
		Offered   float64 `json:"offered_pps"`
		Delivered float64 `json:"delivered_pps"`
		TCPRate   float64 `json:"tcp_transactions_per_s"`
	}
	measure := func(rate float64, d time.Duration) point {
		bufs := make([]*nicq.Buf, 64)
		d0, t0 := delivered.Load(), transactions.Load()
		offered, sent := 0, 0.0
		start := time.Now()
		for time.Since(start) < d {
			owed := int(rate*time.Since(start).Seconds() - sent)
			if rate == 0 {
				owed = len(bufs)
			}
			if owed <= 0 {
				continue
			}
			if owed > 256 {
				sent += float64(owed - 256)
				owed = 256
			}
			k := gq.Pool().GetBatch(bufs[:min(owed, len(bufs))])
			for _, b := range bufs[:k] {
				copy(b.Append(len(frame)), frame)
			}
			took := gq.Send(bufs[:k])
			nicq.FreeAll(bufs[took:k])
			clear(bufs)
			offered += k
			sent += float64(k)
		}
		secs := time.Since(start).Seconds()
		return point{float64(offered) / secs, float64(delivered.Load()-d0) / secs, float64(transactions.Load()-t0) / secs}
	}
	const step = 500 * time.Millisecond
	flood := measure(0, step)
	var curve []point
	peak := flood.Delivered
	for _, f := range []float64{0.25, 0.5, 0.75, 1, 1.5, 2, 3} {
		p := measure(f*flood.Delivered, step)
		curve = append(curve, p)
		peak = max(peak, p.Delivered)
	}
	curve = append(curve, flood)
	for _, p := range curve {
		t.Logf("offered %9.0f pps (%4.2fx the peak): delivered %9.0f pps (%.2f of the peak), TCP %6.0f trans/s",
			p.Offered, p.Offered/peak, p.Delivered, p.Delivered/peak, p.TCPRate)
	}
	if *overloadVethOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"curve": curve, "peak_pps": peak}, "", "  ")
		os.WriteFile(*overloadVethOut, b, 0o644)
	}
	// Judged: the step paced at three times the capacity, as the issue
	// asks; the unpaced flood beyond it is reported.
	capacity := flood.Delivered
	worst := curve[len(curve)-2]
	// The peak is the best of many noisy steps and the worst point one
	// step: on a shared machine that alone can cost a tenth. Before calling
	// it livelock, measure the capacity and the flood again side by side,
	// so that both see the same neighbours; a livelock loses either way.
	for retry := 0; retry < 3 && worst.Delivered < 0.9*peak; retry++ {
		atPeak := measure(peak, step)
		again := measure(3*capacity, step)
		t.Logf("again: offered %9.0f pps (1x) delivers %9.0f; offered %9.0f pps delivers %9.0f (%.2f of that)",
			atPeak.Offered, atPeak.Delivered, again.Offered, again.Delivered, again.Delivered/atPeak.Delivered)
		if again.Delivered >= 0.9*atPeak.Delivered && again.Offered >= 2*atPeak.Delivered {
			peak = atPeak.Delivered
			worst = again
		}
	}
	c := rt.Counters()
	for i, name := range rt.DropReasonNames() {
		if c.Drops[i] != 0 {
			t.Logf("server drops %s: %d", name, c.Drops[i])
		}
	}
	if worst.Offered < 2*peak {
		t.Skipf("the generator reached only %.1fx the stack's peak of %.0f pps (its CPU also does the veth's and XDP's work): cannot test 3x overload here", worst.Offered/peak, peak)
	}
	if worst.Delivered < 0.9*peak {
		t.Errorf("offered %.1fx its peak, the stack delivers %.0f pps, %.2f of its peak %.0f: receive livelock", worst.Offered/peak, worst.Delivered, worst.Delivered/peak, peak)
	}
	// The TCP flow shares the one receive queue with the flood, so it
	// moves by retransmission: judge its progress over every overloaded
	// step, not one.
	var overloadedTCP float64
	for _, p := range curve {
		if p.Offered >= 2*peak {
			overloadedTCP += p.TCPRate
		}
	}
	if overloadedTCP+worst.TCPRate == 0 {
		t.Error("the established TCP flow made no progress under overload")
	}
}
