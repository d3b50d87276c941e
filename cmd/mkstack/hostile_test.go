//go:build linux

package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metrics scrapes the running serve's /metrics and sums each series over
// its core and cpu labels; drops are keyed "mkstack_drops_total/REASON".
func (l *lab) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(l.logs.String())
	if m == nil {
		t.Fatalf("serve logged no metrics address:\n%s", l.logs.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	reason := regexp.MustCompile(`reason="([^"]+)"`)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			if r := reason.FindStringSubmatch(name); r != nil {
				name = name[:i] + "/" + r[1]
			} else {
				name = name[:i]
			}
		}
		out[name] += v
	}
	return out
}

var synFloodPace = flag.String("synflood-pace", "u100", "hping3's interval between SYNs in TestSYNFloodOnVeth (uN: N µs), or \"flood\" for hping3 --flood (on a 2-CPU machine hping3 --flood takes one CPU of the two, and the goodput ratio then measures that)")

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk loads the stack's http app for d and returns requests per second;
// socket errors fail the test.
func (l *lab) wrk(t *testing.T, d time.Duration) float64 {
	t.Helper()
	out, err := l.exec(t, d+20*time.Second, "wrk", "-t", "2", "-c", "16", "-d", fmt.Sprintf("%.0fs", d.Seconds()), "http://"+labStackAddr+"/")
	m := wrkRate.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(out, "Socket errors") {
		t.Errorf("wrk saw socket errors:\n%s", out)
	}
	r, _ := strconv.ParseFloat(m[1], 64)
	return r
}

// TestSYNFloodOnVeth floods the stack's listener with spoofed SYNs from
// hping3 while wrk loads it: SYN cookies must engage, the connection table
// must stay within its bound, and established goodput must stay at 70% or
// more of the figure without the flood.
func TestSYNFloodOnVeth(t *testing.T) {
	if testing.Short() {
		t.Skip("a 15 s load test on veth; the full run has it")
	}
	need(t, "ip", "wrk", "hping3")
	l := newLab(t, "afxdp")
	// Replies to the spoofed sources go to the kernel peer as gateway,
	// which drops them: no RST comes back to clear the SYN queue.
	stop := l.serve(t, "http", "--gateway", "10.77.0.2", "--metrics-addr", "127.0.0.1:0")
	defer stop()
	const d = 4 * time.Second
	base := l.wrk(t, d)

	var heapBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapBefore)
	ctx, cancel := context.WithCancel(context.Background())
	pace := []string{"-i", *synFloodPace}
	if *synFloodPace == "flood" {
		pace = []string{"--flood"}
	}
	flood := exec.CommandContext(ctx, "ip", append(append([]string{"netns", "exec", l.clientNS, "hping3"}, pace...), "-S", "--rand-source", "-p", "80", "-q", labStackAddr)...)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); flood.Wait() }()
	time.Sleep(time.Second)
	underFlood := l.wrk(t, d)
	during := l.metrics(t)
	var heapDuring runtime.MemStats
	runtime.ReadMemStats(&heapDuring)
	cancel()
	flood.Wait()

	t.Logf("hping3 pace %s; wrk: %.0f req/s without the flood, %.0f under it (%.2f); SYN cookies sent %.0f, valid %.0f; connections %.0f; rx %.0f frames; heap %d -> %d MiB",
		*synFloodPace, base, underFlood, underFlood/base, during["mkstack_tcp_syn_cookies_sent_total"], during["mkstack_tcp_syn_cookies_valid_total"],
		during["mkstack_tcp_connections"], during["mkstack_rx_packets_total"], heapBefore.HeapInuse>>20, heapDuring.HeapInuse>>20)
	if during["mkstack_tcp_syn_cookies_sent_total"] == 0 {
		t.Error("the flood did not engage SYN cookies")
	}
	// Each core's table holds at most its SYN queue of half-open
	// connections beside wrk's; with the default SYN queue of 1024 per
	// listener per core, 2 cores: 2048 plus wrk's 16.
	if c := during["mkstack_tcp_connections"]; c > 2*1024+64 {
		t.Errorf("%.0f connections under the flood: beyond the SYN queues' bound", c)
	}
	if grow := int64(heapDuring.HeapInuse) - int64(heapBefore.HeapInuse); grow > 64<<20 {
		t.Errorf("the heap grew by %d MiB under the flood", grow>>20)
	}
	if underFlood < 0.7*base {
		t.Errorf("goodput under the flood is %.2f of the figure without it; want at least 0.70", underFlood/base)
	}
	if after := l.wrk(t, 2*time.Second); after < 0.5*base {
		t.Errorf("after the flood: %.0f req/s, was %.0f", after, base)
	}
}
