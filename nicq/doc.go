// Package nicq owns the boundary between the stack and a NIC: the packet
// buffer type and its per-queue pools, the Queue and NIC contracts, and the
// drivers that implement them (mem, afxdp, tap, afpacket).
//
// It must not parse protocols.
//
// Status: not built yet; see docs/ARCHITECTURE.md.
package nicq
