//go:build linux

// Package afpacket is the compatibility driver: one AF_PACKET socket per
// core on any Linux interface, with a receive ring shared with the kernel
// (TPACKET_V2 or TPACKET_V3, see Config.Ring) and batched transmission
// (sendmmsg, bypassing the qdisc). The sockets form a PACKET_FANOUT group
// that the rss package's eBPF Toeplitz program steers (PACKET_FANOUT_EBPF),
// so each flow reaches the core the stack expects; where that program
// cannot load, the kernel's flow hash spreads the flows
// (PACKET_FANOUT_HASH) and the core runtime forwards what lands on the
// wrong core.
//
// The kernel still receives every frame too: the interface must carry no
// address the stack uses (the kernel would answer for it), and the frames
// it sees cost it some work. AF_XDP (package afxdp) takes frames before the
// kernel does; use this driver where that is not available.
//
// Two kernel behaviours to know. A TPACKET_V3 ring hands frames over in
// blocks, closed when full or after RetireTimeout (1 ms), so a lone frame
// waits up to that long and a request-response exchange takes about a
// millisecond whatever else it costs; a TPACKET_V2 ring (RingV2, the
// default) hands each frame over as soon as the kernel has written it, at
// the price of a status check and, for a sleeping core, a wake-up per frame
// rather than per block.
//
// A peer on the same host at its default offloads (a veth peer, a
// container) sends frames with partial checksums and, with TSO/GSO, TCP
// segments of up to 64 KiB, larger than the MTU; a NIC with GRO on hands
// the packet socket such large frames too. The kernel marks the partial
// ones in the ring (TP_STATUS_CSUMNOTREADY) and the driver marks their
// buffers nicq.FlagL4ChecksumPartial. The sockets have a virtio-net header
// (PACKET_VNET_HDR), which gives a large frame's segment size. A large TCP
// frame goes to the stack whole, from a small pool of 64 KiB buffers per
// queue (GRO's result, without GRO's work); a UDP one, or any while that
// pool is dry, the driver segments into frames of one MTU as the kernel's
// software GSO would (package vnet), partial checksums and all. A V3 block holds a large
// frame whole; a V2 slot holds one MTU, so the kernel truncates it there
// and queues a full copy on the socket (PACKET_COPY_THRESH), which the
// driver reads with one recvfrom. What cannot be segmented (IPv6 with
// extension headers, a frame beyond 64 KiB with BIG TCP, a frame larger
// than the MTU with no GSO type) is dropped and counted as oversize.
//
// The driver owns the sockets, their rings, the steering program and the
// per-queue packet pools. It needs CAP_NET_RAW (and CAP_BPF for steering).
package afpacket

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/internal/vnet"
	"github.com/mkstack/mkstack/nicq/linkdev"
	"github.com/mkstack/mkstack/rss"
)

// Config describes an AF_PACKET NIC for Open.
type Config struct {
	// Interface is the Linux interface, for example "eth0".
	Interface string
	// Queues is the number of sockets, one per core, 1 to 64.
	Queues int
	// RSS steers frames among the sockets; nil means the rss package's
	// default key and an equal table over Queues.
	RSS *rss.Config
	// Ring is the receive ring's layout; 0 means DefaultRing.
	Ring RingVersion
	// BlockSize and Blocks size each socket's receive ring; 0 means
	// 128 KiB and 256 (32 MiB per queue). A V2 ring cuts its blocks into
	// fixed slots of one MTU-sized frame each (about 21 000 slots by
	// default); a V3 ring packs frames end to end, so small frames fit
	// several times over. As AF_XDP's receive ring, it must hold a burst
	// of one request from every busy connection: with 32 blocks (2600
	// slots), 10 000 wrk connections on one queue lost 122 000 frames in
	// 10 s, and 1000 requests took longer than wrk's 2 s.
	BlockSize, Blocks int
	// RetireTimeout closes a partly filled V3 block; 0 means 1 ms, the
	// kernel's least. A V2 ring has no blocks to close.
	RetireTimeout time.Duration
	// Buffers is the size of each queue's pool; 0 means 4096.
	Buffers int
	// NoSteering uses the kernel's flow hash instead of the Toeplitz
	// program. Open falls back to it, with Warn, when the program cannot
	// be loaded.
	NoSteering bool
	// Multicast are Ethernet groups the stack listens to (the
	// solicited-node groups of its IPv6 addresses): queue 0's socket
	// joins them (PACKET_MR_MULTICAST), so a NIC that filters multicast
	// passes them; the membership ends with the socket.
	Multicast [][6]byte
	// Warn, if set, receives what the driver degrades and why.
	Warn func(msg string)
}

