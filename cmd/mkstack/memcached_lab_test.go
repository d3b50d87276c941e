//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMemccapablePassesOnEveryDriver runs libmemcached's protocol tester,
// memccapable (its ascii tests), from the kernel in the lab's client
// namespace against serve --app memcached on two cores, for each driver:
// a client nobody here wrote, over a real kernel TCP stack at its default
// offloads.
func TestMemccapablePassesOnEveryDriver(t *testing.T) {
	need(t, "memccapable", "ip")
	for _, driver := range []string{"afpacket", "tap", "afxdp"} {
		t.Run(driver, func(t *testing.T) {
			l := newLab(t, driver)
			stop := l.serve(t, "memcached", "--memory", "64")
			defer stop()
			out, err := l.exec(t, 2*time.Minute, "memccapable", "-h", labStackAddr, "-p", "11211", "-a", "-t", "5")
			t.Logf("memccapable -a on %s:\n%s", driver, out)
			if err != nil || !strings.Contains(out, "All tests passed") || strings.Contains(out, "[FAIL]") {
				t.Fatalf("memccapable failed (%v)\nserve's log:\n%s", err, l.logs.String())
			}
		})
	}
}

// TestMemcachedKernelClientsShareKeysAcrossCores opens eight kernel
// connections from the lab's client namespace (RSS spreads them over the
// two cores: all on one has odds of 1 in 128) and checks that keys set
// through one read the same through another. (The deterministic version,
// with each connection's core known, is
// TestMemcachedKeysAreTheSameWhicheverCoreAsks over the mem wire.)
func TestMemcachedKernelClientsShareKeysAcrossCores(t *testing.T) {
	need(t, "ip")
	l := newLab(t, "afpacket")
	stop := l.serve(t, "memcached")
	defer stop()
	type client struct {
		w *bufio.Writer
		r *bufio.Reader
	}
	var cs []client
	for range 8 {
		c := l.dial(t, labStackAddr+":11211")
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		cs = append(cs, client{bufio.NewWriter(c), bufio.NewReader(c)})
	}
	line := func(c client) string {
		s, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimSuffix(s, "\r\n")
	}
	for i := range 400 {
		w, r := cs[i%len(cs)], cs[(i*3+1)%len(cs)]
		key, val := fmt.Sprintf("kernel-%d", i), fmt.Sprintf("v%d", i*i)
		fmt.Fprintf(w.w, "set %s 0 0 %d\r\n%s\r\n", key, len(val), val)
		w.w.Flush()
		if got := line(w); got != "STORED" {
			t.Fatalf("set %s: %q", key, got)
		}
		fmt.Fprintf(r.w, "get %s\r\n", key)
		r.w.Flush()
		if got := line(r); got != fmt.Sprintf("VALUE %s 0 %d", key, len(val)) {
			t.Fatalf("get %s: %q", key, got)
		}
		if got := line(r); got != val {
			t.Fatalf("get %s: value %q, want %q", key, got, val)
		}
		if got := line(r); got != "END" {
			t.Fatalf("get %s: %q", key, got)
		}
	}
}

// TestBenchMemcachedOnVeth runs the bench's memcached workload at one core:
// memcaslap from the peer namespace against serve --app memcached's
// application on AF_XDP and against stock memcached on the kernel, then
// the goroutine flows at a fixed rate; every point must move and count no
// error (a get miss counts as one), and the pair's ratio must be printed.
// The figures themselves come from mkstack bench on a quiet machine.
func TestBenchMemcachedOnVeth(t *testing.T) {
	need(t, "memcached", "memcaslap", "ip")
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	for _, rate := range []string{"", "2000"} {
		dir := t.TempDir()
		args := []string{"bench", "--workload", "memcached", "--cores", "1", "--duration", "1s", "--warmup", "200ms", "--conns", "4", "--out", dir, "--plots=false"}
		name := "memcached.json"
		if rate != "" {
			args, name = append(args, "--rate", rate), "memcached-rate.json"
		}
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Fatalf("bench %v: exit %d\n%s\n%s", args, code, out.String(), errOut.String())
		}
		r := readResult(t, filepath.Join(dir, name))
		if len(r.Points) != 2 {
			t.Fatalf("%d points, want mkstack-afxdp and memcached-veth: %+v", len(r.Points), r.Points)
		}
		client := "memcaslap"
		if rate != "" {
			client = "go"
		}
		for _, p := range r.Points {
			if p.Err != "" || p.Rate <= 0 || p.Errors != 0 || p.Client != client || p.API != "memcached" {
				t.Errorf("rate %q: point %+v", rate, p)
			}
		}
		if !strings.Contains(out.String(), "mkstack-afxdp ÷ memcached-veth at 1 cores") {
			t.Errorf("rate %q: no ratio in\n%s", rate, out.String())
		}
		t.Logf("%s", out.String())
	}
}
