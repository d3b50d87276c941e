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
// Requirements, each checked at Open with an error that names the fix:
// root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, and CAP_IPC_LOCK or a memlock
// limit above the UMEM size); an interface with at least as many receive
// queues as Queues; an MTU whose frames fit a UMEM frame after XDP's 256
// bytes of headroom (1774 with 2 KiB frames; veth's native XDP also needs
// MTU ≤ 3506 and as many receive queues as its peer has transmit queues).
package afxdp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/linkdev"
	"github.com/mkstack/mkstack/rss"
)

// Config describes an AF_XDP NIC for Open.
type Config struct {
	// Interface is the Linux interface, for example "eth0".
	Interface string
	// Queues is the number of sockets, bound to receive queues 0 to
	// Queues-1, one per core.
	Queues int
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
	// 16384 (32 MiB of 2048-byte frames). RxRing and TxRing are the ring
	// sizes (0: 4096 and 2048); the fill and completion rings are twice
	// as large, so the NIC never waits for a buffer the pool has. A
	// receive ring must hold a burst of one request from every busy
	// connection: at 1024, 2500 wrk connections on one queue overflowed it
	// (tens of thousands of drops in 5 s, each a client retransmission 200
	// ms or more later), where the kernel's socket queues took them.
	Frames, RxRing, TxRing int
	// FrameSize is 2048 (0) or 4096.
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
}

// Open attaches the XDP program to Interface and opens Queues sockets.
// The defaults of Config.Frames, RxRing and TxRing.
const (
	defaultFrames = 16384
	defaultRxRing = 4096
	defaultTxRing = 2048
)

func Open(c Config) (_ *NIC, err error) {
	const drv = "afxdp"
	if c.Queues < 1 || c.Queues > 64 {
		return nil, fmt.Errorf("afxdp: %d queues: want 1 to 64: %w", c.Queues, nicq.ErrInvalidConfig)
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
	if c.Frames == 0 {
		c.Frames = defaultFrames
	}
	if c.RxRing == 0 {
		c.RxRing = defaultRxRing
	}
	if c.TxRing == 0 {
		c.TxRing = defaultTxRing
	}
	if c.FrameSize == 0 {
		c.FrameSize = 2048
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return nil, fmt.Errorf("afxdp: frame size %d: want 2048 or 4096: %w", c.FrameSize, nicq.ErrInvalidConfig)
	}
	for _, v := range []int{c.RxRing, c.TxRing} {
		if v < 64 || v&(v-1) != 0 || 2*v > c.Frames {
			return nil, fmt.Errorf("afxdp: ring size %d: want a power of two, at least 64, at most half of Frames (%d): %w", v, c.Frames, nicq.ErrInvalidConfig)
		}
	}
	info, err := linkdev.Lookup(drv, c.Interface)
	if err != nil {
		return nil, err
	}
	if info.RxQueues > 0 && info.RxQueues < c.Queues {
		return nil, fmt.Errorf("afxdp: %s has %d receive queues, fewer than the %d cores asked for: give it more (ethtool -L %s combined %d; a veth is made with numrxqueues %d) or use fewer cores", c.Interface, info.RxQueues, c.Queues, c.Interface, c.Queues, c.Queues)
	}
	if max := c.FrameSize - unix.XDP_PACKET_HEADROOM - nicq.EthernetHeaderLen - nicq.VLANTagLen; info.MTU > max {
		return nil, fmt.Errorf("afxdp: %s has MTU %d; frames of %d bytes take at most %d (set FrameSize 4096, or: ip link set %s mtu %d)", c.Interface, info.MTU, c.FrameSize, max, c.Interface, max)
	}
	if c.RSS == nil {
		c.RSS = interfaceRSS(c.Interface, c.Queues)
	}
	n := &NIC{info: info, rss: c.RSS, generic: c.Generic}
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
	if n.prog, err = newProgram(max(c.Queues, info.RxQueues), addrs, addrs6); err != nil {
		return nil, linkdev.Explain(drv, "XDP program", err)
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
			hint += "; does the driver support native XDP? (for a veth: MTU at most 3506, and as many receive queues as the peer has transmit queues; or ask for generic mode)"
		}
		return nil, fmt.Errorf("%w; %s", linkdev.Explain(drv, "attach XDP to "+c.Interface, err), hint)
	}
	return n, nil
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
	q := &Queue{nic: n, index: i, fd: fd, frameSize: uint64(c.FrameSize), maxFrame: nicq.MaxFrameLen(n.info.MTU)}
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
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&q.umem[0]))), Len: uint64(size), Size: uint32(c.FrameSize)}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG, uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); e != 0 {
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
		sa := &unix.SockaddrXDP{Flags: unix.XDP_USE_NEED_WAKEUP | mode, Ifindex: uint32(n.info.Index), QueueID: uint32(i)}
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
		return nil, fmt.Errorf("%w (is queue %d of %s already bound by another AF_XDP socket?)", linkdev.Explain(drv, fmt.Sprintf("bind to %s queue %d", n.info.Name, i), err), i, n.info.Name)
	}
	q.copyMode = !*zeroCopy
	return q, nil
}

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

