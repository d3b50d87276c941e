//go:build linux

package afxdp

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

func openOnVeth(t *testing.T, v drivertest.Veth, c Config) (*NIC, []string) {
	t.Helper()
	var nic *NIC
	var warned []string
	c.Warn = func(m string) { warned = append(warned, m) }
	err := nettest.DoIn(v.StackNS, func() (err error) {
		nic, err = Open(c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nic.Close() })
	return nic, warned
}

func stackAddr() []netip.Addr { return []netip.Addr{netip.AddrFrom4(drivertest.StackIP)} }

func TestAFXDPAgainstKernel(t *testing.T) {
	v := drivertest.NewVeth(t, 2)
	nic, warned := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 2, Addrs: stackAddr()})
	t.Logf("mode %s; warnings %q", nic.Mode(), warned)
	if !strings.HasPrefix(nic.Mode(), "native") {
		t.Errorf("mode %q, want native", nic.Mode())
	}
	drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
	// A veth's receive queue follows the sender's flow hash, not RSS.
	drivertest.Exercise(t, drivertest.Setup{NIC: nic, KernelNS: v.KernelNS, KernelIf: v.KernelIf}, 32)
	for i := 0; i < nic.NumQueues(); i++ {
		q := nic.Queue(i).(*Queue)
		posted := min(int(q.fill.size), q.pool.Cap()-q.fillReserve)
		if got := q.pool.InUse(); got > posted+64 {
			t.Errorf("queue %d: %d UMEM frames in use after the test; the fill ring holds at most %d", i, got, posted)
		}
		if free := q.pool.Available(); free < q.fillReserve-64 {
			t.Errorf("queue %d: %d UMEM frames free, want the %d kept for sending", i, free, q.fillReserve)
		}
	}
}

// TestProgramPassesOtherTraffic: frames not for the stack's addresses reach
// the kernel on the stack's side (here: a ping to an address the kernel
// there owns), while the stack's own arrive at its sockets.
func TestProgramPassesOtherTraffic(t *testing.T) {
	v := drivertest.NewVeth(t, 1)
	nic, _ := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr()})
	drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
	// The kernel on the stack's side gets 10.77.9.3.
	nl, err := netlink.NewHandleAt(v.StackNS)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, _ := nl.LinkByName(v.StackIf)
	a, _ := netlink.ParseAddr("10.77.9.3/24")
	if err := nl.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
	// The kernel peer pings it: ARP and ICMP for 10.77.9.3 must pass to
	// the kernel, none reach the socket.
	var c net.Conn
	err = nettest.DoIn(v.KernelNS, func() (err error) {
		c, err = net.Dial("udp4", "10.77.9.3:9")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip")
	}
	// A UDP datagram to a closed port on 10.77.9.3: the kernel there
	// answers port unreachable, which a connected UDP socket reports.
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 16))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("the kernel behind the XDP program did not answer: %v", err)
	}
	bufs := make([]*nicq.Buf, 16)
	q := nic.Queue(0)
	for i := 0; i < 10; i++ {
		if n := q.Recv(bufs); n > 0 {
			t.Errorf("the socket received %d frames meant for the kernel: first %x", n, bufs[0].Bytes()[:min(42, bufs[0].Len())])
			nicq.FreeAll(bufs[:n])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOpenErrors(t *testing.T) {
	v := drivertest.NewVeth(t, 1)
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Interface: "mk-nope", Queues: 1, Addrs: stackAddr()}, "not found"},
		{Config{Interface: v.StackIf, Queues: 2, Addrs: stackAddr()}, "receive queues"},
		{Config{Interface: v.StackIf, Pollers: 2, Addrs: stackAddr()}, "fewer than the 2 cores"},
		{Config{Interface: v.StackIf, Queues: -1, Addrs: stackAddr()}, "queues"},
		{Config{Interface: v.StackIf, Queues: 1}, "no stack address"},
		{Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr(), RxRing: 100}, "ring size"},
		{Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr(), FrameSize: 1000}, "frame size"},
	} {
		err := nettest.DoIn(v.StackNS, func() error {
			nic, err := Open(tc.c)
			if err == nil {
				nic.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v): %v, want an error saying %q", tc.c, err, tc.want)
		}
	}
}

