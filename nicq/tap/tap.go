//go:build linux

// Package tap is the multi-queue TAP driver: one queue of a TAP device per
// core, the kernel's side of the device being an ordinary interface that
// Linux tools and peers use. The kernel picks the queue for each frame it
// sends through the device by running the rss package's eBPF Toeplitz
// program (TUNSETSTEERINGEBPF), so the stack knows the core of every flow
// and chooses local ports whose replies come back to it, as with a NIC's
// RSS.
//
// The driver owns the device's queue file descriptors, its steering program
// and its per-queue packet pools. A frame costs one read or write system
// call (a TCP frame of up to 64 KiB with the offloads below); the TAP is
// the driver for trying the stack against Linux with no special hardware
// (see mkstack lab), not for line rate.
//
// Each queue is opened with a virtio-net header (IFF_VNET_HDR) and
// checksum and segmentation offload (TUNSETOFFLOAD with TUN_F_CSUM and
// TUN_F_TSO4/6), so the kernel side is a device with transmit
// checksumming and TSO on, the default of every other kernel device:
// frames the kernel sends keep their partial checksums and say so in the
// header (the driver marks them nicq.FlagL4ChecksumPartial), frames the
// kernel verified say that, and a bulk sender's TCP data comes over in
// frames of up to 64 KiB, one read each. The driver hands such a frame to
// the stack whole, as one TCP segment (GRO's result, without GRO's work),
// from a small pool of 64 KiB buffers per queue; when that pool is dry, or
// for UDP's segmentation, it cuts the frame into frames of one MTU. The
// other way, a frame with Buf.SegmentSize (a TCP segment of up to 64 KiB
// from a stack with TSO, nicq.FeatureTSO) goes with a virtio-net header
// that asks the kernel to segment it, which a local receiver skips: one
// write per 64 KiB.
//
// It needs CAP_NET_ADMIN (to attach to the device) and CAP_BPF or
// CAP_SYS_ADMIN (for the steering program; without it the kernel's own
// flow hash picks the queue and the core runtime forwards each frame that
// lands on the wrong core). The device is one that `ip tuntap add mode tap
// multi_queue name NAME` made (mkstack lab up --driver tap does), or, when
// no device has that name, a new one that lives until Close.
package tap

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/internal/vnet"
	"github.com/mkstack/mkstack/nicq/linkdev"
	"github.com/mkstack/mkstack/rss"
)

// Config describes a TAP NIC for Open.
type Config struct {
	// Name is the TAP device, at most 15 bytes.
	Name string
	// Queues is the number of queues to attach, one per core, 1 to 256.
	Queues int
	// MAC is the stack's Ethernet address; zero means a random locally
	// administered one. It must differ from the kernel side's address.
	MAC [6]byte
	// RSS steers the kernel's frames into the queues; nil means the rss
	// package's default key and an equal table over Queues.
	RSS *rss.Config
	// Buffers is the size of each queue's pool; 0 means 4096.
	Buffers int
	// NoSteering leaves the queue choice to the kernel's flow hash (the
	// runtime then forwards what lands on the wrong core). Open falls back
	// to it, with Warn, when the steering program cannot be loaded.
	NoSteering bool
	// QueueLen is the least number of frames the kernel holds for each
	// queue until the driver reads them (the device's txqueuelen, 1000 when
	// made): Open raises a shorter one to it (with Warn where it may not:
	// that needs CAP_NET_ADMIN), and never lowers one. 0 means
	// 16384. As AF_XDP's receive ring, it must hold a burst of one request
	// from every busy connection, which a kernel socket's own queue would
	// take: at 1000, 10 000 wrk connections on one queue lost 120 000
	// frames in 5 s on the device (its TX dropped counter).
	QueueLen int
	// Warn, if set, receives what the driver degrades and why.
	Warn func(msg string)
}

// DefaultQueueLen is Config.QueueLen's default.
const DefaultQueueLen = 16384

