package sockets

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
	os.Exit(0)
}

var (
	serverAddr = netip.MustParseAddr("10.0.0.1")
	clientAddr = netip.MustParseAddr("10.0.0.2")
)

// startNetwork runs a runtime of `queues` cores on nic i of w at addr and
// returns its Network; the runtime stops when the test ends.
func startNetwork(t testing.TB, w *mem.Wire, i int, addr netip.Addr, tweak func(*stack.Config)) *Network {
	t.Helper()
	nic := w.NIC(i)
	rt, err := core.Start(core.Config{
		NIC: nic,
		StackConfig: func(c int) stack.Config {
			// The runtime fills TCP.Ports with an RSS-aware allocator.
			cfg := stack.Config{Addr: netip.PrefixFrom(addr, 24)}
			cfg.TCP.SendBuffer, cfg.TCP.ReceiveBuffer = 64<<10, 64<<10
			if tweak != nil {
				tweak(&cfg)
			}
			return cfg
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rt.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	n, err := New(rt)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pair is a server network (10.0.0.1) and a client network (10.0.0.2),
// each with `queues` cores, over one mem wire.
func pair(t testing.TB, queues int) (srv, cli *Network) {
	t.Helper()
	return pairWith(t, queues, nil, nil)
}

// pairWith is pair with a tweak of each side's stack config.
func pairWith(t testing.TB, queues int, tweakSrv, tweakCli func(*stack.Config)) (srv, cli *Network) {
	t.Helper()
	w := twoNICWire(t, queues)
	srv = startNetwork(t, w, 0, serverAddr, tweakSrv)
	cli = startNetwork(t, w, 1, clientAddr, tweakCli)
	return srv, cli
}

// twoNICWire is a mem wire of two NICs with `queues` queues each, closed
// when the test ends.
func twoNICWire(t testing.TB, queues int) *mem.Wire {
	t.Helper()
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: queues, PoolBuffers: 8192},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: queues, PoolBuffers: 8192},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// connOf is the state behind a TCP net.Conn of this package.
func connOf(c net.Conn) *conn { return c.(*tcpConn).sc }

// serveEcho listens on address on n and echoes every connection until the
// client's FIN; the listener closes with the test.
func serveEcho(t testing.TB, n *Network, address string) {
	t.Helper()
	l, err := n.Listen("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}
