//go:build linux

// Package afxdp is the kernel-bypass driver: one AF_XDP socket per core,
// bound to that core's receive queue of a Linux interface, with its own
// UMEM (the frames of the queue's packet pool: a received Buf is a view of
// the frame the kernel or the NIC wrote, and a Buf the stack builds is
// transmitted from where it lies), fill, completion, receive and transmit
// rings, and need_wakeup so a busy core makes no system call per packet.
//
// An XDP program, built with cilium/ebpf's asm package, redirects to the
// sockets only the frames the stack owns (IPv4 to its addresses, ARP for
// them) and passes everything else to the kernel, so a host that shares its
// only NIC with the stack stays reachable. It is attached through a
// bpf_link, so it goes when Close runs and also when the process dies.
//
// Native XDP is the default; generic (skb) mode only on request
// (Config.Generic), with a warning. Zero-copy is tried first and copy mode
// used where the driver has none (veth, for one): Mode reports which.
//
// Checksums. XDP says nothing per frame about a frame's checksum (this
// kernel has XDP RX metadata kfuncs for the hash, the timestamp and the
// VLAN tag, none for the checksum), so the driver cannot tell a partial
// checksum from a peer on the same host (a veth peer at its default
// offloads sends them) from a corrupted one. On a veth, which no wire
// feeds, it marks every buffer nicq.FlagL4ChecksumMaybePartial and the
// stack accepts a TCP or UDP checksum field equal to the pseudo-header
// sum as partial; on any other device it does not (see LocalPairDriver
// and docs/ARCHITECTURE.md, "Checksums from local peers"). Segmentation
// needs nothing: while an XDP program is attached to a veth, the kernel
// takes TSO off its peer (veth_fix_features), which then segments in
// software before the pair, so no frame exceeds the MTU.
//
// Jumbo frames. Where the interface's MTU makes frames larger than a UMEM
// frame after XDP's 256 bytes of headroom (MTU 1774 with 2 KiB frames,
// 3822 with 4 KiB), the driver uses AF_XDP multi-buffer (Linux 6.6): the
// program is loaded as frags-aware (xdp.frags, which also lets a veth take
// an MTU above 3506), the sockets are bound with XDP_USE_SG, and a frame
// travels in several UMEM frames chained by XDP_PKT_CONTD. A received
// frame in pieces is copied whole into a buffer of a pool of the queue's
// with room for the MTU (64 buffers, made on first use); a frame to send
// that is larger than a UMEM frame is copied into as many as it takes.
// The NIC then reports nicq.FeatureMultiBuffer, and the stack builds
// frames up to the MTU. Frames that fit one UMEM frame go as before, with
// no copy.
//
// Requirements, each checked at Open with an error that names the fix:
// root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, and CAP_IPC_LOCK or a memlock
// limit above the UMEM size); an interface with at least as many receive
// queues as Queues; for veth's native XDP, as many receive queues as its
// peer has transmit queues; an MTU above one UMEM frame needs Linux 6.6.
package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/internal/vnet"
	"github.com/mkstack/mkstack/nicq/linkdev"
	"github.com/mkstack/mkstack/rss"
)

// Config describes an AF_XDP NIC for Open.
type Config struct {
	// Interface is the Linux interface, for example "eth0".
	Interface string
	// Queues is the number of sockets, bound to receive queues 0 to
	// Queues-1; 0 means one on every receive queue of the interface (at
	// most MaxQueues, and at least Pollers). Serve them all: the XDP
	// program can hand a frame only to the socket of the queue it came
	// in on, so a frame on a queue without one goes to the kernel, which
	// does not own the stack's address (Open warns). With fewer cores
	// than queues a core polls several (see Pollers).
	Queues int
	// Pollers is how many cores poll the queues (0: one per queue). The
	// default UMEM is 64 MiB per poller, shared among its queues, so
	// serving a NIC's every queue with a few cores costs the memory of
	// a few.
	Pollers int
	// Addrs are the stack's addresses: frames to its IPv4 ones (and ARP
	// for them) go to the stack, all else to the kernel. At least one
	// IPv4 address. IPv6 ones (global or unique local, not link-local:
	// on a NIC shared with the kernel the link-local address, made from
	// the same MAC, is the kernel's) take frames to them and to their
	// solicited-node groups, so the stack answers neighbour discovery.
	Addrs []netip.Addr
	// Generic attaches the program in generic (skb) mode, for drivers
	// without native XDP. It is slower, and on veth it reports wrong
	// receive queue indexes.
	Generic bool
	// CopyOnly skips the zero-copy attempt.
	CopyOnly bool
	// Frames is the UMEM size of each queue, in FrameSize frames; 0 means
	// 64 MiB of them (32768 frames of 2048 bytes, 16384 of 4096, the
	// default for jumbo frames). RxRing and TxRing are the ring sizes (0:
	// half of Frames, and 2048); the fill and completion rings are twice
	// as large, so the NIC never waits for a buffer the pool has, and the
	// fill ring is never given the last 2*TxRing free frames, which are
	// for sending.
	//
	// A receive ring must hold a burst of one request from every busy
	// connection, where the kernel's socket queues take them: wrk's
	// clients answer a burst of responses with a burst of requests. At
	// 4096, 10 000 wrk connections on one queue overflowed it (60 000
	// drops in 5 s, each a client retransmission 200 ms or more later, and
	// 1300 requests that took wrk's 2 s); at 1024, 2500 did.
	Frames, RxRing, TxRing int
	// FrameSize is 2048 or 4096; 0 means 2048, or 4096 where frames of
	// the MTU do not fit 2048 (MTU above 1774): a jumbo frame then takes
	// half as many pieces.
	FrameSize int
	// RSS is the configuration the stack uses to choose ports and the
	// runtime to find a flow's core; nil means the interface's own when
	// ethtool reports it, else the rss package's default over Queues. (A
	// veth takes the receive queue from the sender's transmit queue: the
	// default is exact when the sender steers by it, as mkstack lab's
	// peer does; otherwise the runtime forwards frames to their cores.)
	RSS *rss.Config
	// Warn, if set, receives what the driver degrades and why.
	Warn func(msg string)
}

