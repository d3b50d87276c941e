// Package mem is the in-memory NIC driver: a Wire joins two or more NICs of
// N queue pairs each, like an Ethernet switch, with software RSS, bounded
// receive rings that tail-drop, counters, pcap taps, and fault injection
// that replays from a seed. Every test of the stack and the default demo run
// on it; it implements nicq.NIC and nicq.Queue exactly as a hardware driver
// must, so code that works here works there.
//
// # The path of a frame
//
// Send on queue t of NIC A looks at the frame's destination address: a
// unicast address names one NIC on the wire (a frame to an unknown address,
// or to A itself, is dropped as nicq.DropNoDestination); a group address
// (broadcast or multicast) goes to every NIC but A. For each destination NIC
// B, B's RSS configuration (rss.Config.HashFrame and Queue, the Toeplitz
// hash and indirection table a hardware NIC applies) picks the receive queue
// r, and the frame is put on the link ring (A,t)→(B,r).
//
// Parsing the frame for the RSS hash input is the only look inside a frame
// that the driver makes, and it is the rss package's, not nicq's: nicq must
// not parse protocols, and a hardware NIC reads exactly as much to steer.
//
// # Links: one SPSC ring per queue pair, no lock
//
// Every sending queue has its own link to every receiving queue of every
// other NIC: a msgring.Ring of frame descriptors forward, and a ring of
// completed buffers back (the TX completion ring of a real NIC, or of
// AF_XDP). Each ring has exactly one producer core and one consumer core,
// so a wire joining pinned cores takes no lock and no compare-and-swap; a
// Send publishes each touched ring once per burst and rings the receiving
// queue's doorbell (an atomic load while that core is awake).
//
// # Copy into the receiver's memory
//
// A received frame is copied into a buffer of the receiving queue's own
// pool, and the sender's buffer goes back to the sender on the completion
// ring, to be freed by the sender's core at its next Send or Recv. This is
// what a NIC does (DMA into the receive buffers its driver posted), and it
// keeps the rule that a core holds only buffers of its own pool, so nothing
// the stack frees ever has to travel home. Passing the pointer instead
// would save a copy of at most a frame, but a receiving stack would then
// hold a buffer of another core's pool for as long as it liked (queued in a
// socket, say), starving the sender's pool and forcing every Free in the
// stack to check whose buffer it is. The copy of a 64-byte frame costs a few
// nanoseconds, and its cache lines cross between cores once, as they must
// for any handover.
//
// # Bounded rings, drops, back-pressure
//
// A link ring holds WireConfig.RingSize frames; with the completions not
// yet taken back by the sender, it bounds the sender's buffers in flight on
// that link. When it is full the frame is tail-dropped and counted as
// nicq.DropRxRingFull in the receiving queue's counters (the sender does the
// counting, in an atomic the receiver reads). With WireConfig.FlowControl
// the full ring pushes back instead, as 802.3x PAUSE would: Send returns
// fewer than it was given and the caller keeps the rest. Since each
// receiving queue has one ring per sending queue, it can hold RingSize
// frames from each of them.
//
// # Faults, time and replay
//
// Faults (WireConfig.Faults, or per sending NIC) are drawn per frame and
// destination from the sending queue's own PCG generator, seeded with
// WireConfig.Seed and the queue's place: loss, duplication, corruption (one
// bit after the Ethernet header, which a checksum catches), reordering,
// delay with jitter, and a bandwidth limit. The descriptor of a frame that
// meets faults says so, and its fate (arrival time, the bit to flip, a
// second copy) travels in the sender's Buf, which the driver owns until the
// buffer comes back; frames on a perfect wire keep 24-byte descriptors. The
// receiving queue copies a faulty frame into a delay line (a heap by arrival
// time holding twice RingSize frames, so duplicates always fit) and Recv
// returns it once the clock reaches that time.
//
// Received frames are stamped (Buf.RxTime) with their arrival time: on a
// wire with faults, the time computed for them (departure, which a bandwidth
// limit spaces out, plus delay); on a perfect wire, the clock when Recv took
// them off the link, as a NIC stamps a frame when it writes it to memory.
//
// All time comes from WireConfig.Clock. With a nicq.VirtualClock and one
// goroutine driving the queues in a fixed order, a run is a function of its
// seed: the same seed delivers the same frames in the same order at the same
// times, which is how a failing simulation is replayed. Because each queue
// draws from its own generator regardless of ring state, the faults a
// frame meets depend only on what its queue sent before it, even when cores
// race.
//
// # Waiting
//
// A queue's wait handle is its msgring.Doorbell (WaitFD is its eventfd):
// senders ring it after putting frames on the queue's links, and the
// receiving core sleeps on it with the protocol described at nicq.Queue.
// Pending counts frames still in the delay line, so a core does not sleep
// past a delayed frame's arrival (it polls until the frame is due).
package mem
