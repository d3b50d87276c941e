//go:build linux

package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/netlab"
)

var (
	memcachedCompare = flag.Duration("memcached-compare", 0, "run TestMemcachedAgainstKernelMemcached: memcaslap for this long against each server")
	memcachedSpin    = flag.Duration("memcached-spin", 0, "TestMemcachedAgainstKernelMemcached: serve's --spin-window (0: its default)")
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

// TestMemcachedAgainstKernelMemcached drives serve --app memcached (AF_XDP
// on the lab's veth, a queue per core) and then memcached -t N (the kernel,
// on the same veth end, at its default offloads) with memcaslap from the
// peer namespace (-T 2 -c 64, its default 9:1 get/set mix), at 1 and 2
// cores on the same CPUs, and logs each throughput and their ratio. It
// runs only with -memcached-compare=DURATION (and -memcached-spin to set
// serve's --spin-window): the figures mean something only side by side, on
// a quiet machine.
func TestMemcachedAgainstKernelMemcached(t *testing.T) {
	if *memcachedCompare <= 0 {
		t.Skip("a measurement, not a test: run with -memcached-compare=10s")
	}
	need(t, "memcached", "memcaslap", "ip", "taskset")
	for _, cores := range []int{1, 2} {
		t.Run(strconv.Itoa(cores), func(t *testing.T) { compareMemcached(t, cores) })
	}
}

// memcaslap loads the server at the lab's stack address and returns its
// operations per second.
func memcaslap(t *testing.T, l *lab) float64 {
	t.Helper()
	secs := strconv.Itoa(int(memcachedCompare.Seconds()))
	out, err := l.exec(t, *memcachedCompare+time.Minute, "memcaslap", "-s", labStackAddr+":11211", "-T", "2", "-c", "64", "-t", secs+"s")
	m := regexp.MustCompile(`(?m)^Run time: .*TPS: (\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("memcaslap: %v\n%s", err, out)
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	return tps
}

func compareMemcached(t *testing.T, cores int) {
	cpus := "0-" + strconv.Itoa(cores-1)
	l := newLabQueues(t, "afxdp", cores) // a queue per core: the driver binds that many
	stop := l.serve(t, "memcached", "--cores", strconv.Itoa(cores), "--cpus", cpus, "--spin-window", memcachedSpin.String())
	mk := memcaslap(t, l)
	stop()
	if err := netlab.KernelAddr(l.ns(t, l.stackNS), l.iface, labStackAddr+"/24", false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mc := exec.CommandContext(ctx, "ip", "netns", "exec", l.stackNS, "taskset", "-c", cpus,
		"memcached", "-u", "root", "-U", "0", "-l", labStackAddr, "-p", "11211", "-t", strconv.Itoa(cores), "-m", "64")
	if err := mc.Start(); err != nil {
		t.Fatal(err)
	}
	defer mc.Wait()
	time.Sleep(300 * time.Millisecond)
	kernel := memcaslap(t, l)
	cancel()
	t.Logf("%d core(s) on CPUs %s: mkstack %.0f ops/s, memcached -t %d %.0f ops/s: %.2fx", cores, cpus, mk, cores, kernel, mk/kernel)
}