// RingVersion is the layout of the receive ring the kernel shares with each
// socket, the TPACKET version.
type RingVersion int

const (
	// RingV2 (TPACKET_V2) gives each frame a slot of its own that the
	// kernel hands over (TP_STATUS_USER) as soon as the frame is in it, and
	// wakes a sleeping core for it: nothing waits, which is what a
	// request-response workload needs. It costs a status check per frame
	// and, when the core sleeps between frames, a wake-up per frame; every
	// frame takes a whole MTU-sized slot.
	RingV2 RingVersion = 2
	// RingV3 (TPACKET_V3) packs frames into blocks and hands a block over
	// when it is full or RetireTimeout after it opened: under load, one
	// status check and at most one wake-up per block, and small frames
	// packed tightly (fewer cache misses, more frames per MiB). A lone
	// frame waits for the timeout, so a round trip takes about 1 ms.
	RingV3 RingVersion = 3
	// DefaultRing is the ring a zero Config.Ring means. Over a veth, the
	// round trip of a small request through mkstack's echo took 0.02 to
	// 0.05 times as long with V2 as with V3 (tens of µs against 1 ms), 16
	// concurrent request-response connections made 2 to 2.6 times the
	// exchanges per second, and at 128 connections, where the cores are
	// saturated and V3's blocks fill before their timeout, and for bulk
	// echo, the two were even within the noise (README, "Why V2 is
	// afpacket's default").
	DefaultRing = RingV2
)

// String returns "v2" or "v3", the names serve's --afpacket-ring takes.
func (v RingVersion) String() string {
	switch v {
	case RingV2:
		return "v2"
	case RingV3:
		return "v3"
	}
	return fmt.Sprintf("RingVersion(%d)", int(v))
}

// NIC is an interface driven through AF_PACKET sockets. It implements
// nicq.NIC.
type NIC struct {
	info    linkdev.Info
	ring    RingVersion
	rss     *rss.Config
	queues  []*Queue
	steer   *rss.SteeringProgram
	steered bool
}

var fanoutSeq atomic.Uint32

