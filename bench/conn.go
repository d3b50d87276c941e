package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ConnTarget is a stack seen through Go's net interfaces: what the
// goroutine load generator (RunConn) needs of it.
type ConnTarget struct {
	// Addr is the server's IP address.
	Addr string
	// Listen opens the TCP listeners of port: one per core (the kernel
	// with SO_REUSEPORT) or one for the whole stack. Port 0 means any
	// free port; the listeners' Addr tells which.
	Listen func(port int) ([]net.Listener, error)
	// ListenPacket opens the UDP sockets of port, as Listen.
	ListenPacket func(port int) ([]net.PacketConn, error)
	// Dial connects, as net.Dialer.DialContext.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Pin, if set, pins the calling goroutine to core's CPU: the client
	// goroutines of core i and the server goroutines of listener i call
	// it first.
	Pin func(core int) error
	// serve, if set, replaces the goroutine server: it serves the
	// workload (counting into m what the server counts) on the target's
	// own terms, as the veth systems' mkstack per-core handlers do.
	serve func(m *meter) (stop func(), port int, err error)
	// idleNetns, if set, is the named network namespace the load dials
	// from: the idle-connection mode runs its load there in a process of
	// its own (IdleClientCommand).
	idleNetns string
}

// RunConn runs one point of p's workload against t: a server goroutine
// per connection (net/http for http), and Flows client goroutines per
// core, each with one request in flight (a stream's writing chunks, in
// the fixed-rate mode each when it is due).
func RunConn(ctx context.Context, t *ConnTarget, p Params) (Point, error) {
	m := newMeter(p, p.Cores*p.Flows)
	var srv sync.WaitGroup
	serve := func(m *meter) (func(), int, error) { return serveConn(t, m, &srv) }
	if t.serve != nil {
		serve = t.serve
	}
	stopServer, port, err := serve(m)
	if err != nil {
		return Point{}, fmt.Errorf("serve: %w", err)
	}
	addr := net.JoinHostPort(t.Addr, strconv.Itoa(port))
	if p.Idle {
		pt, err := openIdle(ctx, t, p, addr)
		stopServer()
		srv.Wait()
		pt.Family = familyOf(t.Addr)
		return pt, err
	}
	var cli sync.WaitGroup
	var startErr error
	var once sync.Once
	for c := range p.Cores {
		for j := range p.Flows {
			cli.Go(func() {
				if t.Pin != nil {
					if err := t.Pin(c); err != nil {
						once.Do(func() { startErr = err })
						m.stop()
						return
					}
				}
				connFlow(ctx, t, m, c*p.Flows+j, addr)
			})
		}
	}
	pt, err := m.window(ctx)
	// The flows finish their transaction in flight and end; a flow stuck
	// on a lost reply is released when the server's side closes.
	cliDone := make(chan struct{})
	go func() { cli.Wait(); close(cliDone) }()
	select {
	case <-cliDone:
	case <-time.After(2 * time.Second):
	}
	stopServer()
	select {
	case <-cliDone:
	case <-time.After(5 * time.Second):
		return pt, errors.Join(err, errors.New("client goroutines did not stop"))
	}
	srv.Wait()
	pt.Latency, pt.Family = m.latency(), familyOf(t.Addr)
	if startErr != nil {
		err = errors.Join(err, startErr)
	}
	return pt, err
}

// serveConn starts the server side and returns how to stop it and the
// port it serves.
func serveConn(t *ConnTarget, m *meter, wg *sync.WaitGroup) (stop func(), port int, err error) {
	w := m.p.Workload
	var mu sync.Mutex
	conns := map[io.Closer]bool{}
	track := func(c io.Closer, on bool) {
		mu.Lock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
		mu.Unlock()
	}
	closeAll := func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	pin := func(i int) {
		if t.Pin != nil {
			t.Pin(i % m.p.Cores)
		}
	}
	if w == UDPEcho {
		pcs, err := t.ListenPacket(0)
		if err != nil {
			return nil, 0, err
		}
		for i, pc := range pcs {
			track(pc, true)
			for range max(1, m.p.Flows/len(pcs)*m.p.Cores/4) {
				wg.Go(func() {
					pin(i)
					buf := make([]byte, 2048)
					for {
						n, from, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						pc.WriteTo(buf[:n], from)
					}
				})
			}
		}
		return closeAll, pcs[0].LocalAddr().(*net.UDPAddr).Port, nil
	}
	ls, err := t.Listen(0)
	if err != nil {
		return nil, 0, err
	}
	port = ls[0].Addr().(*net.TCPAddr).Port
	if w == HTTP {
		hs := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "text/plain")
			io.WriteString(rw, HTTPBody)
		}), ReadHeaderTimeout: 10 * time.Second}
		for _, l := range ls {
			wg.Go(func() { hs.Serve(l) })
		}
		return func() { hs.Close() }, port, nil
	}
	for i, l := range ls {
		track(l, true)
		wg.Go(func() {
			pin(i)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				track(c, true)
				wg.Go(func() {
					defer track(c, false)
					defer c.Close()
					pin(i)
					serveConnOne(c, m, i)
				})
			}
		})
	}
	return closeAll, port, nil
}

