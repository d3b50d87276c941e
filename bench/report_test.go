package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reportResults are a peak and a fixed-rate tcp-rr result with the new
// fields, and a udp-echo result as older runs wrote them (no machine CPU,
// API, driver or GOMAXPROCS).
func reportResults() []*Result {
	env := Env{CPUModel: "Test CPU", NumCPU: 4, Kernel: "Linux 6.1", GoVersion: "go1.26", Commit: "abc123+dirty",
		Time: time.Date(2001, 2, 3, 10, 0, 0, 0, time.UTC), AllowDirty: true}
	lat := &Latency{P50: 12.5, P99: 99.999}
	peak := &Result{Env: env, Workload: TCPRR, Duration: "3s", Warmup: "1s", Points: []Point{
		{System: SysMkstack, Cores: 2, CPUs: []int{0, 1}, Rate: 400000, Count: 1200000},
		{System: SysMkstack, Cores: 1, CPUs: []int{0}, Rate: 300000, Count: 900000, Latency: lat, GOMAXPROCS: 2,
			API: "handler", Driver: "mem wire", Client: "handlers", CPUSeconds: 2.5, MachineCPUSeconds: 2.7},
		{System: SysLinuxEpoll, Cores: 1, CPUs: []int{0}, Rate: 100000, Count: 300000, API: "epoll", Driver: "loopback",
			Client: "epoll", CPUSeconds: 2.9, GCCycles: 3},
		{System: SysMkstackConn, Cores: 1, Rate: 50000, Count: 150000, Errors: 2},
		{System: SysLinux, Cores: 1, Rate: 40000, Count: 120000},
		{System: SysGVisor, Cores: 1, Err: "boom | bad", Note: "child process"},
		{System: "other", Cores: 1, CPUs: []int{0, 1, 2, 3, 6}, Rate: 1234, Count: 3702},
	}}
	rate := &Result{Env: env, Workload: TCPRR, Duration: "3s", Points: []Point{
		{System: SysMkstack, Cores: 1, OfferedRate: 10000, Rate: 9500, Count: 100000, MachineCPUSeconds: 2},
		{System: SysLinuxEpoll, Cores: 1, OfferedRate: 10000, Rate: 10000, Count: 100000, MachineCPUSeconds: 5},
		{System: SysMkstackConn, Cores: 1, OfferedRate: 10000, Rate: 10000, Count: 100000, MachineCPUSeconds: 3},
		{System: SysLinux, Cores: 1, OfferedRate: 10000, Err: "refused"},
	}}
	old := &Result{Env: Env{Commit: "d1a9a1c"}, Workload: UDPEcho, Duration: "3s", Warmup: "1s", Points: []Point{
		{System: SysMkstackConn, Cores: 1, Rate: 16000, Count: 48000, CPUSeconds: 2.92},
		{System: SysLinux, Cores: 1, Rate: 64000, Count: 192000, CPUSeconds: 2.98},
	}}
	return []*Result{rate, old, peak}
}

