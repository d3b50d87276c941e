package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mkstack/mkstack/nicq/linkdev"
)

func init() {
	register(command{name: "lab", summary: "create (up) or remove (down) network namespaces joined by a veth or a TAP to try serve against Linux", run: runLab})
}

// The lab's fixed plan: the stack is 10.77.0.1, the kernel peer 10.77.0.2.
const (
	labStackAddr = "10.77.0.1"
	labPeerAddr  = "10.77.0.2/24"
)

type labNames struct {
	prefix                 string
	server, client, tapNS  string // namespaces
	stackIf, peerIf, tapIf string // devices
}

func labNamesFor(prefix string) labNames {
	return labNames{
		prefix: prefix,
		server: prefix + "server", client: prefix + "client", tapNS: prefix + "tap",
		stackIf: prefix + "s0", peerIf: prefix + "c0", tapIf: prefix + "tap0",
	}
}

func runLab(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: mkstack lab up|down [--queues N] [--driver afxdp|afpacket|tap] [--prefix P]")
	}
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		usage()
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("lab "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	queues := fs.Int("queues", 2, "queues of the veth or TAP (one per stack core)")
	driver := fs.String("driver", "afxdp", "the driver serve will use: afxdp or afpacket (a veth pair) or tap (a TAP device)")
	prefix := fs.String("prefix", "mk", "prefix of the namespace and device names")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *queues < 1 || *queues > 64 || len(*prefix) > 8 || *prefix == "" {
		fmt.Fprintln(stderr, "mkstack lab: --queues must be 1..64 and --prefix 1..8 characters; no arguments after the flags")
		usage()
		return 2
	}
	switch *driver {
	case "afxdp", "afpacket", "tap":
	default:
		fmt.Fprintf(stderr, "mkstack lab: --driver %q: want afxdp, afpacket or tap\n", *driver)
		return 2
	}
	names := labNamesFor(*prefix)
	if verb == "down" {
		removed, err := labDown(names)
		for _, n := range removed {
			fmt.Fprintf(stdout, "removed network namespace %s\n", n)
		}
		if err != nil {
			fmt.Fprintln(stderr, "mkstack lab down:", err)
			return 1
		}
		if len(removed) == 0 {
			fmt.Fprintln(stdout, "nothing to remove")
		}
		return 0
	}
	if err := labUp(names, *driver, *queues); err != nil {
		fmt.Fprintln(stderr, "mkstack lab up:", err)
		if errors.Is(err, os.ErrPermission) {
			fmt.Fprintln(stderr, "mkstack lab up: creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run it with sudo")
		}
		return 1
	}
	labPrintUsage(stdout, names, *driver, *queues)
	return 0
}

func labPrintUsage(w io.Writer, n labNames, driver string, queues int) {
	self, _ := os.Executable()
	if self == "" || strings.Contains(self, "go-build") {
		self = "go run ./cmd/mkstack" // under go run, the binary is a temporary file
	}
	down := self + " lab down"
	if n.prefix != "mk" {
		down += " --prefix " + n.prefix
	}
	if driver == "tap" {
		fmt.Fprintf(w, `lab up: namespace %[1]s holds the multi-queue TAP %[2]s (%[3]d queues), the kernel at %[4]s.

  ip netns exec %[1]s %[5]s serve --driver tap --iface %[2]s --addr %[6]s/24 --cores %[3]d --app http --port 80
  ip netns exec %[1]s curl http://%[6]s/
  ip netns exec %[1]s ping -c 3 %[6]s

remove it all with: %[7]s
`, n.tapNS, n.tapIf, queues, labPeerAddr, self, labStackAddr, down)
		return
	}
	fmt.Fprintf(w, `lab up: namespaces %[1]s and %[2]s joined by the veth %[3]s <-> %[4]s (%[5]d queues each way).
The stack will be %[6]s on %[3]s (the kernel there has no address); the kernel peer is %[7]s on %[4]s.

  ip netns exec %[1]s %[8]s serve --driver %[9]s --iface %[3]s --addr %[6]s/24 --cores %[5]d --app http --port 80
  ip netns exec %[2]s curl http://%[6]s/
  ip netns exec %[2]s ping -c 3 %[6]s
  ip netns exec %[2]s wrk -d 5s http://%[6]s/

A veth receive queue is chosen by the sender's flow hash, so flows spread over the
stack's cores without RSS; the runtime forwards what lands on the wrong core. To pin the
veth's NAPI work to CPUs: ip netns exec %[1]s sh -c 'echo 1 > /sys/class/net/%[3]s/threaded'
then move each "napi/%[3]s-N" kernel thread with taskset -pc CPU PID.

remove it all with: %[10]s
`, n.server, n.client, n.stackIf, n.peerIf, queues, labStackAddr, labPeerAddr, self, driver, down)
}