// NIC is an interface driven through AF_XDP sockets. It implements
// nicq.NIC.
type NIC struct {
	info     linkdev.Info
	rss      *rss.Config
	queues   []*Queue
	prog     *program
	link     link.Link
	zeroCopy bool
	generic  bool
	// rxFlags are set on every received buffer: FlagL4ChecksumMaybePartial
	// on a local pair (LocalPairDriver).
	rxFlags nicq.Flags
	driver  string
	groups  multicastFilter // the stack's solicited-node groups, joined
	// multiBuffer: frames of the MTU are larger than a UMEM frame, so the
	// sockets are bound with XDP_USE_SG (see the package comment).
	multiBuffer bool
}

// MaxQueues is the most sockets one NIC opens.
const MaxQueues = 64

// The defaults of Config.Frames (in bytes of UMEM) and TxRing.
const (
	defaultUMEMBytes = 64 << 20
	defaultTxRing    = 2048
)

// Open attaches the XDP program to Interface and opens Queues sockets.
func Open(c Config) (_ *NIC, err error) {
	const drv = "afxdp"
	if c.Queues < 0 || c.Queues > MaxQueues {
		return nil, fmt.Errorf("afxdp: %d queues: want 1 to %d, or 0 for every receive queue: %w", c.Queues, MaxQueues, nicq.ErrInvalidConfig)
	}
	var addrs [][4]byte
	var addrs6 [][16]byte
	for _, a := range c.Addrs {
		switch {
		case a.Is4():
			addrs = append(addrs, a.As4())
		case a.Is6() && !a.Is4In6() && a.IsGlobalUnicast():
			addrs6 = append(addrs6, a.As16(), solicitedNode(a.As16()))
		default:
			return nil, fmt.Errorf("afxdp: address %v: want IPv4, or IPv6 global or unique-local unicast: %w", a, nicq.ErrInvalidConfig)
		}
	}
	if len(addrs) == 0 && len(addrs6) == 0 {
		return nil, fmt.Errorf("afxdp: no stack address: the XDP program would redirect nothing: %w", nicq.ErrInvalidConfig)
	}
	if c.FrameSize != 0 && c.FrameSize != 2048 && c.FrameSize != 4096 {
		return nil, fmt.Errorf("afxdp: frame size %d: want 2048 or 4096: %w", c.FrameSize, nicq.ErrInvalidConfig)
	}
	info, err := linkdev.Lookup(drv, c.Interface)
	if err != nil {
		return nil, err
	}
	if c.Queues == 0 {
		c.Queues = max(1, min(info.RxQueues, MaxQueues), c.Pollers)
	}
	if c.FrameSize == 0 {
		// Jumbo frames in 4 KiB pieces: half as many as in 2 KiB ones.
		c.FrameSize = 2048
		if info.MTU > maxSingleBufferMTU(2048) {
			c.FrameSize = 4096
		}
	}
	if c.Frames == 0 {
		c.Frames = defaultUMEMBytes / c.FrameSize
		if c.Pollers > 0 && c.Pollers < c.Queues {
			// A poller's queues share its 64 MiB, in powers of two
			// down to room for the default rings.
			perPoller := (c.Queues + c.Pollers - 1) / c.Pollers
			c.Frames = max(c.Frames>>bits.Len(uint(perPoller-1)), 2*2*defaultTxRing)
		}
	}
	if c.RxRing == 0 {
		c.RxRing = c.Frames / 2
	}
	if c.TxRing == 0 {
		c.TxRing = defaultTxRing
	}
	for _, v := range []int{c.RxRing, c.TxRing} {
		if v < 64 || v&(v-1) != 0 || 2*v > c.Frames {
			return nil, fmt.Errorf("afxdp: ring size %d: want a power of two, at least 64, at most half of Frames (%d): %w", v, c.Frames, nicq.ErrInvalidConfig)
		}
	}
	if info.RxQueues > 0 && info.RxQueues < c.Queues {
		return nil, fmt.Errorf("afxdp: %s has %d receive queues, fewer than the %d cores asked for: give it more (ethtool -L %s combined %d; a veth is made with numrxqueues %d) or use fewer cores", c.Interface, info.RxQueues, c.Queues, c.Interface, c.Queues, c.Queues)
	}
	if info.RxQueues > c.Queues && c.Warn != nil {
		unserved := fmt.Sprintf("queue %d", c.Queues)
		if info.RxQueues-c.Queues > 1 {
			unserved = fmt.Sprintf("queues %d-%d", c.Queues, info.RxQueues-1)
		}
		c.Warn(fmt.Sprintf("afxdp: %s has %d receive queues and %d are served: frames on %s go to the kernel, not the stack, and their connections fail (open all %d, or ethtool -L %s combined %d)",
			c.Interface, info.RxQueues, c.Queues, unserved, info.RxQueues, c.Interface, c.Queues))
	}
	if nicq.MaxFrameLen(info.MTU) > nicq.MaxLargeFrameLen {
		return nil, fmt.Errorf("afxdp: %s has MTU %d; the driver carries frames of at most %d bytes (ip link set %s mtu %d)", c.Interface, info.MTU, nicq.MaxLargeFrameLen, c.Interface, nicq.MaxLargeFrameLen-nicq.EthernetHeaderLen-nicq.VLANTagLen)
	}
	if c.RSS == nil {
		c.RSS = interfaceRSS(c.Interface, c.Queues)
	}
	n := &NIC{info: info, rss: c.RSS, generic: c.Generic}
	n.multiBuffer = nicq.MaxFrameLen(info.MTU) > c.FrameSize-unix.XDP_PACKET_HEADROOM
	// Unknown (the ioctl failed) is not a veth: no trust without knowing.
	n.driver, _ = linkdev.Driver(c.Interface)
	if LocalPairDriver(n.driver) {
		n.rxFlags = nicq.FlagL4ChecksumMaybePartial
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	var groups [][6]byte
	for i := 1; i < len(addrs6); i += 2 { // address, its solicited-node group
		groups = append(groups, ipv6GroupMAC(addrs6[i]))
	}
	if err := n.groups.join(c.Interface, groups); err != nil {
		return nil, linkdev.Explain(drv, "multicast filter", err)
	}
	if n.prog, err = newProgram(max(c.Queues, info.RxQueues), addrs, addrs6, n.multiBuffer); err != nil {
		err = linkdev.Explain(drv, "XDP program", err)
		if n.multiBuffer {
			err = fmt.Errorf("%w (MTU %d needs a frags-aware XDP program, Linux 5.18, for frames larger than one UMEM frame: or ip link set %s mtu %d)", err, info.MTU, c.Interface, maxSingleBufferMTU(c.FrameSize))
		}
		return nil, err
	}
	zeroCopy := !c.CopyOnly
	for i := 0; i < c.Queues; i++ {
		q, err := openQueue(n, i, c, &zeroCopy)
		if err != nil {
			return nil, err
		}
		n.queues = append(n.queues, q)
		if err := n.prog.sockets.Put(uint32(i), uint32(q.fd)); err != nil {
			return nil, fmt.Errorf("afxdp: socket map entry for queue %d: %w", i, err)
		}
	}
	n.zeroCopy = zeroCopy
	flags := link.XDPDriverMode
	if c.Generic {
		flags = link.XDPGenericMode
		if c.Warn != nil {
			c.Warn(fmt.Sprintf("afxdp: %s: generic XDP mode: every frame is copied into an skb first, and on veth the receive queue index is wrong", c.Interface))
		}
	}
	n.link, err = link.AttachXDP(link.XDPOptions{Program: n.prog.prog, Interface: info.Index, Flags: flags})
	if err != nil {
		hint := "is another XDP program attached? (ip link show " + c.Interface + ")"
		if !c.Generic {
			hint += "; does the driver support native XDP? (for a veth: as many receive queues as the peer has transmit queues; or ask for generic mode)"
			if n.multiBuffer {
				hint += fmt.Sprintf("; does it take frags-aware programs, for MTU %d? (or ip link set %s mtu %d)", info.MTU, c.Interface, maxSingleBufferMTU(c.FrameSize))
			}
		}
		return nil, fmt.Errorf("%w; %s", linkdev.Explain(drv, "attach XDP to "+c.Interface, err), hint)
	}
	return n, nil
}

// maxSingleBufferMTU is the largest MTU whose frames (with a VLAN tag) fit
// one UMEM frame of frameSize bytes after XDP's headroom.
func maxSingleBufferMTU(frameSize int) int {
	return frameSize - unix.XDP_PACKET_HEADROOM - nicq.EthernetHeaderLen - nicq.VLANTagLen
}

func interfaceRSS(ifname string, queues int) *rss.Config {
	if r, err := rss.ReadNICRSS(ifname); err == nil && len(r.RETA) > 0 && r.HashFunc == rss.HashToeplitz {
		reta := make(rss.RETA, len(r.RETA))
		for i, q := range r.RETA {
			reta[i] = uint16(q)
		}
		cfg, err := rss.NewConfig(rss.Options{Key: r.Key, RETA: reta})
		if err == nil && cfg.Queues() <= queues {
			return cfg
		}
	}
	cfg, _ := rss.NewConfig(rss.Options{Queues: queues})
	return cfg
}

// mapUMEM maps size bytes of anonymous memory for a UMEM, in huge pages
// where the kernel gives them (transparent huge pages in "madvise" mode,
// the default of most distributions, and a mapping of 2 MiB or more,
// which Linux aligns to one): every frame the kernel fills is in a
// different 4 KiB page, and the core's first look at each otherwise
// costs a TLB miss. The memory is populated before the kernel pins it
// at registration.
func mapUMEM(size int) ([]byte, error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	unix.Madvise(mem, unix.MADV_HUGEPAGE) // advice: without it, 4 KiB pages
	if err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE); err != nil {
		for i := 0; i < len(mem); i += 4096 { // before Linux 5.14
			mem[i] = 0
		}
	}
	return mem, nil
}