// serveConnOne serves one connection of listener i.
func serveConnOne(c net.Conn, m *meter, i int) {
	switch m.p.Workload {
	case TCPStream, TCPStreamMany:
		buf := make([]byte, StreamChunk)
		for {
			n, err := c.Read(buf)
			m.add(i%len(m.slots), uint64(n))
			if err != nil {
				return
			}
		}
	default:
		buf := make([]byte, MsgSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
			if m.p.Workload == TCPCRR && CRRServerClosesFirst {
				return
			}
		}
	}
}

// connFlow is one client flow: transactions until the meter says stop.
func connFlow(ctx context.Context, t *ConnTarget, m *meter, i int, addr string) {
	w := m.p.Workload
	buf := make([]byte, max(MsgSize, 2048))
	switch w {
	case UDPEcho:
		c, err := t.Dial(ctx, "udp", addr)
		if err != nil {
			m.fail(i)
			return
		}
		defer c.Close()
		for {
			start := m.wait(i)
			if _, err := c.Write(buf[:MsgSize]); err != nil {
				m.fail(i)
				return
			}
			// A lost datagram is resent after 100 ms.
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				if errors.Is(err, net.ErrClosed) || m.stopping.Load() {
					return
				}
				m.fail(i)
				continue
			}
			if !m.done(i, start) {
				return
			}
		}
	case Memcached:
		memcachedFlow(ctx, t, m, i, addr)
		return
	case TCPCRR:
		for {
			start := m.wait(i)
			if !crrOnce(ctx, t, addr, buf) {
				m.fail(i)
				if m.stopping.Load() {
					return
				}
				// A refused or failed connect (every local port in
				// TIME-WAIT, say) is not retried in a tight loop.
				time.Sleep(time.Millisecond)
				continue
			}
			if !m.done(i, start) {
				return
			}
		}
	}
	c, err := t.Dial(ctx, "tcp", addr)
	if err != nil {
		m.fail(i)
		return
	}
	defer c.Close()
	switch w {
	case TCPStream, TCPStreamMany:
		// A blocking Write sends the whole chunk before the next is due;
		// in the fixed-rate mode each chunk waits for its time (a late
		// flow writes its overdue chunks back to back).
		chunk := make([]byte, StreamChunk)
		paced := m.paced()
		for !m.stopping.Load() {
			if paced {
				m.wait(i)
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	case HTTP:
		br := bufio.NewReader(c)
		for {
			start := m.wait(i)
			if _, err := c.Write(httpRequest); err != nil {
				m.fail(i)
				return
			}
			if err := readHTTPResponse(br); err != nil {
				m.fail(i)
				return
			}
			if !m.done(i, start) {
				return
			}
		}
	default: // tcp-rr
		for {
			start := m.wait(i)
			if _, err := c.Write(buf[:MsgSize]); err != nil {
				m.fail(i)
				return
			}
			if _, err := io.ReadFull(c, buf[:MsgSize]); err != nil {
				m.fail(i)
				return
			}
			if !m.done(i, start) {
				return
			}
		}
	}
}

// crrOnce connects, sends a request, reads the response and closes (the
// client closes first, as netperf's TCP_CRR).
func crrOnce(ctx context.Context, t *ConnTarget, addr string, buf []byte) bool {
	c, err := t.Dial(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(buf[:MsgSize]); err != nil {
		return false
	}
	if _, err = io.ReadFull(c, buf[:MsgSize]); err != nil {
		return false
	}
	if CRRServerClosesFirst {
		// Close once the server's FIN is in: the TIME-WAIT is its.
		if n, err := c.Read(buf); n != 0 || err != io.EOF {
			return false
		}
	}
	return true
}

// readHTTPResponse reads one response with a Content-Length body.
func readHTTPResponse(br *bufio.Reader) error {
	body := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			if len(line) < 12 || string(line[9:12]) != "200" {
				return fmt.Errorf("http: status line %q", line)
			}
			continue
		}
		if len(line) <= 2 {
			break
		}
		if n, ok, err := contentLength(line[:len(line)-2]); err != nil {
			return fmt.Errorf("http: header %q: %w", line, err)
		} else if ok {
			body = n
		}
	}
	if body < 0 {
		return errors.New("http: no content-length")
	}
	_, err := br.Discard(body)
	return err
}
