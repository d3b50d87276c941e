// Package msgring owns the channels between cores: bounded, lock-free rings
// that carry fixed-size message values, and the doorbell that wakes a core
// which went to sleep waiting for them.
//
// # What is here
//
//   - Ring[T]: a single-producer, single-consumer ring, the core-to-core
//     channel. Indices are monotonic 64-bit counters (slot = index & mask),
//     so full and empty are told apart without a spare slot and wrap-around
//     is only ever an unsigned subtraction. Each side keeps a private cached
//     copy of the other side's index and reloads it only when the cache says
//     the ring is full (producer) or empty (consumer), so in steady state a
//     side touches the other side's cache line once per batch, not once per
//     item. Producer and consumer state live on separate cache lines.
//     EnqueueBatch and DequeueBatch publish their index once per batch.
//   - MPSC[T]: a bounded ring for many producers (application goroutines,
//     the control plane) and one consumer (a core). Producers claim a slot
//     with a compare-and-swap on the enqueue index; each slot carries a
//     sequence number that tells the consumer when the value is written and
//     tells producers when the slot is free again (Vyukov's bounded queue,
//     specialised to one consumer so dequeue needs no CAS).
//   - Mailbox[T]: everything one core receives: one Ring per peer core plus
//     one MPSC ring for everyone else, drained with a budget, fairly across
//     sources.
//   - Doorbell: an eventfd a consumer can block on (alone, or in one poll
//     or epoll call with its NIC queue). A consumer announces it is about to
//     sleep; a producer that finds it asleep wakes it with one write(2). While
//     the consumer is awake ringing costs one atomic load and no system call.
//
// # Rules of use
//
// A Ring has exactly one producing goroutine and one consuming goroutine at a
// time; an MPSC has one consuming goroutine. Values are copied in and out:
// carry fixed-size structs, not interfaces, so nothing escapes to the heap.
// Nothing allocates after construction.
//
// The sleep protocol that never loses a wake-up:
//
//	consumer:                         producer:
//	  db.PrepareSleep()                 ring.Enqueue(m)
//	  if ring still empty {             db.Ring()
//	      db.Wait(timeout)
//	  } else {
//	      db.CancelSleep()
//	  }
//
// Both sides use sequentially consistent atomics, so either the consumer's
// re-check sees the message or the producer's Ring sees the consumer asleep.
//
// This package must not know about packets.
package msgring