func openQueue(n *NIC, i int, c Config, zeroCopy *bool) (_ *Queue, err error) {
	const drv = "afxdp"
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, linkdev.Explain(drv, "open an AF_XDP socket", err)
	}
	q := &Queue{nic: n, index: i, fd: fd, frameSize: uint64(c.FrameSize), maxFrame: nicq.MaxFrameLen(n.info.MTU), fillReserve: 2 * c.TxRing}
	if n.multiBuffer {
		room := c.FrameSize - unix.XDP_PACKET_HEADROOM
		q.maxPieces = uint32((q.maxFrame + room - 1) / room)
	} else {
		q.maxPieces = 1
	}
	defer func() {
		if err != nil {
			q.close()
		}
	}()
	size := c.Frames * c.FrameSize
	q.umem, err = mapUMEM(size)
	if err != nil {
		return nil, fmt.Errorf("afxdp: UMEM of %d MiB: %w", size>>20, err)
	}
	q.pool, err = nicq.NewPool(nicq.PoolConfig{
		Name: fmt.Sprintf("%s/q%d", n.info.Name, i), Buffers: c.Frames, FrameSize: c.FrameSize,
		Headroom: unix.XDP_PACKET_HEADROOM, Region: q.umem,
	})
	if err != nil {
		return nil, fmt.Errorf("afxdp: %w", err)
	}
	// Room for transmit metadata (Linux 6.8) in front of each frame to
	// send, for the checksum offload; a kernel without it refuses the
	// field, and the UMEM is registered without.
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&q.umem[0]))), Len: uint64(size), Size: uint32(c.FrameSize),
		Flags: unix.XDP_UMEM_TX_METADATA_LEN, Tx_metadata_len: txMetadataLen}
	register := func() unix.Errno {
		_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG, uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
		return e
	}
	e := register()
	q.txMetadata = e == 0
	if e == unix.EINVAL {
		reg.Flags, reg.Tx_metadata_len = 0, 0
		e = register()
	}
	if e != 0 {
		if e == unix.ENOMEM || e == unix.EPERM || e == unix.ENOBUFS {
			return nil, fmt.Errorf("afxdp: register a UMEM of %d MiB on %s queue %d: %w (locking it needs CAP_IPC_LOCK or a larger memlock limit: run as root, or ulimit -l %d, or lower Frames)", size>>20, n.info.Name, i, e, 2*size>>10)
		}
		return nil, linkdev.Explain(drv, "register the UMEM", e)
	}
	fillSize, compSize := 2*c.RxRing, 2*c.TxRing
	for _, o := range []struct{ opt, n int }{
		{unix.XDP_UMEM_FILL_RING, fillSize}, {unix.XDP_UMEM_COMPLETION_RING, compSize},
		{unix.XDP_RX_RING, c.RxRing}, {unix.XDP_TX_RING, c.TxRing},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, o.n); err != nil {
			return nil, linkdev.Explain(drv, "ring sizes", err)
		}
	}
	var off unix.XDPMmapOffsets
	offLen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&offLen)), 0); e != 0 {
		return nil, linkdev.Explain(drv, "ring offsets", e)
	}
	if q.fill, err = mapRing(fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, uint32(fillSize), 8); err == nil {
		if q.comp, err = mapRing(fd, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, uint32(compSize), 8); err == nil {
			if q.rx, err = mapRing(fd, off.Rx, unix.XDP_PGOFF_RX_RING, uint32(c.RxRing), unsafe.Sizeof(unix.XDPDesc{})); err == nil {
				q.tx, err = mapRing(fd, off.Tx, unix.XDP_PGOFF_TX_RING, uint32(c.TxRing), unsafe.Sizeof(unix.XDPDesc{}))
			}
		}
	}
	if err != nil {
		return nil, linkdev.Explain(drv, "map the rings", err)
	}
	// The fill ring full before the first frame can arrive.
	q.refill()
	bind := func(mode uint16) error {
		flags := unix.XDP_USE_NEED_WAKEUP | mode
		if n.multiBuffer {
			flags |= unix.XDP_USE_SG
		}
		sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(n.info.Index), QueueID: uint32(i)}
		err := unix.Bind(fd, sa)
		// A socket closed a moment ago releases its queue from a kernel
		// work item: give it a second before calling the queue taken.
		for deadline := time.Now().Add(time.Second); errors.Is(err, unix.EBUSY) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			err = unix.Bind(fd, sa)
		}
		return err
	}
	if *zeroCopy {
		err = bind(unix.XDP_ZEROCOPY)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			*zeroCopy = false
			if c.Warn != nil && i == 0 {
				c.Warn(fmt.Sprintf("afxdp: %s: no zero-copy support in its driver: copy mode (each frame is copied once between the kernel and the UMEM)", n.info.Name))
			}
		}
	}
	if !*zeroCopy {
		err = bind(unix.XDP_COPY)
	}
	if err != nil {
		hint := fmt.Sprintf("is queue %d of %s already bound by another AF_XDP socket?", i, n.info.Name)
		if n.multiBuffer && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
			hint = fmt.Sprintf("MTU %d needs AF_XDP multi-buffer (XDP_USE_SG, Linux 6.6) for frames larger than one UMEM frame: or ip link set %s mtu %d", n.info.MTU, n.info.Name, maxSingleBufferMTU(c.FrameSize))
		}
		return nil, fmt.Errorf("%w (%s)", linkdev.Explain(drv, fmt.Sprintf("bind to %s queue %d", n.info.Name, i), err), hint)
	}
	q.copyMode = !*zeroCopy
	// In copy mode the kernel builds an skb per frame and honours the
	// metadata's checksum request as CHECKSUM_PARTIAL: a local peer takes
	// it as it is, and a device without checksum offload gets it
	// completed by the kernel (validate_xmit_skb). Zero-copy would need
	// the NIC driver's own support, which the driver does not ask for.
	q.txChecksum = q.txMetadata && q.copyMode
	return q, nil
}

