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

	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
)

// onCore runs f on core of n and waits for it.
func onCore(t testing.TB, n *Network, core int, f func(s *stack.Stack)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Runtime().DoWait(ctx, core, f); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownSendsStagedBytesBeforeTheFIN: bytes a Write accepted that
// still wait in the write queue (the send ring and the peer's window are
// full) go before the FIN of a graceful Shutdown; the blocked Write
// returns net.ErrClosed with the count of what it staged, and the peer
// reads exactly those bytes, then EOF.
func TestShutdownSendsStagedBytesBeforeTheFIN(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "21")
	src := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the rings and queues hold
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := server.Write(src)
		wrote <- result{n, err}
	}()
	// Wait until the writer is parked with bytes staged: the peer does not
	// read, so the windows close.
	sc := connOf(server)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var staged, ringFull bool
		onCore(t, srv, sc.core, func(*stack.Stack) {
			staged = sc.staged()
			ringFull = sc.c != nil && sc.c.WriteSpace() == 0
		})
		if staged && ringFull {
			time.Sleep(20 * time.Millisecond)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write queue never filled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	r := <-wrote
	if !errors.Is(r.err, net.ErrClosed) || r.n == 0 || r.n >= len(src) {
		t.Fatalf("blocked Write during Shutdown = %d, %v; want part of it and net.ErrClosed", r.n, r.err)
	}
	client.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("peer read %d bytes, then %v; want %d then EOF", len(got), err, r.n)
	}
	if !bytes.Equal(got, src[:r.n]) {
		t.Fatalf("peer read %d bytes, want the %d the Write accepted", len(got), r.n)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// TestClosedConnLetsGoOfTheStackConn: once a connection the stack
// released (ShutdownTCP, as Network.Shutdown does) has closed, its conn
// no longer points at the stack connection, which the stack recycles: a
// later Dial that reuses it is not reached by calls on the old conn
// (SetKeepAlive, Close).
func TestClosedConnLetsGoOfTheStackConn(t *testing.T) {
	srv, cli := pair(t, 1)
	old, _ := acceptedPair(t, srv, cli, "22")
	sc := connOf(old)
	onCore(t, srv, sc.core, func(s *stack.Stack) { s.ShutdownTCP(true) })
	onCore(t, srv, sc.core, func(*stack.Stack) {
		if sc.c != nil {
			t.Errorf("after Closed, conn still points at a stack connection (%s)", sc.c.State())
		}
	})
	// A new connection, from the same core, takes the recycled value.
	l, err := cli.Listen("tcp", ":23")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	nc, err := srv.Dial("tcp", "10.0.0.2:23")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	if err := old.(tcpConnOptions).SetKeepAlive(false); err != nil {
		t.Fatal(err)
	}
	if !keepAliveOf(t, srv, cli, nc) {
		t.Error("SetKeepAlive(false) on the closed conn turned the new connection's keepalive off")
	}
	old.Close()
	if _, err := nc.Write([]byte("ping")); err != nil {
		t.Fatalf("new connection after the old conn's Close: %v", err)
	}
	buf := make([]byte, 4)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer of the new connection read %q, %v", buf, err)
	}
}

// connInfo returns the stack's description of c's connection on n.
func connInfo(t testing.TB, n *Network, c net.Conn) (info stack.TCPConnInfo, ok bool) {
	t.Helper()
	sc := connOf(c)
	la := c.LocalAddr().(*net.TCPAddr)
	ra := c.RemoteAddr().(*net.TCPAddr)
	onCore(t, n, sc.core, func(s *stack.Stack) {
		for _, i := range s.TCPConnections(nil) {
			if int(i.LocalPort) == la.Port && int(i.RemotePort) == ra.Port && net.IP(i.Remote.AsSlice()).Equal(ra.IP) {
				info, ok = i, true
			}
		}
	})
	return info, ok
}

