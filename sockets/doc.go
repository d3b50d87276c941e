// Package sockets is the application face of mkstack. It owns:
//
//   - Network, over a running core.Runtime, with Listen, ListenPacket, Dial
//     and DialContext returning net.Listener, net.Conn (deadlines,
//     CloseWrite, addresses) and net.PacketConn that existing Go code
//     (net/http included) uses unchanged. A listener spans every core:
//     each core's handshakes feed one accept ring. Errors are
//     *net.OpError wrapping what Go code checks: net.ErrClosed,
//     os.ErrDeadlineExceeded, syscall.ECONNREFUSED, syscall.ECONNRESET.
//   - Handler, ServeTCP and DialHandler: the per-core run-to-completion
//     API, the fastest path (callbacks on the owning core, zero-copy
//     views of received data, non-blocking writes).
//
// A call from an application goroutine that needs the stack is a message
// to the core that owns the socket (core.Runtime.DoOrWait with a function
// bound once per socket, so a call allocates nothing; a full mailbox parks
// the caller until the core drains it); a call that must wait parks its
// goroutine on a one-slot channel that the core signals (without
// blocking) when the socket's state changes. Bytes do not wait for the
// core: a TCP Write copies into the connection's write queue and a UDP
// WriteTo into a send slot of the core that owns the flow, which the core
// drains, as a kernel socket's send buffer; received TCP bytes are copied
// by the core into the connection's read queue as they arrive, and Read
// takes them with no message to the core. Each queue has one producer and
// one consumer. No goroutine spins, and no application goroutine touches
// a stack's state.
//
// It must not reach into a stack's state from another goroutine.
package sockets
