//go:build linux

package main

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
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
			l.addPeer6(t)
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

// TestDriversAgainstLinuxIPv6 is the interop suite over IPv6, on every
// driver, with the kernel peer at its default settings (fd77::2, the
// stack fd77::1): ping -6, curl -6 to http://[fd77::1]/ and a 16 MiB
// download hashed on the kernel's side, wrk over IPv6, 4 MiB echoed each
// way from a kernel socket, and the stack as a client downloading from a
// kernel server; a capture of the exchange must hold no frame from the
// stack that tshark finds malformed or with a bad checksum.
func TestDriversAgainstLinuxIPv6(t *testing.T) {
	if testing.Short() {
		t.Skip("the IPv6 interop suite runs in the full test run (about 45 s); -short leaves it out")
	}
	need(t, "ip", "ping")
	for _, driver := range []string{"afpacket", "tap", "afxdp"} {
		t.Run(driver, func(t *testing.T) {
			l := newLab(t, driver)
			l.addPeer6(t)
			capture, stopDump := "", func() {}
			if _, err := exec.LookPath("tcpdump"); err == nil {
				if _, err := exec.LookPath("tshark"); err == nil {
					capture, stopDump = l.capture(t, "ip6 host fd77::1")
					defer stopDump()
				}
			}
			stop := l.serve(t, "http", "--addr", "fd77::1/64")
			if out, err := l.exec(t, 15*time.Second, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "fd77::1"); err != nil {
				t.Errorf("ping -6: %v\n%s", err, out)
			}
			const url = "http://[fd77::1]/"
			if _, err := exec.LookPath("curl"); err == nil {
				out, err := l.exec(t, 20*time.Second, "curl", "-6", "-gsS", "--max-time", "15", url)
				if want := "hello from mkstack (2 cores)\n"; err != nil || out != want {
					t.Errorf("curl -6: %v: %q, want %q\nserve's log:\n%s", err, out, want, l.logs.String())
				}
				const dl = 16 << 20
				sum, err := l.exec(t, 60*time.Second, "sh", "-c", fmt.Sprintf("curl -6 -gsS --max-time 50 %sbytes/%d | sha256sum", url, dl))
				if want := fmt.Sprintf("%x", sha256.Sum256(httpBytes(dl))); err != nil || !strings.HasPrefix(sum, want) {
					t.Errorf("download of %d bytes over IPv6: %v: sha256 %q, want %s", dl, err, sum, want)
				}
			} else {
				if out, err := httpGet(l.dial(t, "[fd77::1]:80")); !strings.HasPrefix(out, "HTTP/1.1 200") {
					t.Errorf("GET over IPv6: %v: %q", err, out)
				}
			}
			stopDump()
			if capture != "" {
				checkCapture6(t, capture)
			}
			if _, err := exec.LookPath("wrk"); err == nil {
				out, err := l.exec(t, 30*time.Second, "wrk", "-t", "2", "-c", "16", "-d", "2s", url)
				if err != nil || !strings.Contains(out, "requests in") || strings.Contains(out, "Socket errors") || strings.Contains(out, "Non-2xx") {
					t.Errorf("wrk over IPv6: %v\n%s", err, out)
				} else {
					t.Logf("wrk over IPv6: %s", wrkSummary(out))
				}
			}
			stop()
			stop = l.serve(t, "echo", "--addr", "fd77::1/64")
			echoBytes(t, l.dial(t, "[fd77::1]:7"), 4<<20)
			stop()
			stackAsClientOver(t, l, "tcp6", "[fd77::2]:8080", []netip.Prefix{netip.MustParsePrefix("fd77::1/64")})
		})
	}
}

// checkCapture6 is checkCapture for the IPv6 exchange.
func checkCapture6(t *testing.T, file string) {
	t.Helper()
	all, err := exec.Command("tshark", "-r", file, "-Y", "ipv6.src == fd77::1", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	frames := len(strings.Fields(string(all)))
	if frames < 10 {
		t.Fatalf("the capture holds %d IPv6 frames from the stack; expected the whole exchange", frames)
	}
	// A TCP checksum may be partial by design (checkCapture).
	filter := "ipv6.src == fd77::1 && (_ws.malformed || udp.checksum.status == \"Bad\" || icmpv6.checksum.status == \"Bad\")"
	bad, err := exec.Command("tshark", "-r", file, "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-Y", filter).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if s := strings.TrimSpace(string(bad)); s != "" {
		t.Errorf("tshark marks IPv6 frames from the stack malformed or with bad checksums:\n%s", firstLines(s, 20))
	}
	partial := partialTCPChecksums(t, file, "ipv6.src == fd77::1", true)
	if partial == 0 {
		t.Errorf("no TCP segment from the stack left its checksum to the driver")
	}
	t.Logf("capture: %d IPv6 frames from the stack (%d TCP segments with the checksum partial), none malformed, no bad checksum", frames, partial)
}

// TestServeIPv6Only serves with an IPv6 --addr alone on every driver: the
// stack is IPv6-only, curl -6 reaches its http app from the kernel peer,
// and IPv4 to the lab's stack address finds no one.
func TestServeIPv6Only(t *testing.T) {
	need(t, "ip", "ping")
	for _, driver := range []string{"afpacket", "tap", "afxdp"} {
		t.Run(driver, func(t *testing.T) {
			l := newLab(t, driver)
			l.addPeer6(t)
			stop := l.serveWith(t, "http", "--addr", "fd77::1/64")
			defer stop()
			if out, err := httpGet(l.dial(t, "[fd77::1]:80")); !strings.HasPrefix(out, "HTTP/1.1 200") {
				t.Fatalf("GET over IPv6 from an IPv6-only stack: %v: %q\nserve's log:\n%s", err, out, l.logs.String())
			}
			if out, err := l.exec(t, 10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", labStackAddr); err == nil {
				t.Fatalf("an IPv6-only stack answered ping to %s:\n%s", labStackAddr, out)
			}
		})
	}
}

// addPeer6 gives the kernel peer fd77::2/64, without duplicate address
// detection so it is usable at once (the integration labs are IPv4 only).
func (l *lab) addPeer6(t *testing.T) {
	t.Helper()
	if out, err := l.exec(t, 10*time.Second, "ip", "-6", "addr", "add", "fd77::2/64", "dev", l.peerIf, "nodad"); err != nil {
		t.Fatalf("ip -6 addr add: %v\n%s", err, out)
	}
}