// TestSetReadBufferBoundsTheAdvertisedWindow: after SetReadBuffer(n) the
// window the connection advertises (as the sender's stack sees it) stays
// at most n once the window offered before is used, and the data still
// arrives whole; the bound is clamped to the stack's range.
func TestSetReadBufferBoundsTheAdvertisedWindow(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "24")
	const limit = 8 << 10
	if err := connOf(server).SetReadBuffer(limit); err != nil {
		t.Fatal(err)
	}
	onCore(t, srv, connOf(server).core, func(*stack.Stack) {
		if got := connOf(server).c.ReceiveBuffer(); got != limit {
			t.Errorf("ReceiveBuffer() = %d after SetReadBuffer(%d)", got, limit)
		}
	})
	src := bytes.Repeat([]byte("abcdefgh"), 64<<10) // 512 KiB
	go func() {
		client.SetWriteDeadline(time.Now().Add(20 * time.Second))
		client.Write(src)
	}()
	var got []byte
	buf := make([]byte, 4096)
	maxWnd, samples := 0, 0
	server.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(got) < len(src) {
		n, err := server.Read(buf)
		if err != nil {
			t.Fatalf("server read %d bytes, then %v", len(got), err)
		}
		got = append(got, buf[:n]...)
		// The 64 KiB window offered at the handshake is used once 64 KiB
		// (and the read queue's bound) have arrived.
		if len(got) > 96<<10 && len(got)%(16<<10) < n {
			if info, ok := connInfo(t, cli, client); ok {
				maxWnd = max(maxWnd, info.SndWnd)
				samples++
			}
		}
	}
	if !bytes.Equal(got, src) {
		t.Fatal("the data arrived damaged")
	}
	if samples == 0 || maxWnd > limit {
		t.Fatalf("the peer saw windows up to %d bytes (%d samples) after SetReadBuffer(%d)", maxWnd, samples, limit)
	}
	// Clamped: below the least to stack.MinTCPBuffer, above the most to
	// TCPConfig.ReceiveBuffer.
	for _, c := range []struct{ ask, want int }{{1, stack.MinTCPBuffer}, {-5, stack.MinTCPBuffer}, {1 << 30, 64 << 10}} {
		if err := connOf(server).SetReadBuffer(c.ask); err != nil {
			t.Fatal(err)
		}
		onCore(t, srv, connOf(server).core, func(*stack.Stack) {
			if got := connOf(server).c.ReceiveBuffer(); got != c.want {
				t.Errorf("SetReadBuffer(%d): bound %d, want %d", c.ask, got, c.want)
			}
		})
	}
}

// sendHeld returns the bytes c's stack connection holds written and not
// yet acknowledged (its send ring).
func sendHeld(t testing.TB, n *Network, c net.Conn) (held int) {
	t.Helper()
	sc := connOf(c)
	onCore(t, n, sc.core, func(*stack.Stack) {
		if sc.c != nil {
			held = sc.c.Unsent()
		}
	})
	return held
}

// TestSetWriteBufferBoundsWhatWriteTakes: after SetWriteBuffer(n) the
// stack holds at most n bytes unsent or unacknowledged, and with the
// peer silent (its link down) a Write of more stages at most n more and
// waits; once ACKs come back it completes and every byte arrives.
func TestSetWriteBufferBoundsWhatWriteTakes(t *testing.T) {
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1, PoolBuffers: 8192},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1, PoolBuffers: 8192},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	tweak := func(c *stack.Config) { c.TCP.MinRTO = 20 * time.Millisecond; c.TCP.MaxRTO = 100 * time.Millisecond }
	srv := startNetwork(t, w, 0, serverAddr, tweak)
	cli := startNetwork(t, w, 1, clientAddr, tweak)
	server, client := acceptedPair(t, srv, cli, "25")
	const limit = 8 << 10
	if err := connOf(server).SetWriteBuffer(limit); err != nil {
		t.Fatal(err)
	}
	w.NIC(1).SetLinkUp(false)
	src := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB
	server.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := server.Write(src)
	if !errors.Is(err, syscall.ETIMEDOUT) && !errors.Is(err, errDeadline) {
		t.Fatalf("Write with the peer silent = %d, %v; want a timeout", n, err)
	}
	if n > 2*limit || n < limit {
		t.Fatalf("Write with the peer silent took %d bytes; want between %d (the ring) and %d (ring and queue)", n, limit, 2*limit)
	}
	if held := sendHeld(t, srv, server); held > limit {
		t.Fatalf("the stack holds %d bytes unsent or unacknowledged, want at most %d", held, limit)
	}
	w.NIC(1).SetLinkUp(true)
	done := make(chan error, 1)
	go func() {
		server.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := server.Write(src[n:])
		done <- err
	}()
	got := make([]byte, len(src))
	client.SetReadDeadline(time.Now().Add(20 * time.Second))
	for off := 0; off < len(got); {
		k, err := client.Read(got[off:])
		if err != nil {
			t.Fatalf("client read %d bytes, then %v", off, err)
		}
		off += k
		if held := sendHeld(t, srv, server); held > limit {
			t.Fatalf("the stack holds %d bytes unsent or unacknowledged, want at most %d", held, limit)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatal("the data arrived damaged")
	}
}

