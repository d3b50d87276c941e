package core

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
)

// TestMain fails the package if any goroutine outlives the tests: every
// runtime a test starts must be stopped completely.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
	os.Exit(0)
}

var (
	addrA = netip.MustParseAddr("10.0.0.1").As4()
	addrB = netip.MustParseAddr("10.0.0.2").As4()
)

const (
	echoPort   = 7
	clientBase = 40000 // client ports are clientBase + i
)

// newWire joins two mem NICs of the given number of queues: NIC 0 for the
// runtime under test (A, 10.0.0.1), NIC 1 for its peer (B, 10.0.0.2).
func newWire(t testing.TB, queues int) *mem.Wire {
	t.Helper()
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: queues},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: queues},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// start starts a runtime on nic at addr (a /24) and stops it when the test
// ends.
func start(t testing.TB, nic nicq.NIC, addr [4]byte, tweak func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		NIC: nic,
		StackConfig: func(int) stack.Config {
			return stack.Config{Addr: netip.PrefixFrom(netip.AddrFrom4(addr), 24)}
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	rt, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, rt) })
	return rt
}

func stop(t testing.TB, rt *Runtime) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// server is an echo server on port 7 of every core of a runtime, which
// records which core answered each client port.
type server struct {
	served  []atomic.Int64        // per core
	portsBy [1 << 10]atomic.Int32 // client port - clientBase → answering core + 1
	wrong   atomic.Int64          // a port answered by two different cores
}

