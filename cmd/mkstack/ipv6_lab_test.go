//go:build linux

package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeAnswersPing6 serves with --addr6 on every driver (AF_XDP's
// program redirects the address and its solicited-node group) and pings
// the stack's IPv6 address from the kernel peer: the kernel resolves it
// with neighbour discovery, which the stack answers, and every echo comes
// back.
func TestServeAnswersPing6(t *testing.T) {
	need(t, "ip", "ping")
	for _, driver := range []string{"afpacket", "tap", "afxdp"} {
		t.Run(driver, func(t *testing.T) {
			l := newLab(t, driver)
			stop := l.serve(t, "echo", "--addr6", "fd77::1/64")
			defer stop()
			if out, err := l.exec(t, 10*time.Second, "ip", "-6", "addr", "add", "fd77::2/64", "dev", l.peerIf, "nodad"); err != nil {
				t.Fatalf("ip -6 addr add: %v\n%s", err, out)
			}
			out, err := l.exec(t, 30*time.Second, "ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", "fd77::1")
			t.Logf("%s", out)
			m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out)
			if err != nil || m == nil || m[1] != m[2] {
				t.Fatalf("ping -6: %v\n%s\nserve's log:\n%s", err, out, l.logs.String())
			}
			neigh, _ := l.exec(t, 10*time.Second, "ip", "-6", "neigh", "show", "fd77::1")
			if !strings.Contains(neigh, "lladdr") {
				t.Errorf("the kernel has no neighbour entry for the stack: %q", neigh)
			}
		})
	}
}
