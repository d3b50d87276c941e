package sockets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/stack"
)

func TestHTTPServerAndClientRunUnmodified(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("name"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(l)
	defer hs.Close()

	client := &http.Client{Transport: &http.Transport{DialContext: cli.DialContext}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for i := range 20 {
		resp, err := client.Get(fmt.Sprintf("http://10.0.0.1/hello?name=n%d", i))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != fmt.Sprintf("hello n%d", i) {
			t.Fatalf("GET %d: %q, %v", i, body, err)
		}
	}
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	resp, err := client.Post("http://10.0.0.1/echo", "application/octet-stream", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, big) {
		t.Fatalf("POST 1 MiB echoed %d bytes, %v", len(body), err)
	}
}

// TestManyConcurrentEchoConnections runs 1000 connections at once (200
// under -short) over 2 cores, each sending its own random bytes and
// checking they come back.
func TestManyConcurrentEchoConnections(t *testing.T) {
	conns := 1000
	if testing.Short() {
		conns = 200
	}
	srv, cli := pair(t, 2)
	serveEcho(t, srv, ":7")
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := cli.DialContext(ctx, "tcp", "10.0.0.1:7")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			msg := make([]byte, 4096+i)
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for k := range msg {
				msg[k] = byte(r.Uint32())
			}
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			if sha256.Sum256(got) != sha256.Sum256(msg) {
				errs <- fmt.Errorf("conn %d: echo differs", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for c := range srv.Runtime().NumCores() {
		if n := srv.Runtime().CoreCounters(c).Values[core.RxPackets]; n == 0 {
			t.Errorf("server core %d received nothing: connections did not spread", c)
		}
	}
}

func TestDeadlinesAndCloseUnblockCalls(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := cli.Dial("tcp", "10.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	defer sc.Close()

	// A read deadline passes.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read after deadline: %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("deadline took %v", d)
	}
	// Moving the deadline into the past wakes a blocked Read.
	c.SetReadDeadline(time.Time{})
	res := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if err := <-res; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read woken by a past deadline: %v", err)
	}
	// Data then EOF after CloseWrite from the other side.
	c.SetReadDeadline(time.Time{})
	sc.Write([]byte("bye"))
	sc.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if string(got) != "bye" || err != nil {
		t.Fatalf("read %q, %v; want bye then EOF", got, err)
	}
	// And we can still write to the half-closed peer.
	if _, err := c.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("half-close: %q %v", buf, err)
	}
	// Close unblocks a blocked Read with net.ErrClosed.
	go func() {
		_, err := sc.Read(make([]byte, 1))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	sc.Close()
	if err := <-res; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	c.Close()
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	_, cli := pair(t, 1)
	_, err := cli.Dial("tcp", "10.0.0.1:4444")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed port: %v, want ECONNREFUSED", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("not a *net.OpError: %T", err)
	}
	if _, err := cli.Dial("tcp", "example.com:80"); err == nil || !strings.Contains(err.Error(), "IP literals") {
		t.Fatalf("dial a name: %v", err)
	}
	if _, err := cli.Dial("sctp", "10.0.0.1:1"); err == nil {
		t.Fatal("dial sctp succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// Nobody answers ARP for 10.0.0.77: the dial waits until ctx ends.
	if _, err := cli.DialContext(ctx, "tcp", "10.0.0.77:80"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial with a context: %v", err)
	}
}

func TestPacketConnEcho(t *testing.T) {
	srv, cli := pair(t, 2)
	pc, err := srv.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 9000)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	for i := range 8 {
		c, err := cli.Dial("udp", "10.0.0.1:53")
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		msg := bytes.Repeat([]byte{byte(i)}, 100+i*700) // the last ones are fragmented
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 9000)
		n, err := c.Read(got)
		if err != nil || !bytes.Equal(got[:n], msg) {
			t.Fatalf("datagram %d: %d bytes, %v", i, n, err)
		}
		c.Close()
	}
}

func TestHandlerAPIEchoAndPanicsResetOnlyTheirConnection(t *testing.T) {
	srv, cli := pair(t, 2)
	var opened, closed atomic.Int64
	_, err := srv.ServeTCP(7, Handler{
		Open: func(c *stack.TCPConn) { opened.Add(1) },
		Data: func(c *stack.TCPConn, a, b []byte) int {
			if bytes.HasPrefix(a, []byte("panic")) {
				panic("handler bug")
			}
			n, _ := c.Write(a)
			if n == len(a) && len(b) > 0 {
				k, _ := c.Write(b)
				n += k
			}
			return n
		},
		Closed: func(c *stack.TCPConn, err error) { closed.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	good, err := cli.Dial("tcp", "10.0.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	bad, err := cli.Dial("tcp", "10.0.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	good.SetDeadline(time.Now().Add(5 * time.Second))
	bad.SetDeadline(time.Now().Add(5 * time.Second))
	bad.Write([]byte("panic now"))
	if _, err := bad.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the panicking connection: %v, want ECONNRESET", err)
	}
	msg := bytes.Repeat([]byte("x"), 100000)
	go good.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(good, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("the other connection after the panic: %v", err)
	}
	if srv.Stats().HandlerPanics.Load() != 1 || opened.Load() != 2 {
		t.Fatalf("panics %d, opened %d", srv.Stats().HandlerPanics.Load(), opened.Load())
	}
}

func TestDialHandlerRunsOnTheChosenCore(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	got := make(chan string, 1)
	err = cli.DialHandler(1, netip.MustParseAddrPort("10.0.0.1:80"), Handler{
		Open: func(c *stack.TCPConn) { c.Write([]byte("ping")) },
		Data: func(c *stack.TCPConn, a, b []byte) int {
			if len(a) >= 4 {
				got <- string(a[:4])
				c.Close()
				return len(a)
			}
			return 0
		},
		Closed: func(c *stack.TCPConn, err error) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "ping" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo")
	}
	// The connection lived on core 1: core 0 of the client opened
	// nothing and received no segment (the port chosen steers replies).
	var opens, segs [2]uint64
	cli.Runtime().BroadcastWait(context.Background(), func(s *stack.Stack) {
		opens[s.Config().Core], segs[s.Config().Core] = s.TCPStats().ActiveOpens, s.TCPStats().SegmentsIn
	})
	if opens != [2]uint64{0, 1} || segs[0] != 0 || segs[1] == 0 {
		t.Fatalf("active opens by core %v, segments in %v", opens, segs)
	}
}

func TestShutdownClosesLiveConnectionsWithFIN(t *testing.T) {
	srv, cli := pair(t, 2)
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 5 {
		c, err := cli.Dial("tcp", "10.0.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for range 5 {
		<-accepted
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Each client sees an orderly end of stream: the server's FIN.
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("client %d: %v, want EOF", i, err)
		}
		c.Close()
	}
	if _, ok := <-accepted; ok {
		t.Fatal("accept after shutdown")
	}
}

// TestGoroutineAPIMovesTheCoresOntoSharedThreads: per-core handlers leave
// the cores on their own threads; the first Listen (the goroutine-facing
// API) moves them onto the Go scheduler's threads, and a net.Conn round
// trip works there.
func TestGoroutineAPIMovesTheCoresOntoSharedThreads(t *testing.T) {
	srv, cli := pair(t, 2)
	if _, err := srv.ServeTCP(9, Handler{Data: func(c *stack.TCPConn, a, b []byte) int { return len(a) + len(b) }}); err != nil {
		t.Fatal(err)
	}
	if m := srv.Runtime().ThreadMode(); m != core.ThreadsPinned {
		t.Fatalf("after ServeTCP the cores are %v, want pinned", m)
	}
	l, err := srv.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if m := srv.Runtime().ThreadMode(); m != core.ThreadsShared {
		t.Fatalf("after Listen the cores are %v, want shared", m)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := cli.Dial("tcp", "10.0.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := cli.Runtime().ThreadMode(); m != core.ThreadsShared {
		t.Fatalf("after Dial the client's cores are %v, want shared", m)
	}
	msg := []byte("over shared threads")
	for range 100 {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(msg) {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
}

// TestListenPacketMovesTheCoresOntoSharedThreads: ListenPacket, the first
// call of a fresh Network, is the goroutine-facing API too: it moves the
// cores onto the Go scheduler's threads as Listen and Dial do, and a UDP
// round trip between two packet sockets works there.
func TestListenPacketMovesTheCoresOntoSharedThreads(t *testing.T) {
	srv, cli := pair(t, 2)
	for _, n := range []*Network{srv, cli} {
		if m := n.Runtime().ThreadMode(); m != core.ThreadsPinned {
			t.Fatalf("a fresh runtime's cores are %v, want pinned", m)
		}
	}
	in, err := srv.ListenPacket("udp", ":5400")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if m := srv.Runtime().ThreadMode(); m != core.ThreadsShared {
		t.Fatalf("after ListenPacket the server's cores are %v, want shared", m)
	}
	out, err := cli.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if m := cli.Runtime().ThreadMode(); m != core.ThreadsShared {
		t.Fatalf("after ListenPacket the client's cores are %v, want shared", m)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := in.ReadFrom(buf)
			if err != nil {
				return
			}
			in.WriteTo(buf[:n], from)
		}
	}()
	dst := &net.UDPAddr{IP: net.IP(serverAddr.AsSlice()), Port: 5400}
	buf := make([]byte, 2048)
	for i := range 20 {
		msg := fmt.Appendf(nil, "datagram %d over shared threads", i)
		if _, err := out.WriteTo(msg, dst); err != nil {
			t.Fatal(err)
		}
		out.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := out.ReadFrom(buf)
		if err != nil {
			t.Fatalf("echo of datagram %d: %v", i, err)
		}
		if string(buf[:n]) != string(msg) || from.String() != dst.String() {
			t.Fatalf("echo %q from %v, want %q from %v", buf[:n], from, msg, dst)
		}
	}
}
