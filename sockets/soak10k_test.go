package sockets

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
)

var soak10k = flag.Bool("soak10k", false, "run the long peer-churn soak: 10 000 peers, half of them vanishing (tens of seconds)")

// The peer-churn soak's request kinds (the first byte of an 8-byte
// request): the server answers each with respRes bytes.
const (
	reqClose   = 'C' // answer, then close (the server closes first: TIME-WAIT is the server's)
	reqKeep    = 'K' // answer and wait for the next request
	reqDelayed = 'D' // answer after churnDelay: the peer is gone by then
	churnResp  = 512
	churnDelay = 50 * time.Millisecond
)

// churnFigures are what TestPeerChurnSoak measures on the server.
type churnFigures struct {
	peers, distinct, vanished           int
	peakConns, peakTimeWait, finalConns int
	peakRing, finalRing                 uint64
	drain                               time.Duration
	timedOut, otherErrs                 int64
}

// TestPeerChurnSoak: many distinct peers (client ports over several
// client addresses) open a connection to one server, use it and close
// it; half of them vanish instead, without a FIN or an RST (their NIC's
// link goes down and their runtime stops), some idle (found by the
// server's keepalive) and some with a reply in flight (found by the
// retransmission timeout). The server's connection table, ring memory
// and TIME-WAIT stay within their bounds, every vanished peer's
// connection ends by a timer (its handler's Read reports ETIMEDOUT), the
// table and the rings drain to nothing, and new connections still
// succeed at the end. -soak10k runs 10 000 peers; the default 600.
func TestPeerChurnSoak(t *testing.T) {
	peers, vanishNICs := 600, 2
	if *soak10k {
		peers, vanishNICs = 10000, 10
	} else if testing.Short() {
		peers = 300
	}
	perNIC := peers / 2 / vanishNICs
	clean := peers - perNIC*vanishNICs
	const workers = 32
	const maxConns = 4096 // per server core

	nics := []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 2, PoolBuffers: 8192},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1, PoolBuffers: 4096},
	}
	for v := range 2 * vanishNICs { // the vanishing ones, then more well-behaved ones
		nics = append(nics, mem.NICConfig{MAC: [6]byte{2, 0, 0, 0, 1, byte(v)}, Queues: 1, PoolBuffers: 2048})
	}
	w, err := mem.NewWire(mem.WireConfig{NICs: nics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	srvTweak := func(c *stack.Config) {
		c.TCP.MaxConns = maxConns
		c.TCP.MSL = 250 * time.Millisecond // TIME-WAIT 500 ms
		c.TCP.FinWait2Timeout = time.Second
		c.TCP.InitialRTO, c.TCP.MinRTO, c.TCP.MaxRTO = 200*time.Millisecond, 20*time.Millisecond, 200*time.Millisecond
		c.TCP.MaxRetries, c.TCP.SYNACKRetries = 5, 3
	}
	cliTweak := func(c *stack.Config) { c.TCP.MinRTO = 20 * time.Millisecond }
	srv := startNetwork(t, w, 0, serverAddr, srvTweak)
	cli := startNetwork(t, w, 1, clientAddr, cliTweak)
	vanish := make([]*Network, vanishNICs)
	for v := range vanish {
		vanish[v] = startNetwork(t, w, 2+v, netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + v)}), cliTweak)
	}
	// The well-behaved peers come from as many addresses again, and cli's.
	clients := []*Network{cli}
	for v := range vanishNICs {
		clients = append(clients, startNetwork(t, w, 2+vanishNICs+v, netip.AddrFrom4([4]byte{10, 0, 0, byte(100 + v)}), cliTweak))
	}

	// The server: one goroutine per connection, keepalive tightened so a
	// silent peer is found in well under a second.
	l, err := srv.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	var handlers sync.WaitGroup
	var fig churnFigures
	var seenMu sync.Mutex
	seen := map[string]bool{}
	keep := net.KeepAliveConfig{Enable: true, Idle: 300 * time.Millisecond, Interval: 100 * time.Millisecond, Count: 3}
	handlers.Add(1)
	go func() {
		defer handlers.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			seenMu.Lock()
			seen[c.RemoteAddr().String()] = true
			seenMu.Unlock()
			c.(tcpConnOptions).SetKeepAliveConfig(keep)
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				defer c.Close()
				req := make([]byte, 8)
				resp := make([]byte, churnResp)
				for {
					if _, err := io.ReadFull(c, req); err != nil {
						switch {
						case errors.Is(err, syscall.ETIMEDOUT):
							atomic.AddInt64(&fig.timedOut, 1)
						case err != io.EOF:
							atomic.AddInt64(&fig.otherErrs, 1)
						}
						return
					}
					if req[0] == reqDelayed {
						time.Sleep(churnDelay)
					}
					if _, err := c.Write(resp); err != nil {
						continue // the Read that follows reports why
					}
					if req[0] == reqClose {
						return
					}
				}
			}()
		}
	}()

	// The sampler: the server's table, ring memory and TIME-WAIT.
	sample := func() (conns, tw int, ring uint64) {
		cores := srv.Runtime().NumCores()
		c, w, r := make([]int, cores), make([]int, cores), make([]uint64, cores)
		srv.Runtime().BroadcastWait(context.Background(), func(s *stack.Stack) {
			i, st := s.Config().Core, s.TCPStats()
			c[i], w[i], r[i] = s.TCPConnCount(), int(st.TimeWait), st.RingBytes
		})
		for i := range cores {
			conns, tw, ring = conns+c[i], tw+w[i], ring+r[i]
		}
		return conns, tw, ring
	}
	stopSampler := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tick.C:
			}
			conns, tw, ring := sample()
			fig.peakConns = max(fig.peakConns, conns)
			fig.peakTimeWait = max(fig.peakTimeWait, tw)
			fig.peakRing = max(fig.peakRing, ring)
		}
	}()

	request := func(c net.Conn, kind byte, wait bool) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{kind, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			return err
		}
		if !wait {
			return nil
		}
		_, err := io.ReadFull(c, make([]byte, churnResp))
		return err
	}
	var failures atomic.Int64
	fail := func(format string, a ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, a...)
		}
	}

	// The well-behaved peers, all along.
	start := time.Now()
	var cleanDone sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		cleanDone.Add(1)
		go func() {
			defer cleanDone.Done()
			for {
				i := next.Add(1)
				if i > int64(clean) {
					return
				}
				c, err := clients[int(i)%len(clients)].Dial("tcp", "10.0.0.1:7000")
				if err != nil {
					fail("clean dial: %v", err)
					continue
				}
				if err := request(c, reqClose, true); err != nil {
					fail("clean request: %v", err)
				} else if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					fail("clean peer: %d, %v after the reply, want EOF", n, err)
				}
				c.Close()
			}
		}()
	}

	// The vanishing peers, a NIC at a time: each opens perNIC
	// connections and uses them, then half leave a delayed request
	// behind, and the NIC drops off the wire.
	for v, vn := range vanish {
		conns := make([]net.Conn, perNIC)
		var wg sync.WaitGroup
		idx := atomic.Int64{}
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(idx.Add(1) - 1)
					if i >= perNIC {
						return
					}
					c, err := vn.Dial("tcp", "10.0.0.1:7000")
					if err != nil {
						fail("vanishing dial: %v", err)
						continue
					}
					conns[i] = c
					if err := request(c, reqKeep, true); err != nil {
						fail("vanishing request: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		for i, c := range conns {
			if c != nil && i%2 == 1 {
				request(c, reqDelayed, false)
			}
		}
		time.Sleep(10 * time.Millisecond) // the requests reach the server
		w.NIC(2 + v).SetLinkUp(false)     // gone: no FIN, no RST, nothing
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		vn.Runtime().Stop(ctx)
		cancel()
		fig.vanished += perNIC
	}
	cleanDone.Wait()
	churnEnd := time.Now()

	// Every vanished peer's connection ends by a timer; TIME-WAIT runs
	// out; the table and the rings drain.
	drainBy := time.Now().Add(30 * time.Second)
	for {
		conns, tw, ring := sample()
		if conns == 0 && tw == 0 && ring == 0 && atomic.LoadInt64(&fig.timedOut) >= int64(fig.vanished) {
			break
		}
		if time.Now().After(drainBy) {
			t.Fatalf("not drained 30 s after the churn: %d connections (%d TIME-WAIT), %d ring bytes, %d of %d vanished peers timed out",
				conns, tw, ring, atomic.LoadInt64(&fig.timedOut), fig.vanished)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fig.drain = time.Since(churnEnd)
	close(stopSampler)
	sampler.Wait()
	fig.finalConns, _, fig.finalRing = sample()
	seenMu.Lock()
	fig.distinct = len(seen)
	seenMu.Unlock()

	// Service goes on.
	for i := range 20 {
		c, err := cli.Dial("tcp", "10.0.0.1:7000")
		if err != nil {
			t.Fatalf("connection %d after the soak: %v", i, err)
		}
		if err := request(c, reqClose, true); err != nil {
			t.Fatalf("request %d after the soak: %v", i, err)
		}
		c.Close()
	}
	l.Close()
	handlers.Wait()

	fig.peers = clean + fig.vanished
	t.Logf("peer-churn soak: %d peers (%d distinct address:port), %d vanished, in %v; server peaks: %d connections, %d TIME-WAIT, %d ring bytes; drained %v after the churn; %d ended by ETIMEDOUT, %d other errors",
		fig.peers, fig.distinct, fig.vanished, churnEnd.Sub(start).Round(time.Millisecond), fig.peakConns, fig.peakTimeWait, fig.peakRing,
		fig.drain.Round(time.Millisecond), fig.timedOut, fig.otherErrs)

	// A well-behaved peer's port is free again once it has closed, and a
	// client may pick it again (the server's TIME-WAIT for it then gives
	// way to the new SYN): a few repeat.
	if fig.distinct < fig.peers*98/100 {
		t.Errorf("%d distinct peers, want %d", fig.distinct, fig.peers)
	}
	if bound := 2 * maxConns; fig.peakConns > bound || fig.peakTimeWait > bound {
		t.Errorf("table peaked at %d connections, %d in TIME-WAIT; bound %d", fig.peakConns, fig.peakTimeWait, bound)
	}
	// Ring memory is held only while bytes wait: at most the connections
	// busy at once (the workers and a NIC's worth of vanished ones with a
	// reply in flight), each a smallest-class send and receive ring.
	if bound := uint64(workers+perNIC) * 2 * 2 * stack.MinTCPBuffer; fig.peakRing > bound {
		t.Errorf("ring memory peaked at %d bytes; bound %d", fig.peakRing, bound)
	}
	if fig.timedOut != int64(fig.vanished) || fig.otherErrs != 0 {
		t.Errorf("%d connections ended by ETIMEDOUT (want the %d vanished), %d by other errors", fig.timedOut, fig.vanished, fig.otherErrs)
	}
	if fig.finalConns != 0 || fig.finalRing != 0 {
		t.Errorf("after the drain: %d connections, %d ring bytes", fig.finalConns, fig.finalRing)
	}
}
