package sockets_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

// startOn runs one core per queue of nic i of w at addr/24.
func startOn(w *mem.Wire, i int, addr string) *sockets.Network {
	rt, err := core.Start(core.Config{
		NIC: w.NIC(i),
		StackConfig: func(int) stack.Config {
			return stack.Config{Addr: netip.MustParsePrefix(addr + "/24")}
		},
	})
	if err != nil {
		panic(err)
	}
	n, err := sockets.New(rt)
	if err != nil {
		panic(err)
	}
	return n
}

// A per-core echo server: the handlers run on the core that owns each
// connection, see the received bytes in place and write without blocking.
// The client is ordinary Go code over net.Conn.
func ExampleNetwork_ServeTCP() {
	w, _ := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1},
	}})
	defer w.Close()
	server, client := startOn(w, 0, "10.0.0.1"), startOn(w, 1, "10.0.0.2")
	defer server.Shutdown(context.Background())
	defer client.Shutdown(context.Background())

	_, err := server.ServeTCP(7, sockets.Handler{
		Data: func(c *stack.TCPConn, a, b []byte) int {
			n, _ := c.Write(a) // never blocks: takes what fits
			if n == len(a) && len(b) > 0 {
				k, _ := c.Write(b)
				n += k
			}
			return n // consumed; the rest is offered again later
		},
	})
	if err != nil {
		panic(err)
	}

	conn, err := client.Dial("tcp", "10.0.0.1:7")
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("hello, core"))
	reply := make([]byte, len("hello, core"))
	io.ReadFull(conn, reply)
	fmt.Printf("%s\n", reply)
	// Output: hello, core
}
