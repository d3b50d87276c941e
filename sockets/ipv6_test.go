package sockets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/stack"
)

// pair6 is pair with IPv6 too: the server at fd00::1, the client at
// fd00::2 (and their IPv4 addresses).
func pair6(t testing.TB, queues int) (srv, cli *Network) {
	t.Helper()
	return pair6With(t, queues, nil)
}

// pair6With is pair6 with a tweak of both networks' stack configs.
func pair6With(t testing.TB, queues int, tweak func(*stack.Config)) (srv, cli *Network) {
	t.Helper()
	with6 := func(a string) func(*stack.Config) {
		return func(c *stack.Config) {
			c.Addrs6 = []netip.Prefix{netip.MustParsePrefix(a)}
			if tweak != nil {
				tweak(c)
			}
		}
	}
	return pairWith(t, queues, with6("fd00::1/64"), with6("fd00::2/64"))
}

// TestIPv6EchoOverEveryCore dials the server over IPv6 from many ports, so
// that RSS spreads the connections over both cores of each side, and
// echoes through each.
func TestIPv6EchoOverEveryCore(t *testing.T) {
	srv, cli := pair6(t, 2)
	l, err := srv.Listen("tcp6", "[::]:7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().String(); got != "[::]:7" {
		t.Errorf("listener address %s, want [::]:7", got)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	for i := range 16 {
		c, err := cli.Dial("tcp6", "[fd00::1]:7")
		if err != nil {
			t.Fatal(err)
		}
		if ra := c.RemoteAddr().(*net.TCPAddr); !ra.IP.Equal(net.ParseIP("fd00::1")) || ra.Port != 7 {
			t.Fatalf("remote address %v", ra)
		}
		if la := c.LocalAddr().(*net.TCPAddr); !la.IP.Equal(net.ParseIP("fd00::2")) {
			t.Fatalf("local address %v", la)
		}
		msg := bytes.Repeat([]byte{byte(i)}, 10000)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %v", i, err)
		}
		c.Close()
	}
	// Counters are published at the end of a loop iteration: wait for
	// the last ones.
	deadline := time.Now().Add(5 * time.Second)
	for {
		sc, cc := srv.Runtime().Counters(), cli.Runtime().Counters()
		ok := sc.Values[core.IPv6PacketsOut] > 0 && cc.Values[core.IPv6PacketsOut] > 0 && cc.Values[core.NeighbourSolicitsSent] > 0 && sc.Values[core.NeighbourAdvertsSent] > 0
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("IPv6 metrics: server out %d, adverts %d; client out %d, solicitations %d", sc.Values[core.IPv6PacketsOut], sc.Values[core.NeighbourAdvertsSent], cc.Values[core.IPv6PacketsOut], cc.Values[core.NeighbourSolicitsSent])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenFamiliesAsGoNetDoes: "tcp" on a wildcard takes both families,
// "tcp4" IPv4 only, "tcp6" IPv6 only.
func TestListenFamiliesAsGoNetDoes(t *testing.T) {
	srv, cli := pair6(t, 1)
	for i, tc := range []struct {
		network, host string
		v4, v6        bool
		addr          string
	}{
		{"tcp", "", true, true, "[::]"},
		{"tcp", "0.0.0.0", true, true, "[::]"},
		{"tcp", "[::]", true, true, "[::]"},
		{"tcp4", "", true, false, "10.0.0.1"},
		{"tcp6", "", false, true, "[::]"},
		{"tcp", "[fd00::1]", false, true, "[fd00::1]"},
		{"tcp", "10.0.0.1", true, false, "10.0.0.1"},
	} {
		port := 8000 + i
		l, err := srv.Listen(tc.network, fmt.Sprintf("%s:%d", tc.host, port))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.network, tc.host, err)
		}
		if want := fmt.Sprintf("%s:%d", tc.addr, port); l.Addr().String() != want {
			t.Errorf("%s %s: address %s, want %s", tc.network, tc.host, l.Addr(), want)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for _, to := range []struct {
			addr string
			want bool
		}{{fmt.Sprintf("10.0.0.1:%d", port), tc.v4}, {fmt.Sprintf("[fd00::1]:%d", port), tc.v6}} {
			c, err := cli.Dial("tcp", to.addr)
			if (err == nil) != to.want {
				t.Errorf("%s %q: dial %s: %v; want success %v", tc.network, tc.host, to.addr, err, to.want)
			}
			if err == nil {
				c.Close()
			}
		}
		l.Close()
	}
	for _, bad := range []struct{ network, addr string }{
		{"tcp6", "10.0.0.1:1"}, {"tcp4", "[fd00::1]:1"}, {"tcp", "[fd00::9]:1"}, {"tcp", "[fe80::1%eth0]:1"},
	} {
		if _, err := srv.Listen(bad.network, bad.addr); err == nil {
			t.Errorf("listen %s %s succeeded", bad.network, bad.addr)
		}
	}
}

func TestListenTCP6WithoutIPv6Fails(t *testing.T) {
	srv, _ := pair(t, 1)
	_, err := srv.Listen("tcp6", ":80")
	if err == nil || !strings.Contains(err.Error(), "no IPv6 address") {
		t.Fatalf("tcp6 without IPv6: %v", err)
	}
}

func TestHTTPOverIPv6(t *testing.T) {
	srv, cli := pair6(t, 2)
	l, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.RemoteAddr)
	})}
	go hs.Serve(l)
	defer hs.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return cli.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, url := range []string{"http://[fd00::1]/", "http://10.0.0.1/"} {
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantFrom := "10.0.0.2:"
		if strings.Contains(url, "[") {
			wantFrom = "[fd00::2]:"
		}
		if !strings.HasPrefix(string(body), "hello "+wantFrom) {
			t.Fatalf("%s: %q, want hello %s...", url, body, wantFrom)
		}
	}
}

