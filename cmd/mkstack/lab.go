package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mkstack/mkstack/nicq/netlab"
)

func init() {
	register(command{name: "lab", summary: "create (up) or remove (down) network namespaces joined by a veth or a TAP to try serve against Linux", run: runLab})
}

// The lab's fixed plan: the stack is 10.77.0.1, the kernel peer 10.77.0.2;
// over IPv6 the stack is fd77::1, the kernel peer fd77::2.
const (
	labStackAddr    = netlab.StackAddr
	labPeerAddr     = netlab.PeerAddr
	labStackPrefix6 = netlab.StackPrefix6
	labPeerAddr6    = netlab.PeerAddr6
)

type labNames = netlab.Names

func runLab(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: mkstack lab up|down [--queues N] [--driver afxdp|afpacket|tap] [--mtu N] [--prefix P]")
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
	mtu := fs.Int("mtu", 1500, "MTU of the veth's two ends or the TAP (up to 65535; jumbo frames over afxdp use AF_XDP multi-buffer)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *queues < 1 || *queues > 64 || len(*prefix) > 8 || *prefix == "" || *mtu < 68 || *mtu > 65535 {
		fmt.Fprintln(stderr, "mkstack lab: --queues must be 1..64, --mtu 68..65535 and --prefix 1..8 characters; no arguments after the flags")
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
	// The command's lab is dual stack: the peer has its IPv6 address too.
	if err := labUpWith(names, *driver, *queues, netlab.Options{IPv6: true, MTU: *mtu}); err != nil {
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
	if n.Prefix != "mk" {
		down += " --prefix " + n.Prefix
	}
	if driver == "tap" {
		fmt.Fprintf(w, `lab up: namespace %[1]s holds the multi-queue TAP %[2]s (%[3]d queues), the kernel at %[4]s and %[8]s.

  ip netns exec %[1]s %[5]s serve --driver tap --iface %[2]s --addr %[6]s/24 --addr %[9]s --cores %[3]d --app http --port 80
  ip netns exec %[1]s curl http://%[6]s/
  ip netns exec %[1]s curl -g 'http://[%[10]s]/'
  ip netns exec %[1]s ping -c 3 %[6]s
  ip netns exec %[1]s ping -6 -c 3 %[10]s

remove it all with: %[7]s
`, n.TapNS, n.TapIf, queues, labPeerAddr, self, labStackAddr, down, labPeerAddr6, labStackPrefix6, netlab.StackAddr6)
		return
	}
	fmt.Fprintf(w, `lab up: namespaces %[1]s and %[2]s joined by the veth %[3]s <-> %[4]s (%[5]d queues each way).
The stack will be %[6]s and %[11]s on %[3]s (the kernel there has no address); the kernel peer is %[7]s and %[12]s on %[4]s.

  ip netns exec %[1]s %[8]s serve --driver %[9]s --iface %[3]s --addr %[6]s/24 --addr %[11]s --cores %[5]d --app http --port 80
  ip netns exec %[2]s curl http://%[6]s/
  ip netns exec %[2]s curl -g 'http://[%[13]s]/'
  ip netns exec %[2]s ping -c 3 %[6]s
  ip netns exec %[2]s ping -6 -c 3 %[13]s
  ip netns exec %[2]s wrk -d 5s http://%[6]s/

A veth's receive queue follows the sender's transmit queue; the lab steers %[4]s's
egress with the rss package's Toeplitz program (default key, %[5]d queues), so each flow
lands on the stack's queue that RSS names, as on a NIC (serve with --cores %[5]d to match;
what lands elsewhere the runtime forwards to its core). To pin the veth's NAPI work to CPUs: ip netns exec %[1]s sh -c 'echo 1 > /sys/class/net/%[3]s/threaded'
then move each "napi/%[3]s-N" kernel thread with taskset -pc CPU PID.

remove it all with: %[10]s
`, n.Server, n.Client, n.StackIf, n.PeerIf, queues, labStackAddr, labPeerAddr, self, driver, down, labStackPrefix6, labPeerAddr6, netlab.StackAddr6)
}

// The lab itself lives in nicq/netlab, which the bench harness's veth
// systems share.
var (
	labNamesFor = netlab.NamesFor
	labUpWith   = netlab.UpWith
	labDown     = netlab.Down
	namedNS     = netlab.NamedNS
	inNS        = netlab.InNS
)
