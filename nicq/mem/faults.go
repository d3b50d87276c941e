package mem

import (
	"fmt"
	"math"
	"time"

	"github.com/mkstack/mkstack/nicq"
)

// Faults describe what the wire does to the frames a NIC sends, each drawn
// independently per frame and per destination NIC from the sending queue's
// seeded generator. The zero value is a perfect wire.
type Faults struct {
	// Loss is the probability that a frame is lost (nicq.DropInjectedLoss,
	// counted by the sending queue).
	Loss float64
	// Duplicate is the probability that a frame arrives twice.
	Duplicate float64
	// Corrupt is the probability that one bit of a frame is flipped on the
	// way. The bit is uniformly chosen after the 14-byte Ethernet header,
	// where the IPv4 header checksum or the TCP or UDP checksum covers it:
	// a ones'-complement sum always changes when one bit does. Only bits
	// that no checksum covers escape: link-layer padding, and UDP sent
	// without a checksum. The sender's frame is not changed; the receiver
	// gets the damaged copy (the pcap tap shows both).
	Corrupt float64
	// Reorder is the probability that a frame is held back by ReorderDelay
	// more than the others, so that frames sent after it overtake it.
	Reorder float64
	// ReorderDelay is the extra delay of a reordered frame; 0 means 1 ms.
	ReorderDelay time.Duration
	// Delay is the one-way latency of every frame.
	Delay time.Duration
	// Jitter adds a uniformly random extra latency from 0 to Jitter; it
	// reorders frames sent closer together than the jitter.
	Jitter time.Duration
	// Bandwidth limits each transmit queue to this many bits per second,
	// counting the Ethernet framing a frame costs on a real wire (FCS,
	// preamble and inter-frame gap: 24 bytes). 0 means unlimited.
	Bandwidth int64
	// MaxQueueDelay bounds how far ahead of the clock a bandwidth-limited
	// queue schedules frames: beyond it Send takes no more, as a full
	// transmit ring would. 0 means 1 ms.
	MaxQueueDelay time.Duration
}

// wireOverhead is what an Ethernet frame costs on the wire beyond the bytes
// a NIC hands over: the 4-byte FCS, the 8-byte preamble and start-of-frame
// delimiter, and the 12-byte inter-frame gap.
const wireOverhead = 24

func (f *Faults) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", f.Loss}, {"duplicate", f.Duplicate}, {"corrupt", f.Corrupt}, {"reorder", f.Reorder}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%w: %s probability %v outside [0, 1]", nicq.ErrInvalidConfig, p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"reorder delay", f.ReorderDelay}, {"delay", f.Delay}, {"jitter", f.Jitter}, {"max queue delay", f.MaxQueueDelay}} {
		if d.v < 0 {
			return fmt.Errorf("%w: negative %s %v", nicq.ErrInvalidConfig, d.name, d.v)
		}
	}
	if f.Bandwidth < 0 {
		return fmt.Errorf("%w: negative bandwidth %d", nicq.ErrInvalidConfig, f.Bandwidth)
	}
	return nil
}

// faultPlan is Faults prepared for the send path: probabilities as
// thresholds on a uniform 64-bit draw, durations as nanoseconds.
type faultPlan struct {
	active                            bool // any fault at all: frames take the faulty path
	loss, duplicate, corrupt, reorder uint64
	reorderDelay, delay, jitter       int64
	bandwidth                         int64
	maxQueueDelay                     int64
}

func planFaults(f Faults) faultPlan {
	p := faultPlan{
		loss:          threshold(f.Loss),
		duplicate:     threshold(f.Duplicate),
		corrupt:       threshold(f.Corrupt),
		reorder:       threshold(f.Reorder),
		reorderDelay:  int64(f.ReorderDelay),
		delay:         int64(f.Delay),
		jitter:        int64(f.Jitter),
		bandwidth:     f.Bandwidth,
		maxQueueDelay: int64(f.MaxQueueDelay),
	}
	if p.reorderDelay == 0 {
		p.reorderDelay = int64(time.Millisecond)
	}
	if p.maxQueueDelay == 0 {
		p.maxQueueDelay = int64(time.Millisecond)
	}
	p.active = p.loss|p.duplicate|p.corrupt|p.reorder != 0 || p.delay != 0 || p.jitter != 0 || p.bandwidth != 0
	return p
}

// threshold maps probability p to t such that a uniform 64-bit draw x has
// x < t with probability p (1 is "always": every draw is below MaxUint64
// but one in 2^64).
func threshold(p float64) uint64 {
	if p >= 1 {
		return math.MaxUint64
	}
	return uint64(p * (1 << 64))
}

// FaultStats count the faults a transmit queue injected.
type FaultStats struct {
	Lost       uint64 // also counted as nicq.DropInjectedLoss
	Duplicated uint64
	Corrupted  uint64
	Reordered  uint64
}