func report(t *testing.T, rs []*Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := Report(&b, rs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestReportSummaryRatios(t *testing.T) {
	out := report(t, reportResults())
	rows := []string{
		"| udp-echo | mkstack-conn ÷ linux | net.Conn | mem wire vs loopback | 1 | 0.25 |  |  |  |  |  |",
		"| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 | 3.00 | 10.0K | 0.40 | 20.00 | 50.00 |  |",
		"| tcp-rr | mkstack-conn ÷ linux | net.Conn | mem wire vs loopback | 1 | 1.25 | 10.0K |  | 30.00 |  |  |",
		"| tcp-rr | mkstack-conn ÷ gvisor | net.Conn | mem wire vs channel link | 1 |  |  |  |  |  |  |",
	}
	// Pairs order first, then workloads in Workloads order.
	want := []string{rows[1], rows[0], rows[2], rows[3]}
	last := -1
	for _, row := range want {
		i := strings.Index(out, row+"\n")
		if i < 0 {
			t.Fatalf("no row\n%s\nin\n%s", row, out)
		}
		if i < last {
			t.Errorf("row out of order: %s\n%s", row, out)
		}
		last = i
	}
	// mkstack at 2 cores has no linux-epoll point to compare with, and
	// "other" is in no pair.
	for _, no := range []string{"| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 2 |", "other ÷"} {
		if strings.Contains(out, no) {
			t.Errorf("unexpected %q in\n%s", no, out)
		}
	}
}

func TestReportPointTables(t *testing.T) {
	out := report(t, reportResults())
	for _, want := range []string{
		"### udp-echo: every point\n\nPeak: commit d1a9a1c, at unknown, Go unknown, kernel unknown, CPU unknown, 3s per point after 1s of warmup.\n",
		"\n### tcp-rr: every point\n\nPeak: commit abc123+dirty, at 2001-02-03T10:00:00Z, Go go1.26, kernel Linux 6.1, CPU Test CPU (4 CPUs), " +
			"3s per point after 1s of warmup (written from a modified tree with --allow-dirty).\n",
		"| system | API | driver | peer offloads | client | cores | CPUs | GOMAXPROCS | trans/s | p50 µs | p99 µs | machine CPU µs/trans | process CPU s | GCs | errors | note |\n",
		// old fields: blank cells, not zeros.
		"| mkstack-conn |  |  |  |  | 1 |  |  | 16.0K |  |  |  | 2.92 | 0 | 0 |  |\n",
		"| mkstack | handler | mem wire |  | handlers | 1 | 0 | 2 | 300.0K | 12.50 | 100.00 | 3.00 | 2.50 | 0 | 0 |  |\n",
		"| linux-epoll | epoll | loopback |  | epoll | 1 | 0 |  | 100.0K |  |  |  | 2.90 | 3 | 0 |  |\n",
		"| gvisor |  |  |  |  | 1 |  |  |  |  |  |  |  |  |  | child process; error: boom \\| bad |\n",
		"| other |  |  |  |  | 1 | 0-3,6 |  | 1.2K |  |  |  | 0.00 | 0 | 0 |  |\n",
		"| mkstack |  |  |  |  | 2 | 0,1 |  | 400.0K |",
		"At a fixed offered rate: commit abc123+dirty, at 2001-02-03T10:00:00Z, Go go1.26, kernel Linux 6.1, CPU Test CPU (4 CPUs), 3s per point (written",
		"| system | API | driver | peer offloads | client | cores | CPUs | GOMAXPROCS | offered trans/s | achieved trans/s | p50 µs |",
		"| mkstack |  |  |  |  | 1 |  |  | 10.0K | 9.5K |  |  | 20.00 | 0.00 | 0 | 0 |  |\n",
		"| linux |  |  |  |  | 1 |  |  | 10.0K |  |  |  |  |  |  |  | error: refused |\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no\n%s\nin\n%s", want, out)
		}
	}
	// Points by cores, then as Systems lists the systems; the peak table
	// before the fixed-rate one; udp-echo before tcp-rr.
	order := []string{"### udp-echo", "### tcp-rr", "| mkstack | handler", "| mkstack-conn |  |  |  |  | 1 |  |  | 50.0K",
		"| gvisor |", "| linux |  |  |  |  | 1 |  |  | 40.0K", "| linux-epoll | epoll", "| other |", "| mkstack |  |  |  |  | 2 |",
		"At a fixed offered rate"}
	last := -1
	for _, s := range order {
		i := strings.Index(out, s)
		if i <= last {
			t.Errorf("%q at %d, want after %d\n%s", s, i, last, out)
		}
		last = i
	}
	if strings.Contains(out, time.Now().UTC().Format("2006-01-02")) {
		t.Errorf("the report has today's date in it\n%s", out)
	}
}

func TestReportIsDeterministic(t *testing.T) {
	rs := reportResults()
	a := report(t, rs)
	b := report(t, []*Result{rs[2], rs[0], rs[1]})
	if a != b {
		t.Errorf("the order of the results changed the report:\n%s\n---\n%s", a, b)
	}
	if err := Report(&bytes.Buffer{}, []*Result{nil}); err == nil {
		t.Error("a nil result: no error")
	}
	if out := report(t, nil); !strings.Contains(out, "No like-for-like pair has figures") {
		t.Errorf("no results:\n%s", out)
	}
}

