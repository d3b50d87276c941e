package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
)

// serveOverMem runs serve with the mem driver and a client network on the
// wire's other NIC, and returns the client and a stop function that ends
// serve and reports its error.
func serveOverMem(t *testing.T, args ...string) (*sockets.Network, func() error) {
	t.Helper()
	o, code := parseServe(append([]string{"--driver", "mem", "--addr", "10.77.0.1/24", "--pin=false"}, args...), io.Discard)
	if code != 0 {
		t.Fatalf("parse: %d", code)
	}
	peer := make(chan nicq.NIC, 1)
	memPeer = func(nic nicq.NIC) { peer <- nic }
	t.Cleanup(func() { memPeer = nil })
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	var outMu sync.Mutex
	done := make(chan error, 1)
	go func() {
		w := writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
		done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), w)
	}()
	nic := <-peer
	rt, err := core.Start(core.Config{NIC: nic, StackConfig: func(int) stack.Config {
		return stack.Config{Addr: netip.MustParsePrefix("10.77.0.2/24")}
	}})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sockets.New(rt)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		outMu.Lock()
		up := strings.Contains(out.String(), "serving ")
		outMu.Unlock()
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
	}
	t.Cleanup(func() { cli.Shutdown(context.Background()) })
	return cli, func() error {
		cancel()
		return <-done
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestServeEchoOverMemStopsCleanly(t *testing.T) {
	cli, stop := serveOverMem(t, "--app", "echo", "--cores", "2")
	c, err := cli.Dial("tcp", "10.77.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB, more than the rings hold
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of 1 MB: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// The server closed the connection with a FIN on shutdown.
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after shutdown: %v, want EOF", err)
	}
	c.Close()
}

func TestServeHTTPOverMem(t *testing.T) {
	cli, stop := serveOverMem(t, "--app", "http")
	client := &http.Client{Transport: &http.Transport{DialContext: cli.DialContext}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://10.77.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "hello from mkstack") {
		t.Fatalf("body %q", body)
	}
	resp, err = client.Get(fmt.Sprintf("http://10.77.0.1/bytes/%d", 3<<20))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 3<<20 {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	client.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestServeCPUsPinsTheCores: --cpus gives each core its CPU and sets the
// core count.
func TestServeCPUsPinsTheCores(t *testing.T) {
	o, code := parseServe([]string{"--driver", "mem", "--addr", "10.0.0.1/24", "--cpus", "1,0"}, io.Discard)
	if code != 0 || o.cores != 2 || fmt.Sprint(o.cpus) != "[0 1]" {
		t.Fatalf("--cpus 1,0: exit %d, %d cores on %v; want 2 cores on [0 1]", code, o.cores, o.cpus)
	}
}

func TestServeRejectsBadFlagsWithStatus2(t *testing.T) {
	for _, args := range [][]string{
		{"serve"}, // no --addr
		{"serve", "--driver", "mem", "--addr", "10.0.0.1"},
		{"serve", "--driver", "nope", "--addr", "10.0.0.1/24"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--app", "ftp"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--gateway", "192.168.0.1"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--port", "70000"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "extra"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--cpus", "3-1"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--cpus", "0,1", "--cores", "3"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--cpus", "0", "--pin=false"},
		{"serve", "--driver", "mem", "--addr", "10.0.0.1/24", "--afpacket-ring", "3"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut.String())
		}
		if errOut.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}

func TestServeTakesTheAFPacketRingVersion(t *testing.T) {
	for flag, want := range map[string]int{"": 2, "v2": 2, "v3": 3} {
		args := []string{"--driver", "mem", "--addr", "10.0.0.1/24"}
		if flag != "" {
			args = append(args, "--afpacket-ring", flag)
		}
		if o, code := parseServe(args, io.Discard); code != 0 || o.afpacketRing != want {
			t.Errorf("--afpacket-ring %q: ring %d (exit %d), want %d", flag, o.afpacketRing, code, want)
		}
	}
}

// TestServeTakesTheSYNCookieRate: --syn-cookies-per-second reaches
// serveOptions as given: 0 (the stack's default) when absent, a negative
// bound (none) and a positive one.
func TestServeTakesTheSYNCookieRate(t *testing.T) {
	for flag, want := range map[string]int{"": 0, "-1": -1, "5000": 5000} {
		args := []string{"--driver", "mem", "--addr", "10.0.0.1/24"}
		if flag != "" {
			args = append(args, "--syn-cookies-per-second", flag)
		}
		if o, code := parseServe(args, io.Discard); code != 0 || o.synCookieRate != want {
			t.Errorf("--syn-cookies-per-second %q: %d (exit %d), want %d", flag, o.synCookieRate, code, want)
		}
	}
}

func TestServeTakesTheThreadMode(t *testing.T) {
	for flag, want := range map[string]core.Threads{"": core.ThreadsAuto, "auto": core.ThreadsAuto, "pinned": core.ThreadsPinned, "shared": core.ThreadsShared} {
		args := []string{"--driver", "mem", "--addr", "10.0.0.1/24"}
		if flag != "" {
			args = append(args, "--threads", flag)
		}
		if o, code := parseServe(args, io.Discard); code != 0 || o.threads != want {
			t.Errorf("--threads %q: %v (exit %d), want %v", flag, o.threads, code, want)
		}
	}
	var errOut bytes.Buffer
	if _, code := parseServe([]string{"--driver", "mem", "--addr", "10.0.0.1/24", "--threads", "spin"}, &errOut); code != 2 || !strings.Contains(errOut.String(), "--threads") {
		t.Errorf("--threads spin: exit %d, stderr %q; want 2 and a message naming --threads", code, errOut.String())
	}
}

// --mtu below the device's: the stack announces an MSS for it, so the
// peer's segments shrink to fit, and an echo still arrives whole.
func TestServeTakesASmallerMTU(t *testing.T) {
	cli, stop := serveOverMem(t, "--app", "echo", "--cores", "1", "--mtu", "576")
	c, err := cli.Dial("tcp", "10.77.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("abcdefgh"), 64<<10)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of 512 KiB at MTU 576: %v", err)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// --mtu above what the device carries, or outside IP's bounds, fails with
// what to do.
func TestServeRefusesAnMTUTheDeviceCannotCarry(t *testing.T) {
	if _, code := parseServe([]string{"--driver", "mem", "--addr", "10.0.0.1/24", "--mtu", "40"}, io.Discard); code != 2 {
		t.Errorf("--mtu 40: status %d, want 2", code)
	}
	o, code := parseServe([]string{"--driver", "mem", "--addr", "10.0.0.1/24", "--mtu", "9000", "--pin=false"}, io.Discard)
	if code != 0 {
		t.Fatalf("parse: %d", code)
	}
	err := serve(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--mtu 9000") || !strings.Contains(err.Error(), "1500") {
		t.Fatalf("serve --mtu 9000 on the mem wire: %v", err)
	}
	veth := serveOptions{driver: "afxdp", iface: "mks0", mtu: 9000}
	if _, err := veth.stackMTU(fixedMTU(1500)); err == nil || !strings.Contains(err.Error(), "ip link set dev mks0 mtu 9000") || !strings.Contains(err.Error(), "multi-buffer") {
		t.Errorf("afxdp --mtu 9000 on a device of 1500: %v", err)
	}
	six := serveOptions{driver: "tap", iface: "t0", mtu: 1000, addrs6: []netip.Prefix{netip.MustParsePrefix("fd77::1/64")}}
	if _, err := six.stackMTU(fixedMTU(1500)); err == nil || !strings.Contains(err.Error(), "1280") {
		t.Errorf("--mtu 1000 with IPv6: %v", err)
	}
}

// fixedMTU is a NIC that only says its MTU.
type fixedMTU int

func (m fixedMTU) Name() string            { return "fixed" }
func (m fixedMTU) NumQueues() int          { return 1 }
func (m fixedMTU) Queue(int) nicq.Queue    { return nil }
func (m fixedMTU) MAC() [6]byte            { return [6]byte{2} }
func (m fixedMTU) MTU() int                { return int(m) }
func (m fixedMTU) LinkUp() bool            { return true }
func (m fixedMTU) Features() nicq.Features { return 0 }
func (m fixedMTU) RSS() *rss.Config        { return nil }
func (m fixedMTU) Close() error            { return nil }
