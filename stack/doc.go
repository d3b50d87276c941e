// Package stack is one TCP/IP stack instance, owned by one core: Ethernet,
// ARP, IPv4 with fragments, ICMP, UDP and TCP, checksums, the per-core timer
// wheel and connection tables. A stack is a deterministic state machine:
// frames and ticks in, frames and socket events out. It never blocks, never
// starts goroutines, and reads time only from the clock it is given.
//
// It must not share anything with another stack instance.
//
// Status: not built yet; see docs/ARCHITECTURE.md.
package stack
