package rss

import (
	"fmt"
	"math/bits"
)

// Sizes of an indirection table this package builds. NICs have 64 (ixgbevf),
// 128 (82599, virtio-net, ena), 512 (i40e, mlx5) and more entries; a table
// read from hardware (RETA built by hand, or by the ethtool code) may have
// any length from 1 to MaxHardwareRETASize.
const (
	MinRETASize     = 64
	DefaultRETASize = 128
	MaxRETASize     = 512

	MaxHardwareRETASize = 1 << 16
)

// RETA is an RSS indirection table: entry i is the receive queue for the
// hashes whose index is i. The index of a hash is
//
//	hash % len(reta)
//
// which for a power-of-two length (every NIC's table) is the low
// log2(len) bits of the hash, the rule of the Microsoft specification and of
// the NICs (the 82599 datasheet: "the seven LSBs of the hash result are used
// as an index into a 128-entry redirection table"). Linux's software RPS
// scales the hash into the table by its high bits instead; that is not this
// rule, and a steering program that means to agree with a NIC must not use it.
type RETA []uint16

// EqualRETA fills a table of size entries round-robin over queues queues:
// entry i is queue i % queues, as Linux's ethtool_rxfh_indir_default and
// "ethtool -X IF equal N" fill it. size is MinRETASize to MaxRETASize (a
// power of two is not required, but see PortAllocator); queues is 1 to size.
func EqualRETA(size, queues int) (RETA, error) {
	if err := checkRETASize(size); err != nil {
		return nil, err
	}
	if queues < 1 || queues > size {
		return nil, fmt.Errorf("rss: %d queues for a %d-entry indirection table, want 1 to %d", queues, size, size)
	}
	reta := make(RETA, size)
	for i := range reta {
		reta[i] = uint16(i % queues)
	}
	return reta, nil
}

// WeightedRETA fills a table of size entries so that queue q gets a share
// of the entries proportional to weights[q], each queue's entries in one
// contiguous run, exactly as "ethtool -X IF weight W0 W1 ..." fills it. A
// zero weight leaves a queue out; at least one weight must be positive. Since
// the hash's index bits are uniform, a run is as good as an interleave.
func WeightedRETA(size int, weights []int) (RETA, error) {
	if err := checkRETASize(size); err != nil {
		return nil, err
	}
	if len(weights) == 0 || len(weights) > size {
		return nil, fmt.Errorf("rss: %d weights for a %d-entry indirection table, want 1 to %d", len(weights), size, size)
	}
	sum := 0
	for q, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("rss: weight %d of queue %d is negative", w, q)
		}
		sum += w
		if sum > 1<<30 {
			return nil, fmt.Errorf("rss: weights add up to more than %d", 1<<30)
		}
	}
	if sum == 0 {
		return nil, fmt.Errorf("rss: all %d weights are zero", len(weights))
	}
	// Entry i goes to the first queue whose cumulative weight, scaled to
	// the table, exceeds i (ethtool's fill_indir_table).
	reta := make(RETA, size)
	partial, q := 0, -1
	for i := range reta {
		for i >= size*partial/sum {
			q++
			partial += weights[q]
		}
		reta[i] = uint16(q)
	}
	return reta, nil
}

func checkRETASize(size int) error {
	if size < MinRETASize || size > MaxRETASize {
		return fmt.Errorf("rss: indirection table of %d entries, want %d to %d", size, MinRETASize, MaxRETASize)
	}
	return nil
}

// RETAFromEntries converts a table as ethtool holds it (one uint32 queue
// number per entry, NICRSS.RETA) to a RETA, checking its size (1 to
// MaxHardwareRETASize) and that every entry fits a queue number.
func RETAFromEntries(entries []uint32) (RETA, error) {
	if len(entries) == 0 || len(entries) > MaxHardwareRETASize {
		return nil, fmt.Errorf("rss: indirection table of %d entries, want 1 to %d", len(entries), MaxHardwareRETASize)
	}
	reta := make(RETA, len(entries))
	for i, q := range entries {
		if q > 0xffff {
			return nil, fmt.Errorf("rss: indirection table entry %d is queue %d, beyond %d", i, q, 0xffff)
		}
		reta[i] = uint16(q)
	}
	return reta, nil
}

// Queue returns the queue for hash: reta[hash % len(reta)]. For the fast
// form with a precomputed mask, use Config.Queue.
func (r RETA) Queue(hash uint32) int {
	return int(r[hash%uint32(len(r))])
}

// Queues returns the number of queues the table can steer to: its largest
// entry plus one (0 for an empty table).
func (r RETA) Queues() int {
	n := 0
	for _, q := range r {
		n = max(n, int(q)+1)
	}
	return n
}

// Validate reports whether r can be used as a table: 1 to
// MaxHardwareRETASize entries, each below queues.
func (r RETA) Validate(queues int) error {
	if len(r) == 0 || len(r) > MaxHardwareRETASize {
		return fmt.Errorf("rss: indirection table of %d entries, want 1 to %d", len(r), MaxHardwareRETASize)
	}
	for i, q := range r {
		if int(q) >= queues {
			return fmt.Errorf("rss: indirection table entry %d is queue %d, but there are %d queues", i, q, queues)
		}
	}
	return nil
}

// isPow2 reports whether n is a power of two (n > 0).
func isPow2(n int) bool { return n > 0 && bits.OnesCount(uint(n)) == 1 }
