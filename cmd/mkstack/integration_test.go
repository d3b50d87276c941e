//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/netlab"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

var echoMiB = flag.Int("echo-mib", 64, "MiB the driver integration tests echo through the stack")

// lab is one driver's test network, made by labUpWith under a unique prefix
// (without the peer's IPv6 address unless the options ask, as the tests
// that add it want).
type lab struct {
	driver            string
	names             labNames
	stackNS, clientNS string // namespace names
	iface, peerIf     string
	logs              *syncBuffer // the running serve's log
}

func newLab(t *testing.T, driver string) *lab { return newLabQueues(t, driver, 2) }

func newLabQueues(t *testing.T, driver string, queues int) *lab {
	t.Helper()
	return newLabWith(t, driver, queues, netlab.Options{})
}

// newLabWith is newLabQueues with the lab's options (an MTU).
func newLabWith(t *testing.T, driver string, queues int, o netlab.Options) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, veth, TAP, XDP")
	}
	letter := map[string]string{"afxdp": "x", "afpacket": "p", "tap": "t"}[driver]
	names := labNamesFor(fmt.Sprintf("i%d%s", os.Getpid()%100000, letter))
	t.Cleanup(func() {
		if _, err := labDown(names); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err := labUpWith(names, driver, queues, o); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	l := &lab{driver: driver, names: names, stackNS: names.Server, clientNS: names.Client, iface: names.StackIf, peerIf: names.PeerIf}
	if driver == "tap" {
		l.stackNS, l.clientNS, l.iface, l.peerIf = names.TapNS, names.TapNS, names.TapIf, names.TapIf
	}
	return l
}

func (l *lab) ns(t *testing.T, name string) netns.NsHandle {
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// openInStackNS opens the driver's NIC inside the stack's namespace; its
// descriptors then work from any thread.
func (l *lab) openInStackNS(t *testing.T) openDriver {
	h := l.ns(t, l.stackNS)
	open := drivers[l.driver]
	return func(o driverOptions) (nic nicq.NIC, closeNIC func(), err error) {
		err = inNS(h, func() error {
			nic, closeNIC, err = open(o)
			return err
		})
		return
	}
}

// serve runs mkstack serve with the driver until the returned stop.
func (l *lab) serve(t *testing.T, app string, extra ...string) (stop func()) {
	t.Helper()
	return l.serveWith(t, app, append([]string{"--addr", labStackAddr + "/24"}, extra...)...)
}

// serveWith is serve without the lab's IPv4 address: extra gives the
// addresses.
func (l *lab) serveWith(t *testing.T, app string, extra ...string) (stop func()) {
	t.Helper()
	o, code := parseServe(append([]string{"--driver", l.driver, "--iface", l.iface, "--cores", "2", "--app", app}, extra...), io.Discard)
	if code != 0 {
		t.Fatalf("parse: %d", code)
	}
	orig := drivers[l.driver]
	drivers[l.driver] = l.openInStackNS(t)
	defer func() { drivers[l.driver] = orig }()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	logBuf := &syncBuffer{}
	l.logs = logBuf
	go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(logBuf, nil)), &out) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "serving "); time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, logBuf.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logBuf.String())
		}
	}
	t.Logf("serve %s: %s", app, firstLines(logBuf.String(), 4))
	return func() {
		cancel()
		select {
		case err := <-done:
			t.Logf("serve %s stopped: %s", app, lastLine(logBuf.String()))
			if err != nil {
				t.Errorf("serve: %v\n%s", err, logBuf.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop within 20 s of its signal")
		}
	}
}

// exec runs a command in the client's namespace.
func (l *lab) exec(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.clientNS}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dial opens a kernel TCP connection from the client's namespace.
func (l *lab) dial(t *testing.T, addr string) net.Conn {
	var c net.Conn
	err := inNS(l.ns(t, l.clientNS), func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("kernel dial %s: %v", addr, err)
	}
	return c
}

func need(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (.ci/run installs it)", tool)
		}
	}
}

