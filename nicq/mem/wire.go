package mem

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/mkstack/mkstack/msgring"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
)

// Defaults of a wire and its NICs.
const (
	// DefaultRingSize is the descriptors of each link ring (one sending
	// queue to one receiving queue) when WireConfig.RingSize is 0.
	DefaultRingSize = 512
	// DefaultPoolBuffers is the buffers of each queue's pool when
	// NICConfig.PoolBuffers is 0.
	DefaultPoolBuffers = 2048
	// DefaultMTU is the MTU of a NIC configured with 0: standard Ethernet.
	DefaultMTU = 1500
)

// WireConfig describes a Wire and the NICs on it.
type WireConfig struct {
	// NICs are the interfaces the wire joins, at least two. NIC i of the
	// wire is NICs[i].
	NICs []NICConfig
	// RingSize is the capacity of each link ring, one per (sending queue,
	// receiving queue) pair, rounded up to a power of two; 0 means
	// DefaultRingSize. It bounds the frames in flight on a link: the
	// receive ring of a real NIC, seen from one sender.
	RingSize int
	// FlowControl makes a full link ring push back on the sender (as IEEE
	// 802.3x PAUSE frames do): Send takes fewer frames instead of the
	// frames being tail-dropped at the receiver.
	FlowControl bool
	// Faults are injected into every frame every NIC sends, unless the NIC
	// sets its own.
	Faults Faults
	// Seed seeds the fault-injection random numbers. Each transmit queue
	// draws from its own PCG generator, seeded with Seed and the queue's
	// place on the wire, so a run replays from its seed as long as each
	// queue sends the same frames at the same clock readings.
	Seed uint64
	// Clock stamps received frames and times delays and bandwidth. Nil
	// means nicq.SystemClock. Tests pass a *nicq.VirtualClock.
	Clock nicq.Clock
}

// NICConfig describes one NIC on a wire.
type NICConfig struct {
	// Name identifies the NIC; "" means "memN" for NIC N.
	Name string
	// MAC is the NIC's unicast Ethernet address. Frames whose destination
	// is this address are delivered to this NIC. It must be unicast and
	// unique on the wire.
	MAC [6]byte
	// Queues is the number of queue pairs, at least 1.
	Queues int
	// MTU is the largest IP packet carried; 0 means DefaultMTU.
	MTU int
	// RSS steers frames received by this NIC into its queues. Nil means
	// rss.NewConfig with the default key and an equal table over Queues.
	// Its table must name only queues below Queues.
	RSS *rss.Config
	// PoolBuffers, FrameSize and Headroom size each queue's pool (see
	// nicq.PoolConfig); 0 means DefaultPoolBuffers and the nicq defaults.
	// A frame must hold the headroom and nicq.MaxFrameLen(MTU) bytes.
	PoolBuffers, FrameSize, Headroom int
	// Faults, if set, replaces WireConfig.Faults for the frames this NIC
	// sends.
	Faults *Faults
	// TSO makes the NIC one with TCP segmentation offload and its
	// receive side's counterpart (nicq.FeatureTSO): it carries a frame
	// with Buf.SegmentSize (a TCP segment of up to 64 KiB, its checksum
	// partial) to a NIC with TSO as it is, and that NIC hands it to its
	// stack whole, marked nicq.FlagL4ChecksumPartial, from a pool of
	// large buffers per queue: what a NIC's TSO and the receiver's LRO
	// (or the kernel's loopback, with its 64 KiB MTU) do. A frame whose
	// bit a fault flipped loses that mark, so the stack's checksum
	// catches it. A NIC without TSO drops such a frame as oversize.
	TSO bool
}

// Wire is an in-memory Ethernet segment joining NICs: a switch with
// perfect address learning, or a hub that never collides. See the package
// documentation.
type Wire struct {
	nics  []*NIC
	clock nicq.Clock
	cfg   WireConfig
}

// NIC is a NIC on a Wire. It implements nicq.NIC.
type NIC struct {
	wire    *Wire
	index   int
	name    string
	mac     [6]byte
	mtu     int
	rss     *rss.Config
	faults  Faults
	queues  []*Queue
	linkUp  atomic.Bool
	closed  atomic.Bool
	maxLen  int // longest frame carried: nicq.MaxFrameLen(mtu)
	tso     bool
	qConfig nicq.PoolConfig
}