// labUp creates the namespaces and devices; if a step fails it removes
// what it made.
func labUp(n labNames, driver string, queues int) (err error) {
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
		h, err := namedNS(name)
		if err != nil {
			return 0, fmt.Errorf("create network namespace %s: %w", name, err)
		}
		made = append(made, name)
		return h, nil
	}
	if driver == "tap" {
		h, err := newNS(n.tapNS)
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
		// A persistent multi-queue TAP: serve attaches to it by name.
		var tapErr error
		err = inNS(h, func() error {
			tap := &netlink.Tuntap{
				LinkAttrs: netlink.LinkAttrs{Name: n.tapIf, MTU: 1500},
				Mode:      netlink.TUNTAP_MODE_TAP,
				Flags:     netlink.TUNTAP_MULTI_QUEUE_DEFAULTS,
				Queues:    queues,
			}
			if tapErr = netlink.LinkAdd(tap); tapErr != nil {
				return fmt.Errorf("create TAP %s: %w", n.tapIf, tapErr)
			}
			for _, f := range tap.Fds {
				f.Close()
			}
			return nil
		})
		if err != nil {
			return err
		}
		return addrUp(nl, n.tapIf, labPeerAddr)
	}
	sh, err := newNS(n.server)
	if err != nil {
		return err
	}
	defer sh.Close()
	ch, err := newNS(n.client)
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
		LinkAttrs: netlink.LinkAttrs{Name: n.stackIf, NumTxQueues: queues, NumRxQueues: queues, MTU: 1500},
		PeerName:  n.peerIf,
	}
	veth.PeerNumTxQueues, veth.PeerNumRxQueues = uint32(queues), uint32(queues)
	if err := snl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s/%s: %w", n.stackIf, n.peerIf, err)
	}
	peer, err := snl.LinkByName(n.peerIf)
	if err != nil {
		return err
	}
	if err := snl.LinkSetNsFd(peer, int(ch)); err != nil {
		return fmt.Errorf("move %s into %s: %w", n.peerIf, n.client, err)
	}
	stackLink, err := snl.LinkByName(n.stackIf)
	if err != nil {
		return err
	}
	if err := snl.LinkSetUp(stackLink); err != nil {
		return err
	}
	// The kernel peer sends what a wire would carry: full checksums and
	// MTU-sized segments (see linkdev.DisableOffloads).
	if err := inNS(ch, func() error { return linkdev.DisableOffloads(n.peerIf) }); err != nil {
		return fmt.Errorf("offloads off on %s: %w", n.peerIf, err)
	}
	return addrUp(cnl, n.peerIf, labPeerAddr)
}

func upLoopback(nl *netlink.Handle) error {
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return err
	}
	return nl.LinkSetUp(lo)
}

func addrUp(nl *netlink.Handle, ifname, cidr string) error {
	l, err := nl.LinkByName(ifname)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := nl.AddrAdd(l, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", cidr, ifname, err)
	}
	return nl.LinkSetUp(l)
}

// labDown removes the lab's namespaces (their devices go with them).
func labDown(n labNames) (removed []string, err error) {
	var errs []error
	for _, name := range []string{n.server, n.client, n.tapNS} {
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

// namedNS creates a named namespace (as ip netns add) on a locked thread
// and puts the thread back; a thread that cannot go back dies locked.
func namedNS(name string) (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			netns.Set(orig)
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		if err := netns.Set(orig); err != nil {
			done <- result{h: h, err: err}
			return
		}
		runtime.UnlockOSThread()
		done <- result{h: h}
	}()
	r := <-done
	return r.h, r.err
}

// inNS runs fn on a locked thread inside h.
func inNS(h netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			done <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
