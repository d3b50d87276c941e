//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq/netlab"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

// TestFewerCoresThanQueuesServeEveryQueue: serve --cores 1 on a veth with
// two receive queues. The lab's peer steers flows to both queues, so
// every connection succeeds only if the driver serves both and the one
// core polls them. Before, the AF_XDP driver opened a socket per core,
// and the flows that landed on queue 1 went to the kernel and failed
// (6 of 10 curls answered).
func TestFewerCoresThanQueuesServeEveryQueue(t *testing.T) {
	for _, driver := range []string{"afxdp", "afpacket"} {
		t.Run(driver, func(t *testing.T) {
			need(t, "ip")
			l := newLabWith(t, driver, 2, netlab.Options{})
			var warnings []string
			nic, closeNIC, err := l.openInStackNS(t)(driverOptions{iface: l.iface, queues: 1, addrs: []netip.Addr{netip.MustParseAddr(labStackAddr)},
				warn: func(m string, _ ...any) {
					if strings.Contains(m, "receive queues") {
						warnings = append(warnings, m)
					}
				}, info: func(string, ...any) {}})
			if err != nil {
				t.Fatal(err)
			}
			defer closeNIC()
			rt, err := core.Start(core.Config{NIC: nic, Cores: 1, SpinWindow: -1, StackConfig: func(int) stack.Config {
				return stack.Config{Addr: netip.MustParsePrefix(labStackAddr + "/24")}
			}})
			if err != nil {
				t.Fatal(err)
			}
			n, err := sockets.New(rt)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Shutdown(context.Background())
			serveEcho(t, n, ":7")

			const conns = 24
			for i := range conns {
				c := l.dial(t, labStackAddr+":7")
				c.SetDeadline(time.Now().Add(5 * time.Second))
				msg := fmt.Sprintf("connection %d", i)
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatalf("connection %d: write: %v", i, err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
					t.Fatalf("connection %d of %d (source %v): echo %q, %v: a flow on a queue the core does not poll", i, conns, c.LocalAddr(), got, err)
				}
				c.Close()
			}
			if driver == "afxdp" {
				// The flows went to both queues: the test tested the
				// second one.
				if got := nic.NumQueues(); got != 2 {
					t.Fatalf("%d AF_XDP queues for a 2-queue veth", got)
				}
				var perQueue [2]uint64
				err := rt.DoWait(context.Background(), 0, func(*stack.Stack) {
					for q := range perQueue {
						perQueue[q] = nic.Queue(q).Counters().RxPackets
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("frames received per queue: %v", perQueue)
				if perQueue[0] == 0 || perQueue[1] == 0 {
					t.Errorf("frames received per queue %v: the peer's flows did not reach both queues, so the second was not tested", perQueue)
				}
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
		})
	}
}

// serveEcho echoes every connection to addr on n until the test ends.
func serveEcho(t *testing.T, n *sockets.Network, addr string) {
	t.Helper()
	ln, err := n.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}
