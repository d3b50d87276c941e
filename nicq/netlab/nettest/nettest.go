//go:build linux

// Package nettest gives tests network namespaces of their own, with veth
// pairs and multi-queue TAP devices inside them, so that driver and ethtool
// tests exercise the real kernel without touching the machine's own
// interfaces.
//
// Every namespace a test makes is unnamed (no bind mount under
// /run/netns): it lives while the test holds its handle and the kernel
// destroys it, with every device in it, when the handle is closed in the
// test's Cleanup, also when the test fails. Traffic a test sends through
// these devices never leaves its namespace.
//
// Tests that need these helpers call RequireNetAdmin first; it skips them
// with the reason when the process is not allowed to create namespaces.
package nettest

import (
	"fmt"
	"os"
	"testing"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq/netlab/nsthread"
)

// RequireNetAdmin skips t unless the process runs as root with
// CAP_NET_ADMIN in its effective set, which namespaces, veth and TAP need.
func RequireNetAdmin(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to create network namespaces (euid %d)", os.Geteuid())
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Skipf("needs CAP_NET_ADMIN; capget failed: %v", err)
	}
	if data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) == 0 {
		t.Skip("needs CAP_NET_ADMIN in the effective capability set")
	}
}

// NS is a network namespace made for one test.
type NS struct {
	handle netns.NsHandle
	nl     *netlink.Handle
}

// NewNS makes a new network namespace, holding only a loopback device
// (down), and destroys it when t ends.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequireNetAdmin(t)
	handle, err := nsthread.New()
	if err != nil {
		t.Fatalf("nettest: %v", err)
	}
	ns := &NS{handle: handle}
	t.Cleanup(func() {
		if ns.nl != nil {
			ns.nl.Close()
		}
		// The last reference to the namespace goes with the handle, unless
		// the test leaks a socket or device file opened inside it.
		ns.handle.Close()
	})
	nl, err := netlink.NewHandleAt(handle)
	if err != nil {
		t.Fatalf("nettest: netlink handle in new namespace: %v", err)
	}
	ns.nl = nl
	return ns
}

// Handle is the namespace's file descriptor, valid until the test ends.
func (ns *NS) Handle() netns.NsHandle { return ns.handle }

// Netlink is a netlink handle whose socket lives in the namespace, so its
// link and address calls act there whatever thread makes them.
func (ns *NS) Netlink() *netlink.Handle { return ns.nl }

// Do runs fn inside the namespace on a locked OS thread of its own and
// returns fn's error. Sockets and devices fn opens stay in the namespace
// after it returns; close them before the test ends or the namespace
// outlives it. fn runs on another goroutine: it must not call t.Fatal.
func (ns *NS) Do(fn func() error) error { return DoIn(ns.handle, fn) }

// DoIn is Do for any namespace handle (one a test did not make with NewNS,
// such as a named namespace of the lab).
func DoIn(h netns.NsHandle, fn func() error) error { return nsthread.Do(h, fn) }

// VethPair makes a veth pair nameA <-> nameB inside ns, each end with
// queues receive and transmit queues, and sets both up. The devices go
// with the namespace.
func VethPair(t testing.TB, ns *NS, nameA, nameB string, queues int) (a, b netlink.Link) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: nameA, NumTxQueues: queues, NumRxQueues: queues},
		PeerName:  nameB,
	}
	veth.PeerNumTxQueues = uint32(queues)
	veth.PeerNumRxQueues = uint32(queues)
	if err := ns.nl.LinkAdd(veth); err != nil {
		t.Fatalf("nettest: add veth %s/%s with %d queues: %v", nameA, nameB, queues, err)
	}
	for _, name := range []string{nameA, nameB} {
		l, err := ns.nl.LinkByName(name)
		if err != nil {
			t.Fatalf("nettest: find %s: %v", name, err)
		}
		if err := ns.nl.LinkSetUp(l); err != nil {
			t.Fatalf("nettest: set %s up: %v", name, err)
		}
		if name == nameA {
			a = l
		} else {
			b = l
		}
	}
	return a, b
}

// Tap makes a multi-queue TAP device (IFF_TAP|IFF_NO_PI|IFF_MULTI_QUEUE)
// called name inside ns with the given number of queues, sets it up, and
// returns one non-blocking file per queue, queue i first attached as i.
// Reading a file gives the Ethernet frames the kernel transmits through
// that queue. The files are closed, and the device destroyed, when t ends.
func Tap(t testing.TB, ns *NS, name string, queues int) []*os.File {
	t.Helper()
	if queues < 1 {
		t.Fatalf("nettest: TAP %s needs at least one queue, got %d", name, queues)
	}
	if len(name) >= unix.IFNAMSIZ {
		t.Fatalf("nettest: TAP name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	files := make([]*os.File, 0, queues)
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	err := ns.Do(func() error {
		for i := 0; i < queues; i++ {
			// The device is created in the namespace of the thread that
			// issues the first TUNSETIFF, which is why this runs in Do.
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return fmt.Errorf("open /dev/net/tun: %w", err)
			}
			var ifr struct {
				name  [unix.IFNAMSIZ]byte
				flags uint16
				_     [unsafe.Sizeof(unix.Ifreq{}) - unix.IFNAMSIZ - 2]byte
			}
			copy(ifr.name[:], name)
			ifr.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
				unix.Close(fd)
				return fmt.Errorf("TUNSETIFF %s queue %d: %w", name, i, errno)
			}
			// Only now hand the descriptor to Go's poller: an unattached
			// tun file polls as an error, which would leave the file
			// unpollable for good.
			files = append(files, os.NewFile(uintptr(fd), fmt.Sprintf("%s-q%d", name, i)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("nettest: make TAP %s with %d queues: %v", name, queues, err)
	}
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("nettest: find %s: %v", name, err)
	}
	if err := ns.nl.LinkSetUp(l); err != nil {
		t.Fatalf("nettest: set %s up: %v", name, err)
	}
	return files
}
