//go:build linux

package netlab_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/mkstack/mkstack/nicq/afxdp"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab"
)

// TestVethLabSteersByRSS: on the lab's veth, every flow the kernel peer
// sends lands on the stack's queue that RSS names (the peer's egress
// steering program), as on a NIC, so no frame needs forwarding between
// cores.
func TestVethLabSteersByRSS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	n := netlab.NamesFor(fmt.Sprintf("t%d", os.Getpid()%100000))
	if err := netlab.Up(n, "afxdp", 2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := netlab.Down(n); err != nil {
			t.Error(err)
		}
	})
	sh, err := netns.GetFromName(n.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ch, err := netns.GetFromName(n.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var nic *afxdp.NIC
	err = netlab.InNS(sh, func() (err error) {
		nic, err = afxdp.Open(afxdp.Config{Interface: n.StackIf, Queues: 2, Addrs: []netip.Addr{netip.AddrFrom4(drivertest.StackIP)}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	drivertest.ConfigureKernel(t, ch, n.PeerIf, nic.MAC())
	drivertest.Exercise(t, drivertest.Setup{NIC: nic, KernelNS: ch, KernelIf: n.PeerIf, Steered: true}, 32)
}

// TestUpLeavesPeerOffloadsAtDefaults: Up leaves the kernel peer's
// transmit checksum offload as the kernel sets a veth up (on), as in a
// container; UpWith PeerOffloadsOff switches it off.
func TestUpLeavesPeerOffloadsAtDefaults(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("needs ethtool (.ci/run installs it)")
	}
	for i, defaults := range []bool{false, true} {
		n := netlab.NamesFor(fmt.Sprintf("o%d%d", os.Getpid()%100000, i))
		if err := netlab.UpWith(n, "afxdp", 1, netlab.Options{PeerOffloadsOff: !defaults}); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ip", "netns", "exec", n.Client, "ethtool", "-k", n.PeerIf).CombinedOutput()
		if _, derr := netlab.Down(n); derr != nil {
			t.Error(derr)
		}
		if err != nil {
			t.Fatalf("ethtool -k %s: %v: %s", n.PeerIf, err, out)
		}
		want := "tx-checksumming: off"
		if defaults {
			want = "tx-checksumming: on"
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("defaults=%v: want %q in\n%s", defaults, want, out)
		}
	}
}

// TestUpWithIPv6GivesThePeerItsAddress: with Options.IPv6 the kernel
// peer (the veth's peer end, the TAP's kernel side) has PeerAddr6 at once
// (no duplicate address detection: not tentative); without, it has no
// global IPv6 address, as the tests that add their own expect.
func TestUpWithIPv6GivesThePeerItsAddress(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for i, c := range []struct {
		driver string
		ipv6   bool
	}{{"afxdp", true}, {"tap", true}, {"afxdp", false}} {
		n := netlab.NamesFor(fmt.Sprintf("s%d%d", os.Getpid()%100000, i))
		if err := netlab.UpWith(n, c.driver, 1, netlab.Options{IPv6: c.ipv6}); err != nil {
			t.Fatal(err)
		}
		ns, ifname := n.PeerNS(c.driver), n.PeerIf
		if c.driver == "tap" {
			ifname = n.TapIf
		}
		out, err := exec.Command("ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "dev", ifname, "scope", "global").CombinedOutput()
		if _, derr := netlab.Down(n); derr != nil {
			t.Error(derr)
		}
		if err != nil {
			t.Fatalf("%s: ip -6 addr: %v: %s", c.driver, err, out)
		}
		has := strings.Contains(string(out), "inet6 "+netlab.PeerAddr6)
		if has != c.ipv6 || strings.Contains(string(out), "tentative") {
			t.Errorf("%s, IPv6 %v: peer's global IPv6 addresses:\n%s", c.driver, c.ipv6, out)
		}
	}
}

// TestUpWithMTU: Options.MTU is the MTU of both ends of the veth, and of
// the TAP (which the kernel creates at 1500 whatever it is asked).
func TestUpWithMTU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for i, driver := range []string{"afxdp", "tap"} {
		n := netlab.NamesFor(fmt.Sprintf("m%d%d", os.Getpid()%100000, i))
		if err := netlab.UpWith(n, driver, 1, netlab.Options{MTU: 9000}); err != nil {
			t.Fatal(err)
		}
		ends := [][2]string{{n.StackNS(driver), n.StackIface(driver)}, {n.PeerNS(driver), n.PeerIf}}
		if driver == "tap" {
			ends = ends[:1]
		}
		for _, e := range ends {
			out, err := exec.Command("ip", "netns", "exec", e[0], "cat", "/sys/class/net/"+e[1]+"/mtu").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "9000" {
				t.Errorf("%s: %s in %s: MTU %q (%v), want 9000", driver, e[1], e[0], strings.TrimSpace(string(out)), err)
			}
		}
		if _, err := netlab.Down(n); err != nil {
			t.Error(err)
		}
	}
	if err := netlab.UpWith(netlab.NamesFor("mbad"), "afxdp", 1, netlab.Options{MTU: 70000}); err == nil {
		netlab.Down(netlab.NamesFor("mbad"))
		t.Error("MTU 70000 accepted")
	}
}
