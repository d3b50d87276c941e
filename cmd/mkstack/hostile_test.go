//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/affinity"
)

// metrics scrapes the running serve's /metrics and sums each series over
// its core and cpu labels; drops are keyed "mkstack_drops_total/REASON".
func (l *lab) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	// serve prints "serving" before it opens the metrics listener and
	// logs its address.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(l.logs.String(), "/metrics") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return scrapeMetrics(t, l.logs.String(), func(get func() error) error { return get() })
}

// scrapeMetrics finds the metrics address in serve's log and scrapes it,
// making the request inside within (a namespace, for a serve run there).
func scrapeMetrics(t *testing.T, log string, within func(func() error) error) map[string]float64 {
	t.Helper()
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("serve logged no metrics address:\n%s", log)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	// The socket is opened by the calling thread, inside within: an
	// http.Client would dial from a goroutine of its own, outside it.
	var conn net.Conn
	if err := within(func() (err error) { conn, err = net.DialTimeout("tcp", u.Host, 5*time.Second); return err }); err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", u.String(), nil)
	req.Close = true
	var body []byte
	if err = req.Write(conn); err == nil {
		var resp *http.Response
		if resp, err = http.ReadResponse(bufio.NewReader(conn), req); err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
	}
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	out := map[string]float64{}
	reason := regexp.MustCompile(`reason="([^"]+)"`)
	sc := bufio.NewScanner(bytes.NewReader(body))
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

var synFloodPace = flag.String("synflood-pace", "flood", "TestSYNFloodOnVeth: hping3's interval between SYNs (uN: N µs), or \"flood\" for hping3 --flood")

var synFloodSplit = flag.Bool("synflood-split", true, "TestSYNFloodOnVeth: give the attacker (hping3 and the veth's receive work, as a NIC's) one CPU and the server (serve and wrk) another, in both rounds; false shares both CPUs between all of them")

var synFloodSpin = flag.String("synflood-spin", "", "TestSYNFloodOnVeth: serve's --spin-window (default: -1ns when the core shares its CPU with wrk, split; else 0, the runtime's default)")

var synFloodCookies = flag.String("synflood-cookies", "0", "TestSYNFloodOnVeth: serve's --syn-cookies-per-second (0: the default; -1: no bound)")

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk loads the stack's http app for d and returns requests per second;
// socket errors fail the test. prefix (taskset) runs before wrk.
func (l *lab) wrk(t *testing.T, d time.Duration, prefix ...string) float64 {
	t.Helper()
	out, err := l.exec(t, d+20*time.Second, append(prefix, "wrk", "-t", "2", "-c", "16", "-d", fmt.Sprintf("%.0fs", d.Seconds()), "http://"+labStackAddr+"/")...)
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
// hping3 --flood while 16 established keep-alive connections load its
// HTTP server: SYN cookies must engage, the connection table and the heap
// must stay within their bounds, and the established connections' goodput
// must stay at 70% or more of the figure without the flood. wrk then checks
// that new connections are served after the flood.
//
// An attacker is another machine. On a machine of few CPUs the test gives
// it CPUs of its own, the same in the rounds with and without the flood:
// hping3 runs on the first allowed CPU, and so does the veth's receive
// work (the threaded NAPI poll: XDP and the copy into the UMEM), which a
// NIC would do in hardware; serve (one core) and the load share the last. Left
// to itself the kernel runs that receive work on whichever CPU scheduled
// the poll first, so the flood's cost would land on the server at random.
// The poll runs at real-time priority, so that like a NIC it keeps up
// with the wire: hping3 sends as fast as its CPU can then feed the veth
// (the test logs the rate of SYNs that reached the stack), and no frame of
// the load's is lost in a full veth ring.
func TestSYNFloodOnVeth(t *testing.T) {
	if testing.Short() {
		t.Skip("a 25 s load test on veth; the full run has it")
	}
	need(t, "ip", "wrk", "hping3", "taskset", "chrt", "ps")
	var serverSide, attackerSide []string
	queues, cores, spin := 2, "2", "0"
	if *synFloodSplit {
		set, err := affinity.AllowedCPUs()
		cpus := affinity.ListCPUs(set)
		if err != nil || len(cpus) < 2 {
			t.Skipf("needs 2 CPUs to keep the attacker off the server's (have %v, %v)", cpus, err)
		}
		attacker, server := strconv.Itoa(cpus[0]), strconv.Itoa(cpus[len(cpus)-1])
		serverSide, attackerSide = []string{"taskset", "-c", server}, []string{"taskset", "-c", attacker}
		// A core that shares its CPU sleeps when it finds no work, as
		// serve's --spin-window documents.
		queues, cores, spin = 1, "1", "-1ns"
	}
	if *synFloodSpin != "" {
		spin = *synFloodSpin
	}
	l := newLabQueues(t, "afxdp", queues)
	// Replies to the spoofed sources go to the kernel peer as gateway,
	// which drops them: no RST comes back to clear the SYN queue.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := selfCommand(t, ctx, l.stackNS, serverSide, "serve", "--driver", "afxdp", "--iface", l.iface,
		"--addr", labStackAddr+"/24", "--gateway", "10.77.0.2", "--cores", cores, "--app", "http",
		"--metrics-addr", "127.0.0.1:0", "--spin-window", spin, "--syn-cookies-per-second", *synFloodCookies)
	var logs syncBuffer
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		t.Logf("serve: %s", regexp.MustCompile(`msg=stopped.*`).FindString(logs.String()))
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "/metrics"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
	}
	if *synFloodSplit {
		pinNAPI(t, l, attackerSide[2])
	}
	stackNS := l.ns(t, l.stackNS)
	metrics := func() map[string]float64 {
		return scrapeMetrics(t, logs.String(), func(get func() error) error { return inNS(stackNS, get) })
	}

	// Rounds of wrk without and with the flood, side by side, so that a
	// neighbour's load on this shared machine hits both figures of a round;
	// the median round's ratio is judged.
	const d, rounds = 2 * time.Second, 5
	pace := []string{"-i", *synFloodPace}
	if *synFloodPace == "flood" {
		pace = []string{"--flood"}
	}
	heapBefore := metrics()["go_memstats_heap_inuse_bytes"]
	var ratios []float64
	var base, underFlood, heapDuring float64
	var during map[string]float64
	var synRate float64
	flooders := func(m map[string]float64) float64 {
		return m["mkstack_tcp_syn_cookies_sent_total"] + m["mkstack_drops_total/tcp_syn_cookie_rate"] + m["mkstack_drops_total/martian_source"]
	}
	// The goodput measured is established connections': 16 keep-alive
	// HTTP connections opened before the first round and used throughout.
	// (wrk opens its connections as it starts, and under the flood their
	// SYNs would compete with the flood's for SYN cookies.)
	load := l.startLoadGen(t, labStackAddr+":80", 16, serverSide...)
	// Beside it, new clients: connections opened one after another, each
	// given a second to be served, as a client's first SYN timeout.
	var triedCalm, servedCalm, triedFlood, servedFlood int
	for r := 0; r < rounds; r++ {
		newDone := make(chan [2]int, 1)
		go func() { a, b := newConnections(t, l, labStackAddr+":80", 4, d); newDone <- [2]int{a, b} }()
		b := load.rate(t, d)
		nc := <-newDone
		triedCalm, servedCalm = triedCalm+nc[0], servedCalm+nc[1]
		before, began := metrics(), time.Now()
		var f float64
		func() {
			// Deferred, so that a failure (t.Fatal) cannot leave hping3
			// flooding after the test.
			fctx, fcancel := context.WithCancel(context.Background())
			flood := exec.CommandContext(fctx, "ip", append(append(append(append([]string{"netns", "exec", l.clientNS}, attackerSide...), "hping3"), pace...), "-S", "--rand-source", "-p", "80", "-q", labStackAddr)...)
			if err := flood.Start(); err != nil {
				fcancel()
				t.Fatal(err)
			}
			defer func() { fcancel(); flood.Wait() }()
			time.Sleep(500 * time.Millisecond)
			go func() { a, b := newConnections(t, l, labStackAddr+":80", 4, d); newDone <- [2]int{a, b} }()
			f = load.rate(t, d)
			nc := <-newDone
			triedFlood, servedFlood = triedFlood+nc[0], servedFlood+nc[1]
			during = metrics()
			synRate += (flooders(during) - flooders(before)) / time.Since(began).Seconds() / rounds
			heapDuring = max(heapDuring, during["go_memstats_heap_inuse_bytes"])
		}()
		t.Logf("round %d: %.0f req/s without the flood, %.0f under it (%.2f)", r, b, f, f/b)
		ratios = append(ratios, f/b)
		base, underFlood = base+b/rounds, underFlood+f/rounds
	}
	sort.Float64s(ratios)
	ratio := ratios[rounds/2]

	t.Logf("hping3 pace %s, %.0f SYN/s reached the stack; established connections: %.0f req/s without the flood, %.0f under it (median ratio %.2f); SYN cookies sent %.0f, valid %.0f, over their rate %.0f; connections %.0f; rx %.0f frames; heap %.0f -> %.0f MiB",
		*synFloodPace, synRate, base, underFlood, ratio, during["mkstack_tcp_syn_cookies_sent_total"], during["mkstack_tcp_syn_cookies_valid_total"],
		during["mkstack_drops_total/tcp_syn_cookie_rate"], during["mkstack_tcp_connections"], during["mkstack_rx_packets_total"], heapBefore/(1<<20), heapDuring/(1<<20))
	calmShare, floodShare := float64(servedCalm)/float64(max(triedCalm, 1)), float64(servedFlood)/float64(max(triedFlood, 1))
	// Four clients, one connection at a time each, for d in each round.
	perConn := func(tried int) float64 { return (4 * rounds * d).Seconds() / float64(max(tried, 1)) * 1e3 }
	t.Logf("new connections served within a second: %d of %d without the flood (%.2f, %.1f ms each), %d of %d under it (%.2f, %.1f ms each)",
		servedCalm, triedCalm, calmShare, perConn(triedCalm), servedFlood, triedFlood, floodShare, perConn(triedFlood))
	if during["mkstack_tcp_syn_cookies_sent_total"] == 0 {
		t.Error("the flood did not engage SYN cookies")
	}
	if calmShare < 0.99 {
		t.Errorf("without the flood only %.2f of new connections were served", calmShare)
	}
	if floodShare < minNewConnShareUnderFlood {
		t.Errorf("under the flood %.2f of new connections were served within a second; want at least %.2f", floodShare, minNewConnShareUnderFlood)
	}
	// Each core's table holds at most its SYN queue of half-open
	// connections beside the load's; with the default SYN queue of 1024
	// per listener per core: 1024 per core plus the load's 16.
	nCores, _ := strconv.Atoi(cores)
	if c := during["mkstack_tcp_connections"]; c > float64(nCores*1024+64) {
		t.Errorf("%.0f connections under the flood: beyond the SYN queues' bound", c)
	}
	if heapBefore == 0 || heapDuring-heapBefore > 64<<20 {
		t.Errorf("the heap went from %.0f to %.0f MiB under the flood", heapBefore/(1<<20), heapDuring/(1<<20))
	}
	if ratio < 0.7 {
		t.Errorf("goodput under the flood is %.2f of the figure without it (median of %d rounds); want at least 0.70", ratio, rounds)
	}
	if after := load.rate(t, d); after < 0.5*base {
		t.Errorf("after the flood: %.0f req/s, was %.0f", after, base)
	}
	// New connections are served again once the SYN queue has drained.
	if fresh := l.wrk(t, time.Second, serverSide...); fresh == 0 {
		t.Error("after the flood, wrk's new connections got no answer")
	}
}