// TestKeepAlivePeriodFindsAVanishedPeer: SetKeepAlivePeriod and
// SetKeepAliveConfig reach the stack: with the peer gone silent (its
// link down, no FIN, no RST), a Read ends with ETIMEDOUT after about
// idle + count × interval.
func TestKeepAlivePeriodFindsAVanishedPeer(t *testing.T) {
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1, PoolBuffers: 8192},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1, PoolBuffers: 8192},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	srv := startNetwork(t, w, 0, serverAddr, nil)
	cli := startNetwork(t, w, 1, clientAddr, nil)
	byPeriod, _ := acceptedPair(t, srv, cli, "26")
	byConfig, _ := acceptedPair(t, srv, cli, "27")
	if err := byPeriod.(tcpConnOptions).SetKeepAlivePeriod(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := byConfig.(tcpConnOptions).SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 50 * time.Millisecond, Interval: 50 * time.Millisecond, Count: 2}); err != nil {
		t.Fatal(err)
	}
	w.NIC(1).SetLinkUp(false)
	for name, c := range map[string]net.Conn{"SetKeepAlivePeriod": byPeriod, "SetKeepAliveConfig": byConfig} {
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ETIMEDOUT) {
			t.Errorf("%s: Read with the peer gone = %v after %v, want ETIMEDOUT", name, err, time.Since(start))
		}
	}
}

// TestShutdownResetsWhatIsLeftWhenTheContextEnds: when Shutdown's context
// runs out before a connection could close gracefully (its peer never
// reads, so the bytes a Write staged can never go), what is left is reset
// (docs/RELIABILITY.md, Network.Shutdown): Shutdown returns soon after
// the context's end, with the runtime stopped, the blocked Write returns
// net.ErrClosed, and the peer's Read and Write report ECONNRESET.
func TestShutdownResetsWhatIsLeftWhenTheContextEnds(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "4200")
	// A small receive buffer (no autotuning) so the peer's window shuts
	// long before the 1 MiB has gone.
	if err := connOf(client).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	src := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the rings and queues hold
	wrote := make(chan error, 1)
	go func() {
		_, err := server.Write(src)
		wrote <- err
	}()
	// Wait until nothing more can move: the peer's receive ring is full
	// (its window shut), and this end has bytes in its full send ring and
	// more staged behind them.
	sc, cc := connOf(server), connOf(client)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var staged, ringFull, peerFull bool
		onCore(t, cli, cc.core, func(*stack.Stack) {
			peerFull = cc.c != nil && cc.c.Buffered() >= cc.c.ReceiveBuffer()
		})
		onCore(t, srv, sc.core, func(*stack.Stack) {
			staged = sc.staged()
			ringFull = sc.c != nil && sc.c.WriteSpace() == 0
		})
		if staged && ringFull && peerFull {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the transfer never stalled (staged %v, send ring full %v, peer's receive ring full %v)", staged, ringFull, peerFull)
		}
		time.Sleep(5 * time.Millisecond)
	}
	const grace = 150 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	begin := time.Now()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	select {
	case err := <-shut:
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if took < grace {
			t.Fatalf("Shutdown returned after %v, before its context ran out: the peer reads nothing, so it cannot have closed gracefully", took)
		}
		t.Logf("Shutdown with a %v context returned after %v", grace, took)
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("Shutdown with a %v context has not returned after %v", grace, time.Since(begin))
	}
	select {
	case <-srv.Runtime().Done():
	default:
		t.Fatal("Shutdown returned with the runtime still running")
	}
	if err := <-wrote; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the Write blocked during Shutdown returned %v, want net.ErrClosed", err)
	}
	client.SetDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer read %d bytes, then %v; want a reset (ECONNRESET)", n, err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer's Write after the reset: %v, want ECONNRESET", err)
	}
}
