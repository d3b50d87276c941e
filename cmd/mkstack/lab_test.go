package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

func labPrefix() string { return fmt.Sprintf("t%03d", rand.IntN(1000)) }

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

func TestLabUpMakesAVethLabAndDownRemovesIt(t *testing.T) {
	nettest.RequireNetAdmin(t)
	p := labPrefix()
	n := labNamesFor(p)
	t.Cleanup(func() { labDown(n) })
	var out, errOut bytes.Buffer
	if code := run([]string{"lab", "up", "--prefix", p, "--queues", "3"}, &out, &errOut); code != 0 {
		t.Fatalf("up: %d %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "serve --driver afxdp --iface "+n.StackIf) {
		t.Fatalf("no serve command in:\n%s", out.String())
	}
	// The usage serves the stack on both families.
	if !strings.Contains(out.String(), "--addr 10.77.0.1/24 --addr fd77::1/64") {
		t.Errorf("the serve command does not give the stack fd77::1/64:\n%s", out.String())
	}
	// The kernel peer has its addresses, the IPv6 one usable at once; the
	// stack's side has queues and no address.
	got, err := exec.Command("ip", "netns", "exec", n.Client, "ip", "-br", "-4", "addr", "show", n.PeerIf).CombinedOutput()
	if err != nil || !strings.Contains(string(got), "10.77.0.2/24") {
		t.Fatalf("peer address: %s %v", got, err)
	}
	checkPeerIPv6(t, n.Client, n.PeerIf)
	got, err = exec.Command("ip", "netns", "exec", n.Server, "ip", "-6", "addr", "show", "scope", "global", "dev", n.StackIf).CombinedOutput()
	if err != nil || strings.Contains(string(got), "inet6") {
		t.Errorf("the stack's side has a global IPv6 address: %s %v", got, err)
	}
	q, err := exec.Command("ip", "netns", "exec", n.Server, "ls", "/sys/class/net/"+n.StackIf+"/queues").CombinedOutput()
	if err != nil || strings.Count(string(q), "rx-") != 3 {
		t.Fatalf("queues of %s: %s %v", n.StackIf, q, err)
	}
	// A second up refuses and leaves the first lab alone.
	if code := run([]string{"lab", "up", "--prefix", p}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "exists already") {
		t.Fatalf("second up: %d %s", code, errOut.String())
	}
	if !nsExists(n.Server) || !nsExists(n.Client) {
		t.Fatal("a failed up removed the lab that was there")
	}
	out.Reset()
	if code := run([]string{"lab", "down", "--prefix", p}, &out, &errOut); code != 0 {
		t.Fatalf("down: %d %s", code, errOut.String())
	}
	if nsExists(n.Server) || nsExists(n.Client) {
		t.Fatal("namespaces left after down")
	}
	out.Reset()
	run([]string{"lab", "down", "--prefix", p}, &out, &errOut)
	if !strings.Contains(out.String(), "nothing to remove") {
		t.Fatalf("second down: %s", out.String())
	}
}

func TestLabUpWithTapMakesAPersistentMultiQueueTap(t *testing.T) {
	nettest.RequireNetAdmin(t)
	p := labPrefix()
	n := labNamesFor(p)
	t.Cleanup(func() { labDown(n) })
	var out, errOut bytes.Buffer
	if code := run([]string{"lab", "up", "--prefix", p, "--driver", "tap", "--queues", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("up: %d %s", code, errOut.String())
	}
	got, err := exec.Command("ip", "netns", "exec", n.TapNS, "ip", "-d", "link", "show", n.TapIf).CombinedOutput()
	if err != nil || !strings.Contains(string(got), "multi_queue") || !strings.Contains(string(got), "tun type tap") {
		t.Fatalf("tap: %s %v", got, err)
	}
	checkPeerIPv6(t, n.TapNS, n.TapIf)
	if !strings.Contains(out.String(), "serve --driver tap --iface "+n.TapIf+" --addr 10.77.0.1/24 --addr fd77::1/64") {
		t.Errorf("the serve command does not give the stack fd77::1/64:\n%s", out.String())
	}
	if code := run([]string{"lab", "down", "--prefix", p}, &out, &errOut); code != 0 || nsExists(n.TapNS) {
		t.Fatalf("down: %d %s", code, errOut.String())
	}
}

// checkPeerIPv6 fails t unless ifname in namespace ns has fd77::2/64, not
// tentative (added without duplicate address detection).
func checkPeerIPv6(t *testing.T, ns, ifname string) {
	t.Helper()
	got, err := exec.Command("ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "dev", ifname).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -6 addr show %s: %v\n%s", ifname, err, got)
	}
	var line string
	for l := range strings.Lines(string(got)) {
		if strings.Contains(l, "inet6 fd77::2/64") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("%s has no fd77::2/64:\n%s", ifname, got)
	}
	if strings.Contains(line, "tentative") || !strings.Contains(line, "nodad") {
		t.Errorf("fd77::2/64 on %s is not nodad or is tentative: %s", ifname, line)
	}
}

func TestLabUpCleansUpWhenAStepFails(t *testing.T) {
	nettest.RequireNetAdmin(t)
	p := labPrefix()
	n := labNamesFor(p)
	t.Cleanup(func() { labDown(n) })
	// Make the second namespace's name taken: up must fail and remove the
	// first one it made.
	if _, err := namedNS(n.Client); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"lab", "up", "--prefix", p}, &out, &errOut); code != 1 {
		t.Fatalf("up over a taken name: %d", code)
	}
	if nsExists(n.Server) {
		t.Fatal("the server namespace of the failed up was left behind")
	}
}

func TestLabRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{{"lab"}, {"lab", "sideways"}, {"lab", "up", "--queues", "0"}, {"lab", "up", "--driver", "dpdk"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}
