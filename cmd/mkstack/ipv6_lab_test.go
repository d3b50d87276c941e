//go:build linux

package main

import (
	"fmt"
	"io"
	"os/exec"
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

// TestServeHTTPAndEchoOverIPv6 serves net/http and then the echo app with
// an IPv6 --addr on every driver, and reaches both from the kernel peer at
// its default settings over IPv6: curl to http://[fd77::1]/ (or Go's
// client without curl), and 4 MiB each way through the echo app from a
// kernel socket, so segments in both directions cross with the IPv6
// pseudo-header's checksums (partial ones from the kernel included).
func TestServeHTTPAndEchoOverIPv6(t *testing.T) {
	need(t, "ip")
	for _, driver := range []string{"afpacket", "tap", "afxdp"} {
		t.Run(driver, func(t *testing.T) {
			l := newLab(t, driver)
			if out, err := l.exec(t, 10*time.Second, "ip", "-6", "addr", "add", "fd77::2/64", "dev", l.peerIf, "nodad"); err != nil {
				t.Fatalf("ip -6 addr add: %v\n%s", err, out)
			}
			stop := l.serve(t, "http", "--addr", "fd77::1/64")
			if _, err := exec.LookPath("curl"); err == nil {
				out, err := l.exec(t, 20*time.Second, "curl", "-6", "-gsS", "--max-time", "15", "http://[fd77::1]/")
				if err != nil || !strings.Contains(out, "mkstack") {
					t.Errorf("curl -6: %v: %q\nserve's log:\n%s", err, out, l.logs.String())
				}
			} else {
				c := l.dial(t, "[fd77::1]:80")
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				out, err := io.ReadAll(c)
				c.Close()
				if !strings.HasPrefix(string(out), "HTTP/1.1 200") {
					t.Errorf("GET over IPv6: %v: %q", err, out)
				}
			}
			stop()
			stop = l.serve(t, "echo", "--addr", "fd77::1/64")
			defer stop()
			echoBytes(t, l.dial(t, "[fd77::1]:7"), 4<<20)
		})
	}
}