// Open opens Queues sockets on Interface.
func Open(c Config) (_ *NIC, err error) {
	if c.Queues < 1 || c.Queues > 64 {
		return nil, fmt.Errorf("afpacket: %d queues: want 1 to 64: %w", c.Queues, nicq.ErrInvalidConfig)
	}
	info, err := linkdev.Lookup("afpacket", c.Interface)
	if err != nil {
		return nil, err
	}
	if c.BlockSize == 0 {
		c.BlockSize = 128 << 10
	}
	if c.Blocks == 0 {
		c.Blocks = 256
	}
	if c.RetireTimeout == 0 {
		c.RetireTimeout = time.Millisecond
	}
	if c.Buffers == 0 {
		c.Buffers = 4096
	}
	if c.Ring == 0 {
		c.Ring = DefaultRing
	}
	if c.Ring != RingV2 && c.Ring != RingV3 {
		return nil, fmt.Errorf("afpacket: %s: ring version %d: want RingV2 (TPACKET_V2, serve --afpacket-ring v2) or RingV3 (TPACKET_V3, v3): %w", c.Interface, int(c.Ring), nicq.ErrInvalidConfig)
	}
	page := os.Getpagesize()
	if c.BlockSize%page != 0 || c.Blocks < 1 {
		return nil, fmt.Errorf("afpacket: block size %d must be a multiple of the page size %d, and blocks at least 1: %w", c.BlockSize, page, nicq.ErrInvalidConfig)
	}
	if c.RSS == nil {
		if c.RSS, err = rss.NewConfig(rss.Options{Queues: c.Queues}); err != nil {
			return nil, fmt.Errorf("afpacket: %w", err)
		}
	} else if c.RSS.Queues() > c.Queues {
		return nil, fmt.Errorf("afpacket: the RSS table names %d queues, more than the %d sockets: %w", c.RSS.Queues(), c.Queues, nicq.ErrInvalidConfig)
	}
	maxFrame := nicq.MaxFrameLen(info.MTU)
	frameSize := nicq.DefaultFrameSize
	for frameSize < maxFrame+nicq.DefaultHeadroom {
		frameSize *= 2
	}
	if c.BlockSize < 2*frameSize {
		return nil, fmt.Errorf("afpacket: block size %d is too small for %s's MTU %d: %w", c.BlockSize, c.Interface, info.MTU, nicq.ErrInvalidConfig)
	}
	n := &NIC{info: info, ring: c.Ring, rss: c.RSS}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	fanoutID := uint16(os.Getpid()) ^ uint16(fanoutSeq.Add(1)<<11)
	fanoutType := unix.PACKET_FANOUT_EBPF
	if c.NoSteering {
		fanoutType = unix.PACKET_FANOUT_HASH
	}
	for i := 0; i < c.Queues; i++ {
		q, err := openQueue(n, i, c, frameSize, maxFrame)
		if err != nil {
			return nil, err
		}
		n.queues = append(n.queues, q)
		if c.Queues > 1 {
			if err := unix.SetsockoptInt(q.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(fanoutID)|(fanoutType|unix.PACKET_FANOUT_FLAG_DEFRAG)<<16); err != nil {
				return nil, linkdev.Explain("afpacket", fmt.Sprintf("join fanout group %d on %s", fanoutID, c.Interface), err)
			}
		}
	}
	for _, g := range c.Multicast {
		mreq := unix.PacketMreq{Ifindex: int32(n.info.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
		copy(mreq.Address[:], g[:])
		if err := unix.SetsockoptPacketMreq(n.queues[0].fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			n.Close()
			return nil, linkdev.Explain("afpacket", fmt.Sprintf("join Ethernet group %x on %s (PACKET_ADD_MEMBERSHIP)", g, c.Interface), err)
		}
	}
	if c.Queues > 1 && !c.NoSteering {
		if err := n.attachSteering(); err != nil {
			// A group's type is fixed once it exists: make a hash group.
			if c.Warn != nil {
				c.Warn(fmt.Sprintf("afpacket: %s: no RSS steering (%v); the kernel's flow hash spreads the flows and the runtime forwards frames to their cores", c.Interface, err))
			}
			n.Close()
			c.NoSteering = true
			return Open(c)
		}
	}
	return n, nil
}

func (n *NIC) attachSteering() error {
	p, err := rss.NewSteeringProgram(n.rss)
	if err != nil {
		return err
	}
	fd := int32(p.FD())
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(n.queues[0].fd), unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, uintptr(unsafe.Pointer(&fd)), 4, 0); e != 0 {
		p.Close()
		return fmt.Errorf("PACKET_FANOUT_DATA: %w", e)
	}
	n.steer, n.steered = p, true
	return nil
}

func openQueue(n *NIC, i int, c Config, frameSize, maxFrame int) (_ *Queue, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, linkdev.Explain("afpacket", "open a packet socket for "+n.info.Name, err)
	}
	q := &Queue{nic: n, index: i, fd: fd, version: c.Ring, maxFrame: maxFrame, blockSize: c.BlockSize, blocks: c.Blocks}
	defer func() {
		if err != nil {
			q.close()
		}
	}()
	tpVersion, other := unix.TPACKET_V3, RingV2
	if c.Ring == RingV2 {
		tpVersion, other = unix.TPACKET_V2, RingV3
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, tpVersion); err != nil {
		return nil, linkdev.Explain("afpacket", fmt.Sprintf("%s ring for %s (try the other version, %s: Config.Ring, serve --afpacket-ring)", c.Ring, n.info.Name, other), err)
	}
	// A virtio-net header in front of each frame (it must come before the
	// ring), for the segment size of large frames; and, for a V2 ring
	// whose slots truncate them, a full copy of those on the socket.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return nil, linkdev.Explain("afpacket", "virtio-net headers (PACKET_VNET_HDR) on "+n.info.Name, err)
	}
	if c.Ring == RingV2 {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
			return nil, linkdev.Explain("afpacket", "copies of large frames (PACKET_COPY_THRESH) on "+n.info.Name, err)
		}
		// Room for a few 64 KiB copies waiting: the kernel makes none
		// (and the frame is lost) while the socket's queue is over it.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, largeFrameQueue); err != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, largeFrameQueue)
		}
	}
	ringSize := fmt.Sprintf("%s ring of %d blocks of %d KiB for %s", c.Ring, c.Blocks, c.BlockSize>>10, n.info.Name)
	if c.Ring == RingV2 {
		q.slotSize = v2SlotSize(maxFrame)
		q.slotsPerBlock = c.BlockSize / q.slotSize
		q.slots = q.slotsPerBlock * c.Blocks
		req := unix.TpacketReq{
			Block_size: uint32(c.BlockSize), Block_nr: uint32(c.Blocks),
			Frame_size: uint32(q.slotSize), Frame_nr: uint32(q.slots),
		}
		err = unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req)
	} else {
		req := unix.TpacketReq3{
			Block_size: uint32(c.BlockSize), Block_nr: uint32(c.Blocks),
			Frame_size: uint32(frameSize), Frame_nr: uint32(c.BlockSize / frameSize * c.Blocks),
			Retire_blk_tov: uint32(max(1, c.RetireTimeout.Milliseconds())),
		}
		err = unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req)
	}
	if err != nil {
		return nil, explainRing(ringSize, err)
	}
	q.ring, err = unix.Mmap(fd, 0, c.BlockSize*c.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, explainRing("map the "+ringSize, err)
	}
	// Our own transmissions are not ours to receive; and the qdisc adds
	// nothing but a lock between a core and the driver.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return nil, linkdev.Explain("afpacket", "PACKET_IGNORE_OUTGOING on "+n.info.Name+" (needs Linux 4.20)", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: n.info.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, linkdev.Explain("afpacket", "bind to "+n.info.Name+" (is it still there? ip link show "+n.info.Name+")", err)
	}
	q.pool, err = nicq.NewPool(nicq.PoolConfig{Name: fmt.Sprintf("%s/q%d", n.info.Name, i), Buffers: c.Buffers, FrameSize: frameSize})
	if err != nil {
		return nil, fmt.Errorf("afpacket: %w", err)
	}
	return q, nil
}

