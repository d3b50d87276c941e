package nicq

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/rss"
)

// Queue is one receive/transmit queue pair of a NIC, driven by one core.
//
// All methods but Counters' cross-core parts and SetTap are for the owning
// core only: a Queue has no lock because exactly one goroutine drives it.
//
// # Ownership of buffers
//
//   - Recv(bufs) = n: bufs[:n] now belong to the caller, who frees each
//     (Buf.Free) or passes it on (to the stack, to a socket queue, back to
//     Send). The driver no longer touches them. bufs[n:] are not written.
//   - Send(bufs) = n: bufs[:n] now belong to the driver, which frees them to
//     their pool once they are transmitted (or dropped on the wire, which is
//     counted); the caller must not touch them, nor any slice of them, again.
//     bufs[n:] are still the caller's: the queue was full (a real NIC's
//     transmit ring, or flow control on the mem wire), and the caller keeps
//     them to offer again later, or frees them. Send never takes part of a
//     buffer. A return of n < len(bufs) is back-pressure, not an error.
//   - Buffers passed to Send must come from pools the calling core owns
//     (Pool, or another pool of the same core, such as a stack's pool of
//     large reassembly buffers), because the driver frees them on that core,
//     in a later Send or Recv. A driver that can transmit only from its own
//     memory (AF_XDP from its UMEM) copies other buffers into it.
//
// # Sleeping
//
// A core that found no work for a while sleeps until frames arrive, without
// losing a wake-up (the protocol of msgring.Doorbell):
//
//	q.PrepareWait()            // from now on, a landing frame makes WaitFD readable
//	if q.Pending() {           // re-check after announcing
//	    q.CancelWait()
//	} else {
//	    poll(q.WaitFD(), other fds...)
//	    q.ClearWait()
//	}
//
// Wait does exactly that for a core that waits on its queue alone.
type Queue interface {
	// Index is the queue's number in its NIC, the number the RSS
	// indirection table names.
	Index() int

	// Recv moves up to len(bufs) received frames into bufs and returns how
	// many. It never blocks. Each Buf holds one Ethernet frame (no FCS)
	// with its metadata set as the NIC's Features say.
	Recv(bufs []*Buf) int
	// Send offers bufs for transmission, each holding one Ethernet frame,
	// and returns how many the queue took (see the ownership rules above).
	// It never blocks.
	Send(bufs []*Buf) int

	// Pool is the pool the queue receives into, owned by the queue's core.
	// The core takes its transmit buffers from it too.
	Pool() *Pool
	// RSS is the configuration that steers received flows into the NIC's
	// queues; this queue receives the hashes whose table entry is Index.
	RSS() *rss.Config

	// WaitFD is a file descriptor that polls readable while a wake-up is
	// pending, for poll or epoll together with the core's other
	// descriptors (its mailbox doorbell).
	WaitFD() int
	// PrepareWait announces that the core is about to sleep: frames that
	// land from now on make WaitFD readable.
	PrepareWait()
	// CancelWait withdraws PrepareWait when the re-check found work.
	CancelWait()
	// ClearWait consumes a pending wake-up after the core woke.
	ClearWait()
	// Pending reports whether Recv would return frames now, or soon
	// without another wake-up (a driver that delays frames in software
	// reports them, so the core does not sleep past their arrival).
	Pending() bool

	// Counters returns the queue's counters. Owner core only, like the
	// rest of the data path; the core publishes them with its metrics.
	Counters() Counters

	// SetTap starts (w != nil) or stops (nil) writing the frames this
	// queue receives and sends to w. Any goroutine may call it at any
	// time; the queue picks the change up at its next burst.
	SetTap(w *PcapWriter)
}

