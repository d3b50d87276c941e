//go:build linux

package tap

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

func TestTAPAgainstKernel(t *testing.T) {
	h := nettest.NewNS(t).Handle()
	var nic *NIC
	var warned []string
	err := nettest.DoIn(h, func() (err error) {
		nic, err = Open(Config{Name: "mkt0", Queues: 2, Warn: func(m string) { warned = append(warned, m) }})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	if !nic.Steered() {
		t.Fatalf("the steering program did not attach: %v", warned)
	}
	drivertest.ConfigureKernel(t, h, "mkt0", nic.MAC())
	drivertest.Exercise(t, drivertest.Setup{NIC: nic, KernelNS: h, KernelIf: "mkt0", Steered: true}, 32)
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []Config{
		{Name: "", Queues: 1},
		{Name: "this-name-is-too-long", Queues: 1},
		{Name: "x", Queues: 0},
		{Name: "x", Queues: 300},
	} {
		if _, err := Open(c); err == nil {
			t.Errorf("Open(%+v) succeeded", c)
		}
	}
}

// TestOpenRaisesTheQueueLength: the kernel's queue for each TAP queue
// (the device's txqueuelen, 1000 when made) is raised to QueueLen's
// default, or to what Config asks; one already longer is left alone.
func TestOpenRaisesTheQueueLength(t *testing.T) {
	h := nettest.NewNS(t).Handle()
	qlen := func() int {
		var n int
		if err := nettest.DoIn(h, func() error {
			l, err := netlink.LinkByName("mkt0")
			if err == nil {
				n = l.Attrs().TxQLen
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := func(ask int) *NIC {
		var nic *NIC
		if err := nettest.DoIn(h, func() (err error) {
			nic, err = Open(Config{Name: "mkt0", Queues: 1, QueueLen: ask, NoSteering: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return nic
	}
	// A device Open makes goes when it closes.
	for _, tc := range []struct{ ask, want int }{{0, DefaultQueueLen}, {4 * DefaultQueueLen, 4 * DefaultQueueLen}} {
		nic := open(tc.ask)
		if got := qlen(); got != tc.want {
			t.Errorf("QueueLen %d: txqueuelen %d, want %d", tc.ask, got, tc.want)
		}
		nic.Close()
	}
	// A persistent one set longer (as the lab's are made) stays as it is.
	if err := nettest.DoIn(h, func() error {
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: "mkt0"},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_MULTI_QUEUE_DEFAULTS,
			Queues:    1,
		}
		if err := netlink.LinkAdd(tap); err != nil {
			return err
		}
		for _, f := range tap.Fds {
			f.Close()
		}
		return netlink.LinkSetTxQLen(tap, 3*DefaultQueueLen)
	}); err != nil {
		t.Fatal(err)
	}
	nic := open(0)
	defer nic.Close()
	if got := qlen(); got != 3*DefaultQueueLen {
		t.Errorf("a device at %d frames: txqueuelen %d after Open", 3*DefaultQueueLen, got)
	}
}

// TestOpenWithoutCapNetAdminWarnsAboutTheQueueLength: a user who owns a
// persistent TAP may attach to it without CAP_NET_ADMIN, which raising
// its queue length needs; Open then works and says why bursts may be
// lost, instead of failing.
func TestOpenWithoutCapNetAdminWarnsAboutTheQueueLength(t *testing.T) {
	h := nettest.NewNS(t).Handle()
	type result struct {
		nic    *NIC
		warned []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is left locked: with a capability dropped, it must
		// end with this goroutine rather than run any other.
		runtime.LockOSThread()
		r := result{err: netns.Set(h)}
		if r.err == nil {
			r.err = persistentTAP("mkt0", uint32(os.Getuid()))
		}
		if r.err == nil {
			r.err = dropCapability(unix.CAP_NET_ADMIN)
		}
		if r.err == nil {
			r.nic, r.err = Open(Config{Name: "mkt0", Queues: 1, NoSteering: true, Warn: func(m string) { r.warned = append(r.warned, m) }})
		}
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.nic.Close()
	if len(r.warned) != 1 || !strings.Contains(r.warned[0], "txqueuelen") || !strings.Contains(r.warned[0], "TX dropped") {
		t.Errorf("warnings %q, want one naming txqueuelen and the drop counter", r.warned)
	}
}

// persistentTAP makes a persistent multi-queue TAP owned by uid, as ip
// tuntap add mode tap multi_queue user UID does.
func persistentTAP(name string, uid uint32) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var req ifreqFlags
	copy(req.name[:], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR
	for _, op := range []struct {
		req uintptr
		arg uintptr
	}{
		{unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))},
		{unix.TUNSETOWNER, uintptr(uid)},
		{unix.TUNSETPERSIST, 1},
	} {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), op.req, op.arg); e != 0 {
			return fmt.Errorf("ioctl %#x on %s: %w", op.req, name, e)
		}
	}
	return nil
}

// dropCapability removes c from the calling thread's effective set.
func dropCapability(c int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[c/32].Effective &^= 1 << (c % 32)
	return unix.Capset(&hdr, &data[0])
}
