package nicq

import "fmt"

// Flags are facts about a buffer's contents that a NIC (or a layer of the
// stack) established, so that no one establishes them twice.
type Flags uint8

const (
	// FlagHashValid says Hash holds the RSS hash the frame was steered by.
	FlagHashValid Flags = 1 << iota
	// FlagIPChecksumVerified says the IPv4 header checksum was checked and
	// is correct (by the NIC's receive offload, or by the stack).
	FlagIPChecksumVerified
	// FlagL4ChecksumVerified says the TCP or UDP checksum was checked and is
	// correct.
	FlagL4ChecksumVerified
	// FlagL4ChecksumPartial says the TCP or UDP checksum field holds only
	// the pseudo-header sum: a stack on this host sent the frame with the
	// checksum left to a device (Linux's CHECKSUM_PARTIAL), and the driver
	// knows it from the device (a virtio-net header's NEEDS_CSUM, a packet
	// ring's TP_STATUS_CSUMNOTREADY). The frame never crossed a wire, so
	// the stack accepts it unchecked, as Linux does.
	FlagL4ChecksumPartial
	// FlagL4ChecksumMaybePartial says the frame came through a local
	// virtual device (a veth) whose driver cannot tell per frame whether
	// the checksum is partial (AF_XDP has no such status). Nothing on such
	// a device corrupts a frame, so the stack accepts a TCP or UDP
	// checksum field equal to the pseudo-header sum as partial. Drivers set
	// it only on devices that no wire feeds (docs/ARCHITECTURE.md,
	// "Checksums from local peers").
	FlagL4ChecksumMaybePartial
	// FlagL4ChecksumOffload, on a frame to send, says its TCP checksum
	// field holds only the pseudo-header sum, for a NIC with
	// FeatureTxChecksum to complete (the stack sets it only for such a
	// NIC; a TSO segment, Buf.SegmentSize set, is always partial).
	FlagL4ChecksumOffload
)

// Buf is a packet buffer: one Ethernet frame in a fixed-size frame of memory
// that belongs to a Pool, with headroom in front of the data so each layer
// prepends its header in place (Push) and strips it in place (Pull), as an
// mbuf or sk_buff does. The same Buf travels the whole path, from the NIC
// queue through the stack and back out, with no copy.
//
// A Buf comes from Pool.Get (or from a Queue's Recv) and goes back with Free.
// It is owned by exactly one core at a time; see the package documentation
// for the rules.
//
// Data methods (Push, Pull, Append, Trim, Truncate) panic when asked to move
// past the frame's edges, as slicing does: a caller checks Headroom, Len or
// Tailroom first when the length comes from the wire. The slices they return
// alias the frame and are valid until the buffer is freed, or until a later
// Push or Append writes over them.
//
// The metadata fields are plain fields, so the stack reads them with no call.
// Get clears them; nicq itself never reads them.
type Buf struct {
	// dbg is zero-sized unless the mkstackdebug tag is set. It comes first
	// because a zero-sized last field would be padded.
	dbg bufDebug //lint:ignore U1000 read by the mkstackdebug build

	// frame is this buffer's memory: frame[:frameSize] of the pool's region.
	// Its capacity runs to the end of the region, so the frame's offset in
	// the region (an AF_XDP UMEM address) is cap(region) - cap(frame), with
	// no extra field.
	frame []byte
	pool  *Pool
	// off and end delimit the data in frame: [off, end).
	off, end int32

	// Hash is the RSS hash the NIC computed, valid when FlagHashValid is set.
	Hash uint32
	// RxQueue is the index of the receive queue the frame arrived on.
	RxQueue uint16
	// Flags records what has been verified about the contents.
	Flags Flags

	state bufState // maintained only in debug builds

	// RxTime is when the frame arrived, in nanoseconds of the receiving
	// queue's clock (0 if the driver does not stamp frames).
	RxTime int64

	// SegmentSize, on a frame to send, asks a NIC with FeatureTSO to cut
	// the frame's TCP payload into segments of this many bytes (TSO); the
	// frame's TCP checksum field then holds only the pseudo-header sum,
	// for the NIC to complete per segment. 0: the frame goes as it is.
	SegmentSize uint16

	// Scratch is opaque room for whoever holds the buffer (a driver
	// keeps a frame's fate in it while the frame is on its wire). nicq
	// only zeroes it.
	Scratch int32
}

type bufState uint8

const (
	bufFree bufState = iota // in its pool's free list
	bufLive                 // handed out by Get
)

// Len returns the number of data bytes.
func (b *Buf) Len() int {
	b.check("Len")
	return int(b.end - b.off)
}

// Bytes returns the data. The slice's capacity ends at the data's end, so
// appending to it cannot silently write into the buffer's tailroom; use
// Append for that.
func (b *Buf) Bytes() []byte {
	b.check("Bytes")
	return b.frame[b.off:b.end:b.end]
}

