package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/mem"
)

func TestDemoRunsTCPAndUDPOnEveryCoreAndReports(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testDemo(t) })
	t.Run("IPv6", func(t *testing.T) { testDemo(t, "--ipv6") })
}

func testDemo(t *testing.T, extra ...string) {
	var out, errOut bytes.Buffer
	code := run(append([]string{"demo", "--duration", "1500ms", "--cores", "2"}, extra...), &out, &errOut)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	total := regexp.MustCompile(`(\d+) TCP transactions and (\d+) UDP echoes`).FindStringSubmatch(s)
	if total == nil {
		t.Fatalf("no summary in:\n%s", s)
	}
	for i, what := range []string{"TCP transactions", "UDP echoes"} {
		if n, _ := strconv.Atoi(total[i+1]); n < 1000 {
			t.Errorf("only %d %s in 1.5s:\n%s", n, what, s)
		}
	}
	// Both cores of the client carried traffic.
	for _, core := range []string{"0", "1"} {
		row := regexp.MustCompile(`(?m)^\s+` + core + `\s+(\d+)\s+(\d+)`).FindStringSubmatch(s)
		if row == nil || row[1] == "0" || row[2] == "0" {
			t.Errorf("core %s row missing or idle: %v\n%s", core, row, s)
		}
	}
	if !strings.Contains(s, "total") {
		t.Fatalf("no total row:\n%s", s)
	}
	if want := map[bool]string{false: "server 10.0.0.1", true: "server fd00::1"}[len(extra) > 0]; !strings.Contains(s, want) {
		t.Fatalf("no %q in:\n%s", want, s)
	}
}

func TestDemoWritesAPcapThatTsharkReads(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run([]string{"demo", "--duration", "1s", "--cores", "1", "--workload", "tcp", "--pcap", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	path := filepath.Join(dir, "server.pcap")
	st, err := os.Stat(path)
	if err != nil || st.Size() < 1000 {
		t.Fatalf("capture %v, %v", st, err)
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed; the capture was written but not decoded")
	}
	cmd := exec.Command(tshark, "-r", path, "-c", "50", "-T", "fields", "-e", "tcp.srcport")
	// tshark reads its profile from HOME, which a user running the tests
	// under another identity may not be allowed to read.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), "7") {
		t.Fatalf("no TCP port 7 in the first frames:\n%s", got)
	}
}

func TestDemoServesMetrics(t *testing.T) {
	var out, errOut bytes.Buffer
	done := make(chan int)
	pr, pw := io.Pipe()
	go func() {
		done <- run([]string{"demo", "--duration", "2s", "--cores", "1", "--metrics-addr", "127.0.0.1:0"}, pw, &errOut)
		pw.Close()
	}()
	// Read until the metrics line tells the address.
	buf := make([]byte, 4096)
	var addr string
	for addr == "" {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("demo ended before printing the metrics address: %s", errOut.String())
		}
		out.Write(buf[:n])
		if m := regexp.MustCompile(`metrics: (http://\S+/metrics)`).FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	time.Sleep(300 * time.Millisecond)
	resp, err := http.Get(addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mkstack_rx_packets_total{core="0"`, `stack="server"`, `stack="client"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func TestDemoRejectsBadFlagsWithStatus2(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--duration", "-1s"},
		{"demo", "--cores", "999"},
		{"demo", "--workload", "bogus"},
		{"demo", "extra"},
		{"demo", "--no-such-flag"},
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

// TestDemoUDPFlowsRecoverFromALostStart: the demo's UDP flows keep one
// datagram in flight and UDP does not resend, so a flow whose first
// datagram is lost would never run; the demo sends again after
// demoUDPResend without an echo. Here the client's link is down while the
// flows start.
func TestDemoUDPFlowsRecoverFromALostStart(t *testing.T) {
	const cores = 2
	wire, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: cores},
		{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: cores},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer wire.Close()
	server, err := demoStack(wire, 0, "10.0.0.1", "fd00::1", cores, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(server, demoShutdownWait)
	client, err := demoStack(wire, 1, "10.0.0.2", "fd00::2", cores, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdownWithin(client, demoShutdownWait)
	counts := make([]demoCounts, cores)
	stop := &atomic.Bool{}
	defer stop.Store(true)
	// TCP first, as the demo does: once it runs, the neighbours are known.
	if err := demoTCP(server, client, counts, stop, false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "TCP to run on every core", func() bool {
		return counts[0].tcp.Load() > 0 && counts[1].tcp.Load() > 0
	})
	wire.NIC(1).SetLinkUp(false)
	if err := demoUDP(server, client, counts, stop, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := counts[0].udp.Load() + counts[1].udp.Load(); n != 0 {
		t.Fatalf("%d UDP echoes with the client's link down", n)
	}
	wire.NIC(1).SetLinkUp(true)
	waitUntil(t, 5*time.Second, "UDP echoes on every core after the lost start", func() bool {
		return counts[0].udp.Load() > 0 && counts[1].udp.Load() > 0
	})
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
	}
}
