package sockets

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkHTTPKeepAlive is one small GET on a keep-alive connection to
// net/http's server, served over mkstack (the mem wire, one core per
// stack) and, for comparison, over the kernel's loopback. The client
// writes a prebuilt request and reads the fixed-size response with no
// allocation, so B/op and allocs/op are the server side's: net/http's
// own, plus whatever the net.Conn under it adds.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, world\n")
	})
	serve := func(b *testing.B, l net.Listener) {
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(l)
		b.Cleanup(func() { hs.Close() })
	}
	run := func(b *testing.B, c net.Conn) {
		defer c.Close()
		req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 4096)
		// The first response gives the size of every one after it.
		c.Write(req)
		n, err := c.Read(buf)
		if err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
			b.Fatalf("first response %q, %v", buf[:n], err)
		}
		size := n
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c.Write(req)
			if _, err := io.ReadFull(c, buf[:size]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	}
	b.Run("mkstack", func(b *testing.B) {
		srv, cli := pair(b, 1)
		l, err := srv.Listen("tcp", ":80")
		if err != nil {
			b.Fatal(err)
		}
		serve(b, l)
		c, err := cli.Dial("tcp", "10.0.0.1:80")
		if err != nil {
			b.Fatal(err)
		}
		run(b, c)
	})
	b.Run("kernel", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		serve(b, l)
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		run(b, c)
	})
}