// NIC is a network interface: its queues, its Ethernet identity and its
// capabilities.
type NIC interface {
	// Name identifies the NIC, for example "eth0" or "mem0".
	Name() string
	// NumQueues is the number of queue pairs.
	NumQueues() int
	// Queue returns queue pair i, 0 <= i < NumQueues.
	Queue(i int) Queue
	// MAC is the NIC's Ethernet address.
	MAC() [6]byte
	// MTU is the largest IP packet (Ethernet payload) the NIC sends and
	// receives, 1500 for standard Ethernet.
	MTU() int
	// LinkUp reports whether the NIC has a link.
	LinkUp() bool
	// Features says what the NIC does for the stack (offloads).
	Features() Features
	// RSS is the configuration that steers received frames into queues.
	RSS() *rss.Config
	// Close releases the NIC's resources. Its queues must no longer be
	// in use.
	Close() error
}

// EthernetHeaderLen is the length of an untagged Ethernet header (no FCS),
// VLANTagLen the length of one 802.1Q tag. A NIC carries frames of up to
// MTU + EthernetHeaderLen + VLANTagLen bytes.
const (
	EthernetHeaderLen = 14
	VLANTagLen        = 4
)

// MaxLargeFrameLen is the longest frame a driver carries whole past its
// MTU: a TCP segment of a TSO or GRO frame of 64 KiB of IP packet (Linux's
// GSO_LEGACY_MAX_SIZE) with its Ethernet header and a VLAN tag.
const MaxLargeFrameLen = 65536 + EthernetHeaderLen + VLANTagLen

// MaxFrameLen returns the longest frame a NIC with the given MTU carries:
// the payload, the Ethernet header and one VLAN tag.
func MaxFrameLen(mtu int) int { return mtu + EthernetHeaderLen + VLANTagLen }

// ReadsToLook is implemented by a queue whose Recv makes a system call
// even when no frame waits (a TAP, read until EAGAIN), where other
// drivers look at ring memory. A core that only awaits an answer from its
// own application, which comes through its mailbox, skips such a queue
// for those few microseconds rather than pay a read per look.
type ReadsToLook interface {
	ReadsToLook() bool
}

// Features are the offloads a NIC performs, as bits.
type Features uint32

const (
	// FeatureRxHash: received buffers carry the RSS hash (Buf.Hash,
	// FlagHashValid).
	FeatureRxHash Features = 1 << iota
	// FeatureRxTimestamp: received buffers carry their arrival time
	// (Buf.RxTime).
	FeatureRxTimestamp
	// FeatureRxChecksum: the NIC verifies IPv4, TCP and UDP checksums and
	// sets FlagIPChecksumVerified and FlagL4ChecksumVerified on the buffers
	// that pass. Without it the stack verifies them.
	FeatureRxChecksum
	// FeatureTSO: the NIC takes TCP segments of up to 64 KiB of IP packet
	// (Buf.SegmentSize set, the TCP checksum partial) and cuts them into
	// segments of SegmentSize payload bytes, completing each one's IP
	// and TCP headers and checksums, or hands them to a kernel peer whole
	// (a TAP, a packet socket). Without it the stack sends segments of
	// one MSS.
	FeatureTSO
	// FeatureMultiBuffer: the NIC sends and receives frames up to its
	// MTU even where one is larger than a buffer of its pool (AF_XDP
	// multi-buffer spreads it over several): a buffer the stack sends may
	// come from a pool of its own with larger buffers (the driver copies
	// it), and a received frame too large for one of the pool's buffers
	// arrives in one from a pool of the driver's. Without it the stack
	// builds no frame larger than a buffer of the pool.
	FeatureMultiBuffer
	// FeatureTxChecksum: the NIC completes a TCP checksum left partial
	// (the field holds the pseudo-header sum) on a frame marked
	// FlagL4ChecksumOffload, as Linux's CHECKSUM_PARTIAL: a virtio-net
	// header's NEEDS_CSUM (tap, afpacket), AF_XDP's transmit metadata
	// (afxdp in copy mode, the kernel then completing it or handing it
	// on to the device). Without it the stack computes every checksum.
	FeatureTxChecksum
)

var featureNames = []string{"rx-hash", "rx-timestamp", "rx-checksum", "tso", "multi-buffer", "tx-checksum"}

// String lists the features by name, as "rx-hash,rx-timestamp".
func (f Features) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	for i, name := range featureNames {
		if f&(1<<i) != 0 {
			names = append(names, name)
			f &^= 1 << i
		}
	}
	if f != 0 {
		names = append(names, fmt.Sprintf("%#x", uint32(f)))
	}
	return strings.Join(names, ",")
}

