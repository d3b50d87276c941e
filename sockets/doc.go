// Package sockets is the application face of mkstack: net.Listener,
// net.Conn, net.PacketConn and Dial that work with the standard library, and
// a per-core run-to-completion handler API. Every call from an application
// goroutine becomes a message to the core that owns the socket.
//
// It must not reach into a stack's state from another goroutine.
//
// Status: not built yet; see docs/ARCHITECTURE.md.
package sockets