// txMetadataLen is the room for struct xsk_tx_metadata (flags, then the
// request: csum_start, csum_offset, launch_time) in front of a frame.
const txMetadataLen = 24

// Name returns the interface's name.
func (n *NIC) Name() string { return n.info.Name }

// NumQueues returns the number of sockets.
func (n *NIC) NumQueues() int { return len(n.queues) }

// Queue returns queue i.
func (n *NIC) Queue(i int) nicq.Queue { return n.queues[i] }

// MAC returns the interface's address (the kernel keeps it for the frames
// it is passed).
func (n *NIC) MAC() [6]byte { return n.info.MAC }

// MTU returns the interface's MTU.
func (n *NIC) MTU() int { return n.info.MTU }

// LinkUp reports whether the interface was up when opened.
func (n *NIC) LinkUp() bool { return n.info.Up }

// Features: FeatureMultiBuffer where the MTU's frames are larger than a
// UMEM frame; FeatureTxChecksum in copy mode on a kernel with transmit
// metadata (Linux 6.8).
func (n *NIC) Features() nicq.Features {
	var f nicq.Features
	if n.multiBuffer {
		f |= nicq.FeatureMultiBuffer
	}
	if len(n.queues) > 0 && n.queues[0].txChecksum {
		f |= nicq.FeatureTxChecksum
	}
	return f
}

