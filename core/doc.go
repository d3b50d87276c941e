// Package core is the per-core runtime of mkstack. Start starts N cores; a
// core is one goroutine, locked to one OS thread (pinned to one CPU when
// asked) or, for applications that serve from goroutines, on the Go
// scheduler's shared threads (Threads, ShareThreads), and it owns one or
// more NIC queues, one stack instance, one mailbox with its doorbell, and
// its counters. Cores
// share no mutable state: what one core needs from another arrives as a
// message. The package owns the poll loop, idling, cross-core forwarding,
// the replication of neighbour entries, the control plane (Do, Broadcast,
// Stop), per-core application state with cross-core calls (Sharded, Call)
// and the per-core metrics with their Prometheus collector.
//
// It must not hold a lock, make a channel operation or allocate on the data
// path; the tests count the heap allocations of the whole process across
// tens of thousands of echoes and find none.
//
// # Queues and flows
//
// Core c owns every NIC queue q with q % Cores == c (one queue each when
// there are as many cores as queues, the usual case) and transmits on the
// first of them. A flow's core is the one whose queue the NIC's RSS
// configuration steers its packets to; the stacks get that function as
// their FlowOwner, so a packet that lands elsewhere (a datagram reassembled
// from fragments, which are hashed on addresses only; an ICMP error about
// another core's flow; a segment for which the core has no connection,
// from a NIC that steers by a hash RSS does not predict, such as a veth
// whose sender does not steer by RSS) is forwarded to its owner.
//
// # The loop
//
// Each iteration of a core:
//
//  1. receives a burst of at most Config.Budget frames from each of its
//     queues into the stack (stack.Input);
//  2. drains at most Config.MailboxBudget messages, fairly across the
//     peer cores and the ring of application goroutines: forwarded
//     packets (stack.InputForwarded), buffers coming home, neighbour
//     entries (stack.LearnNeighbour) and calls (Do);
//  3. moves messages that found a peer's ring full from its backlog;
//  4. runs the stack's due timers (stack.Advance) and flushes its output to
//     the queue (stack.Flush into Queue.Send);
//  5. rings the doorbells of the peers it sent to (one atomic load each
//     while they are awake);
//  6. publishes its counters (Published: a few atomic stores, only of the
//     values that changed) if it found work, or else goes idle.
//
// Receive, timers and transmit each get their turn every iteration, so
// under overload frames wait (and are dropped) in the NIC's ring, before
// any work is spent on them, while output and timers keep moving.
//
// # Idle
//
// An iteration that finds no work starts a spin window (Config.SpinWindow,
// 50 µs by default; negative: none): the core keeps polling, so a busy
// flow's gaps cost no wake-up. Between looks it yields its CPU
// (sched_yield) to any other thread that wants it, and time given away
// that way does not count against the window: on a CPU it shares with
// the application or a load generator, the core spins only in time
// nobody else wanted, and finds the work that came in while they ran on
// its next look. The metrics count the idle stretches that ended within
// the window (mkstack_spin_hits_total) and the longer ones
// (mkstack_spin_misses_total). When the window passes
// with no work the core publishes its counters and sleeps: it announces the
// sleep on each queue (Queue.PrepareWait) and on its doorbell
// (Doorbell.PrepareSleep), looks once more at the queues and the mailbox
// (Queue.Pending, Mailbox.Pending), and only if both are still empty blocks
// in one poll(2) on the queues' wait descriptors and the doorbell, with a
// timeout at the stack's next timer (none if it has none; at most 1 ms
// while output or messages wait for room). A frame or message that arrives
// after the look finds the core announced and writes its eventfd; one that
// arrives before is seen by the look. TestNoWakeUpIsLostWhenCoresSleepAtOnce
// makes the cores sleep between every frame to check it. An idle core uses
// no CPU (TestIdleCoresSleepAndWakeOnTraffic), a loaded one makes no system
// call per packet.
//
// # Forwarding and where buffers go
//
// A buffer belongs to the pool of the queue (or stack) whose memory it is,
// and only the core that owns that pool may free it: pools take no lock.
// A forwarded datagram therefore travels as a pointer and comes back:
//
//   - Core i's stack calls Forward(j, b). If i has fewer than
//     Config.MaxForwardsInFlight of its buffers away and core j's ring
//     from i has room, b goes on that ring; otherwise Forward refuses, the
//     stack frees b and counts it (drop reason forward_failed), and the
//     core counts ForwardDrops.
//   - Core j copies the datagram into a buffer of its own (its queue's
//     pool, or for a datagram too large for it, one of two 64 KiB buffers
//     it makes on first use), sends b home at once in a return message,
//     and gives the copy to its stack. A copy of a rare packet is cheaper
//     than letting j's stack keep i's buffer (queued in a socket, say) for
//     as long as it likes, which would starve i's pool and force every
//     Free to ask whose buffer it holds.
//   - Core i frees b when the return arrives. A return that finds i's ring
//     full waits in j's backlog, which has room for every buffer i may
//     have away, so a return is never dropped.
//
// So a core's buffers are away for one mailbox round trip, and at most
// MaxForwardsInFlight of them. Building with -tags mkstackdebug makes a
// Free by the wrong core panic; the package's tests pass that way.
//
// # Replicated state
//
// A neighbour entry a stack learns from the wire (all ARP frames land on
// queue 0: they carry no IP header to hash) is sent to every other core,
// which installs it with stack.LearnNeighbour. The stack reports an entry
// only when it is news, and the answers to another core's probes land on
// queue 0 too, so the learning core also re-sends, every half
// NeighbourTTL, the entries its stack still resolves; otherwise the other
// cores' copies would expire and never resolve again. Calls made with Do or
// Broadcast, or at start with Config.OnStart, replicate what every core
// must have (sockets bound on every core, later listeners and routes).
//
// # Sharded state and cross-core calls
//
// An application keeps per-core state as the stack does: Sharded[T] is one
// T per core, built on that core (NewSharded), reached by that core's
// handlers with Local(core) in O(1), with no lock. A handler on core i that
// needs core j's state (the owner of a key) makes a Call: Reserve a slot,
// fill its argument, Send; serve runs on j with j's T and fills the
// result; the continuation runs back on i, which answers on the connection
// it owns. Calls travel in the core-to-core rings with the other messages
// (msgCallRequest, msgCallReply: a pointer to the slot, which belongs to
// the caller and is reused, so a call in steady state allocates nothing);
// the sender rings the target's doorbell once at the end of its iteration.
// A call to the caller's own core runs inline. A core has at most
// Config.MaxCallsInFlight calls in flight to each peer: beyond, Reserve
// returns ErrBusy, counted as back-pressure, and the handler stops taking
// work and queues a Waiter (Runtime.WhenRoom) that runs when a call to that
// peer completes. An accepted call is never dropped: a call or reply that
// finds the peer's ring full waits in the backlog, which has room for
// every call in flight each way. Application goroutines use Call.Wait, which
// goes through the shared ring and blocks until the call has run. The
// counters (calls sent and received per pair of cores, the most in flight,
// back-pressure events) are published with the core's others and emitted
// by the runtime's collector with a peer label.
//
// # Stopping
//
// Stop refuses new calls, waits for calls being made, and tells the cores.
// A stopping core takes no more frames and forwards nothing, but keeps
// draining its mailbox (running the calls still queued, sending forwarded
// buffers home unprocessed, freeing its own as they return) until every
// core has stopped forwarding and none holds another's buffer, and every
// core has seen its calls complete (a stopping core serves calls but makes
// none: Reserve returns ErrStopped); then it flushes its stack and exits. The last core out closes the doorbells. No
// goroutine outlives Stop (the tests check with goleak).
package core
