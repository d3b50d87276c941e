// Package stack is one TCP/IP stack instance, owned by one core: Ethernet,
// ARP, IPv4 with fragmentation and reassembly, ICMP, UDP, TCP (tcp*.go; its
// design notes are at the top of tcp.go), the routing table, the neighbour
// cache, the per-core timer wheel and the socket tables; and a first slice
// of IPv6 (ipv6.go, icmpv6.go, ndp.go): with Config.Addrs6 it answers echo
// requests and neighbour solicitations and counts and drops the rest. It
// must not share anything with another stack instance.
//
// A stack is a deterministic state machine. Frames come in through Input,
// time through Advance (which reads only the Clock in its Config), and
// application calls through its sockets; frames go out through Flush to the
// core's NIC queue, and events go to handlers. It never blocks, never starts
// a goroutine and takes no lock, so a test can wire several stacks together
// with a virtual clock and replay a run exactly.
//
// # Buffers
//
// Input takes ownership of every buffer it is given: the stack frees it,
// keeps it (a queued datagram, a fragment awaiting its siblings, a packet
// awaiting ARP) or reuses it for a reply (ARP and echo replies are written
// in place). Frames the stack originates come from Config.Pool. Every
// place that holds buffers is bounded: the transmit queue, each
// neighbour's pending queue, each socket's receive queue and the
// reassembly memory budget, which charges whole buffers so a flood of tiny
// fragments cannot pin the pool.
//
// # Drops
//
// Every dropped packet increments Stats.Drops[reason]. Reasons are the
// header package's validation failures followed by the stack's own (see
// DropReason); DropReasonNames gives labels for metrics.
//
// # Cores
//
// The runtime wires three hooks. FlowOwner says which core's queue receives
// a flow; a datagram reassembled here (fragments are hashed by address
// only) or an ICMP error quoting a flow of another core goes to Forward and
// arrives there through InputForwarded. OnNeighbour reports entries learned
// from the wire so the runtime can replicate them with LearnNeighbour:
// neighbour state is replicated by messages, never shared.
package stack