// NIC is a multi-queue TAP device. It implements nicq.NIC.
type NIC struct {
	name    string
	mac     [6]byte
	mtu     int
	rss     *rss.Config
	queues  []*Queue
	steer   *rss.SteeringProgram
	steered bool
}

// Open attaches Queues queues to the TAP device Name.
func Open(c Config) (_ *NIC, err error) {
	if c.Name == "" || len(c.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap: device name %q: want 1 to %d bytes: %w", c.Name, unix.IFNAMSIZ-1, nicq.ErrInvalidConfig)
	}
	if c.Queues < 1 || c.Queues > 256 {
		return nil, fmt.Errorf("tap: %d queues: want 1 to 256: %w", c.Queues, nicq.ErrInvalidConfig)
	}
	if c.Buffers == 0 {
		c.Buffers = 4096
	}
	if c.RSS == nil {
		if c.RSS, err = rss.NewConfig(rss.Options{Queues: c.Queues}); err != nil {
			return nil, fmt.Errorf("tap: %w", err)
		}
	} else if c.RSS.Queues() > c.Queues {
		return nil, fmt.Errorf("tap: the RSS table names %d queues, more than the %d attached: %w", c.RSS.Queues(), c.Queues, nicq.ErrInvalidConfig)
	}
	if c.MAC == [6]byte{} {
		c.MAC = linkdev.RandomMAC()
	}
	n := &NIC{name: c.Name, mac: c.MAC, rss: c.RSS}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	for i := 0; i < c.Queues; i++ {
		fd, err := attach(c.Name)
		if err != nil {
			return nil, err
		}
		q := &Queue{nic: n, index: i, fd: fd}
		n.queues = append(n.queues, q)
	}
	info, err := linkdev.Lookup("tap", c.Name)
	if err != nil {
		return nil, err
	}
	if info.MAC == c.MAC {
		return nil, fmt.Errorf("tap: the stack's MAC %x is the kernel side's own: choose another: %w", c.MAC, nicq.ErrInvalidConfig)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if err := raiseQueueLen(c.Name, c.QueueLen); err != nil && c.Warn != nil {
		// A user may own a persistent TAP without CAP_NET_ADMIN, which
		// the change needs: the device works, with bursts lost beyond
		// its queue.
		c.Warn(fmt.Sprintf("%v; bursts from more connections than that are dropped (the device's TX dropped counter)", err))
	}
	n.mtu = info.MTU
	frame := vnet.HdrLen + nicq.MaxFrameLen(n.mtu) + nicq.DefaultHeadroom
	size := nicq.DefaultFrameSize
	for size < frame {
		size *= 2
	}
	for i, q := range n.queues {
		q.pool, err = nicq.NewPool(nicq.PoolConfig{Name: fmt.Sprintf("%s/q%d", c.Name, i), Buffers: c.Buffers, FrameSize: size})
		if err != nil {
			return nil, fmt.Errorf("tap: %w", err)
		}
		q.maxFrame = nicq.MaxFrameLen(n.mtu)
	}
	if !c.NoSteering {
		if err := n.attachSteering(); err != nil {
			if c.Warn != nil {
				c.Warn(fmt.Sprintf("tap: %s: no RSS steering (%v); the kernel's flow hash picks each frame's queue and the runtime forwards frames to their cores", c.Name, err))
			}
		}
	}
	return n, nil
}

func (n *NIC) attachSteering() error {
	p, err := rss.NewSteeringProgram(n.rss)
	if err != nil {
		return err
	}
	if err := p.AttachTAP(n.queues[0].fd); err != nil {
		p.Close()
		return err
	}
	n.steer, n.steered = p, true
	return nil
}

// ifreqFlags is struct ifreq with the flags member of its union.
type ifreqFlags struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

func attach(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("tap: /dev/net/tun is missing (load the tun module: modprobe tun): %w", err)
		}
		return -1, linkdev.Explain("tap", "open /dev/net/tun", err)
	}
	var req ifreqFlags
	copy(req.name[:], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
		unix.Close(fd)
		switch e {
		case unix.EINVAL:
			return -1, fmt.Errorf("tap: attach to %s: %w (it exists but is not a multi-queue TAP: remove it, then ip tuntap add mode tap multi_queue name %s)", name, e, name)
		case unix.EBUSY:
			return -1, fmt.Errorf("tap: attach to %s: %w (another process holds its queues, or it is a TUN device)", name, e)
		}
		return -1, linkdev.Explain("tap", "attach to "+name, e)
	}
	// The header's size is the device's; set it rather than trust that
	// another process left the default.
	hdrLen := int32(vnet.HdrLen)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&hdrLen))); e != 0 {
		unix.Close(fd)
		return -1, linkdev.Explain("tap", "virtio-net header size on "+name+" (TUNSETVNETHDRSZ)", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETOFFLOAD, tunOffloads); e != 0 {
		unix.Close(fd)
		return -1, linkdev.Explain("tap", "checksum and segmentation offload on "+name+" (TUNSETOFFLOAD)", e)
	}
	return fd, nil
}

