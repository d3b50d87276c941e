//go:build linux

// Package netlab makes and removes the named network namespaces in which
// mkstack runs against the Linux kernel over a real device: two
// namespaces joined by a multi-queue veth pair (the stack drives one end
// with AF_XDP or AF_PACKET, the kernel peer owns the other), or one
// namespace holding a persistent multi-queue TAP (the stack is the
// device's user side, the kernel its other side). `mkstack lab` and the
// bench harness's veth systems both use it; it owns nothing else.
//
// The namespaces are named (bind-mounted under /run/netns, as ip netns
// add) so that other processes (ip netns exec, wrk) can enter them; the
// caller removes them with Down. Traffic between the stack and the
// kernel peer never leaves them. Every call needs root (CAP_SYS_ADMIN
// and CAP_NET_ADMIN).
package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq/linkdev"
	"github.com/mkstack/mkstack/nicq/netlab/nsthread"
	"github.com/mkstack/mkstack/rss"
)

// The fixed plan of a lab: the stack is StackAddr, the kernel peer
// PeerAddr (with its prefix); over IPv6 the stack is StackAddr6 (with
// the prefix StackPrefix6, serve --addr fd77::1/64) and the kernel peer
// PeerAddr6.
const (
	StackAddr = "10.77.0.1"
	PeerAddr  = "10.77.0.2/24"

	StackAddr6   = "fd77::1"
	StackPrefix6 = StackAddr6 + "/64"
	PeerAddr6    = "fd77::2/64"
)

// Names are a lab's namespaces and devices, all derived from one prefix.
type Names struct {
	Prefix                 string
	Server, Client, TapNS  string // namespaces
	StackIf, PeerIf, TapIf string // devices
}

// NamesFor returns the names of the lab with prefix (at most 8 bytes, so
// the device names fit IFNAMSIZ).
func NamesFor(prefix string) Names {
	return Names{
		Prefix: prefix,
		Server: prefix + "server", Client: prefix + "client", TapNS: prefix + "tap",
		StackIf: prefix + "s0", PeerIf: prefix + "c0", TapIf: prefix + "tap0",
	}
}

// StackNS and PeerNS are the namespaces of the stack's device and of the
// kernel peer for driver ("tap": both are TapNS).
func (n Names) StackNS(driver string) string {
	if driver == "tap" {
		return n.TapNS
	}
	return n.Server
}

// PeerNS: see StackNS.
func (n Names) PeerNS(driver string) string {
	if driver == "tap" {
		return n.TapNS
	}
	return n.Client
}

// StackIface is the device the stack drives for driver.
func (n Names) StackIface(driver string) string {
	if driver == "tap" {
		return n.TapIf
	}
	return n.StackIf
}

// Options shape a lab beyond its names, driver and queues.
type Options struct {
	// PeerOffloadsOff switches the kernel peer's transmit checksum and
	// segmentation offloads off (linkdev.DisableOffloads), so it sends what
	// a wire would carry: full checksums and MTU-sized frames. By default
	// they stay as the kernel sets a veth up (on), as in a container: the
	// drivers take partial checksums and large frames from such a peer.
	// It is for comparisons (bench's linux-veth-offloads-off), not for
	// the stack's sake.
	PeerOffloadsOff bool
	// IPv6 gives the kernel peer PeerAddr6 too (on the veth's peer end,
	// or the TAP's kernel side), without duplicate address detection, so
	// it is usable at once; the stack's own StackAddr6 is the stack's to
	// take (serve --addr). Without it the peer has no IPv6 address but
	// its link-local one.
	IPv6 bool
	// MTU is the devices' MTU (both ends of the veth, or the TAP); 0
	// means 1500. Above one UMEM frame the afxdp driver uses AF_XDP
	// multi-buffer.
	MTU int
}

// Up creates the namespaces and devices of n for driver ("afxdp" and
// "afpacket": a veth pair with queues queues each way; "tap": a TAP with
// queues queues); if a step fails it removes what it made. A namespace
// that exists already is an error. The peer's offloads stay at the
// kernel's defaults (see Options).
func Up(n Names, driver string, queues int) error { return UpWith(n, driver, queues, Options{}) }