func TestReadResultsInNameOrderNamingABadFile(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []*Result{{Workload: UDPEcho}, {Workload: TCPRR}} {
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		name := map[Workload]string{UDPEcho: "b.json", TCPRR: "a.json"}[r.Workload]
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("not a result"), 0o644)
	rs, err := ReadResults(dir)
	if err != nil || len(rs) != 2 || rs[0].Workload != TCPRR || rs[1].Workload != UDPEcho {
		t.Fatalf("ReadResults: %v, %v", rs, err)
	}
	os.WriteFile(filepath.Join(dir, "d.json"), []byte(`{"nosuchfield": 1}`), 0o644)
	if _, err := ReadResults(dir); err == nil || !strings.Contains(err.Error(), "d.json") {
		t.Errorf("bad file: %v, want an error naming d.json", err)
	}
	if _, err := ReadResults(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestUpdateDocReplacesBetweenMarkers(t *testing.T) {
	doc := "# Title\n\nIntro.\n\n" + ReportBegin + "\nold table\n\nmore old\n" + ReportEnd + "\n\n## Next\n"
	got, err := UpdateDoc([]byte(doc), []byte("| new |\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nIntro.\n\n" + ReportBegin + "\n\n| new |\n\n" + ReportEnd + "\n\n## Next\n"
	if string(got) != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	again, err := UpdateDoc(got, []byte("\n| new |\n\n"))
	if err != nil || string(again) != want {
		t.Errorf("not idempotent: %q, %v", again, err)
	}
	empty, err := UpdateDoc([]byte(want), nil)
	if err != nil || string(empty) != "# Title\n\nIntro.\n\n"+ReportBegin+"\n"+ReportEnd+"\n\n## Next\n" {
		t.Errorf("empty report: %q, %v", empty, err)
	}
	// Markers at the very start and end, with trailing spaces and CRs.
	edge := ReportBegin + " \r\n" + "x\n" + ReportEnd
	if got, err := UpdateDoc([]byte(edge), []byte("y")); err != nil || string(got) != ReportBegin+" \r\n\ny\n\n"+ReportEnd {
		t.Errorf("edge: %q, %v", got, err)
	}
}

func TestUpdateDocRefusesBadMarkers(t *testing.T) {
	for name, doc := range map[string]string{
		"none":           "# Title\n",
		"no begin":       "a\n" + ReportEnd + "\n",
		"no end":         ReportBegin + "\nb\n",
		"end first":      ReportEnd + "\n" + ReportBegin + "\n",
		"two begins":     ReportBegin + "\n" + ReportBegin + "\n" + ReportEnd + "\n",
		"two ends":       ReportBegin + "\n" + ReportEnd + "\n" + ReportEnd + "\n",
		"not on a line":  "see " + ReportBegin + "\n" + ReportEnd + "\n",
		"end not a line": ReportBegin + "\n" + ReportEnd + " trailing\n",
	} {
		if out, err := UpdateDoc([]byte(doc), []byte("r")); err == nil {
			t.Errorf("%s: no error, wrote %q", name, out)
		}
	}
}

// TestReportSummaryHasARowPerOfferedRate: a fixed-rate result of several
// offered rates gives a row per rate, each comparing the pair at that
// rate; the peak ratio is on the first.
func TestReportSummaryHasARowPerOfferedRate(t *testing.T) {
	rs := reportResults()
	rate := rs[0]
	rate.Points = append(rate.Points,
		Point{System: SysMkstack, Cores: 1, OfferedRate: 20000, Rate: 20000, Count: 200000, MachineCPUSeconds: 2},
		Point{System: SysLinuxEpoll, Cores: 1, OfferedRate: 20000, Rate: 20000, Count: 200000, MachineCPUSeconds: 8},
	)
	out := report(t, rs)
	for _, row := range []string{
		"| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 | 3.00 | 10.0K | 0.40 | 20.00 | 50.00 |  |",
		"| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 |  | 20.0K | 0.25 | 10.00 | 40.00 |  |",
	} {
		if !strings.Contains(out, row+"\n") {
			t.Errorf("no row\n%s\nin\n%s", row, out)
		}
	}
}

// TestReportAlongTheConnectionAxis: a result whose points differ in flows
// gets the Connections summary (rate ratio per count, memory and its
// slope per connection) and keeps out of the peak summary.
func TestReportAlongTheConnectionAxis(t *testing.T) {
	pt := func(sys string, flows int, rate float64, memMiB int64) Point {
		return Point{System: sys, Workload: TCPRR, Cores: 1, Flows: flows, Seconds: 1, Count: uint64(rate), Rate: rate,
			PerCore: rate, Unit: "trans/s", MachineMemoryBytes: memMiB << 20}
	}
	r := &Result{Env: Env{Commit: "abc"}, Workload: TCPRR, Duration: "1s", Points: []Point{
		pt(SysMkstackConnAFXDP, 100, 50000, 10), pt(SysLinuxVeth, 100, 40000, 12),
		pt(SysMkstackConnAFXDP, 1100, 45000, 20), pt(SysLinuxVeth, 1100, 40000, 32),
	}}
	r.Finish()
	var b bytes.Buffer
	if err := Report(&b, []*Result{r}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	// 10 MiB over 1000 connections is 10.24 KiB each; 20 MiB, 20.48.
	for _, want := range []string{"### Connections", "| tcp-rr | mkstack-conn-afxdp ÷ linux-veth | net.Conn | veth | 1 | 1100 | 45.0K | 40.0K | 1.12 | 20.0 | 32.0 | 10.2 | 20.5 |",
		"Along the connection axis: ", "| 1 |  |  | 100 | 10.0 | 50.0K |"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "| tcp-rr | mkstack-conn-afxdp ÷ linux-veth | net.Conn | veth | 1 | 1.25 |") {
		t.Errorf("the connection axis result is in the peak summary:\n%s", s)
	}
}

// TestReportStreamAtAFixedRate: a tcp-stream fixed-rate result, read from
// its tcp-stream-rate.json beside the stream's peak result and tcp-rr's,
// renders with its own units: offered bytes per second and the machine's
// CPU µs per MiB received, in the summary (whose cells then name their
// units, as the table mixes them) and in its point table; the stream's
// peak table keeps ns per byte.
func TestReportStreamAtAFixedRate(t *testing.T) {
	rs := reportResults()
	peak := &Result{Env: Env{Commit: "abc"}, Workload: TCPStream, Duration: "3s", Points: []Point{
		{System: SysMkstack, Workload: TCPStream, Cores: 1, Rate: 2e9, Count: 6e9, Unit: "bytes/s", MachineCPUSeconds: 3},
		{System: SysLinuxEpoll, Workload: TCPStream, Cores: 1, Rate: 1e9, Count: 3e9, Unit: "bytes/s", MachineCPUSeconds: 3},
	}}
	rate := &Result{Env: Env{Commit: "abc"}, Workload: TCPStream, Duration: "3s", Rate: 50e6, Points: []Point{
		{System: SysMkstack, Workload: TCPStream, Cores: 1, OfferedRate: 50e6, Rate: 50e6, Count: 150e6, Unit: "bytes/s", MachineCPUSeconds: 0.3},
		{System: SysLinuxEpoll, Workload: TCPStream, Cores: 1, OfferedRate: 50e6, Rate: 49e6, Count: 147e6, Unit: "bytes/s", MachineCPUSeconds: 0.588},
	}}
	rate.Finish()
	if p := rate.Points[0]; p.MachineCPUUnit != "µs/MiB" || p.MachineCPUPerUnit < 2097.15 || p.MachineCPUPerUnit > 2097.16 {
		t.Errorf("machine CPU per unit %v %q, want 2097.15 µs/MiB", p.MachineCPUPerUnit, p.MachineCPUUnit)
	}
	dir := t.TempDir()
	for name, r := range map[string]*Result{"tcp-stream.json": peak, "tcp-stream-rate.json": rate} {
		var js bytes.Buffer
		if err := r.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), js.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := report(t, append(rs, read...))
	for _, want := range []string{
		"| offered rate | machine CPU ratio | system machine CPU | peer machine CPU | note |\n",
		"| tcp-stream | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 | 2.00 | 50.00M bytes/s | 0.50 | 2097.15 µs/MiB | 4194.30 µs/MiB |  |\n",
		"| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 | 3.00 | 10.0K trans/s | 0.40 | 20.00 µs/trans | 50.00 µs/trans |  |\n",
		"| GOMAXPROCS | bytes/s | p50 µs | p99 µs | machine CPU ns/byte |",
		"| mkstack |  |  |  |  | 1 |  |  | 2.00G |  |  | 0.50 |",
		"| GOMAXPROCS | offered bytes/s | achieved bytes/s | p50 µs | p99 µs | machine CPU µs/MiB |",
		"| mkstack |  |  |  |  | 1 |  |  | 50.00M | 50.00M |  |  | 2097.15 |",
		"| linux-epoll |  |  |  |  | 1 |  |  | 50.00M | 49.00M |  |  | 4194.30 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no\n%s\nin\n%s", want, out)
		}
	}
	// The text table has the offered rate and the CPU per MiB too.
	var table bytes.Buffer
	if err := rate.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"offered", "machine CPU µs/MiB", "2097.15", "at 50.00M bytes/s offered (handler): 1.02, machine CPU per MiB 0.50"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