// TestPseudoHeaderSumsTrustedOnlyOnAVeth: the heuristic that takes a
// checksum field equal to the pseudo-header sum as partial applies only
// where no wire feeds the device. On a veth every received buffer says so
// (FlagL4ChecksumMaybePartial); on a TAP (whose frames a process writes,
// perhaps from a wire: a VPN, a VM) none does, even for a frame whose
// field is exactly the pseudo-header sum; and the decision names only
// veth among common drivers.
func TestPseudoHeaderSumsTrustedOnlyOnAVeth(t *testing.T) {
	for _, d := range []string{"", "tun", "dummy", "bridge", "macvlan", "ipvlan", "virtio_net", "mlx5_core", "ixgbe", "ena", "VETH", "veth2"} {
		if LocalPairDriver(d) {
			t.Errorf("LocalPairDriver(%q) = true: a frame from it may have crossed a wire", d)
		}
	}
	if !LocalPairDriver("veth") {
		t.Error("LocalPairDriver(veth) = false")
	}

	// A veth: every buffer is marked.
	v := drivertest.NewVeth(t, 1)
	vnic, _ := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr(), CopyOnly: true})
	if vnic.Driver() != "veth" || !vnic.TrustsPseudoHeaderSums() {
		t.Fatalf("on a veth: driver %q, trusts pseudo-header sums %v", vnic.Driver(), vnic.TrustsPseudoHeaderSums())
	}
	drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, vnic.MAC())
	if flags := firstFrameFlags(t, vnic.Queue(0), func() {
		nettest.DoIn(v.KernelNS, func() error {
			c, err := net.Dial("udp4", net.JoinHostPort(netip.AddrFrom4(drivertest.StackIP).String(), "9000"))
			if err == nil {
				c.Write([]byte("from the kernel"))
				c.Close()
			}
			return err
		})
	}); flags&nicq.FlagL4ChecksumMaybePartial == 0 {
		t.Errorf("a frame from the veth: flags %#x, want FlagL4ChecksumMaybePartial", flags)
	}

	// A TAP: a frame written into it reaches the socket unmarked.
	h := nettest.NewNS(t).Handle()
	var fd int
	var tnic *NIC
	err := nettest.DoIn(h, func() (err error) {
		if fd, err = openTAP("mkxt0"); err != nil {
			return err
		}
		l, err := netlink.LinkByName("mkxt0")
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			return err
		}
		tnic, err = Open(Config{Interface: "mkxt0", Queues: 1, Addrs: stackAddr(), CopyOnly: true})
		return err
	})
	if err != nil {
		t.Fatalf("AF_XDP on a TAP: %v", err)
	}
	defer unix.Close(fd)
	defer tnic.Close()
	if tnic.TrustsPseudoHeaderSums() {
		t.Fatalf("on a TAP (driver %q) the driver trusts pseudo-header sums", tnic.Driver())
	}
	frame := frametest.UDP4{DstMAC: tnic.MAC(), SrcMAC: frametest.MACA, Src: drivertest.KernelIP, Dst: drivertest.StackIP, SrcPort: 1, DstPort: 9000, Payload: []byte("from a wire")}.Frame()
	// The checksum field as a local sender's CHECKSUM_PARTIAL leaves it.
	pseudo := uint32(17 + len(frame) - 34)
	for i := 26; i < 34; i += 2 {
		pseudo += uint32(frame[i])<<8 | uint32(frame[i+1])
	}
	for pseudo > 0xffff {
		pseudo = pseudo>>16 + pseudo&0xffff
	}
	frame[40], frame[41] = byte(pseudo>>8), byte(pseudo)
	if flags := firstFrameFlags(t, tnic.Queue(0), func() { unix.Write(fd, frame) }); flags&(nicq.FlagL4ChecksumMaybePartial|nicq.FlagL4ChecksumPartial) != 0 {
		t.Errorf("a frame from a TAP: flags %#x; want no partial-checksum trust", flags)
	}
}

