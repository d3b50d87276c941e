//go:build linux

package afxdp

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
	"github.com/mkstack/mkstack/stack/header"
)

// TestProgramLeavesLinkLocalAndAllNodesToTheKernel: with an IPv6 address
// of the stack's configured, the XDP program takes only frames to it and
// neighbour solicitations for it; the kernel on the same interface keeps
// its link-local address (made from the same MAC) and all-nodes traffic.
// The kernel peer pings the stack side's kernel at its link-local address
// (neighbour discovery to that address's solicited-node group included)
// and at ff02::1, and gets answers; the socket gets none of those frames.
// It does so twice: with an address unlike the link-local one, and with a
// SLAAC-style address (the same interface identifier, so the same
// solicited-node group as the kernel's link-local address).
func TestProgramLeavesLinkLocalAndAllNodesToTheKernel(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("needs ping")
	}
	for _, slaac := range []bool{false, true} {
		t.Run(fmt.Sprintf("slaac=%v", slaac), func(t *testing.T) { testLinkLocalToTheKernel(t, slaac) })
	}
}

func testLinkLocalToTheKernel(t *testing.T, slaac bool) {
	v := drivertest.NewVeth(t, 1)
	global := netip.MustParseAddr("fd77::1")
	if slaac {
		id := header.LinkLocalFromMAC(header.MAC(drivertest.LinkMAC(t, v.StackNS, v.StackIf)))
		id[0], id[1] = 0xfd, 0x77
		global = netip.AddrFrom16(id)
	}
	nic, _ := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 1, Addrs: append(stackAddr(), global)})
	drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
	// IPv6 on for the kernel at both ends, without duplicate address
	// detection so the link-local addresses are usable at once.
	enable := func(ifname string) func() error {
		return func() error {
			for _, kv := range [][2]string{{"accept_dad", "0"}, {"disable_ipv6", "0"}} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/"+kv[0], []byte(kv[1]), 0); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := nettest.DoIn(v.StackNS, enable(v.StackIf)); err != nil {
		t.Fatal(err)
	}
	if err := nettest.DoIn(v.KernelNS, enable(v.KernelIf)); err != nil {
		t.Fatal(err)
	}
	linkLocal := netip.AddrFrom16(header.LinkLocalFromMAC(header.MAC(nic.MAC())))
	ping := func(dst string) (string, error) {
		var out []byte
		err := nettest.DoIn(v.KernelNS, func() (err error) {
			out, err = exec.Command("ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", dst+"%"+v.KernelIf).CombinedOutput()
			return err
		})
		return string(out), err
	}
	// The address may take a moment to appear once IPv6 is on.
	var out string
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out, err = ping(linkLocal.String()); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("ping6 to the stack side's kernel at %v: %v\n%s", linkLocal, err, out)
	}
	out, err = ping("ff02::1")
	if err != nil || !strings.Contains(out, fmt.Sprintf("from %v", linkLocal)) {
		t.Fatalf("ping6 to ff02::1: no answer from the stack side's kernel %v: %v\n%s", linkLocal, err, out)
	}
	bufs := make([]*nicq.Buf, 16)
	q := nic.Queue(0)
	for range 10 {
		if n := q.Recv(bufs); n > 0 {
			t.Errorf("the socket received %d frames meant for the kernel: first %x", n, bufs[0].Bytes()[:min(62, bufs[0].Len())])
			nicq.FreeAll(bufs[:n])
		}
		time.Sleep(time.Millisecond)
	}
}
