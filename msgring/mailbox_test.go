package msgring_test

import (
	"testing"

	"github.com/mkstack/mkstack/msgring"
)

func newTestMailbox(owner, cores int) *msgring.Mailbox[seqMsg] {
	return msgring.NewMailbox[seqMsg](msgring.MailboxConfig{
		Owner: owner, Cores: cores, PeerRing: 256, SharedCap: 256, Batch: 8,
	}, nil)
}

func TestMailboxHasNoRingFromItsOwner(t *testing.T) {
	m := newTestMailbox(1, 3)
	if m.From(1) != nil {
		t.Fatal("mailbox has a ring from its own core")
	}
	if m.From(0) == nil || m.From(2) == nil {
		t.Fatal("missing a peer ring")
	}
}

// TestMailboxDrainIsFairAcrossSources floods one peer and sends a little on
// the others; a small budget must still reach every source.
func TestMailboxDrainIsFairAcrossSources(t *testing.T) {
	m := newTestMailbox(0, 4)
	for i := 0; i < 200; i++ {
		m.From(1).Enqueue(seqMsg{producer: 1, seq: uint64(i)})
	}
	for i := 0; i < 3; i++ {
		m.From(2).Enqueue(seqMsg{producer: 2, seq: uint64(i)})
		m.From(3).Enqueue(seqMsg{producer: 3, seq: uint64(i)})
		m.Send(seqMsg{producer: 9, seq: uint64(i)})
	}
	counts := map[int]int{}
	n := m.Drain(12, func(from int, v seqMsg) {
		if from == msgring.FromShared {
			if v.producer != 9 {
				t.Errorf("shared source delivered producer %d", v.producer)
			}
		} else if int(v.producer) != from {
			t.Errorf("source %d delivered producer %d", from, v.producer)
		}
		counts[from]++
	})
	if n != 12 {
		t.Fatalf("Drain(12) = %d", n)
	}
	for _, src := range []int{1, 2, 3, msgring.FromShared} {
		if counts[src] != 3 {
			t.Errorf("source %d got %d of a budget of 12, want 3 (counts %v)", src, counts[src], counts)
		}
	}
	// The rest: leftover budget goes to whoever still has messages.
	total := n
	for {
		k := m.Drain(64, func(int, seqMsg) {})
		if k == 0 {
			break
		}
		total += k
	}
	if total != 200+9 {
		t.Fatalf("drained %d messages in all, want 209", total)
	}
	if m.Pending() {
		t.Fatal("Pending after draining everything")
	}
}

func TestMailboxDrainKeepsPerSourceOrder(t *testing.T) {
	m := newTestMailbox(0, 2)
	for i := 0; i < 100; i++ {
		m.From(1).Enqueue(seqMsg{seq: uint64(i)})
	}
	want := uint64(0)
	for m.Pending() {
		m.Drain(7, func(from int, v seqMsg) {
			if v.seq != want {
				t.Fatalf("got %d, want %d", v.seq, want)
			}
			want++
		})
	}
	if want != 100 {
		t.Fatalf("delivered %d, want 100", want)
	}
}

func TestMailboxDrainDoesNotAllocate(t *testing.T) {
	skipAllocsUnderRace(t)
	m := newTestMailbox(0, 4)
	var sum uint64
	fn := func(_ int, v seqMsg) { sum += v.seq }
	allocs := testing.AllocsPerRun(1000, func() {
		m.From(1).Enqueue(seqMsg{seq: 1})
		m.Send(seqMsg{seq: 2})
		m.Drain(64, fn)
	})
	if allocs != 0 {
		t.Fatalf("Drain allocates %.1f times per run", allocs)
	}
}