// explainRing adds to linkdev.Explain's fixes (privileges, kernel support)
// the one for the kernel's refusals of a ring's size.
func explainRing(what string, err error) error {
	switch {
	case errors.Is(err, unix.ENOMEM):
		what += " (the kernel could not allocate it: fewer or smaller blocks, Config.Blocks and Config.BlockSize)"
	case errors.Is(err, unix.EINVAL):
		what += " (the kernel refuses this geometry: check Config.BlockSize, Blocks and RetireTimeout against packet(7))"
	}
	return linkdev.Explain("afpacket", what, err)
}

// largeFrameQueue is the receive buffer of a V2 socket, where the kernel
// queues the full copies of frames its slots truncated.
const largeFrameQueue = 4 << 20

// v2SlotSize is the size of a V2 ring's slot for frames of up to maxFrame
// bytes. The kernel puts the frame at TPACKET_ALIGN(TPACKET2_HDRLEN +
// 16) + the virtio-net header - 14 (the header, a sockaddr_ll and the
// Ethernet header aligned so the IP header is) and truncates what does
// not fit. Slots are whole
// cache lines, so the kernel's write of one slot's status never shares a
// line with the slot a core is reading.
func v2SlotSize(maxFrame int) int {
	const hdrLen = (unix.SizeofTpacket2Hdr+unix.TPACKET_ALIGNMENT-1)&^(unix.TPACKET_ALIGNMENT-1) + unix.SizeofSockaddrLinklayer
	const netOff = (hdrLen + 16 + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
	return (netOff + vnet.HdrLen + maxFrame + 63) &^ 63
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Name returns the interface's name.
func (n *NIC) Name() string { return n.info.Name }

// NumQueues returns the number of sockets.
func (n *NIC) NumQueues() int { return len(n.queues) }

// Queue returns queue i.
func (n *NIC) Queue(i int) nicq.Queue { return n.queues[i] }

// MAC returns the interface's address, which the stack shares with the
// kernel.
func (n *NIC) MAC() [6]byte { return n.info.MAC }

// MTU returns the interface's MTU.
func (n *NIC) MTU() int { return n.info.MTU }

// LinkUp reports whether the interface was up when opened.
func (n *NIC) LinkUp() bool { return n.info.Up }

// Ring returns the receive rings' version.
func (n *NIC) Ring() RingVersion { return n.ring }

// Features: TSO (a frame with Buf.SegmentSize goes to the socket with a
// virtio-net header that asks for segmentation: the device's TSO, the
// kernel's software GSO, or a local receiver taking it whole does it);
// tx checksum (a frame marked FlagL4ChecksumOffload goes with NEEDS_CSUM,
// for the device, the kernel or a local receiver to complete); buffers with a partial checksum from a local sender carry
// FlagL4ChecksumPartial, those the NIC checked FlagL4ChecksumVerified.
func (n *NIC) Features() nicq.Features { return nicq.FeatureTSO | nicq.FeatureTxChecksum }

// RSS returns the steering configuration.
func (n *NIC) RSS() *rss.Config { return n.rss }

// Steered reports whether the eBPF program steers the fanout group.
func (n *NIC) Steered() bool { return n.steered }

// Close closes the sockets and unmaps their rings.
func (n *NIC) Close() error {
	for _, q := range n.queues {
		q.close()
	}
	if n.steer != nil {
		n.steer.Close()
		n.steer = nil
	}
	return nil
}

// Queue is one AF_PACKET socket. It implements nicq.Queue.
type Queue struct {
	nic       *NIC
	index     int
	fd        int
	version   RingVersion
	pool      *nicq.Pool
	maxFrame  int
	ring      []byte
	blockSize int
	blocks    int
	counters  nicq.Counters
	tap       nicq.TapSwitch

	// Position in a V3 ring: the block being read, how many of its frames
	// were taken and where the next one starts.
	block  int
	taken  uint32
	offset uint32

	// A V2 ring's geometry (slots never straddle blocks) and the next
	// slot to read.
	slotSize, slotsPerBlock, slots int
	slot                           int

	pendings uint32
	recvs    uint32
	// PACKET_STATISTICS fills the V3 struct for a V3 socket and its first
	// two fields, the same ones, for a V2 socket.
	stats unix.TpacketStatsV3
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	// txHdrs are the virtio-net headers of the TSO frames of a send.
	txHdrs [64][vnet.HdrLen]byte

	// large holds a large frame (behind its virtio-net header), to go
	// to the stack whole or for seg to cut into the buffers of the next
	// bursts.
	large     vnet.Whole
	seg       vnet.Segmenter
	segmented uint64
}

func (q *Queue) close() {
	if q.ring != nil {
		unix.Munmap(q.ring)
		q.ring = nil
	}
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
}

// Index returns the queue's number.
func (q *Queue) Index() int { return q.index }

// Pool returns the queue's pool.
func (q *Queue) Pool() *nicq.Pool { return q.pool }

// RSS returns the NIC's steering configuration.
func (q *Queue) RSS() *rss.Config { return q.nic.rss }

// blockHeader is struct tpacket_block_desc with its tpacket_hdr_v1.
type blockHeader struct {
	version    uint32
	toPriv     uint32
	status     uint32
	numPkts    uint32
	firstPkt   uint32
	blockLen   uint32
	seq        uint64
	tsFirst    [2]uint32
	tsLast     [2]uint32
	_reserved0 uint32
}

// Recv copies up to len(bufs) frames out of the ring (the pool's buffers
// are the stack's; the ring is the kernel's) and hands each finished slot
// (V2) or block (V3) back to the kernel.
func (q *Queue) Recv(bufs []*nicq.Buf) int {
	var got int
	if q.version == RingV2 {
		got = q.recvV2(bufs)
	} else {
		got = q.recvV3(bufs)
	}
	if q.recvs++; q.recvs&1023 == 0 {
		q.readStats()
	}
	if tap := q.tap.Writer(); tap != nil && got > 0 {
		tap.WriteReceived(bufs[:got])
	}
	return got
}

func (q *Queue) recvV3(bufs []*nicq.Buf) int {
	got := 0
	for got < len(bufs) {
		if q.seg.Active() {
			got = q.seg.Fill(bufs, got, q.pool, q.index, &q.counters)
			continue
		}
		blk := q.ring[q.block*q.blockSize : (q.block+1)*q.blockSize]
		h := (*blockHeader)(unsafe.Pointer(&blk[0]))
		if atomic.LoadUint32(&h.status)&unix.TP_STATUS_USER == 0 {
			break
		}
		if q.taken == 0 {
			q.offset = h.firstPkt
		}
		if q.taken >= h.numPkts {
			atomic.StoreUint32(&h.status, unix.TP_STATUS_KERNEL)
			q.block = (q.block + 1) % q.blocks
			q.taken = 0
			continue
		}
		ph := (*unix.Tpacket3Hdr)(unsafe.Pointer(&blk[q.offset]))
		start := int(q.offset) + int(ph.Mac)
		q.taken++
		q.offset += ph.Next_offset
		if b := q.take(blk[start-vnet.HdrLen:start+int(ph.Snaplen)], ph.Len, ph.Status, ph.Sec, ph.Nsec); b != nil {
			bufs[got] = b
			got++
		}
	}
	return got
}

// v2Slot returns slot i of a V2 ring.
func (q *Queue) v2Slot(i int) []byte {
	off := i/q.slotsPerBlock*q.blockSize + i%q.slotsPerBlock*q.slotSize
	return q.ring[off : off+q.slotSize]
}

func (q *Queue) recvV2(bufs []*nicq.Buf) int {
	got := 0
	for got < len(bufs) {
		if q.seg.Active() {
			got = q.seg.Fill(bufs, got, q.pool, q.index, &q.counters)
			continue
		}
		slot := q.v2Slot(q.slot)
		h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&slot[0]))
		// The status is read before the frame and written after it: the
		// kernel publishes the slot with the same order the other way.
		status := atomic.LoadUint32(&h.Status)
		if status&unix.TP_STATUS_USER == 0 {
			break
		}
		start := int(h.Mac)
		b := q.take(slot[start-vnet.HdrLen:start+int(h.Snaplen)], h.Len, status, h.Sec, h.Nsec)
		atomic.StoreUint32(&h.Status, unix.TP_STATUS_KERNEL)
		if q.slot++; q.slot == q.slots {
			q.slot = 0
		}
		if b != nil {
			bufs[got] = b
			got++
		}
	}
	return got
}