// UpWith is Up with options.
func UpWith(n Names, driver string, queues int, o Options) (err error) {
	mtu := o.MTU
	if mtu == 0 {
		mtu = 1500
	}
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("MTU %d: want 68 to 65535", mtu)
	}
	var made []string
	defer func() {
		if err != nil {
			for _, name := range made {
				netns.DeleteNamed(name)
			}
		}
	}()
	newNS := func(name string) (netns.NsHandle, error) {
		if _, err := os.Stat(filepath.Join("/run/netns", name)); err == nil {
			return 0, fmt.Errorf("network namespace %s exists already: run mkstack lab down first", name)
		}
		h, err := NamedNS(name)
		if err != nil {
			return 0, fmt.Errorf("create network namespace %s: %w", name, err)
		}
		made = append(made, name)
		return h, nil
	}
	if driver == "tap" {
		h, err := newNS(n.TapNS)
		if err != nil {
			return err
		}
		defer h.Close()
		nl, err := netlink.NewHandleAt(h)
		if err != nil {
			return err
		}
		defer nl.Close()
		if err := upLoopback(nl); err != nil {
			return err
		}
		// A persistent multi-queue TAP: the stack attaches to it by name.
		var tapErr error
		err = InNS(h, func() error {
			tap := &netlink.Tuntap{
				LinkAttrs: netlink.LinkAttrs{Name: n.TapIf, MTU: mtu},
				Mode:      netlink.TUNTAP_MODE_TAP,
				Flags:     netlink.TUNTAP_MULTI_QUEUE_DEFAULTS,
				Queues:    queues,
			}
			if tapErr = netlink.LinkAdd(tap); tapErr != nil {
				return fmt.Errorf("create TAP %s: %w", n.TapIf, tapErr)
			}
			for _, f := range tap.Fds {
				f.Close()
			}
			return nil
		})
		if err != nil {
			return err
		}
		// A TAP is created at 1500 whatever the request says.
		if l, err := nl.LinkByName(n.TapIf); err != nil {
			return err
		} else if l.Attrs().MTU != mtu {
			if err := nl.LinkSetMTU(l, mtu); err != nil {
				return fmt.Errorf("MTU %d on %s: %w", mtu, n.TapIf, err)
			}
		}
		return peerAddrsUp(nl, n.TapIf, o.IPv6)
	}
	sh, err := newNS(n.Server)
	if err != nil {
		return err
	}
	defer sh.Close()
	ch, err := newNS(n.Client)
	if err != nil {
		return err
	}
	defer ch.Close()
	snl, err := netlink.NewHandleAt(sh)
	if err != nil {
		return err
	}
	defer snl.Close()
	cnl, err := netlink.NewHandleAt(ch)
	if err != nil {
		return err
	}
	defer cnl.Close()
	for _, nl := range []*netlink.Handle{snl, cnl} {
		if err := upLoopback(nl); err != nil {
			return err
		}
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: n.StackIf, NumTxQueues: queues, NumRxQueues: queues, MTU: mtu},
		PeerName:  n.PeerIf, PeerMTU: uint32(mtu),
	}
	veth.PeerNumTxQueues, veth.PeerNumRxQueues = uint32(queues), uint32(queues)
	if err := snl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s/%s: %w", n.StackIf, n.PeerIf, err)
	}
	peer, err := snl.LinkByName(n.PeerIf)
	if err != nil {
		return err
	}
	if err := snl.LinkSetNsFd(peer, int(ch)); err != nil {
		return fmt.Errorf("move %s into %s: %w", n.PeerIf, n.Client, err)
	}
	stackLink, err := snl.LinkByName(n.StackIf)
	if err != nil {
		return err
	}
	if err := snl.LinkSetUp(stackLink); err != nil {
		return err
	}
	if o.PeerOffloadsOff {
		if err := InNS(ch, func() error { return linkdev.DisableOffloads(n.PeerIf) }); err != nil {
			return fmt.Errorf("offloads off on %s: %w", n.PeerIf, err)
		}
	}
	// The peer steers each flow to the stack's queue that RSS names, as a
	// NIC would (a veth otherwise follows the kernel's own flow hash).
	if err := steerPeer(ch, n.PeerIf, queues); err != nil {
		return fmt.Errorf("RSS steering on %s: %w", n.PeerIf, err)
	}
	return peerAddrsUp(cnl, n.PeerIf, o.IPv6)
}

