//go:build linux

package afxdp

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mkstack/mkstack/nicq"
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
		if got := q.pool.InUse(); got > 2*1024+64 {
			t.Errorf("queue %d: %d UMEM frames in use after the test; the fill ring holds at most %d", i, got, 2*1024)
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
	// MTU too large for 2 KiB frames.
	nl, _ := netlink.NewHandleAt(v.StackNS)
	defer nl.Close()
	l, _ := nl.LinkByName(v.StackIf)
	if err := nl.LinkSetMTU(l, 3000); err != nil {
		t.Fatal(err)
	}
	err := nettest.DoIn(v.StackNS, func() error {
		nic, err := Open(Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr()})
		if err == nil {
			nic.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Errorf("MTU 3000 with 2 KiB frames: %v", err)
	}
}
