package sockets

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// BenchmarkSocketsTCPRR64 is one 64-byte request and response through the
// net.Conn face on both sides (goroutines, messages to the cores), over one
// core per stack: the cost of the compatibility layer.
func BenchmarkSocketsTCPRR64(b *testing.B) {
	srv, cli := pair(b, 1)
	l, err := srv.Listen("tcp", ":7")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						c.Close()
						return
					}
					c.Write(buf)
				}
			}(c)
		}
	}()
	c, err := cli.Dial("tcp", "10.0.0.1:7")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "trans/s")
}

// BenchmarkSocketsTCPCRR is one connection per transaction through the
// net.Conn face on both sides: dial, a 64-byte request and its echo,
// close (the client first, so TIME-WAIT is the client's), over one core
// per stack. Its allocations per operation are both sides' per
// connection: the accepted and the dialled net.Conn, and the goroutines
// and buffers of the test's own server.
func BenchmarkSocketsTCPCRR(b *testing.B) {
	srv, cli := pairWith(b, 1, nil, func(c *stack.Config) { c.TCP.MSL = 10 * time.Millisecond })
	l, err := srv.Listen("tcp", ":7")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// One connection at a time: served inline, no goroutine.
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(buf)
				io.ReadFull(c, buf[:1]) // until the client closes
			}
			c.Close()
		}
	}()
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := cli.Dial("tcp", "10.0.0.1:7")
		if err != nil {
			b.Fatal(err)
		}
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