// The offloads we take (linux/if_tun.h): partial checksums, and TCP
// segments of up to 64 KiB over IPv4 and IPv6, with ECN, which the
// driver hands over whole (or cuts into frames of one MTU with
// vnet.Segmenter). The kernel then hands a bulk sender's data over in
// one read per 64 KiB instead of one per frame.
const (
	tunFCsum    = 0x01
	tunFTSO4    = 0x02
	tunFTSO6    = 0x04
	tunFTSOECN  = 0x08
	tunOffloads = tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOECN
)

// Name returns the device's name.
func (n *NIC) Name() string { return n.name }

// NumQueues returns the number of attached queues.
func (n *NIC) NumQueues() int { return len(n.queues) }

// Queue returns queue i.
func (n *NIC) Queue(i int) nicq.Queue { return n.queues[i] }

// MAC returns the stack's Ethernet address.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU returns the device's MTU.
func (n *NIC) MTU() int { return n.mtu }

// LinkUp reports whether the kernel side of the device is up.
func (n *NIC) LinkUp() bool {
	info, err := linkdev.Lookup("tap", n.name)
	return err == nil && info.Up
}

// Features: TSO (a frame with Buf.SegmentSize goes to the kernel whole,
// with a virtio-net header that asks for segmentation, and a local
// receiver takes it as one segment); tx checksum (a frame marked
// FlagL4ChecksumOffload goes with NEEDS_CSUM: the kernel completes the
// checksum, or a local receiver takes it partial); each received buffer carries what
// its virtio-net header says of its checksum (FlagL4ChecksumPartial or
// FlagL4ChecksumVerified). No hash.
func (n *NIC) Features() nicq.Features { return nicq.FeatureTSO | nicq.FeatureTxChecksum }

// RSS returns the steering configuration.
func (n *NIC) RSS() *rss.Config { return n.rss }

// Steered reports whether the eBPF steering program picks the queues.
func (n *NIC) Steered() bool { return n.steered }

// Close detaches the queues; a device Open created goes with them.
func (n *NIC) Close() error {
	for _, q := range n.queues {
		if q.fd >= 0 {
			unix.Close(q.fd)
			q.fd = -1
		}
	}
	if n.steer != nil {
		n.steer.Close()
		n.steer = nil
	}
	return nil
}

// Queue is one queue of the TAP device. It implements nicq.Queue.
type Queue struct {
	nic      *NIC
	index    int
	fd       int
	pool     *nicq.Pool
	maxFrame int
	counters nicq.Counters
	tap      nicq.TapSwitch
	// iov is Send's writev vector: the virtio-net header (vnet.Zero, or
	// txHdr for a TSO frame), then the frame.
	iov   [2]unix.Iovec
	txHdr [vnet.HdrLen]byte
	// riov is Recv's readv vector: a pool buffer, then the rest of
	// large's room, where the tail of a large frame lands. There the
	// frame is made whole, to go to the stack as it is or for seg to
	// cut (virtio-net header first).
	riov      [2]unix.Iovec
	large     vnet.Whole
	seg       vnet.Segmenter
	segmented uint64
}