// minNewConnShareUnderFlood is the share of new clients a SYN flood may
// not take below: a new connection is served within a second (before its
// first SYN would be resent) at least this often.
const minNewConnShareUnderFlood = 0.5

// newConnections opens connections to addr from the client namespace,
// one after another on each of n goroutines, for d: each must connect, send
// a GET and read a status line of 200 within a second of its start. It
// returns how many were tried and how many were served.
func newConnections(t *testing.T, l *lab, addr string, n int, d time.Duration) (tried, served int) {
	ns := l.ns(t, l.clientNS)
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range n {
		wg.Go(func() {
			buf := make([]byte, 12)
			for time.Now().Before(end) {
				start := time.Now()
				ok := false
				var c net.Conn
				err := inNS(ns, func() (err error) {
					c, err = net.DialTimeout("tcp4", addr, time.Second)
					return err
				})
				if err == nil {
					c.SetDeadline(start.Add(time.Second))
					_, err = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
					if err == nil {
						_, err = io.ReadFull(c, buf)
					}
					ok = err == nil && string(buf[9:12]) == "200"
					c.Close()
				} else {
					time.Sleep(time.Until(start.Add(time.Second))) // a refused dial does not spin
				}
				mu.Lock()
				tried++
				if ok {
					served++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return tried, served
}

// pinNAPI makes the stack veth's receive poll a kernel thread of its own,
// pins it to cpu and gives it real-time priority (see TestSYNFloodOnVeth).
func pinNAPI(t *testing.T, l *lab, cpu string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", l.stackNS, "sh", "-c", "echo 1 > /sys/class/net/"+l.iface+"/threaded").CombinedOutput(); err != nil {
		t.Fatalf("threaded NAPI on %s: %v %s", l.iface, err, out)
	}
	ps, err := exec.Command("ps", "-eo", "pid=,comm=").Output()
	if err != nil {
		t.Fatal(err)
	}
	pinned := 0
	for _, line := range strings.Split(string(ps), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[1], "napi/"+l.iface) {
			if out, err := exec.Command("taskset", "-pc", cpu, f[0]).CombinedOutput(); err != nil {
				t.Fatalf("pin %s: %v %s", f[1], err, out)
			}
			if out, err := exec.Command("chrt", "-f", "-p", "50", f[0]).CombinedOutput(); err != nil {
				t.Fatalf("chrt %s: %v %s", f[1], err, out)
			}
			pinned++
		}
	}
	if pinned == 0 {
		t.Fatalf("no NAPI thread of %s:\n%s", l.iface, ps)
	}
}

// TestHostileFramesOnVeth sends the stack malformed and malicious frames
// from scapy (testdata/hostile.py) while a kernel client holds an echo
// connection to it: truncated headers, bad lengths and checksums,
// overlapping and tiny fragments, garbage and zero-length TCP options, a
// land attack, Christmas-tree and null scans, and blind in-window RST, SYN
// and data injection (RFC 5961). The stack must stay up, count the drops by
// reason, answer the blind attacks with challenge ACKs, and the established
// connection must carry on undisturbed.
func TestHostileFramesOnVeth(t *testing.T) {
	if testing.Short() {
		t.Skip("scapy against the stack on veth; the full run has it")
	}
	need(t, "ip", "tcpdump")
	if exec.Command("/usr/bin/python3", "-c", "import scapy").Run() != nil {
		t.Skip("needs Debian's python3-scapy (.ci/run installs it)")
	}
	l := newLab(t, "afxdp")
	stop := l.serve(t, "echo", "--metrics-addr", "127.0.0.1:0")
	defer stop()
	mac := regexp.MustCompile(`mac=(\S+)`).FindStringSubmatch(l.logs.String())
	if mac == nil {
		t.Fatal("serve logged no MAC")
	}
	conn := l.dial(t, labStackAddr+":7")
	defer conn.Close()
	echo := func(msg string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatalf("echo write: %v", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, got, err)
		}
	}
	echo("before")
	before := l.metrics(t)

	script, _ := filepath.Abs("testdata/hostile.py")
	cmd := exec.Command("ip", "netns", "exec", l.clientNS, "/usr/bin/python3", script, l.peerIf, labStackAddr, mac[1], "10.77.0.2", "7",
		strconv.Itoa(conn.LocalAddr().(*net.TCPAddr).Port))
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The script learns the connection's sequence numbers from a segment
	// the stack sends on it: keep one exchange going until it has.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var scriptErr error
	for waiting := true; waiting; {
		select {
		case scriptErr = <-exited:
			waiting = false
		case <-time.After(500 * time.Millisecond):
			if e := stderr.String(); strings.Contains(e, "sniffing") && !strings.Contains(e, "learned") {
				echo("during")
			}
		case <-time.After(90 * time.Second):
			cmd.Process.Kill()
			t.Fatal("the script did not finish in 90 s")
		}
	}
	if scriptErr != nil {
		t.Fatalf("hostile.py: %v\n%s\n%s", scriptErr, stdout.String(), stderr.String())
	}
	var res struct {
		Sent                                 map[string]int
		Error                                string
		RSTInWindow, SYNInWindow, DataBadACK *struct {
			Flags    string
			Seq, Ack uint32
		}
		RcvNxt uint32 `json:"rcv_nxt"`
	}
	out := []byte(stdout.String())
	if i := bytes.LastIndexByte(bytes.TrimSpace(out), '\n'); i >= 0 {
		out = out[i+1:]
	}
	if err := json.Unmarshal(out, &struct {
		Sent  *map[string]int `json:"sent"`
		Error *string         `json:"error"`
		R     **struct {
			Flags    string
			Seq, Ack uint32
		} `json:"rst_in_window"`
		S **struct {
			Flags    string
			Seq, Ack uint32
		} `json:"syn_in_window"`
		D **struct {
			Flags    string
			Seq, Ack uint32
		} `json:"data_bad_ack"`
		N *uint32 `json:"rcv_nxt"`
	}{&res.Sent, &res.Error, &res.RSTInWindow, &res.SYNInWindow, &res.DataBadACK, &res.RcvNxt}); err != nil {
		t.Fatalf("hostile.py printed %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	if res.Error != "" {
		t.Fatalf("hostile.py: %s", res.Error)
	}
	total := 0
	for _, n := range res.Sent {
		total += n
	}
	t.Logf("hostile.py sent %d frames: %v", total, res.Sent)
	for name, a := range map[string]*struct {
		Flags    string
		Seq, Ack uint32
	}{"in-window RST": res.RSTInWindow, "in-window SYN": res.SYNInWindow} {
		if a == nil || a.Flags != "A" || a.Ack != res.RcvNxt {
			t.Errorf("%s: the stack answered %+v; want a challenge ACK of %d", name, a, res.RcvNxt)
		}
	}
	if a := res.DataBadACK; a == nil || !strings.Contains(a.Flags, "A") || strings.Contains(a.Flags, "R") {
		t.Errorf("data acknowledging unsent bytes: the stack answered %+v; want an ACK", a)
	}
	// The connection carries on: nothing injected was taken as its data.
	echo("after the attack")
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := conn.Read(make([]byte, 64)); n > 0 {
		t.Errorf("the echo connection delivered %d unexpected bytes (injected data taken)", n)
	}
	after := l.metrics(t)
	var counted []string
	for k, v := range after {
		if strings.HasPrefix(k, "mkstack_drops_total/") && v > before[k] {
			counted = append(counted, fmt.Sprintf("%s +%.0f", strings.TrimPrefix(k, "mkstack_drops_total/"), v-before[k]))
		}
	}
	sort.Strings(counted)
	t.Logf("drops counted: %s; challenge ACKs +%.0f", strings.Join(counted, ", "), after["mkstack_tcp_challenge_acks_total"]-before["mkstack_tcp_challenge_acks_total"])
	for _, reason := range []string{"bad_checksum", "bad_ihl", "bad_total_length", "bad_udp_length", "fragment_overlap", "bad_data_offset", "martian_source"} {
		k := "mkstack_drops_total/" + reason
		if after[k] <= before[k] {
			t.Errorf("no %s drop counted", reason)
		}
	}
	if after["mkstack_tcp_challenge_acks_total"] < before["mkstack_tcp_challenge_acks_total"]+2 {
		t.Error("fewer than two challenge ACKs counted")
	}
	// And a new connection works.
	c2 := l.dial(t, labStackAddr+":7")
	c2.Write([]byte("new"))
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 3)
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != "new" {
		t.Errorf("a new connection after the attack: %q, %v", got, err)
	}
	c2.Close()
}