// link is the path from one sending queue to one receiving queue: a ring of
// frame descriptors forward, and a ring of completed buffers back, so the
// sender frees its own buffers on its own core. Each ring has one producer
// and one consumer, so two pinned cores share it with no lock.
type link struct {
	fwd  *msgring.Ring[desc]      // sender → receiver
	done *msgring.Ring[*nicq.Buf] // receiver → sender, the TX completion ring
	bell *msgring.Doorbell        // the receiving queue's doorbell
	to   *Queue                   // the receiving queue

	// ringFull counts frames the sender tail-dropped because fwd was full.
	// The sender writes it (one atomic store per burst that drops), the
	// receiver's Counters read it: it is the receiver's drop, seen first by
	// the sender.
	ringFull atomic.Uint64
}

// desc is one frame on a link. It is 24 bytes because the ring's cache
// lines cross from core to core and every byte of a descriptor is paid for
// once per frame. It says where the frame's bytes are, so the receiver
// copies them without touching the sender's Buf; which Buf to hand back;
// the frame's length with flag bits; and the receiving NIC's RSS hash.
type desc struct {
	data     *byte
	buf      *nicq.Buf
	lenFlags uint32 // frame length | descHashValid | descFaulty
	hash     uint32
}

const (
	descHashValid = 1 << 31 // hash holds the frame's RSS hash
	// descPartial: a TSO frame, whose TCP checksum field holds the
	// pseudo-header sum.
	descPartial = 1 << 29
	// descFaulty: the frame's fault plan (arrival time, duplication, the
	// bit to flip) is in the sender's Buf, which the driver owns until the
	// receiver hands it back; see (*Queue).injectFaults. Frames that meet
	// no faults keep the descriptor small and never make the receiver read
	// the sender's Buf.
	descFaulty  = 1 << 30
	descLenMask = descPartial - 1
)

// frame returns the bytes d describes.
func (d *desc) frame() []byte {
	return unsafe.Slice(d.data, d.lenFlags&descLenMask)
}