// TestDriversAgainstLinux is the drivers' interop suite: for each driver,
// the kernel peer in the lab's other namespace pings the stack, fetches a
// page and a download from its net/http server with curl, loads it with
// wrk, echoes 64 MiB through its echo server, and serves a file the stack
// downloads as a client; a capture of the traffic must have no malformed
// frame and no bad checksum from the stack.
func TestDriversAgainstLinux(t *testing.T) {
	if testing.Short() {
		t.Skip("the interop suite runs in the full test run (about a minute); -short leaves it out")
	}
	need(t, "ip", "ping", "curl", "wrk", "tcpdump", "tshark")
	for _, d := range []string{"afxdp", "afpacket", "tap"} {
		t.Run(d, func(t *testing.T) { testDriver(t, d) })
	}
}

func testDriver(t *testing.T, driver string) {
	l := newLab(t, driver)
	url := "http://" + labStackAddr + "/"

	// Capture on the kernel peer's device from the first frame.
	capFile, stopDump := l.capture(t, "host", labStackAddr)
	defer stopDump()

	phase := time.Now()
	lap := func(what string) {
		t.Logf("%s: %v", what, time.Since(phase).Round(time.Millisecond))
		phase = time.Now()
	}
	stop := l.serve(t, "http")
	lap("serve up")
	if out, err := l.exec(t, 15*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", labStackAddr); err != nil {
		t.Errorf("ping: %v\n%s", err, out)
	}
	lap("ping")
	body, err := l.exec(t, 15*time.Second, "curl", "-sS", "--max-time", "10", url)
	if want := "hello from mkstack (2 cores)\n"; err != nil || body != want {
		t.Errorf("curl %s: %v: %q, want %q", url, err, body, want)
	}
	// A 16 MiB download, hashed on the kernel's side.
	const dl = 16 << 20
	sum, err := l.exec(t, 60*time.Second, "sh", "-c", fmt.Sprintf("curl -sS --max-time 50 %sbytes/%d | sha256sum", url, dl))
	if want := fmt.Sprintf("%x", sha256.Sum256(httpBytes(dl))); err != nil || !strings.HasPrefix(sum, want) {
		t.Errorf("download of %d bytes: %v: sha256 %q, want %s", dl, err, sum, want)
	}
	// A 16 MiB upload from a file, hashed on the stack's side.
	up := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(up, httpBytes(dl), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := l.exec(t, 60*time.Second, "curl", "-sS", "--max-time", "50", "--data-binary", "@"+up, url+"upload")
	if want := fmt.Sprintf("%d bytes, sha256 %x\n", dl, sha256.Sum256(httpBytes(dl))); err != nil || got != want {
		t.Errorf("upload of %d bytes: %v: %q, want %q", dl, err, got, want)
	}
	lap("curl")
	stopDump()
	checkCapture(t, capFile)
	lap("capture")

	out, err := l.exec(t, 30*time.Second, "wrk", "-t", "2", "-c", "16", "-d", "5s", url)
	if err != nil || !strings.Contains(out, "requests in") || strings.Contains(out, "Socket errors") || strings.Contains(out, "Non-2xx") {
		t.Errorf("wrk: %v\n%s", err, out)
	} else {
		t.Logf("wrk: %s", wrkSummary(out))
	}
	// HTTP/2 over cleartext with prior knowledge, h2load's default:
	// 2000 requests on 10 connections, 10 streams at a time on each.
	if _, err := exec.LookPath("h2load"); err == nil {
		out, err := l.exec(t, 30*time.Second, "h2load", "-n", "2000", "-c", "10", "-m", "10", url)
		if err != nil || !strings.Contains(out, "Application protocol: h2c") || !strings.Contains(out, "2000 succeeded") {
			t.Errorf("h2load: %v\n%s", err, out)
		}
	}
	stop()
	lap("wrk, h2load")

	stop = l.serve(t, "echo")
	echoThrough(t, l)
	stop()

	stackAsClient(t, l)
}

// capture runs tcpdump with filter on the kernel peer's device, writing
// to a file in the test's temporary directory, until stop (which the
// test must call before reading the file; a second call does nothing).
func (l *lab) capture(t *testing.T, filter ...string) (file string, stop func()) {
	t.Helper()
	file = filepath.Join(t.TempDir(), l.driver+".pcap")
	dump := exec.Command("ip", append([]string{"netns", "exec", l.clientNS, "tcpdump", "-i", l.peerIf, "-U", "-w", file, "-s", "0"}, filter...)...)
	var dumpErr bytes.Buffer
	dump.Stderr = &dumpErr
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() {
		if dump.Process != nil {
			dump.Process.Signal(os.Interrupt)
			dump.Wait()
			dump.Process = nil
		}
	}
	for i := 0; i < 100 && !strings.Contains(dumpErr.String(), "listening"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	return file, stop
}

// httpGet sends a GET for / on c, a connection to the http app, and
// returns what came back until the server closed it.
func httpGet(c net.Conn) (string, error) {
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, err := io.ReadAll(c)
	return string(out), err
}

// httpBytes is what the http app's /bytes/N sends.
func httpBytes(n int) []byte {
	pattern := make([]byte, 32<<10)
	for i := range pattern {
		pattern[i] = byte(i * 131)
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, pattern[:min(len(pattern), n-len(out))]...)
	}
	return out
}

// checkCapture asks tshark for frames from the stack that are malformed or
// carry a bad checksum, and fails on any. A TCP segment through a driver
// that completes checksums (tx checksum offload, TSO) carries only the
// pseudo-header sum in its checksum, as a Linux sender's segments do
// where tcpdump sees them: that one exact value is taken as partial
// (partialTCPChecksums), any other wrong one fails.
func checkCapture(t *testing.T, file string) {
	t.Helper()
	all, err := exec.Command("tshark", "-r", file, "-Y", "ip.src == "+labStackAddr, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	frames := len(strings.Fields(string(all)))
	if frames < 10 {
		t.Fatalf("the capture holds %d frames from the stack; expected the whole exchange", frames)
	}
	filter := "ip.src == " + labStackAddr + " && (_ws.malformed || ip.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\")"
	bad, err := exec.Command("tshark", "-r", file, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-Y", filter).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if s := strings.TrimSpace(string(bad)); s != "" {
		t.Errorf("tshark marks frames from the stack malformed or with bad checksums:\n%s", firstLines(s, 20))
	}
	tso, err := exec.Command("tshark", "-r", file, "-Y", "ip.src == "+labStackAddr+" && frame.len > 1518", "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	partial := partialTCPChecksums(t, file, "ip.src == "+labStackAddr, false)
	if partial == 0 {
		// Every driver completes TCP checksums on a veth or TAP
		// (FeatureTxChecksum): the stack must have left them to it.
		t.Errorf("no TCP segment from the stack left its checksum to the driver")
	}
	t.Logf("capture: %d frames from the stack (%d TSO segments, %d TCP segments with the checksum partial), none malformed, no bad checksum", frames, len(strings.Fields(string(tso))), partial)
}

// partialTCPChecksums counts the TCP segments in the capture that match
// filter and whose checksum is not complete, and fails the test for any
// whose field is not exactly the folded pseudo-header sum: what a sender
// leaves for its device to complete.
func partialTCPChecksums(t *testing.T, file, filter string, v6 bool) int {
	t.Helper()
	fields := []string{"-e", "frame.number", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.len", "-e", "ip.hdr_len", "-e", "tcp.checksum"}
	if v6 {
		fields = []string{"-e", "frame.number", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.plen", "-e", "frame.number", "-e", "tcp.checksum"}
	}
	args := append([]string{"-r", file, "-o", "tcp.check_checksum:TRUE", "-Y", filter + " && tcp.checksum.status == \"Bad\"", "-T", "fields", "-E", "separator=,"}, fields...)
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 6 {
			t.Fatalf("tshark line %q", line)
		}
		src, err1 := netip.ParseAddr(f[1])
		dst, err2 := netip.ParseAddr(f[2])
		length, err3 := strconv.Atoi(f[3])
		field, err4 := strconv.ParseUint(strings.TrimPrefix(f[5], "0x"), 16, 16)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatalf("tshark line %q: %v", line, err)
		}
		if !v6 {
			hl, err := strconv.Atoi(f[4])
			if err != nil {
				t.Fatalf("tshark line %q: %v", line, err)
			}
			length -= hl
		}
		var acc uint32
		for _, b := range [][]byte{src.AsSlice(), dst.AsSlice()} {
			for i := 0; i < len(b); i += 2 {
				acc += uint32(b[i])<<8 | uint32(b[i+1])
			}
		}
		acc += 6 + uint32(length)
		for acc>>16 != 0 {
			acc = acc&0xffff + acc>>16
		}
		if uint16(field) != uint16(acc) {
			t.Errorf("frame %s: TCP checksum %#04x is neither complete nor the pseudo-header sum %#04x", f[0], field, acc)
			continue
		}
		n++
	}
	return n
}

// echoThrough sends echo-mib MiB from a kernel client to the stack's echo
// server and checks what comes back by hash.
func echoThrough(t *testing.T, l *lab) {
	size := *echoMiB << 20
	c := l.dial(t, labStackAddr+":7")
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	sent := sha256.New()
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	start := time.Now()
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 64<<10)
		for left := size; left > 0; {
			k := min(left, len(buf))
			for i := range buf[:k] {
				buf[i] = byte(rng.Uint32())
			}
			sent.Write(buf[:k])
			if _, werr = c.Write(buf[:k]); werr != nil {
				return
			}
			left -= k
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	wg.Wait()
	if werr != nil || err != nil || n != int64(size) {
		t.Fatalf("echo: wrote err %v; read %d of %d bytes, err %v", werr, n, size, err)
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Fatalf("echo of %d MiB: the bytes came back changed", size>>20)
	}
	t.Logf("echo: %d MiB each way intact in %v", size>>20, time.Since(start).Round(time.Millisecond))
}

// stackAsClient runs a stack with the driver (no serve) and downloads a
// file from a kernel server in the client's namespace, over IPv4.
func stackAsClient(t *testing.T, l *lab) { stackAsClientOver(t, l, "tcp4", "10.77.0.2:8080", nil) }

// stackAsClientOver is stackAsClient on network to the kernel server at
// server, the stack also having the IPv6 prefixes addrs6.
func stackAsClientOver(t *testing.T, l *lab, network, server string, addrs6 []netip.Prefix) {
	const size = 16 << 20
	var ln net.Listener
	err := inNS(l.ns(t, l.clientNS), func() (err error) {
		ln, err = net.Listen(network, server)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range file {
		file[i] = byte(rng.Uint32())
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(file)
		c.Close()
	}()
	addrs := []netip.Addr{netip.MustParseAddr(labStackAddr)}
	for _, p := range addrs6 {
		addrs = append(addrs, p.Addr())
	}
	nic, closeNIC, err := l.openInStackNS(t)(driverOptions{iface: l.iface, queues: 2, addrs: addrs,
		warn: func(string, ...any) {}, info: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNIC()
	rt, err := core.Start(core.Config{NIC: nic, Cores: 2, StackConfig: func(int) stack.Config {
		return stack.Config{Addr: netip.MustParsePrefix(labStackAddr + "/24"), Addrs6: addrs6}
	}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := sockets.New(rt)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	c, err := n.Dial(network, server)
	if err != nil {
		t.Fatalf("the stack dials the kernel at %s: %v", server, err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	got, err := io.Copy(h, c)
	c.Close()
	if err != nil || got != size || !bytes.Equal(h.Sum(nil), sha256Of(file)) {
		t.Fatalf("download from the kernel at %s: %d of %d bytes, err %v, intact %v", server, got, size, err, bytes.Equal(h.Sum(nil), sha256Of(file)))
	}
	t.Logf("stack as client: %d MiB from the kernel at %s intact", size>>20, server)
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func wrkSummary(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "requests in") || strings.Contains(line, "Requests/sec") || strings.Contains(line, "Latency") {
			keep = append(keep, strings.TrimSpace(line))
		}
	}
	return strings.Join(keep, "; ")
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