// DropReason says why a queue dropped a frame.
type DropReason uint8

const (
	// DropRxRingFull: the receive ring was full (tail drop), the NIC's
	// rx_missed or rx_fifo_errors.
	DropRxRingFull DropReason = iota
	// DropNoBuffer: the receive pool had no free buffer.
	DropNoBuffer
	// DropLinkDown: the sending or receiving NIC had no link.
	DropLinkDown
	// DropNoDestination: no NIC on the wire has the frame's unicast
	// destination address.
	DropNoDestination
	// DropRunt: the frame was shorter than an Ethernet header.
	DropRunt
	// DropOversize: the frame was longer than the MTU allows.
	DropOversize
	// DropInjectedLoss: fault injection lost the frame on purpose.
	DropInjectedLoss
	// NumDropReasons is the number of reasons, the length of Counters.Drops.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropRxRingFull:    "rx_ring_full",
	DropNoBuffer:      "no_buffer",
	DropLinkDown:      "link_down",
	DropNoDestination: "no_destination",
	DropRunt:          "runt",
	DropOversize:      "oversize",
	DropInjectedLoss:  "injected_loss",
}

// String returns the reason as a metric label: "rx_ring_full".
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// Counters are a queue's packet counters. A frame is counted by the queue
// that saw it: received frames and receive-side drops by the receive queue,
// sent frames and send-side drops (runts, no destination, injected loss) by
// the sending queue.
type Counters struct {
	RxPackets, RxBytes uint64 // frames returned by Recv
	TxPackets, TxBytes uint64 // frames taken by Send
	Drops              [NumDropReasons]uint64
	// Syscalls counts the system calls the queue made on its own
	// behalf: reads and writes of frames, transmit kicks, receive
	// wake-ups, statistics. Waits on WaitFD are the caller's.
	Syscalls uint64
}

// TotalDrops returns the sum of Drops.
func (c Counters) TotalDrops() uint64 {
	var n uint64
	for _, d := range c.Drops {
		n += d
	}
	return n
}

// TapSwitch is where a driver's queue keeps its pcap capture switch: the
// writer frames go to, or nil when capture is off. Switching is an atomic
// store, so any goroutine may do it while the queue runs; the queue pays one
// atomic load per burst to check.
type TapSwitch struct {
	w atomic.Pointer[PcapWriter]
}

// Set starts (w != nil) or stops (nil) capture.
func (t *TapSwitch) Set(w *PcapWriter) { t.w.Store(w) }

// Writer returns the writer, or nil when capture is off.
func (t *TapSwitch) Writer() *PcapWriter { return t.w.Load() }

// Wait puts the calling core to sleep until q has frames, timeout passes
// (a negative timeout waits forever) or the wake-up is spurious, following
// the protocol in the Queue documentation. It reports whether it slept and
// was woken by the queue. A core that also waits for its mailbox polls both
// descriptors itself instead.
func Wait(q Queue, timeout time.Duration) (woken bool, err error) {
	q.PrepareWait()
	if q.Pending() {
		q.CancelWait()
		return false, nil
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	fds := [1]unix.PollFd{{Fd: int32(q.WaitFD()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds[:], ms)
		if err == unix.EINTR {
			continue
		}
		if err == nil && fds[0].Revents&unix.POLLNVAL != 0 {
			err = unix.EBADF // the queue was closed
		}
		if err != nil {
			q.CancelWait()
			return false, fmt.Errorf("nicq: wait on queue %d (fd %d): %w", q.Index(), q.WaitFD(), err)
		}
		if n == 0 {
			q.CancelWait()
			return false, nil
		}
		q.ClearWait()
		return true, nil
	}
}

// FreeAll frees every buffer in bufs and sets its entry to nil, so that a
// burst array does not keep pointers to freed buffers. Nil entries are
// skipped.
func FreeAll(bufs []*Buf) {
	for i, b := range bufs {
		if b != nil {
			b.Free()
			bufs[i] = nil
		}
	}
}