func TestUDPOverIPv6(t *testing.T) {
	srv, cli := pair6(t, 2)
	pc, err := srv.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("re: "), buf[:n]...), from)
		}
	}()
	for i := range 8 {
		c, err := cli.Dial("udp6", "[fd00::1]:53")
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		msg := fmt.Sprintf("query %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "re: "+msg {
			t.Fatalf("udp6 %d: %q, %v", i, buf[:n], err)
		}
		if la := c.LocalAddr().(*net.UDPAddr); !la.IP.Equal(net.ParseIP("fd00::2")) {
			t.Fatalf("local address %v", la)
		}
		c.Close()
	}
	// A udp4 socket refuses to write to an IPv6 address.
	p4, err := cli.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer p4.Close()
	if _, err := p4.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("fd00::1"), Port: 53}); err == nil {
		t.Fatal("udp4 socket wrote to an IPv6 address")
	}
	// No route off the prefix without a gateway, when router
	// advertisements are not taken either.
	_, cli = pair6With(t, 1, func(c *stack.Config) { c.IgnoreRouterAdvertisements = true })
	p6, err := cli.ListenPacket("udp6", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer p6.Close()
	if _, err := p6.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 53}); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("off-link IPv6 without a gateway: %v, want ENETUNREACH", err)
	}
}

// TestDuplicateAddressIsWithdrawnOnEveryCore gives two networks on one
// wire the same IPv6 address: duplicate address detection finds it on one
// of them, whose every core then stops using it.
func TestDuplicateAddressIsWithdrawnOnEveryCore(t *testing.T) {
	w := twoNICWire(t, 2)
	same := func(c *stack.Config) { c.Addrs6 = []netip.Prefix{netip.MustParsePrefix("fd00::1/64")} }
	a := startNetwork(t, w, 0, serverAddr, same)
	b := startNetwork(t, w, 1, clientAddr, same)
	deadline := time.Now().Add(10 * time.Second)
	var found *Network
	for found == nil {
		for _, n := range []*Network{a, b} {
			if n.Runtime().Counters().Values[core.DuplicateAddresses6] > 0 {
				found = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no duplicate found in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dup := netip.MustParseAddr("fd00::1")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left := 0
		for c := range found.Runtime().NumCores() {
			found.Runtime().DoWait(context.Background(), c, func(s *stack.Stack) {
				if slices.Contains(s.Addrs6(), dup) {
					left++
				}
			})
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cores still use the duplicate address", left)
		}
	}
}
