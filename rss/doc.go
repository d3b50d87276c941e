// Package rss owns receive-side scaling: how a flow finds its core.
//
// A multi-queue NIC hashes each received packet's addresses (and, for TCP
// and UDP, ports) with the Toeplitz hash and a secret key, looks the hash up
// in an indirection table, and puts the packet on the receive queue the
// table names. mkstack runs one core per queue, so this mapping decides
// which core owns a connection. This package computes it exactly as the
// hardware does, so that software can predict, reproduce and exploit it:
//
//   - Toeplitz: the hash for one key (KeySize or KeySize52 bytes), verified
//     against every row of the Microsoft RSS specification's verification
//     tables ("Verifying the RSS Hash Calculation"), with per-key tables
//     so an IPv4 4-tuple costs 12 table lookups (about 4 ns).
//   - Keys: DefaultKey (the specification's), SymmetricKey (0x6d5a
//     repeated: both directions of a flow hash alike), RandomKey, and
//     ParseKey/FormatKey for keys as ethtool prints them.
//   - RETA: the indirection table, filled equally (EqualRETA) or by weight
//     (WeightedRETA) as ethtool fills it.
//   - Config: key, table and the tuple hashed per protocol together; what a
//     driver carries and what the in-memory NIC's software RSS calls per
//     frame (QueueFrame).
//   - PortAllocator: RSS-aware choice of local ports for active opens, so
//     a connection's replies come back to the core that opened it.
//   - Reading and programming a real NIC's key and table through ethtool,
//     and the same hash as an eBPF steering program (the ethtool and steer
//     files).
//
// # The hash input
//
// The input is the source address, the destination address, the source
// port and the destination port, in network byte order, as the packet
// arrives: 12 bytes for IPv4 with ports, 8 without; 36 and 32 for IPv6. A
// reply is hashed with source and destination swapped, so with any key but
// a symmetric one the two directions of a flow usually hash differently.
//
// # The indirection table rule
//
// The queue of a hash is
//
//	queue = reta[hash % len(reta)]
//
// For the power-of-two tables every NIC has (64, 128, 512 entries) that is
// the low log2(len) bits of the hash, which is what the Microsoft
// specification and the NIC datasheets prescribe; Config.Queue computes it
// with a mask. Linux's software RPS uses the high bits instead, so a
// steering program that is to agree with a NIC must not copy RPS. Tables of
// other lengths are accepted and use the modulo.
//
// # Choosing a local port
//
// For an active open the stack picks the local port so that the reply
// (remote to local) is steered to the opening core's own queue. Toeplitz is
// linear over XOR, so the reply's hash is the hash of everything but the
// local port XOR a term that depends only on the local port; with a
// power-of-two table the table index is therefore a constant per
// destination XOR a "class" per port. A PortAllocator sorts its range's
// ports by class once, and a pick costs one hash and a few lookups, with
// ports randomized within the queue's pool in the spirit of RFC 6056. For
// one destination the queues' pools partition the range, so cores never
// choose the same 4-tuple and need not coordinate. See PortAllocator for the
// fallbacks (tables of other lengths, protocols hashed on addresses only).
//
// # What it must not do
//
// Nothing on the per-packet path allocates: Toeplitz and Config hashes,
// Config.Queue, Config.QueueFrame, and PortAllocator's Pick and Release
// (tests check each with testing.AllocsPerRun). Toeplitz and Config are
// immutable once built and may be shared by cores; a PortAllocator belongs
// to one core. The package parses only as much of a frame as a NIC does to
// find the hash input; protocols are the stack's.
//
// The figures above come from
//
//	go test -run XXX -bench . -benchtime=200ms ./rss/
//
// # Real NICs and kernel-side steering
//
// ReadNICRSS and WriteNICRSS get and set a NIC's Toeplitz key, indirection
// table and hash function through the ethtool ioctl (ETHTOOL_GRSSH and
// ETHTOOL_SRSSH), in the network namespace of the calling thread; a driver
// without RSS (veth) gives an error wrapping ErrNotSupported.
// NewSteeringProgram compiles a Config into an eBPF socket-filter program
// (built with cilium/ebpf's asm package, no C toolchain) that returns the
// queue Config.QueueFrame would, for a multi-queue TAP (AttachTAP,
// TUNSETSTEERINGEBPF) or an AF_PACKET fanout group (PACKET_FANOUT_EBPF), so
// kernel-side steering and the Go hash agree exactly; UpdateRETA changes its
// table in place.
package rss