// take copies one frame (behind its virtio-net header, in the ring) out of
// the ring into a buffer of the pool, or counts why not; a large frame it
// hands to the segmenter instead. Both ring versions describe a frame by
// the same facts and come here, so they decide alike.
func (q *Queue) take(withHdr []byte, wireLen, status, sec, nsec uint32) *nicq.Buf {
	frame := withHdr[vnet.HdrLen:]
	copied := 0
	if status&unix.TP_STATUS_COPY != 0 {
		// A V2 slot truncated the frame and the kernel queued a full
		// copy on the socket: read it now, whatever becomes of it, so
		// the copies stay in step with their slots.
		copied = q.readCopy()
	}
	switch {
	case int(wireLen) > q.maxFrame:
		// A peer's segmentation offload, or a NIC's GRO: a frame no wire
		// carries, held whole by a V3 block or copied for a V2 slot.
		if copied == 0 && wireLen == uint32(len(frame)) && len(withHdr) <= len(q.bigBuf()) {
			copied = copy(q.bigBuf(), withHdr)
		}
		if copied == 0 {
			q.counters.Drops[nicq.DropOversize]++
			return nil
		}
		if b := q.large.Take(copied, q.index, &q.counters); b != nil {
			b.RxTime = int64(sec)*1e9 + int64(nsec)
			return b
		}
		q.startLarge(copied)
		return nil
	case wireLen > uint32(len(frame)):
		q.counters.Drops[nicq.DropOversize]++
		return nil
	case len(frame) < nicq.EthernetHeaderLen:
		q.counters.Drops[nicq.DropRunt]++
		return nil
	}
	b := q.pool.Get()
	if b == nil {
		q.counters.Drops[nicq.DropNoBuffer]++
		return nil
	}
	copy(b.Append(len(frame)), frame)
	b.RxQueue = uint16(q.index)
	if status&unix.TP_STATUS_CSUMNOTREADY != 0 {
		// Sent by this host with the checksum left to offload: the
		// field holds the pseudo-header sum and the kernel vouches
		// for the data.
		b.Flags |= nicq.FlagL4ChecksumPartial
	} else if status&unix.TP_STATUS_CSUM_VALID != 0 {
		b.Flags |= nicq.FlagL4ChecksumVerified // checked by the NIC
	}
	b.RxTime = int64(sec)*1e9 + int64(nsec)
	q.counters.RxPackets++
	q.counters.RxBytes += uint64(len(frame))
	return b
}

