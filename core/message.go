package core

import (
	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
)

// msgKind says what a message carries.
type msgKind uint8

const (
	// msgForward: buf, a datagram (from its IPv4 header) of the sender's
	// pool that belongs to a flow of the receiver. The receiver copies it
	// into a buffer of its own and sends buf back (msgReturn).
	msgForward msgKind = iota + 1
	// msgReturn: buf, a buffer of the receiver's pool that it forwarded,
	// coming home to be freed.
	msgReturn
	// msgNeighbour: ip (IPv4, its first 4 bytes) is at mac, learned from
	// the wire by the sender.
	msgNeighbour
	// msgNeighbour6: ip (IPv6) is at mac, as msgNeighbour.
	msgNeighbour6
	// msgCall: run fn on the receiver's stack, then close done if set.
	msgCall
	// msgCallRequest: call, a cross-core call from the sender (a slot of
	// the sender's), to serve and send back as msgCallReply.
	msgCallRequest
	// msgCallReply: call, a call this core made, served by the sender.
	msgCallReply
)

// message is what travels in the mailboxes: a fixed-size value, copied into
// the ring. Only msgCall carries references other than a buffer, and only
// on the shared ring, which drops them once dequeued.
type message struct {
	kind msgKind
	mac  header.MAC
	ip   [16]byte
	buf  *nicq.Buf
	fn   func(*stack.Stack)
	done chan struct{}
	call *callSlot
}

// replication reports whether m replicates a neighbour entry (dropped
// first when room runs short).
func (m *message) replication() bool { return m.kind == msgNeighbour || m.kind == msgNeighbour6 }

// mailbox is a core's mailbox.
type mailbox = msgring.Mailbox[message]