func serveEcho(t testing.TB, rt *Runtime) *server {
	t.Helper()
	srv := &server{served: make([]atomic.Int64, rt.NumCores())}
	err := rt.BroadcastWait(ctxT(t), func(s *stack.Stack) {
		c := s.Config().Core
		_, err := s.BindUDP(echoPort, stack.UDPOptions{Handler: func(ep *stack.UDPEndpoint, p []byte, from [4]byte, fromPort uint16) {
			srv.served[c].Add(1)
			if i := int(fromPort) - clientBase; i >= 0 && i < len(srv.portsBy) {
				if old := srv.portsBy[i].Swap(int32(c + 1)); old != 0 && old != int32(c+1) {
					srv.wrong.Add(1)
				}
			}
			ep.SendTo(p, from, fromPort)
		}})
		if err != nil {
			panic(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// client sends datagrams to the echo server from ports clientBase+i, bound
// on every core of its runtime (a reply lands on whichever core the peer's
// RSS picks). In ping-pong mode each reply is sent back while the budget
// lasts, so the traffic runs with no goroutine but the cores.
type client struct {
	rt      *Runtime
	ports   int
	eps     [][]*stack.UDPEndpoint // [core][port index], used on that core only
	replies atomic.Int64
	bytes   atomic.Int64
	bad     atomic.Int64 // replies whose payload does not name their port
	budget  atomic.Int64 // resends left in ping-pong mode
}

func newClient(t testing.TB, rt *Runtime, ports int) *client {
	t.Helper()
	cl := &client{rt: rt, ports: ports, eps: make([][]*stack.UDPEndpoint, rt.NumCores())}
	handler := func(ep *stack.UDPEndpoint, p []byte, from [4]byte, fromPort uint16) {
		if len(p) < 2 || int(p[0])<<8|int(p[1]) != int(ep.Port()) {
			cl.bad.Add(1)
		}
		cl.replies.Add(1)
		cl.bytes.Add(int64(len(p)))
		if cl.budget.Add(-1) >= 0 {
			ep.SendTo(p, from, fromPort)
		}
	}
	err := rt.BroadcastWait(ctxT(t), func(s *stack.Stack) {
		c := s.Config().Core
		for i := range ports {
			ep, err := s.BindUDP(uint16(clientBase+i), stack.UDPOptions{Handler: handler})
			if err != nil {
				panic(err)
			}
			cl.eps[c] = append(cl.eps[c], ep)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// send sends n datagrams of size bytes from port index i, on core i % cores.
func (cl *client) send(t testing.TB, i, n, size int) {
	t.Helper()
	payload := make([]byte, size)
	port := clientBase + i
	payload[0], payload[1] = byte(port>>8), byte(port)
	for k := range payload[2:] {
		payload[2+k] = byte(k * 7)
	}
	core := i % cl.rt.NumCores()
	var err error
	if derr := cl.rt.DoWait(ctxT(t), core, func(*stack.Stack) {
		for range n {
			if err = cl.eps[core][i].SendTo(payload, addrA, echoPort); err != nil {
				return
			}
		}
	}); derr != nil {
		t.Fatal(derr)
	}
	if err != nil {
		t.Fatalf("send from port %d: %v", port, err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what())
		}
		time.Sleep(time.Millisecond)
	}
}

// waitReplies waits until the client has n replies.
func (cl *client) waitReplies(t testing.TB, n int64, peers ...*Runtime) {
	t.Helper()
	waitFor(t, 10*time.Second, func() string {
		s := fmt.Sprintf("%d replies (have %d)", n, cl.replies.Load())
		for _, rt := range append([]*Runtime{cl.rt}, peers...) {
			s += "; drops " + nonZeroDrops(rt)
		}
		return s
	}, func() bool { return cl.replies.Load() >= n })
}

// nonZeroDrops describes a runtime's drop counters that are not zero.
func nonZeroDrops(rt *Runtime) string {
	c := rt.Counters()
	names := rt.DropReasonNames()
	s := ""
	for r, v := range c.Drops {
		if v != 0 {
			s += fmt.Sprintf("%s=%d ", names[r], v)
		}
	}
	return "[" + s + "]"
}

// ownerOf is the core of rt that receives the client's datagrams from port.
func ownerOf(rt *Runtime, port int) int {
	return rt.FlowOwner(header.ProtocolUDP, addrB, addrA, uint16(port), echoPort)
}

// fragmentCore is the core of rt whose queue receives fragments from B:
// fragments are hashed on the addresses alone.
func fragmentCore(nic nicq.NIC, cores int) int {
	return nic.RSS().QueueIPv4(addrB, addrA) % cores
}

// listenTCPEcho makes s echo TCP on port as segments arrive.
func listenTCPEcho(s *stack.Stack, port uint16) {
	s.ListenTCP(port, stack.TCPListenOptions{NoDelay: true, OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
		if ev == stack.TCPEventReadable {
			a, _ := c.Peek()
			n, _ := c.Write(a)
			c.Discard(n)
		}
	}})
}

func requireTwoCPUs(t testing.TB) {
	t.Helper()
	set, err := affinity.AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if set.Count() < 2 {
		t.Skipf("needs 2 allowed CPUs, this process has %d", set.Count())
	}
}

var prefixA = netip.PrefixFrom(netip.AddrFrom4(addrA), 24)

// prometheusMetric is what a collector emits.
type prometheusMetric = prometheus.Metric

// udpDatagram builds, in a buffer of pool, a 64-byte UDP datagram from B's
// first client port to A's echo port, as a forward carries it: from its
// IPv4 header, with no checksum on the UDP part.
func udpDatagram(t testing.TB, pool *nicq.Pool) *nicq.Buf {
	t.Helper()
	b := pool.Get()
	if b == nil {
		t.Fatal("pool empty")
	}
	const payload = 64
	total := header.IPv4MinimumSize + header.UDPSize + payload
	d := b.Append(total)
	ip := header.IPv4(d)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(total), TTL: 64, Protocol: header.ProtocolUDP, Source: addrB, Destination: addrA})
	ip.SetChecksum(ip.ComputeChecksum())
	header.UDP(d[header.IPv4MinimumSize:]).Encode(&header.UDPFields{SourcePort: clientBase, DestinationPort: echoPort, Length: header.UDPSize + payload})
	return b
}