// Headroom returns how many bytes Push can still prepend.
func (b *Buf) Headroom() int {
	b.check("Headroom")
	return int(b.off)
}

// Tailroom returns how many bytes Append can still add.
func (b *Buf) Tailroom() int {
	b.check("Tailroom")
	return b.pool.frameSize - int(b.end)
}

// TrueSize returns the memory the buffer holds whatever its length: the
// frame size. Queues that bound memory (socket buffers, reassembly) charge
// this, not Len, so that many tiny packets cannot pin many frames under a
// small byte count.
func (b *Buf) TrueSize() int { return b.pool.frameSize }

// Push prepends n bytes to the data and returns them (the new front), for
// the caller to write a header into. It panics if n is negative or larger
// than Headroom.
func (b *Buf) Push(n int) []byte {
	b.check("Push")
	if n < 0 || n > int(b.off) {
		panicRange("Push", n, "bytes of headroom", int(b.off))
	}
	b.off -= int32(n)
	return b.frame[b.off : b.off+int32(n) : b.off+int32(n)]
}

// Pull removes n bytes from the front of the data and returns them (the
// header being stripped, still readable until something is pushed over it).
// It panics if n is negative or larger than Len.
func (b *Buf) Pull(n int) []byte {
	b.check("Pull")
	if n < 0 || n > int(b.end-b.off) {
		panicRange("Pull", n, "bytes of data", int(b.end-b.off))
	}
	old := b.off
	b.off += int32(n)
	return b.frame[old:b.off:b.off]
}

// Append extends the data by n bytes at the end and returns them, for the
// caller to fill. It panics if n is negative or larger than Tailroom.
func (b *Buf) Append(n int) []byte {
	b.check("Append")
	if n < 0 || n > b.pool.frameSize-int(b.end) {
		panicRange("Append", n, "bytes of tailroom", b.pool.frameSize-int(b.end))
	}
	old := b.end
	b.end += int32(n)
	return b.frame[old:b.end:b.end]
}

// Trim removes n bytes from the end of the data (DPDK's rte_pktmbuf_trim).
// It panics if n is negative or larger than Len.
func (b *Buf) Trim(n int) {
	b.check("Trim")
	if n < 0 || n > int(b.end-b.off) {
		panicRange("Trim", n, "bytes of data", int(b.end-b.off))
	}
	b.end -= int32(n)
}

// Truncate keeps the first length bytes of the data and drops the rest, for
// example the link-layer padding after an IP packet (Linux's skb_trim). It
// panics if length is negative or larger than Len.
func (b *Buf) Truncate(length int) {
	b.check("Truncate")
	if length < 0 || length > int(b.end-b.off) {
		panicRange("Truncate", length, "bytes of data", int(b.end-b.off))
	}
	b.end = b.off + int32(length)
}

// Reset empties the buffer, with the pool's full headroom in front, and
// clears the metadata: the state Get returns it in.
func (b *Buf) Reset() {
	b.check("Reset")
	b.reset()
}

func (b *Buf) reset() {
	b.off = int32(b.pool.headroom)
	b.end = b.off
	b.Hash = 0
	b.RxQueue = 0
	b.Flags = 0
	b.SegmentSize = 0
	b.RxTime = 0
	b.Scratch = 0
}

// Pool returns the pool whose memory the buffer is. Only the core that owns
// that pool may free the buffer; a core holding a buffer of another core's
// pool sends it home in a message (see the package documentation).
func (b *Buf) Pool() *Pool { return b.pool }

// Free returns the buffer to its pool. The buffer and every slice obtained
// from it must not be used afterwards. Only the pool's owner core may call
// it. In debug builds, a second Free, a later use, a write through a kept
// slice, or a Free from a goroutine other than the pool's claimed owner
// panics.
func (b *Buf) Free() { b.pool.put(b, "Free") }

// check panics in debug builds when the buffer is not live (it was freed).
// It compiles to nothing otherwise.
func (b *Buf) check(op string) {
	if debugChecks {
		b.debugCheckLive(op)
	}
}

// String describes the buffer for messages: its pool, frame index and
// extent, without touching the data.
func (b *Buf) String() string {
	if b == nil {
		return "nicq.Buf(nil)"
	}
	if b.pool == nil {
		return "nicq.Buf(not from a pool)"
	}
	return fmt.Sprintf("nicq.Buf(pool %q frame %d, data [%d:%d])", b.pool.name, b.pool.frameIndex(b), b.off, b.end)
}

// panicRange reports a length outside the frame. It is kept out of line so
// the data methods stay small enough to inline.
//
//go:noinline
func panicRange(op string, n int, what string, have int) {
	panic(fmt.Sprintf("nicq: %s(%d) with %d %s", op, n, have, what))
}
