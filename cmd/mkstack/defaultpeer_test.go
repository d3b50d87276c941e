//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/netlab"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
)

// The default-peer tests: for each driver, a lab of its own (netlab.Up
// leaves the kernel peer at its default offloads, as a container's veth
// or TAP is: transmit checksumming on, and on a veth TSO/GSO on), a
// runtime with an HTTP server and an echo server over the driver, and the
// kernel as the client. The peer's offloads are checked on first, so the
// test cannot pass by running against a peer with them off. Then an HTTP
// answer (curl, or Go's client without curl), 2 MiB echoed each way
// intact, no TCP segment or UDP datagram dropped for a bad checksum, and
// partial checksums seen and accepted (the path under test was taken).

func TestDefaultPeerTAP(t *testing.T)      { testDefaultPeer(t, "tap", 0) }
func TestDefaultPeerAFPacket(t *testing.T) { testDefaultPeer(t, "afpacket", 0) }
func TestDefaultPeerAFXDP(t *testing.T)    { testDefaultPeer(t, "afxdp", 0) }

// TestDefaultPeerAFXDPJumbo: the same at MTU 9000, where every full-sized
// frame spans several UMEM frames (AF_XDP multi-buffer), both ways.
func TestDefaultPeerAFXDPJumbo(t *testing.T) { testDefaultPeer(t, "afxdp", 9000) }

func testDefaultPeer(t *testing.T, driver string, mtu int) {
	need(t, "ip", "ethtool")
	l := newLabWith(t, driver, 2, netlab.Options{MTU: mtu})
	var warned []string
	var mu sync.Mutex
	nic, closeNIC, err := l.openInStackNS(t)(driverOptions{iface: l.iface, queues: 2, addrs: []netip.Addr{netip.MustParseAddr(labStackAddr)},
		warn: func(string, ...any) {}, info: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeNIC()
	// A TAP's kernel side gets its offloads from the driver's
	// TUNSETOFFLOAD, so it is checked once the driver has opened it.
	features, err := l.exec(t, 10*time.Second, "ethtool", "-k", l.peerIf)
	if err != nil {
		t.Fatalf("ethtool -k %s: %v\n%s", l.peerIf, err, features)
	}
	want := []string{"tx-checksumming: on"}
	if driver == "afpacket" {
		want = append(want, "tcp-segmentation-offload: on")
	}
	for _, w := range want {
		if !strings.Contains(features, w) {
			t.Fatalf("the kernel peer %s is not at its defaults: no %q in\n%s", l.peerIf, w, features)
		}
	}

	rt, err := core.Start(core.Config{NIC: nic, Cores: 2, StackConfig: func(int) stack.Config {
		return stack.Config{Addr: netip.MustParsePrefix(labStackAddr + "/24"), Warn: func(m string) {
			mu.Lock()
			warned = append(warned, m)
			mu.Unlock()
		}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := sockets.New(rt)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	hl, err := n.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello from a default peer's stack\n") })}
	go srv.Serve(hl)
	defer srv.Close()
	serveEcho(t, n, ":7")

	// HTTP, with curl if there is one.
	const body = "hello from a default peer's stack\n"
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := l.exec(t, 15*time.Second, "curl", "-sS", "--max-time", "10", "http://"+labStackAddr+"/")
		if err != nil || out != body {
			t.Errorf("curl: %v: %q, want %q", err, out, body)
		}
	} else {
		c := l.dial(t, labStackAddr+":80")
		tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + labStackAddr + "/")
		if err != nil {
			t.Fatalf("HTTP GET: %v", err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != body {
			t.Errorf("HTTP body %q, want %q", got, body)
		}
	}

	// 2 MiB each way, written in 64 KiB pieces so the kernel's TSO
	// builds large segments.
	echoBytes(t, l.dial(t, labStackAddr+":7"), 2<<20)

	// Counters are read on the cores that own them (core c drives
	// queue c: two cores, two queues).
	var bad, partial, oversize, segmented, whole, tso, gathered, spread uint64
	for c := 0; c < rt.NumCores(); c++ {
		err := rt.DoWait(context.Background(), c, func(s *stack.Stack) {
			bad += s.Stats().Drops[stack.DropReason(header.DropBadChecksum)]
			partial += s.Stats().PartialChecksums
			tso += s.TCPStats().TSOSegmentsOut
			oversize += nic.Queue(c).Counters().Drops[nicq.DropOversize]
			if q, ok := nic.Queue(c).(interface{ Segmented() uint64 }); ok {
				segmented += q.Segmented()
			}
			if q, ok := nic.Queue(c).(interface{ Whole() uint64 }); ok {
				whole += q.Whole()
			}
			if q, ok := nic.Queue(c).(interface{ Gathered() uint64 }); ok {
				gathered += q.Gathered()
			}
			if q, ok := nic.Queue(c).(interface{ Spread() uint64 }); ok {
				spread += q.Spread()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if driver == "afpacket" || driver == "tap" {
		// The peer's TSO reaches a packet socket, and a TAP that offers
		// TSO: the driver must have handed its large TCP frames to the
		// stack whole (and the echo above checked every byte).
		t.Logf("%s: %d large frames segmented by the driver, %d taken whole", driver, segmented, whole)
		if whole == 0 {
			t.Errorf("no large frame reached the stack whole from the %s driver (%d cut): the peer's TSO was not exercised, or the driver cut what the stack takes", driver, segmented)
		}
		// And the other way: the stack's echo left in TSO segments,
		// which the kernel took (the echo above checked every byte).
		t.Logf("%s: %d TSO segments sent", driver, tso)
		if tso == 0 {
			t.Errorf("the stack sent no TSO segment through the %s driver, which offers TSO", driver)
		}
	}
	if mtu > 4096 && driver == "afxdp" {
		// The peer's segments of 9000 bytes came in pieces and the
		// stack's went out in pieces: both sides used an MSS of the MTU
		// (the echo above checked every byte).
		t.Logf("MTU %d: %d frames received in pieces, %d sent in pieces", mtu, gathered, spread)
		if gathered == 0 || spread == 0 {
			t.Errorf("MTU %d: %d frames received and %d sent in pieces: jumbo frames did not cross the AF_XDP sockets", mtu, gathered, spread)
		}
	}
	t.Logf("%s: %d TCP segments and UDP datagrams accepted with partial checksums, %d bad checksums, %d frames dropped as oversize", driver, partial, bad, oversize)
	if bad != 0 || len(warned) != 0 {
		t.Errorf("%d bad checksum drops; warnings: %q", bad, warned)
	}
	if partial == 0 {
		t.Error("no partial checksum was seen: the peer's checksum offload did not reach the stack, and the test tested nothing")
	}
	if oversize != 0 {
		t.Errorf("%d frames dropped as longer than the MTU", oversize)
	}
}

// echoBytes writes size random bytes on c from one goroutine and reads the
// echo from another, and checks they match by hash.
func echoBytes(t *testing.T, c net.Conn, size int) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	sent := sha256.New()
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(5, 6))
		buf := make([]byte, 64<<10)
		for left := size; left > 0; left -= len(buf) {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			chunk := buf[:min(left, len(buf))]
			sent.Write(chunk)
			if _, werr = c.Write(chunk); werr != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	k, err := io.Copy(got, c)
	wg.Wait()
	if werr != nil || err != nil || k != int64(size) {
		t.Fatalf("echo: write err %v; read %d of %d bytes, err %v", werr, k, size, err)
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Fatal("echo: the bytes came back changed")
	}
	t.Logf("echo: %s each way intact", fmt.Sprintf("%d MiB", size>>20))
}