// bigBuf returns the memory a large frame is made whole in.
func (q *Queue) bigBuf() []byte { return q.large.Room(q.pool.Name()) }

// readCopy reads the full copy of the frame a V2 slot truncated into
// bigBuf, returning its length with the virtio-net header, or 0 if it is
// not there or longer than bigBuf (MSG_TRUNC gives the true length).
func (q *Queue) readCopy() int {
	big := q.bigBuf()
	q.counters.Syscalls++
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(q.fd), uintptr(unsafe.Pointer(&big[0])), uintptr(len(big)), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	if e != 0 || int(n) > len(big) {
		return 0
	}
	return int(n)
}

// startLarge starts cutting the large frame in bigBuf()[:n] (behind its
// virtio-net header), or counts it as oversize when it cannot be.
func (q *Queue) startLarge(n int) {
	if q.seg.Start(q.bigBuf()[:n], q.maxFrame) {
		q.segmented++
		return
	}
	q.counters.Drops[nicq.DropOversize]++
}

// readStats adds the kernel's count of frames the full ring dropped.
func (q *Queue) readStats() {
	size := uint32(unsafe.Sizeof(q.stats))
	q.counters.Syscalls++
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(q.fd), unix.SOL_PACKET, unix.PACKET_STATISTICS, uintptr(unsafe.Pointer(&q.stats)), uintptr(unsafe.Pointer(&size)), 0); e == 0 {
		q.counters.Drops[nicq.DropRxRingFull] += uint64(q.stats.Drops)
	}
}