// NewWire builds the wire and its NICs, with their queues, pools and link
// rings. The topology is fixed from here on.
func NewWire(c WireConfig) (*Wire, error) {
	if len(c.NICs) < 2 {
		return nil, fmt.Errorf("%w: a wire joins at least 2 NICs, got %d", nicq.ErrInvalidConfig, len(c.NICs))
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.RingSize < 1 || c.RingSize > 1<<24 {
		return nil, fmt.Errorf("%w: ring size %d outside 1..%d", nicq.ErrInvalidConfig, c.RingSize, 1<<24)
	}
	c.RingSize = int(msgring.NewRing[struct{}](c.RingSize).Cap()) // the size the rings will have
	if err := c.Faults.validate(); err != nil {
		return nil, fmt.Errorf("mem: wire faults: %w", err)
	}
	if c.Clock == nil {
		c.Clock = nicq.SystemClock{}
	}
	w := &Wire{clock: c.Clock, cfg: c}
	w.cfg.NICs = nil
	macs := map[[6]byte]int{}
	for i, nc := range c.NICs {
		n, err := w.newNIC(i, nc)
		if err != nil {
			w.Close()
			return nil, err
		}
		if j, dup := macs[n.mac]; dup {
			w.Close()
			return nil, fmt.Errorf("%w: NIC %s has the MAC %s of NIC %s", nicq.ErrInvalidConfig, n.name, formatMAC(n.mac), w.nics[j].name)
		}
		macs[n.mac] = i
		w.nics = append(w.nics, n)
	}
	for _, from := range w.nics {
		for _, q := range from.queues {
			q.buildLinks(c.RingSize)
		}
	}
	return w, nil
}

func (w *Wire) newNIC(i int, c NICConfig) (*NIC, error) {
	if c.Name == "" {
		c.Name = fmt.Sprintf("mem%d", i)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	switch {
	case c.Queues < 1 || c.Queues > 1<<16:
		return nil, fmt.Errorf("%w: NIC %s: %d queues, need 1 to 65536", nicq.ErrInvalidConfig, c.Name, c.Queues)
	case c.MTU < 68 || c.MTU > nicq.MaxFrameSize:
		return nil, fmt.Errorf("%w: NIC %s: MTU %d below IPv4's minimum of 68 or too large", nicq.ErrInvalidConfig, c.Name, c.MTU)
	case c.MAC[0]&1 != 0:
		return nil, fmt.Errorf("%w: NIC %s: MAC %s is a group address", nicq.ErrInvalidConfig, c.Name, formatMAC(c.MAC))
	case c.MAC == [6]byte{}:
		return nil, fmt.Errorf("%w: NIC %s: MAC is all zeros", nicq.ErrInvalidConfig, c.Name)
	}
	n := &NIC{wire: w, index: i, name: c.Name, mac: c.MAC, mtu: c.MTU, rss: c.RSS, faults: w.cfg.Faults, maxLen: nicq.MaxFrameLen(c.MTU), tso: c.TSO}
	if c.Faults != nil {
		if err := c.Faults.validate(); err != nil {
			return nil, fmt.Errorf("mem: NIC %s faults: %w", c.Name, err)
		}
		n.faults = *c.Faults
	}
	if n.rss == nil {
		cfg, err := rss.NewConfig(rss.Options{Queues: c.Queues})
		if err != nil {
			return nil, fmt.Errorf("mem: NIC %s: default RSS configuration: %w", c.Name, err)
		}
		n.rss = cfg
	} else if q := n.rss.RETA().Queues(); q > c.Queues {
		return nil, fmt.Errorf("%w: NIC %s: its RSS table steers to queue %d of %d", nicq.ErrInvalidConfig, c.Name, q-1, c.Queues)
	}
	if c.PoolBuffers == 0 {
		c.PoolBuffers = DefaultPoolBuffers
	}
	n.qConfig = nicq.PoolConfig{Buffers: c.PoolBuffers, FrameSize: c.FrameSize, Headroom: c.Headroom}
	n.linkUp.Store(true)
	for qi := range c.Queues {
		q, err := newQueue(n, qi)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.queues = append(n.queues, q)
	}
	if room := n.queues[0].pool.FrameSize() - n.queues[0].pool.Headroom(); room < n.maxLen {
		n.Close()
		return nil, fmt.Errorf("%w: NIC %s: frames of %d bytes after the headroom cannot hold %d-byte frames (MTU %d)", nicq.ErrInvalidConfig, c.Name, room, n.maxLen, c.MTU)
	}
	return n, nil
}

// NIC returns NIC i of the wire, in the order of WireConfig.NICs.
func (w *Wire) NIC(i int) *NIC { return w.nics[i] }

// NumNICs returns the number of NICs on the wire.
func (w *Wire) NumNICs() int { return len(w.nics) }

// Clock returns the wire's clock.
func (w *Wire) Clock() nicq.Clock { return w.clock }

// Close closes every NIC. No queue may be in use.
func (w *Wire) Close() error {
	var errs []error
	for _, n := range w.nics {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// Name returns the NIC's name.
func (n *NIC) Name() string { return n.name }

// Index returns the NIC's place on its wire.
func (n *NIC) Index() int { return n.index }

// NumQueues returns the number of queue pairs.
func (n *NIC) NumQueues() int { return len(n.queues) }

// Queue returns queue pair i as a nicq.Queue.
func (n *NIC) Queue(i int) nicq.Queue { return n.queues[i] }

// MemQueue returns queue pair i with the mem driver's own methods.
func (n *NIC) MemQueue(i int) *Queue { return n.queues[i] }

// MAC returns the NIC's Ethernet address.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU returns the NIC's MTU.
func (n *NIC) MTU() int { return n.mtu }

// LinkUp reports whether the NIC has a link (SetLinkUp).
func (n *NIC) LinkUp() bool { return n.linkUp.Load() }

// SetLinkUp raises or drops the NIC's link, as pulling a cable would: while
// it is down, frames it sends and frames sent to it are dropped
// (nicq.DropLinkDown, counted by the sending queue). Any goroutine may
// call it.
func (n *NIC) SetLinkUp(up bool) { n.linkUp.Store(up) }

// Features reports what the mem NIC does for the stack: it stamps received
// frames with their RSS hash and arrival time. It verifies no checksums:
// that would mean parsing protocols.
func (n *NIC) Features() nicq.Features {
	f := nicq.FeatureRxHash | nicq.FeatureRxTimestamp
	if n.tso {
		f |= nicq.FeatureTSO
	}
	return f
}

// RSS returns the configuration that steers frames into the NIC's queues.
func (n *NIC) RSS() *rss.Config { return n.rss }

// Close releases the NIC's doorbells. Its queues must not be in use.
// Closing twice is harmless.
func (n *NIC) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, q := range n.queues {
		if err := q.bell.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mem: NIC %s queue %d: %w", n.name, q.index, err))
		}
	}
	return errors.Join(errs...)
}

func formatMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

var (
	_ nicq.NIC   = (*NIC)(nil)
	_ nicq.Queue = (*Queue)(nil)
)