// Driver is the interface's kernel driver ("veth"), or "" if unknown.
func (n *NIC) Driver() string { return n.driver }

// TrustsPseudoHeaderSums reports whether received buffers carry
// FlagL4ChecksumMaybePartial (the interface is a local pair).
func (n *NIC) TrustsPseudoHeaderSums() bool { return n.rxFlags&nicq.FlagL4ChecksumMaybePartial != 0 }

// LocalPairDriver reports whether driver (ethtool's name for an
// interface's driver) makes devices that only a sender on this host can
// feed, so that a frame's bytes cannot have been corrupted on the way and
// a TCP or UDP checksum field equal to the pseudo-header sum is a partial
// checksum, not damage. Only veth qualifies: a TAP's frames come from a
// process that may relay a wire (a VPN, a VM's NIC), and a physical or
// paravirtual NIC's come from a wire.
func LocalPairDriver(driver string) bool { return driver == "veth" }

// RSS returns the steering configuration (see Config.RSS).
func (n *NIC) RSS() *rss.Config { return n.rss }

// Mode describes how frames move: "native zero-copy", "native copy",
// "generic copy".
func (n *NIC) Mode() string {
	m := "native"
	if n.generic {
		m = "generic"
	}
	if n.zeroCopy {
		return m + " zero-copy"
	}
	return m + " copy"
}

// Close detaches the program, then closes the sockets and frees the UMEMs.
// Its queues must no longer be in use.
func (n *NIC) Close() error {
	var err error
	if n.link != nil {
		err = n.link.Close()
		n.link = nil
	}
	for _, q := range n.queues {
		// The socket map holds a reference to each socket: drop it, or
		// the socket (and its queue) outlives the close.
		if n.prog != nil {
			n.prog.sockets.Delete(uint32(q.index))
		}
		q.close()
	}
	n.queues = nil
	if n.prog != nil {
		n.prog.close()
		n.prog = nil
	}
	n.groups.leave()
	return err
}

// Queue is one AF_XDP socket. It implements nicq.Queue.
type Queue struct {
	nic                *NIC
	index              int
	fd                 int
	umem               []byte
	pool               *nicq.Pool
	fill, comp, rx, tx *ring
	frameSize          uint64
	maxFrame           int
	maxPieces          uint32 // UMEM frames a frame of the MTU takes
	// fillReserve is how many free frames refill leaves in the pool for
	// sending: a fill ring twice the receive ring would otherwise take
	// every frame of the default UMEM and leave none for a reply.
	fillReserve int
	copyMode    bool
	// txMetadata: the UMEM has room for transmit metadata; txChecksum:
	// frames marked FlagL4ChecksumOffload go with a checksum request.
	txMetadata, txChecksum bool
	// large holds received frames that came in pieces (multi-buffer),
	// made whole; made on first use, by the queue's core.
	large *nicq.Pool
	// gathered counts frames received in pieces, spread those sent so.
	gathered, spread uint64
	counters         nicq.Counters
	tap              nicq.TapSwitch
	scratch          [64]*nicq.Buf
	pendings         uint32
	recvs            uint32
	stats, seen      unix.XDPStatistics
}

