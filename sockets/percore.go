package sockets

import (
	"context"
	"errors"
	"fmt"

	"github.com/mkstack/mkstack/stack"
)

// ServeTCPCores serves port on every core, as ServeTCP does, with the
// Handler that newHandler returns for that core: newHandler runs once per
// core, on that core, so each core's handlers can hold that core's index
// and its per-core state (a core.Sharded value, say) instead of looking
// them up per event.
func (n *Network) ServeTCPCores(port uint16, newHandler func(core int) Handler) (*Server, error) {
	if port == 0 {
		return nil, errors.New("sockets: serve tcp: port 0: name a port")
	}
	srv := &Server{n: n, port: port, per: make([]*stack.TCPListener, n.rt.NumCores())}
	errs := make([]error, n.rt.NumCores())
	err := n.rt.BroadcastWait(context.Background(), func(s *stack.Stack) {
		core := s.Config().Core
		h := newHandler(core)
		srv.per[core], errs[core] = s.ListenTCP(port, stack.TCPListenOptions{OnEvent: n.event(&h), OnSegment: n.segment(&h), NoDelay: true})
	})
	if err = errors.Join(append(errs, err)...); err != nil {
		srv.Close()
		return nil, fmt.Errorf("sockets: serve tcp port %d: %w", port, err)
	}
	return srv, nil
}