// peerAddrsUp gives the kernel peer's device its address (and with ipv6
// its IPv6 one) and sets it up.
func peerAddrsUp(nl *netlink.Handle, ifname string, ipv6 bool) error {
	if ipv6 {
		if err := addrAdd(nl, ifname, PeerAddr6); err != nil {
			return err
		}
	}
	return addrUp(nl, ifname, PeerAddr)
}

func upLoopback(nl *netlink.Handle) error {
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return err
	}
	return nl.LinkSetUp(lo)
}

// addrUp adds cidr to ifname (addrAdd) and sets the device up.
func addrUp(nl *netlink.Handle, ifname, cidr string) error {
	if err := addrAdd(nl, ifname, cidr); err != nil {
		return err
	}
	l, err := nl.LinkByName(ifname)
	if err != nil {
		return err
	}
	return nl.LinkSetUp(l)
}

// addrAdd adds cidr to ifname; an IPv6 address skips duplicate address
// detection (ip addr add ... nodad), so it is usable at once rather than
// tentative for a second or more: the lab's addresses are its own.
func addrAdd(nl *netlink.Handle, ifname, cidr string) error {
	l, err := nl.LinkByName(ifname)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if a.IP.To4() == nil {
		a.Flags |= unix.IFA_F_NODAD
	}
	if err := nl.AddrAdd(l, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", cidr, ifname, err)
	}
	return nil
}

// Down removes the lab's namespaces (their devices go with them) and
// returns the names it removed.
func Down(n Names) (removed []string, err error) {
	var errs []error
	for _, name := range []string{n.Server, n.Client, n.TapNS} {
		if _, statErr := os.Stat(filepath.Join("/run/netns", name)); statErr != nil {
			continue
		}
		if derr := netns.DeleteNamed(name); derr != nil {
			errs = append(errs, fmt.Errorf("remove network namespace %s: %w", name, derr))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// NamedNS creates a named namespace (as ip netns add) without moving any
// other thread.
func NamedNS(name string) (netns.NsHandle, error) { return nsthread.NewNamed(name) }

// InNS runs fn on a locked thread inside h. Sockets and devices fn opens
// belong to h and keep working from any thread.
func InNS(h netns.NsHandle, fn func() error) error { return nsthread.Do(h, fn) }

// InNamedNS runs fn as InNS inside the namespace called name.
func InNamedNS(name string, fn func() error) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer h.Close()
	return InNS(h, fn)
}

// KernelAddr gives the kernel in namespace ns the address cidr on ifname
// (an IPv6 one without duplicate address detection) and sets the device
// up: the kernel then serves on the device the stack
// would drive (bench's linux-veth baselines). With offloadsOff the
// device's transmit offloads are switched off as the peer's are by UpWith
// with PeerOffloadsOff (see linkdev.DisableOffloads); otherwise they stay
// at the kernel's defaults.
func KernelAddr(ns netns.NsHandle, ifname, cidr string, offloadsOff bool) error {
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer nl.Close()
	if offloadsOff {
		if err := InNS(ns, func() error { return linkdev.DisableOffloads(ifname) }); err != nil {
			return fmt.Errorf("offloads off on %s: %w", ifname, err)
		}
	}
	return addrUp(nl, ifname, cidr)
}

// steerPeer attaches the rss package's egress steering program, for the
// default key and an equal table over queues (what a driver assumes of a
// NIC whose RSS it cannot read), to ifname's egress in h, as a clsact
// filter that lasts as long as the device.
func steerPeer(h netns.NsHandle, ifname string, queues int) error {
	cfg, err := rss.NewConfig(rss.Options{Queues: queues})
	if err != nil {
		return err
	}
	p, err := rss.NewEgressSteeringProgram(cfg)
	if err != nil {
		return err
	}
	defer p.Close() // the filter keeps its own reference
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return err
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	qd := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := nl.QdiscAdd(qd); err != nil {
		return fmt.Errorf("clsact qdisc: %w", err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1},
		Fd:          p.FD(), Name: "mkstack_rss", DirectAction: true,
	}
	if err := nl.FilterAdd(f); err != nil {
		return fmt.Errorf("egress filter: %w", err)
	}
	return nil
}
