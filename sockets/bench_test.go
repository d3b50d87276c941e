package sockets

import (
	"io"
	"net"
	"testing"
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
