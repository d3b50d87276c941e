package sockets

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mkstack/mkstack/stack"
)

// Handler is the per-core, run-to-completion face of TCP: the fastest
// path. Its functions run on the core that owns the connection, in the
// middle of that core's loop, so they:
//
//   - must never block (no channel waits, no locks held by other
//     goroutines, no system calls that wait): the core's other
//     connections wait while they run;
//   - may keep the *stack.TCPConn and use it only from this core's
//     handlers (or a function passed to Runtime.Do for this core);
//   - get received data without a copy: as a view of the packet buffer
//     it arrived in when nothing older waits (valid only during the
//     call), else as views of the connection's receive ring. Data returns
//     the bytes it consumed; the rest goes to the ring and is offered
//     again with what arrives next;
//   - write with c.Write, which never blocks: it takes what fits in the
//     send ring and returns the count; Writable says when there is room
//     again.
//
// A panic in a handler resets that connection, is counted
// (Stats.HandlerPanics) and leaves the core running.
type Handler struct {
	// Open is called when a connection is established.
	Open func(c *stack.TCPConn)
	// Data offers the received bytes (b continues a when they wrap
	// around the ring; b is nil for a packet buffer's view) and returns
	// how many were consumed.
	Data func(c *stack.TCPConn, a, b []byte) (consumed int)
	// Writable is called when a Write that did not fit has room again.
	Writable func(c *stack.TCPConn)
	// PeerClosed is called when the peer has sent everything (its FIN);
	// the usual answer is c.Close().
	PeerClosed func(c *stack.TCPConn)
	// Closed is called when the connection is gone; err is nil for an
	// orderly close. The connection may be reused by the stack once
	// Closed has returned.
	Closed func(c *stack.TCPConn, err error)
}

// event adapts h to stack.TCPHandler.
func (n *Network) event(h *Handler) stack.TCPHandler {
	return func(c *stack.TCPConn, ev stack.TCPEvent) {
		defer func() {
			if r := recover(); r != nil {
				n.stats.HandlerPanics.Add(1)
				c.Abort()
			}
		}()
		switch ev {
		case stack.TCPEventEstablished:
			if h.Open != nil {
				h.Open(c)
			}
		case stack.TCPEventReadable:
			if h.Data != nil {
				a, b := c.Peek()
				if k := h.Data(c, a, b); k > 0 {
					c.Discard(k)
				}
			}
		case stack.TCPEventWritable:
			if h.Writable != nil {
				h.Writable(c)
			}
		case stack.TCPEventPeerClosed:
			if h.PeerClosed != nil {
				h.PeerClosed(c)
			} else {
				c.Close()
			}
		case stack.TCPEventClosed:
			if h.Closed != nil {
				h.Closed(c, c.Err())
			}
			c.Close() // release it to the stack
		}
	}
}

// segment adapts h.Data to the stack's zero-copy hook: in-order data
// that finds nothing waiting in the receive ring goes to Data as a view of
// the packet buffer, and only what Data leaves is copied into the ring.
func (n *Network) segment(h *Handler) stack.TCPSegmentHandler {
	if h.Data == nil {
		return nil
	}
	return func(c *stack.TCPConn, p []byte) (k int) {
		defer func() {
			if r := recover(); r != nil {
				n.stats.HandlerPanics.Add(1)
				c.Abort()
				k = len(p)
			}
		}()
		return h.Data(c, p, nil)
	}
}

// Server is a port served by a Handler on every core.
type Server struct {
	n    *Network
	port uint16
	per  []*stack.TCPListener
}

// ServeTCP serves port with h on every core; each connection's handlers run
// on the core its packets land on.
func (n *Network) ServeTCP(port uint16, h Handler) (*Server, error) {
	if port == 0 {
		return nil, errors.New("sockets: serve tcp: port 0: name a port")
	}
	srv := &Server{n: n, port: port, per: make([]*stack.TCPListener, n.rt.NumCores())}
	ev := n.event(&h)
	errs := make([]error, n.rt.NumCores())
	err := n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		core := s.Config().Core
		srv.per[core], errs[core] = s.ListenTCP(port, stack.TCPListenOptions{OnEvent: ev, OnSegment: n.segment(&h), NoDelay: true})
	})
	if err = errors.Join(append(errs, err)...); err != nil {
		srv.Close()
		return nil, fmt.Errorf("sockets: serve tcp port %d: %w", port, err)
	}
	return srv, nil
}

// Close stops listening on every core; established connections go on.
func (srv *Server) Close() error {
	return srv.n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		if l := srv.per[s.Config().Core]; l != nil {
			l.Close()
			srv.per[s.Config().Core] = nil
		}
	})
}

// DialHandler opens a connection to dst on core, driven by h on that core
// (its local port is chosen so the replies land there). It returns once
// the SYN is queued; h.Open reports the handshake, h.Closed a failure.
func (n *Network) DialHandler(core int, dst netip.AddrPort, h Handler) error {
	ev := n.event(&h)
	var err error
	werr := n.rt.DoWait(context.Background(), core, func(s *stack.Stack) {
		_, err = s.DialTCPAddr(dst.Addr(), dst.Port(), stack.TCPConnOptions{OnEvent: ev, OnSegment: n.segment(&h), NoDelay: true})
	})
	if werr != nil {
		return fmt.Errorf("sockets: dial %v: %w", dst, werr)
	}
	if err != nil {
		return fmt.Errorf("sockets: dial %v: %w", dst, mapError(err))
	}
	return nil
}