// firstFrameFlags calls send until a frame arrives on q (at most 3 s) and
// returns its flags.
func firstFrameFlags(t *testing.T, q nicq.Queue, send func()) nicq.Flags {
	t.Helper()
	bufs := make([]*nicq.Buf, 16)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		send()
		for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if n := q.Recv(bufs); n > 0 {
				f := bufs[0].Flags
				nicq.FreeAll(bufs[:n])
				return f
			}
		}
	}
	t.Fatal("no frame arrived")
	return 0
}

// openTAP makes a single-queue TAP named name in the calling thread's
// namespace and returns its descriptor.
func openTAP(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
		unix.Close(fd)
		return -1, e
	}
	return fd, nil
}

// TestOpenJoinsTheSolicitedNodeGroups: the interface's multicast filter
// holds the Ethernet group of each IPv6 address's solicited-node group
// while the NIC is open (a NIC that filters in hardware would drop the
// neighbour solicitations for the stack otherwise), and not after.
func TestOpenJoinsTheSolicitedNodeGroups(t *testing.T) {
	v := drivertest.NewVeth(t, 1)
	addr6 := netip.MustParseAddr("fd77::1:2345")
	group := "3333ff012345" // 33:33:ff and the address's last 24 bits
	mcast := func() string { return v.StackMulticast(t) }
	if strings.Contains(mcast(), group) {
		t.Fatalf("group %s joined before Open:\n%s", group, mcast())
	}
	nic, _ := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 1, Addrs: append(stackAddr(), addr6)})
	if m := mcast(); !strings.Contains(m, v.StackIf) || !strings.Contains(m, group) {
		t.Fatalf("group %s not joined on %s while open:\n%s", group, v.StackIf, m)
	}
	nic.Close()
	if m := mcast(); strings.Contains(m, group) {
		t.Fatalf("group %s still joined after Close:\n%s", group, m)
	}
}

// TestOpenWarnsAboutUnservedQueuesAndSplitsUMEMAmongPollers: fewer sockets
// than the veth's receive queues is a warning naming the queues whose
// frames will miss the stack; four queues polled by two cores share two
// cores' UMEM (half of the default each), not four.
func TestOpenWarnsAboutUnservedQueuesAndSplitsUMEMAmongPollers(t *testing.T) {
	v := drivertest.NewVeth(t, 4)
	nic, warned := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 2, Addrs: stackAddr()})
	var unserved []string
	for _, w := range warned {
		if strings.Contains(w, "receive queues") {
			unserved = append(unserved, w)
		}
	}
	if len(unserved) != 1 || !strings.Contains(unserved[0], "queues 2-3") || !strings.Contains(unserved[0], "ethtool -L "+v.StackIf+" combined 2") {
		t.Errorf("warnings %q: want one naming queues 2-3 and the fix", warned)
	}
	if got, want := nic.Queue(0).(*Queue).pool.Cap(), defaultUMEMBytes/2048; got != want {
		t.Errorf("one socket per poller: %d UMEM frames, want the default %d", got, want)
	}
	nic.Close()

	nic, warned = openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 4, Pollers: 2, Addrs: stackAddr()})
	for _, w := range warned {
		if strings.Contains(w, "receive queues") {
			t.Errorf("every queue served, but warned %q", w)
		}
	}
	for i := range nic.NumQueues() {
		if got, want := nic.Queue(i).(*Queue).pool.Cap(), defaultUMEMBytes/2048/2; got != want {
			t.Errorf("queue %d of 4 polled by 2 cores: %d UMEM frames, want %d (a core's 64 MiB shared by its two queues)", i, got, want)
		}
	}
	nic.Close()

	// Queues 0: a socket on every receive queue, unasked.
	nic, warned = openOnVeth(t, v, Config{Interface: v.StackIf, Pollers: 1, Addrs: stackAddr()})
	if got := nic.NumQueues(); got != 4 {
		t.Errorf("Queues 0 on a 4-queue veth: %d sockets, want 4", got)
	}
	for _, w := range warned {
		if strings.Contains(w, "receive queues") {
			t.Errorf("every queue served by default, but warned %q", w)
		}
	}
}
