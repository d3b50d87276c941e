package sockets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// The methods Go code calls on a *net.TCPConn, which net.Conn values from
// Accept and Dial must offer too.
type tcpConnOptions interface {
	SetKeepAlive(bool) error
	SetKeepAlivePeriod(time.Duration) error
	SetKeepAliveConfig(net.KeepAliveConfig) error
	SetNoDelay(bool) error
	SetLinger(int) error
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
	CloseRead() error
	CloseWrite() error
}

// The list is *net.TCPConn's own.
var _ tcpConnOptions = (*net.TCPConn)(nil)

// TestConnsOfferTheTCPConnOptions: accepted and dialled connections have
// *net.TCPConn's option methods, keepalive is on by default with Go's
// timing, and turning it off or on reaches the stack connection.
func TestConnsOfferTheTCPConnOptions(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "13")
	for _, c := range []net.Conn{server, client} {
		o, ok := c.(tcpConnOptions)
		if !ok {
			t.Fatalf("%T lacks *net.TCPConn's option methods", c)
		}
		if ka := keepAliveOf(t, srv, cli, c); !ka {
			t.Errorf("%s: keepalive off by default", c.LocalAddr())
		}
		if err := o.SetKeepAlive(false); err != nil {
			t.Fatal(err)
		}
		if keepAliveOf(t, srv, cli, c) {
			t.Errorf("%s: keepalive still on after SetKeepAlive(false)", c.LocalAddr())
		}
		if err := o.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if !keepAliveOf(t, srv, cli, c) {
			t.Errorf("%s: keepalive off after SetKeepAliveConfig", c.LocalAddr())
		}
		if err := o.SetNoDelay(false); err != nil {
			t.Fatal(err)
		}
		if err := o.SetKeepAlivePeriod(time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := o.SetReadBuffer(32 << 10); err != nil {
			t.Fatal(err)
		}
		if err := o.SetWriteBuffer(32 << 10); err != nil {
			t.Fatal(err)
		}
	}
	server.Close()
	if err := server.(tcpConnOptions).SetKeepAlive(true); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetKeepAlive after Close: %v, want net.ErrClosed", err)
	}
	if err := server.(tcpConnOptions).SetReadBuffer(1 << 10); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetReadBuffer after Close: %v, want net.ErrClosed", err)
	}
	if err := server.(tcpConnOptions).SetWriteBuffer(1 << 10); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetWriteBuffer after Close: %v, want net.ErrClosed", err)
	}
}

// keepAliveOf reads whether c's stack connection has keepalive on.
func keepAliveOf(t *testing.T, srv, cli *Network, c net.Conn) bool {
	t.Helper()
	sc := connOf(c)
	n := srv
	if c.LocalAddr().(*net.TCPAddr).IP.Equal(net.IP(clientAddr.AsSlice())) {
		n = cli
	}
	var on bool
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Runtime().DoWait(ctx, sc.core, func(*stack.Stack) {
		on = sc.c != nil && sc.c.KeepAliveEnabled()
	}); err != nil {
		t.Fatal(err)
	}
	return on
}

// TestCloseReadReportsEOFAndDropsWhatFollows: after CloseRead, Read
// reports io.EOF, and what the peer sends still goes through (acknowledged
// and dropped: the peer's writes do not stall on a shut window).
func TestCloseReadReportsEOFAndDropsWhatFollows(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "14")
	if err := server.(tcpConnOptions).CloseRead(); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after CloseRead = %d, %v; want io.EOF", n, err)
	}
	client.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
		t.Fatalf("the peer's 1 MiB after CloseRead: %v", err)
	}
	// The server can still write.
	if _, err := server.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "bye" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

// TestSetLingerZeroResets: with SetLinger(0), Close resets the connection
// (the peer sees ECONNRESET, not an orderly EOF).
func TestSetLingerZeroResets(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "15")
	if err := server.(tcpConnOptions).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	server.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := client.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("peer's Read after SetLinger(0) and Close: %v, want ECONNRESET", err)
	}
}

// TestSetLingerWaitsForStagedBytes: with SetLinger(n > 0), Close returns
// once what Write staged has gone to TCP with the FIN, and the peer gets
// every byte then EOF; a window that stays shut ends the wait after n
// seconds with a reset.
func TestSetLingerWaitsForStagedBytes(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "16")
	o := server.(tcpConnOptions)
	if err := o.SetLinger(5); err != nil {
		t.Fatal(err)
	}
	src := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB: more than the rings hold
	go func() {
		server.Write(src)
		server.Close()
	}()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("peer read %d bytes, %v; want %d then EOF", len(got), err, len(src))
	}

	// Nobody reads: the window shuts and Close gives up after 1 s.
	server2, client2 := acceptedPair(t, srv, cli, "17")
	_ = client2
	server2.(tcpConnOptions).SetLinger(1)
	server2.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	server2.Write(bytes.Repeat([]byte("x"), 1<<20)) // stages what fits, then times out
	start := time.Now()
	server2.Close()
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("Close with a shut window returned after %v, want about 1 s", d)
	}
}