func (q *Queue) close() {
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
	for _, r := range []*ring{q.fill, q.comp, q.rx, q.tx} {
		r.unmap()
	}
	if q.umem != nil {
		unix.Munmap(q.umem)
		q.umem = nil
	}
}

// Index returns the queue's number.
func (q *Queue) Index() int { return q.index }

// Pool returns the queue's pool: its UMEM's frames.
func (q *Queue) Pool() *nicq.Pool { return q.pool }

// RSS returns the NIC's steering configuration.
func (q *Queue) RSS() *rss.Config { return q.nic.rss }

// refill gives the kernel free frames to receive into, as many as the
// fill ring takes and the pool has.
func (q *Queue) refill() {
	for {
		n := q.fill.free(uint32(len(q.scratch)))
		if spare := q.pool.Available() - q.fillReserve; spare < int(n) {
			n = uint32(max(spare, 0))
		}
		if n == 0 {
			return
		}
		got := q.pool.GetBatch(q.scratch[:n])
		for i, b := range q.scratch[:got] {
			*q.fill.addr(q.fill.cachedProd + uint32(i)) = uint64(q.pool.FrameOffset(b))
			q.scratch[i] = nil
		}
		if got > 0 {
			q.fill.submit(uint32(got))
		}
		if got < int(n) {
			return
		}
	}
}

// reap frees the frames the kernel finished transmitting.
func (q *Queue) reap() {
	n := q.comp.available(q.comp.size)
	for i := uint32(0); i < n; i++ {
		addr := *q.comp.addr(q.comp.cachedCons + i)
		if b := q.pool.FrameAt(int(addr &^ (q.frameSize - 1))); b != nil {
			b.Free()
		}
	}
	if n > 0 {
		q.comp.release(n)
	}
}