// Send transmits the frames with one sendmmsg system call per burst of up
// to 64 and frees them (the kernel copied them). It returns early only
// when the socket would block.
func (q *Queue) Send(bufs []*nicq.Buf) int {
	if q.msgs == nil {
		q.msgs = make([]unix.Mmsghdr, 64)
		q.iovs = make([]unix.Iovec, 2*64)
	}
	tap := q.tap.Writer()
	done := 0
	for done < len(bufs) {
		n := 0
		for _, b := range bufs[done:min(len(bufs), done+len(q.msgs))] {
			// Each frame behind a virtio-net header: zero (a complete
			// checksum, no segmentation), or a TSO frame's.
			f := b.Bytes()
			hdr := &vnet.Zero
			if b.SegmentSize > 0 {
				h, ok := vnet.TSO(f, int(b.SegmentSize))
				if !ok {
					break // sent alone below, and refused as oversize
				}
				hdr = &q.txHdrs[n]
				h.Put(hdr[:])
			} else if b.Flags&nicq.FlagL4ChecksumOffload != 0 {
				if h, ok := vnet.Csum(f); ok {
					hdr = &q.txHdrs[n]
					h.Put(hdr[:])
				}
			}
			iov := q.iovs[2*n : 2*n+2]
			iov[0].Base = &hdr[0]
			iov[0].SetLen(vnet.HdrLen)
			iov[1].Base = &f[0]
			iov[1].SetLen(len(f))
			q.msgs[n].Hdr.Iov = &iov[0]
			q.msgs[n].Hdr.Iovlen = 2
			n++
		}
		if n == 0 {
			// A TSO frame that is not a TCP segment the kernel can cut.
			q.counters.Drops[nicq.DropOversize]++
			bufs[done].Free()
			done++
			continue
		}
		q.counters.Syscalls++
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(q.fd), uintptr(unsafe.Pointer(&q.msgs[0])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
		for i := range q.iovs[:2*n] {
			q.iovs[i].Base = nil
		}
		sent := int(r)
		if e != 0 {
			sent = 0
			if e == unix.EAGAIN || e == unix.EINTR {
				return done
			}
			// The frame at the head failed on its own (too long, the
			// device down, the peer's queue full): count and drop it.
			b := bufs[done]
			if e == unix.EMSGSIZE {
				q.counters.Drops[nicq.DropOversize]++
			} else {
				q.counters.Drops[nicq.DropLinkDown]++
			}
			b.Free()
			done++
			continue
		}
		if tap != nil {
			tap.WriteBufs(time.Now().UnixNano(), bufs[done:done+sent])
		}
		for _, b := range bufs[done : done+sent] {
			q.counters.TxPackets++
			q.counters.TxBytes += uint64(b.Len())
			b.Free()
		}
		done += sent
	}
	return done
}

// WaitFD is the socket: it polls readable when a frame (V2) or a block
// (V3) is ready.
func (q *Queue) WaitFD() int { return q.fd }

// PrepareWait does nothing: readiness is level-triggered.
func (q *Queue) PrepareWait() {}

// CancelWait does nothing.
func (q *Queue) CancelWait() {}

// ClearWait does nothing.
func (q *Queue) ClearWait() {}

// Pending reports whether a frame (V2) or a finished block (V3) waits (its
// status is in shared memory); now and then, on the way to sleep, it also
// reads the kernel's drop count.
func (q *Queue) Pending() bool {
	// An idle core asks before every sleep; the drop counts need not be
	// that fresh, and the system call is not free.
	if q.pendings++; q.pendings&63 == 0 {
		q.readStats()
	}
	if q.seg.Active() {
		return true // segments of a large frame wait here, not in the ring
	}
	if q.version == RingV2 {
		h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&q.v2Slot(q.slot)[0]))
		return atomic.LoadUint32(&h.Status)&unix.TP_STATUS_USER != 0
	}
	h := (*blockHeader)(unsafe.Pointer(&q.ring[q.block*q.blockSize]))
	return atomic.LoadUint32(&h.status)&unix.TP_STATUS_USER != 0
}

// Counters returns the queue's counters.
func (q *Queue) Counters() nicq.Counters { return q.counters }

// Whole returns how many large frames the queue handed to the stack
// whole. Owner core only.
func (q *Queue) Whole() uint64 { return q.large.Taken() }

// Segmented returns how many large frames (a local peer's TSO/GSO, a NIC's
// GRO) the queue cut into MTU-sized ones. Owner core only.
func (q *Queue) Segmented() uint64 { return q.segmented }

// SetTap starts or stops a capture of the queue's frames.
func (q *Queue) SetTap(w *nicq.PcapWriter) { q.tap.Set(w) }

var (
	_ nicq.NIC   = (*NIC)(nil)
	_ nicq.Queue = (*Queue)(nil)
)
