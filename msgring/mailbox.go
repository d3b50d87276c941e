package msgring

// FromShared is the source index Drain reports for messages that came
// through the shared MPSC ring rather than from a peer core's ring.
const FromShared = -1

// Mailbox is everything one core receives: one SPSC Ring per peer core (the
// peer is that ring's only producer) and one MPSC ring for all other senders
// (application goroutines, the control plane). The owning core is the only
// consumer of all of them.
type Mailbox[T any] struct {
	owner  int
	peers  []*Ring[T] // indexed by sending core; nil for the owner itself
	shared *MPSC[T]
	bell   *Doorbell

	batch []T // scratch for batched dequeues; consumer only
	next  int // source Drain starts with, rotated for fairness
}

// MailboxConfig sizes a mailbox.
type MailboxConfig struct {
	Owner     int // the core that consumes this mailbox
	Cores     int // number of cores, so one ring per peer
	PeerRing  int // capacity of each peer's ring
	SharedCap int // capacity of the MPSC ring
	Batch     int // values moved per dequeue while draining (default 32)
}

// NewMailbox builds a mailbox for cfg.Owner, with bell as the owner's
// doorbell (nil if the owner never sleeps).
func NewMailbox[T any](cfg MailboxConfig, bell *Doorbell) *Mailbox[T] {
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	m := &Mailbox[T]{
		owner:  cfg.Owner,
		peers:  make([]*Ring[T], cfg.Cores),
		shared: NewMPSC[T](cfg.SharedCap),
		bell:   bell,
		batch:  make([]T, cfg.Batch),
	}
	for i := range m.peers {
		if i != cfg.Owner {
			m.peers[i] = NewRing[T](cfg.PeerRing)
		}
	}
	return m
}

// Owner returns the core that consumes this mailbox.
func (m *Mailbox[T]) Owner() int { return m.owner }

// Doorbell returns the owner's doorbell, or nil.
func (m *Mailbox[T]) Doorbell() *Doorbell { return m.bell }

// From returns the ring core uses to send to the owner. Only that core may
// enqueue on it; it should call Notify after a batch of enqueues.
func (m *Mailbox[T]) From(core int) *Ring[T] { return m.peers[core] }

// Shared returns the MPSC ring for senders that are not cores.
func (m *Mailbox[T]) Shared() *MPSC[T] { return m.shared }

// Notify wakes the owner if it sleeps. Senders call it after enqueueing.
func (m *Mailbox[T]) Notify() {
	if m.bell != nil {
		m.bell.Ring()
	}
}

// Send enqueues v from a non-core sender on the shared ring and wakes the
// owner if needed. It reports false when the ring is full.
func (m *Mailbox[T]) Send(v T) bool {
	if !m.shared.Enqueue(v) {
		return false
	}
	m.Notify()
	return true
}

// Pending reports whether any source holds a message. Owner only; use it as
// the re-check between Doorbell.PrepareSleep and Doorbell.Wait.
func (m *Mailbox[T]) Pending() bool {
	for _, r := range m.peers {
		if r != nil && r.Len() > 0 {
			return true
		}
	}
	return m.shared.Len() > 0
}

// Drain delivers up to budget messages to fn, oldest first per source, and
// returns how many it delivered. from is the sending core, or FromShared.
//
// Fairness: each pass gives every source at most a fair share of what is
// left of the budget (at least one batch-free message), and the source that
// goes first rotates from call to call, so a flooding peer cannot starve the
// others or the shared ring. Owner only.
func (m *Mailbox[T]) Drain(budget int, fn func(from int, v T)) int {
	sources := len(m.peers) + 1 // peers (one is nil: the owner) + shared
	done := 0
	for done < budget {
		share := (budget - done + sources - 1) / sources
		progressed := false
		for k := 0; k < sources && done < budget; k++ {
			src := (m.next + k) % sources
			want := share
			if want > budget-done {
				want = budget - done
			}
			n := m.drainSource(src, want, fn)
			done += n
			if n > 0 {
				progressed = true
			}
		}
		if !progressed {
			break
		}
	}
	m.next = (m.next + 1) % sources
	return done
}

// drainSource moves up to want messages from one source to fn in batches.
func (m *Mailbox[T]) drainSource(src, want int, fn func(int, T)) int {
	got := 0
	for got < want {
		b := m.batch
		if want-got < len(b) {
			b = b[:want-got]
		}
		var n int
		from := src
		if src == len(m.peers) {
			from = FromShared
			n = m.shared.DequeueBatch(b)
		} else if r := m.peers[src]; r != nil {
			n = r.DequeueBatch(b)
		}
		for i := 0; i < n; i++ {
			fn(from, b[i])
		}
		got += n
		if n < len(b) {
			break
		}
	}
	return got
}