// Features: none.
func (n *NIC) Features() nicq.Features { return 0 }

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
	copyMode           bool
	counters           nicq.Counters
	tap                nicq.TapSwitch
	scratch            [64]*nicq.Buf
	pendings           uint32
	recvs              uint32
	stats, seen        unix.XDPStatistics
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
// the UMEM frame the kernel wrote, handed over with no copy.
func (q *Queue) Recv(bufs []*nicq.Buf) int {
	q.reap()
	n := q.rx.available(uint32(len(bufs)))
	got := 0
	headroom := uint64(q.pool.Headroom())
	for i := uint32(0); i < n; i++ {
		d := q.rx.desc(q.rx.cachedCons + i)
		base := d.Addr &^ (q.frameSize - 1)
		b := q.pool.FrameAt(int(base))
		if b == nil || d.Addr-base != headroom || int(d.Len) > b.Tailroom() {
			// Not a frame we posted at our offset: a kernel we do not
			// understand. Count it; a frame of ours goes back to the pool.
			q.counters.Drops[nicq.DropRunt]++
			if b != nil {
				b.Free()
			}
			continue
		}
		b.Reset()
		b.Append(int(d.Len))
		if d.Len < nicq.EthernetHeaderLen {
			q.counters.Drops[nicq.DropRunt]++
			b.Free()
			continue
		}
		b.RxQueue = uint16(q.index)
		b.Flags = q.nic.rxFlags
		bufs[got] = b
		got++
		q.counters.RxPackets++
		q.counters.RxBytes += uint64(d.Len)
	}
	if n > 0 {
		q.rx.release(n)
	}
	q.refill()
	if q.fill.needWakeup() && got == 0 {
		unix.Syscall6(unix.SYS_RECVFROM, uintptr(q.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
	if q.recvs++; q.recvs&1023 == 0 {
		q.readStats()
	}
	linkdev.CaptureReceived(q.tap.Writer(), bufs[:got])
	return got
}

// Send puts the frames on the transmit ring, copying into the UMEM only a
// buffer that is not one of its frames, and kicks the kernel when it asks
// (need_wakeup; in copy mode, always). It stops early when the ring is full
// or the UMEM has no frame for a copy.
func (q *Queue) Send(bufs []*nicq.Buf) int {
	q.reap()
	n := q.tx.free(uint32(len(bufs)))
	tap := q.tap.Writer()
	var now int64
	if tap != nil {
		now = time.Now().UnixNano()
	}
	taken, queued := 0, uint32(0)
	for _, b := range bufs[:n] {
		if b.Pool() != q.pool {
			c := q.pool.Get()
			if c == nil {
				break // back-pressure: the caller keeps b
			}
			copy(c.Append(b.Len()), b.Bytes())
			b.Free()
			b = c
		}
		taken++
		if b.Len() > q.maxFrame {
			q.counters.Drops[nicq.DropOversize]++
			b.Free()
			continue
		}
		if tap != nil {
			tap.WriteFrame(now, b.Bytes())
		}
		d := q.tx.desc(q.tx.cachedProd + queued)
		d.Addr = uint64(q.pool.FrameOffset(b) + b.Headroom())
		d.Len = uint32(b.Len())
		d.Options = 0
		queued++
		q.counters.TxPackets++
		q.counters.TxBytes += uint64(b.Len())
	}
	if queued > 0 {
		q.tx.submit(queued)
	}
	q.kick()
	return taken
}

// kick asks the kernel to transmit. In copy mode the kernel sends a
// bounded batch per call, so a full ring takes a few.
func (q *Queue) kick() {
	if !q.copyMode && !q.tx.needWakeup() {
		return
	}
	for i := 0; i < 8 && q.tx.unconsumed(); i++ {
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