// Recv takes up to len(bufs) received frames off the receive ring: each is
// the UMEM frame the kernel wrote, handed over with no copy, or, for a
// frame that came in pieces (multi-buffer), a buffer it is copied into.
func (q *Queue) Recv(bufs []*nicq.Buf) int {
	q.reap()
	// A frame in pieces is never split across bursts: room for the pieces
	// of the last frame too.
	n := q.rx.available(uint32(len(bufs)) + q.maxPieces - 1)
	got := 0
	i := uint32(0)
	for ; i < n && got < len(bufs); i++ {
		d := q.rx.desc(q.rx.cachedCons + i)
		if d.Options&unix.XDP_PKT_CONTD != 0 {
			last := i + 1
			for last < n && q.rx.desc(q.rx.cachedCons+last).Options&unix.XDP_PKT_CONTD != 0 {
				last++
			}
			complete := last < n
			if !complete {
				if last-i < q.maxPieces {
					break // its last piece is not on the ring yet
				}
				// More pieces than a frame of the MTU takes, and no end
				// in sight: drop them rather than wait.
				last--
			}
			if b := q.gather(i, last, complete); b != nil {
				bufs[got] = b
				got++
			}
			i = last
			continue
		}
		b := q.rxFrame(d)
		if b == nil {
			continue
		}
		b.Reset()
		b.Append(int(d.Len))
		if d.Len < nicq.EthernetHeaderLen {
			q.counters.Drops[nicq.DropRunt]++
			b.Free()
			continue
		}
		q.received(b)
		bufs[got] = b
		got++
	}
	if i > 0 {
		q.rx.release(i)
	}
	q.refill()
	if q.fill.needWakeup() && got == 0 {
		q.counters.Syscalls++
		unix.Syscall6(unix.SYS_RECVFROM, uintptr(q.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
	if q.recvs++; q.recvs&1023 == 0 {
		q.readStats()
	}
	linkdev.CaptureReceived(q.tap.Writer(), bufs[:got])
	return got
}

// rxFrame returns the UMEM frame a receive descriptor points into, or nil
// (counted) if it is not a frame we posted, at our offset, that holds
// its length: a kernel we do not understand. A frame of ours goes back to
// the pool.
func (q *Queue) rxFrame(d *unix.XDPDesc) *nicq.Buf {
	base, ok := q.frameOf(d)
	b := q.pool.FrameAt(int(base))
	if !ok || b == nil {
		q.counters.Drops[nicq.DropRunt]++
		if b != nil {
			b.Free()
		}
		return nil
	}
	return b
}

func (q *Queue) received(b *nicq.Buf) {
	b.RxQueue = uint16(q.index)
	b.Flags = q.nic.rxFlags
	q.counters.RxPackets++
	q.counters.RxBytes += uint64(b.Len())
}

// frameOf returns the offset of the UMEM frame a receive descriptor points
// into, and whether the descriptor is one the kernel could have made of a
// frame we posted: in the UMEM, at our headroom, no longer than the frame
// holds. It reads only the descriptor.
func (q *Queue) frameOf(d *unix.XDPDesc) (base uint64, ok bool) {
	base = d.Addr &^ (q.frameSize - 1)
	headroom := uint64(q.pool.Headroom())
	return base, base < uint64(len(q.umem)) && d.Addr-base == headroom && uint64(d.Len) <= q.frameSize-headroom
}

// gather makes the frame in the receive descriptors first to last (all but
// the last marked XDP_PKT_CONTD) whole in a buffer of the queue's large
// pool. The pieces' UMEM frames go straight back on the fill ring, their
// buffers untouched (the pool lent them to the kernel and they stay
// lent): reading each one's header would be a cache miss per piece. It
// returns nil, counted, when the large pool is dry, a piece is not one of
// our frames, or the frame is longer than the MTU allows (or, not
// complete, has more pieces than one of the MTU) or shorter than an
// Ethernet header.
func (q *Queue) gather(first, last uint32, complete bool) *nicq.Buf {
	b := q.largeBuf()
	ok, why := b != nil, nicq.DropNoBuffer
	if !complete {
		ok, why = false, nicq.DropOversize
	}
	pieces := last - first + 1
	refill, recycled := q.fill.free(pieces), uint32(0)
	for i := first; i <= last; i++ {
		d := q.rx.desc(q.rx.cachedCons + i)
		base, valid := q.frameOf(d)
		if !valid {
			// Not a frame we posted at our offset: let rxFrame count it
			// and give it back to the pool if it is ours.
			q.rxFrame(d)
			ok, why = false, dropCounted
			continue
		}
		if ok && b.Len()+int(d.Len) > q.maxFrame {
			ok, why = false, nicq.DropOversize
		}
		if ok {
			copy(b.Append(int(d.Len)), q.umem[d.Addr:d.Addr+uint64(d.Len)])
		}
		if recycled < refill {
			*q.fill.addr(q.fill.cachedProd + recycled) = base
			recycled++
		} else if f := q.pool.FrameAt(int(base)); f != nil {
			f.Free()
		}
	}
	if recycled > 0 {
		q.fill.submit(recycled)
	}
	if ok && b.Len() < nicq.EthernetHeaderLen {
		ok, why = false, nicq.DropRunt
	}
	if !ok {
		if why != dropCounted {
			q.counters.Drops[why]++
		}
		if b != nil {
			b.Free()
		}
		return nil
	}
	q.gathered++
	q.received(b)
	return b
}

// largeBuf returns a free buffer of the queue's large pool, made (and
// claimed by the calling core, the queue's) on first use, or nil.
func (q *Queue) largeBuf() *nicq.Buf {
	if q.large == nil {
		p, err := nicq.NewPool(nicq.PoolConfig{
			Name: q.pool.Name() + "/large", Buffers: largeBuffers, FrameSize: nicq.DefaultHeadroom + q.maxFrame,
		})
		if err != nil {
			return nil
		}
		p.Claim()
		q.large = p
	}
	return q.large.Get()
}

// Spread returns how many frames went out in pieces.
func (q *Queue) Spread() uint64 { return q.spread }

// Gathered returns how many received frames came in pieces and were made
// whole.
func (q *Queue) Gathered() uint64 { return q.gathered }

// largeBuffers is the number of buffers of a queue's pool for frames
// received in pieces. The stack is done with a received frame within the
// burst that brought it (TCP copies payload out), so a burst of 64 frames,
// all large, is the most a queue needs at once.
const largeBuffers = 64

// dropCounted marks a drop already counted under its reason.
const dropCounted = nicq.DropReason(255)

// Send puts the frames on the transmit ring, copying into the UMEM only a
// buffer that is not one of its frames (into several, chained with
// XDP_PKT_CONTD, if it is larger than one: multi-buffer), and kicks the
// kernel when it asks (need_wakeup; in copy mode, always). It stops early
// when the ring is full or the UMEM has no frame for a copy.
func (q *Queue) Send(bufs []*nicq.Buf) int {
	q.reap()
	slots := q.tx.free(uint32(len(bufs)))
	tap := q.tap.Writer()
	var now int64
	if tap != nil {
		now = time.Now().UnixNano()
	}
	room := int(q.frameSize) - q.pool.Headroom()
	taken, queued := 0, uint32(0)
	for _, b := range bufs {
		if b.Len() > q.maxFrame {
			taken++
			q.counters.Drops[nicq.DropOversize]++
			b.Free()
			continue
		}
		pieces := uint32(1)
		if b.Len() > room {
			pieces = uint32((b.Len() + room - 1) / room)
		}
		if queued+pieces > slots {
			if slots = q.tx.free(queued + pieces); queued+pieces > slots {
				break // back-pressure: the caller keeps b
			}
		}
		if pieces > 1 {
			if !q.sendPieces(b, room, queued, pieces) {
				break
			}
		} else {
			if b.Pool() != q.pool {
				c := q.pool.Get()
				if c == nil {
					break
				}
				copy(c.Append(b.Len()), b.Bytes())
				b.Free()
				b = c
			}
			d := q.tx.desc(q.tx.cachedProd + queued)
			d.Addr = uint64(q.pool.FrameOffset(b) + b.Headroom())
			d.Len = uint32(b.Len())
			d.Options = 0
			if b.Flags&nicq.FlagL4ChecksumOffload != 0 {
				d.Options = q.requestChecksum(d.Addr, b.Bytes())
			}
		}
		taken++
		queued += pieces
		if tap != nil {
			tap.WriteFrame(now, b.Bytes())
		}
		q.counters.TxPackets++
		q.counters.TxBytes += uint64(b.Len())
		if pieces > 1 {
			q.spread++
			b.Free()
		}
	}
	if queued > 0 {
		q.tx.submit(queued)
	}
	q.kick()
	return taken
}

// requestChecksum writes, in front of the frame at UMEM address addr, the
// transmit metadata that asks the kernel to complete its partial TCP or
// UDP checksum, and returns the descriptor option that says it is there.
// Without the offload (the stack does not mark frames then) it completes
// the checksum here. A frame whose checksum it cannot locate goes as it
// is: the stack marks only TCP segments, which it always can.
func (q *Queue) requestChecksum(addr uint64, frame []byte) uint32 {
	start, field, ok := vnet.PartialChecksum(frame)
	if !ok {
		return 0
	}
	if !q.txChecksum || addr < txMetadataLen {
		vnet.CompleteChecksum(frame, start, field)
		return 0
	}
	m := q.umem[addr-txMetadataLen : addr]
	binary.NativeEndian.PutUint64(m[0:], unix.XDP_TXMD_FLAGS_CHECKSUM)
	binary.NativeEndian.PutUint16(m[8:], uint16(start))
	binary.NativeEndian.PutUint16(m[10:], uint16(field))
	clear(m[12:])
	return unix.XDP_TX_METADATA
}

// sendPieces copies b into pieces UMEM frames of room bytes each (the last
// shorter) and writes their descriptors from transmit slot queued on,
// chained with XDP_PKT_CONTD. It reports false, leaving b with the
// caller, when the UMEM has not that many frames free.
func (q *Queue) sendPieces(b *nicq.Buf, room int, queued, pieces uint32) bool {
	frames := q.scratch[:pieces]
	if got := q.pool.GetBatch(frames); got < int(pieces) {
		nicq.FreeAll(frames[:got])
		clear(frames)
		return false
	}
	data := b.Bytes()
	// The checksum is settled before the first piece is copied: where it
	// cannot be left to the kernel it is completed in data.
	var first uint32
	if b.Flags&nicq.FlagL4ChecksumOffload != 0 {
		first = q.requestChecksum(uint64(q.pool.FrameOffset(frames[0])+frames[0].Headroom()), data)
	}
	for i, c := range frames {
		part := data[i*room : min((i+1)*room, len(data))]
		copy(c.Append(len(part)), part)
		d := q.tx.desc(q.tx.cachedProd + queued + uint32(i))
		d.Addr = uint64(q.pool.FrameOffset(c) + c.Headroom())
		d.Len = uint32(len(part))
		d.Options = unix.XDP_PKT_CONTD
		if i == len(frames)-1 {
			d.Options = 0
		}
		if i == 0 {
			d.Options |= first
		}
		frames[i] = nil
	}
	return true
}

// kick asks the kernel to transmit. In copy mode the kernel sends a
// bounded batch per call, so a full ring takes a few.
func (q *Queue) kick() {
	if !q.copyMode && !q.tx.needWakeup() {
		return
	}
	for i := 0; i < 8 && q.tx.unconsumed(); i++ {
		q.counters.Syscalls++
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(q.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		if e != 0 && e != unix.EAGAIN && e != unix.EBUSY && e != unix.ENOBUFS && e != unix.EINTR {
			break
		}
	}
}

// readStats folds the kernel's drop counts for the socket into the
// queue's counters.
func (q *Queue) readStats() {
	size := uint32(unsafe.Sizeof(q.stats))
	q.counters.Syscalls++
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(q.fd), unix.SOL_XDP, unix.XDP_STATISTICS, uintptr(unsafe.Pointer(&q.stats)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return
	}
	s, o := &q.stats, &q.seen
	q.counters.Drops[nicq.DropRxRingFull] += (s.Rx_dropped - o.Rx_dropped) + (s.Rx_ring_full - o.Rx_ring_full)
	q.counters.Drops[nicq.DropNoBuffer] += s.Rx_fill_ring_empty_descs - o.Rx_fill_ring_empty_descs
	q.counters.Drops[nicq.DropRunt] += (s.Rx_invalid_descs - o.Rx_invalid_descs) + (s.Tx_invalid_descs - o.Tx_invalid_descs)
	q.seen = q.stats
}

// WaitFD is the socket: it polls readable while the receive ring holds
// frames.
func (q *Queue) WaitFD() int { return q.fd }

// PrepareWait makes sure nothing we produced waits for a kick.
func (q *Queue) PrepareWait() { q.kick() }

// CancelWait does nothing.
func (q *Queue) CancelWait() {}

// ClearWait does nothing: readiness is the ring's state.
func (q *Queue) ClearWait() {}

// Pending reports whether the receive ring holds frames.
func (q *Queue) Pending() bool {
	// An idle core asks before every sleep; the drop counts need not be
	// that fresh, and the system call is not free.
	if q.pendings++; q.pendings&63 == 0 {
		q.readStats()
	}
	return q.rx.nonEmpty()
}

// Counters returns the queue's counters.
func (q *Queue) Counters() nicq.Counters { return q.counters }

// SetTap starts or stops a capture of the queue's frames.
func (q *Queue) SetTap(w *nicq.PcapWriter) { q.tap.Set(w) }

var (
	_ nicq.NIC   = (*NIC)(nil)
	_ nicq.Queue = (*Queue)(nil)
)

// solicitedNode is the solicited-node multicast group of an IPv6 address
// (RFC 4291 2.7.1): ff02::1:ff and its last 24 bits. (stack/header has
// it too, but nicq sits below stack and does not import it.)
func solicitedNode(a [16]byte) [16]byte {
	g := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff}
	g[13], g[14], g[15] = a[13], a[14], a[15]
	return g
}
