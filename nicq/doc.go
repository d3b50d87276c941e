// Package nicq owns the boundary between a stack and a NIC: the packet
// buffer and its per-core pools, the Queue and NIC contracts every driver
// implements, the clock drivers read, and a pcap writer to watch any queue.
// Its subpackages are the drivers: mem (an in-memory multi-queue wire with
// software RSS and fault injection), afxdp (AF_XDP sockets behind an XDP
// program), tap (a multi-queue TAP device) and afpacket (TPACKET_V2 or V3
// rings in a fanout group); linkdev holds what the Linux ones share.
//
// It must not parse protocols. A Buf holds bytes and facts about them (the
// RSS hash, the arrival time, which checksums were verified) that a NIC or
// the stack established; what the bytes mean is the stack's business. The
// one look inside a frame that a software driver needs, finding the RSS
// hash input, is the rss package's (rss.Config.HashFrame), just as a
// hardware NIC reads that much and no more.
//
// # Packet buffers
//
// A Buf is one frame in a fixed-size frame of memory (DefaultFrameSize,
// 2 KiB) that belongs to a Pool. An empty Buf has Headroom (at least
// MinHeadroom, 128 bytes) in front of its data, so the way out is
// Append(payload), then Push(transport header), Push(IP header),
// Push(Ethernet header), each written in place; the way in is Pull of each
// header in turn, and Truncate of the link padding. No layer copies. The
// metadata (RxQueue, Hash, Flags, RxTime, SegmentSize for TSO, and an
// int32 of Scratch) are plain fields that Get clears; Buf is 64 bytes, one
// cache line.
//
// A Pool is a fixed set of buffers carved from one region of memory: its own,
// or one a driver passes in (PoolConfig.Region), so that with AF_XDP a Buf is
// a view of a UMEM frame and Pool.FrameOffset is its UMEM address. Get and
// Free are O(1) (a stack of free buffers, the warmest first), take no lock
// and allocate nothing. A pool never grows: when it is empty, Get returns nil
// and counts an empty-fail, and the caller drops the packet, as a NIC does
// when it has no free descriptor.
//
// # Ownership
//
// Every buffer has exactly one owner at a time, and every pool belongs to
// exactly one core (one goroutine locked to one CPU). The rules:
//
//   - Only the core that owns a pool calls its Get, GetBatch and Put, and
//     Free on its buffers. Nothing in a pool is synchronized, so a Free from
//     another goroutine is a data race that corrupts the free list.
//   - A buffer may travel to another core (a packet that landed on the wrong
//     core, forwarded to the core that owns its flow), but it still belongs
//     to its pool: the core that received it sends it home in a message when
//     it is done with it, and the owner frees it. Buf.Pool tells whose it is.
//     Drivers avoid the question where they can: the mem driver copies each
//     frame into the receiving core's own buffer, as a NIC's DMA does.
//   - Recv(bufs) = n hands bufs[:n] to the caller, who frees each one or
//     passes it on.
//   - Send(bufs) = n hands bufs[:n] to the driver, which frees them after
//     transmission, on the sending core; the caller must not touch them or
//     any slice of them again. bufs[n:] remain the caller's: it retries or
//     frees them. See Queue.
//   - A slice from Bytes, Push, Pull or Append is a view of the frame: it
//     is valid while the caller owns the buffer, and dies with the Free.
//
// What happens when a rule is broken depends on the build. Normally the
// checks compile away and a broken rule is silent corruption, except that a
// pool handed more buffers than it owns panics ("double free") rather than
// hand one frame to two owners. Built with the mkstackdebug tag,
//
//	go test -tags mkstackdebug ./...
//
// every Free marks the buffer free and fills its frame with PoisonByte
// (0x6b), and then a second Free ("double free"), any method on the freed
// buffer ("use after free"), and a write through a slice kept past the Free
// (found at the next Get: "write after free") panic with where the buffer
// was freed; after Pool.Claim, a Get or Free from any goroutine but the
// claimer panics too ("only the core that owns a pool may get or free its
// buffers"). The debug tests in this package commit each of these bugs and
// check that it is caught.
//
// # Queues and NICs
//
// A Queue is one receive/transmit queue pair, driven by one core: bursts in
// and out that never block (Recv, Send), a wait handle for when the core has
// nothing to do (WaitFD with PrepareWait, Pending, CancelWait and ClearWait,
// the protocol of msgring.Doorbell, so one poll call can wait on a queue and
// a mailbox; Wait does it for a queue alone), plain counters of packets,
// bytes and drops by reason, the RSS configuration that steers flows into it
// (so the stack can choose local ports whose replies come back to it), and a
// pcap tap. A NIC is its queues with its address, MTU, link state and the
// offloads it performs (Features).
//
// # Time and capture
//
// Drivers read time from a Clock: SystemClock in production, a VirtualClock
// that tests step by hand, so that a run over the mem driver is a function of
// its seed. A PcapWriter writes classic libpcap files (Ethernet link type,
// microsecond or nanosecond timestamps) that tcpdump, tshark and Wireshark
// read; Queue.SetTap switches capture on and off per queue at run time, and
// writing a frame allocates nothing.
//
// # Cost
//
// Measured on a shared 2-vCPU AMD EPYC VM with
//
//	go test -run '^$' -bench . -benchtime=200ms -benchmem ./nicq/...
//
// Pool.Get plus Free costs about 3.5 ns, a Push and Pull pair about 5 ns, all
// with 0 allocations; over the mem wire, 64-byte frames in bursts of 32 move
// at about 22 million per second between two pinned cores on an idle
// machine, 10.6 million when another process shares one of the CPUs
// (BenchmarkMemWireBurst32), with 0 allocations per burst.
package nicq