// Index returns the queue's number.
func (q *Queue) Index() int { return q.index }

// Pool returns the queue's pool.
func (q *Queue) Pool() *nicq.Pool { return q.pool }

// RSS returns the NIC's steering configuration.
func (q *Queue) RSS() *rss.Config { return q.nic.rss }

// Recv reads up to len(bufs) frames, one read system call each. A large
// frame (a local sender's TSO/GSO) is cut into frames of one MTU, handed
// out over this and the next calls.
func (q *Queue) Recv(bufs []*nicq.Buf) int {
	got := 0
	for got < len(bufs) {
		if q.seg.Active() {
			got = q.seg.Fill(bufs, got, q.pool, q.index, &q.counters)
			continue
		}
		b := q.pool.Get()
		if b == nil {
			// The frames stay in the kernel's queue, which drops when full
			// (the device's tx_dropped), as a NIC with no descriptors.
			q.counters.Drops[nicq.DropNoBuffer]++
			break
		}
		room := b.Append(b.Tailroom())
		n, err := q.read(room)
		if err != nil || n <= 0 {
			b.Free()
			break
		}
		if n < vnet.HdrLen+nicq.EthernetHeaderLen {
			q.counters.Drops[nicq.DropRunt]++
			b.Free()
			continue
		}
		h, _ := vnet.Parse(room)
		if n > len(room) || h.GSO() {
			// The frame's head is in room, its tail (if any) in the
			// spare large buffer or in big, past len(room): make it
			// whole there, then hand it over or cut it.
			frame := q.large.Room(q.pool.Name())
			copy(frame, room[:min(n, len(room))])
			b.Free()
			if w := q.large.Take(n, q.index, &q.counters); w != nil {
				bufs[got] = w
				got++
				continue
			}
			q.startLarge(frame[:n])
			continue
		}
		b.Truncate(n)
		b.Pull(vnet.HdrLen)
		n -= vnet.HdrLen
		b.Flags = h.BufFlags()
		b.RxQueue = uint16(q.index)
		bufs[got] = b
		got++
		q.counters.RxPackets++
		q.counters.RxBytes += uint64(n)
	}
	linkdev.CaptureReceived(q.tap.Writer(), bufs[:got])
	return got
}

// read reads one frame into room and, past its end, into the room for a
// large frame (one readv), and returns its length with the virtio-net
// header.
func (q *Queue) read(room []byte) (int, error) {
	tail := q.large.Room(q.pool.Name())
	q.riov[0].Base = unsafe.SliceData(room)
	q.riov[0].SetLen(len(room))
	q.riov[1].Base = &tail[len(room)]
	q.riov[1].SetLen(len(tail) - len(room))
	q.counters.Syscalls++
	n, _, e := unix.Syscall(unix.SYS_READV, uintptr(q.fd), uintptr(unsafe.Pointer(&q.riov[0])), 2)
	q.riov[0].Base = nil // keep no pointer into a buffer the pool may hand out
	q.riov[1].Base = nil
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// startLarge starts cutting the large frame (behind its virtio-net
// header), or counts it as oversize when it cannot be.
func (q *Queue) startLarge(frame []byte) {
	if q.seg.Start(frame, q.maxFrame) {
		q.segmented++
		return
	}
	q.counters.Drops[nicq.DropOversize]++
}

// Segmented returns how many large frames (a local sender's TSO/GSO) the
// queue cut into MTU-sized ones. Owner core only.
func (q *Queue) Segmented() uint64 { return q.segmented }

// Whole returns how many large frames the queue handed to the stack
// whole. Owner core only.
func (q *Queue) Whole() uint64 { return q.large.Taken() }

// Send writes each frame with one write system call and frees it (the
// kernel copied it). It stops early only when the device would block.
func (q *Queue) Send(bufs []*nicq.Buf) int {
	tap := q.tap.Writer()
	var now int64
	if tap != nil {
		now = time.Now().UnixNano()
	}
	for i, b := range bufs {
		frame := b.Bytes()
		hdr := vnet.Zero[:]
		if b.SegmentSize > 0 {
			h, ok := vnet.TSO(frame, int(b.SegmentSize))
			if !ok || len(frame) > vnet.MaxLargeFrame {
				q.counters.Drops[nicq.DropOversize]++
				b.Free()
				continue
			}
			h.Put(q.txHdr[:])
			hdr = q.txHdr[:]
		} else if len(frame) > q.maxFrame {
			q.counters.Drops[nicq.DropOversize]++
			b.Free()
			continue
		} else if b.Flags&nicq.FlagL4ChecksumOffload != 0 {
			if h, ok := vnet.Csum(frame); ok {
				h.Put(q.txHdr[:])
				hdr = q.txHdr[:]
			}
		}
		err := q.write(hdr, frame)
		if err == unix.EAGAIN {
			return i
		}
		if tap != nil {
			tap.WriteFrame(now, frame)
		}
		if err != nil {
			q.counters.Drops[nicq.DropLinkDown]++
		} else {
			q.counters.TxPackets++
			q.counters.TxBytes += uint64(len(frame))
		}
		b.Free()
	}
	return len(bufs)
}

// write sends one frame behind its virtio-net header (vnet.Zero: no
// checksum to fill in, no segmentation) with one writev.
func (q *Queue) write(hdr, frame []byte) error {
	q.iov[0].Base = &hdr[0]
	q.iov[0].SetLen(vnet.HdrLen)
	q.iov[1].Base = unsafe.SliceData(frame)
	q.iov[1].SetLen(len(frame))
	q.counters.Syscalls++
	_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(q.fd), uintptr(unsafe.Pointer(&q.iov[0])), 2)
	q.iov[1].Base = nil // keep no pointer into a freed buffer
	if e != 0 {
		return e
	}
	return nil
}

// WaitFD is the queue's file descriptor: it polls readable while frames
// wait, so the wait protocol needs no other state.
func (q *Queue) WaitFD() int { return q.fd }

// PrepareWait does nothing: readiness is level-triggered.
func (q *Queue) PrepareWait() {}

// CancelWait does nothing.
func (q *Queue) CancelWait() {}

// ClearWait does nothing.
func (q *Queue) ClearWait() {}

// ReadsToLook: Recv reads the device until it finds it empty.
func (q *Queue) ReadsToLook() bool { return true }

// Pending reports whether a frame waits: segments of a large frame cut
// in part, or a frame in the device (one poll system call, made only on
// the way to sleep).
func (q *Queue) Pending() bool { return q.seg.Active() || linkdev.Pending(q.fd) }

// Counters returns the queue's counters.
func (q *Queue) Counters() nicq.Counters { return q.counters }

// SetTap starts or stops a capture of the queue's frames.
func (q *Queue) SetTap(w *nicq.PcapWriter) { q.tap.Set(w) }

var (
	_ nicq.NIC   = (*NIC)(nil)
	_ nicq.Queue = (*Queue)(nil)
)

// raiseQueueLen makes the device's txqueuelen, the length of the kernel's
// queue of frames for each TAP queue (tun resizes them when it changes),
// at least n.
func raiseQueueLen(name string, n int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return linkdev.Explain("tap", "open a socket to set "+name+"'s queue length", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tap: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFTXQLEN, ifr); err != nil {
		return linkdev.Explain("tap", "read "+name+"'s queue length", err)
	}
	if int(ifr.Uint32()) >= n {
		return nil
	}
	ifr.SetUint32(uint32(n))
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFTXQLEN, ifr); err != nil {
		return linkdev.Explain("tap", fmt.Sprintf("raise %s's queue length to %d frames (ip link set %s txqueuelen %d)", name, n, name, n), err)
	}
	return nil
}
