package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/bench"
)

func TestBenchBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--workload", "tcp-rrr"},
		{"--cores", "0"},
		{"--cores", "two"},
		{"--systems", "mkstack,bsd"},
		{"--duration", "0s"},
		{"--conns", "-1"},
		{"--conns", "10,x"},
		{"--conns", "10,20", "--rate", "100"},
		{"--workload", "tcp-stream", "--transactions", "100"},
		{"--rate", "100", "--transactions", "100"},
		{"--rate", "10x"},
		{"--rate", "-5k"},
		{"--rate", "NaN"},
		{"--workload", "tcp-stream", "--rate", "0"},
		{"--nosuchflag"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"bench"}, args...), &out, &errOut); code != 2 {
			t.Errorf("bench %v: exit %d, want 2\n%s", args, code, errOut.String())
		}
		if !strings.Contains(errOut.String(), "Usage") && !strings.Contains(errOut.String(), "-workload") {
			t.Errorf("bench %v: no usage in\n%s", args, errOut.String())
		}
	}
}

func TestBenchWritesJSONTableAndPlots(t *testing.T) {
	root := os.Geteuid() == 0
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--workload", "tcp-rr,udp-echo", "--cores", "1", "--systems", "mkstack-conn,linux,mkstack-tap",
		"--duration", "300ms", "--warmup", "50ms", "--conns", "4", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, w := range []string{"tcp-rr", "udp-echo"} {
		r := readResult(t, filepath.Join(dir, w+".json"))
		if string(r.Workload) != w || len(r.Points) != 3 || r.Env.GoVersion == "" || r.Env.GOMAXPROCS < 1 {
			t.Fatalf("%s.json: %+v", w, r)
		}
		for _, p := range r.Points {
			// mkstack-tap runs as root (its own namespace, made and
			// removed by the point) and is not available otherwise.
			if (p.Err == "") != (p.System != "mkstack-tap" || root) || (p.Err == "" && p.Rate <= 0) {
				t.Errorf("%s: point %+v", w, p)
			}
		}
		for _, name := range []string{".txt", "-throughput.svg", "-throughput.png", "-efficiency.svg", "-latency.png"} {
			if st, err := os.Stat(filepath.Join(dir, w+name)); err != nil || st.Size() == 0 {
				t.Errorf("%s%s: %v", w, name, err)
			}
		}
	}
	s := out.String()
	want := []string{"mkstack-conn ÷ linux at 1 cores (net.Conn)", "p99 µs", "mkstack-tap, 1 cores: mkstack-tap: not available: needs root"}
	if root {
		want[2] = "mkstack-tap, 1 cores: "
	}
	for _, want := range want {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

// TestBenchAtAFixedRate: --rate paces every point and writes
// WORKLOAD-rate.json with the offered rate, the machine's CPU per
// transaction and the CPU-per-transaction plot.
func TestBenchAtAFixedRate(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--workload", "tcp-rr", "--cores", "1", "--systems", "mkstack-conn,linux",
		"--duration", "400ms", "--warmup", "50ms", "--conns", "4", "--rate", "2000,1000", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	r := readResult(t, filepath.Join(dir, "tcp-rr-rate.json"))
	if len(r.Points) != 4 || fmt.Sprint(r.OfferedRates()) != "[1000 2000]" {
		t.Fatalf("%+v", r)
	}
	machine := 0
	for _, p := range r.Points {
		if p.Err != "" || p.Rate > 1.1*p.OfferedRate || p.CPUSeconds <= 0 {
			t.Errorf("point %+v", p)
		}
		if p.CPUPerTxn() > 0 {
			machine++
		}
	}
	// /proc/stat counts in 10 ms ticks: a light 400 ms point may see none.
	if machine == 0 {
		t.Errorf("no point measured machine CPU: %+v", r.Points)
	}
	// Each rate's ratio line gives the machine CPU ratio exactly when
	// both systems' points measured it (a loaded machine's short window
	// may read none for either).
	for _, rate := range r.OfferedRates() {
		both := 0
		for _, p := range r.Points {
			if p.OfferedRate == rate && p.CPUPerTxn() > 0 {
				both++
			}
		}
		prefix := fmt.Sprintf("mkstack-conn ÷ linux at 1 cores at %s offered (net.Conn): ", bench.FormatRate(rate))
		var line string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, prefix) {
				line = l
			}
		}
		switch {
		case line == "":
			t.Errorf("output lacks the ratio at %s offered:\n%s", bench.FormatRate(rate), out.String())
		case (both == 2) != strings.Contains(line, "machine CPU per transaction"):
			t.Errorf("%d of 2 points at %s offered measured machine CPU, and the ratio line reads %q", both, bench.FormatRate(rate), line)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tcp-rr-cpu-per-txn.svg")); err != nil {
		t.Error(err)
	}
}

func TestParseRatesTakesMultipliers(t *testing.T) {
	for in, want := range map[string]string{
		"16000":        "[16000]",
		"16k,4000,16K": "[4000 16000]",
		"100M":         "[1e+08]",
		"1.5G":         "[1.5e+09]",
		"64Mi, 2Ki":    "[2048 6.7108864e+07]",
		"1Gi":          "[1.073741824e+09]",
		"":             "[]",
	} {
		got, err := parseRates(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("parseRates(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "10m", "M", "0k", "-1M", "Inf", "1e400"} {
		if got, err := parseRates(in); err == nil {
			t.Errorf("parseRates(%q) = %v, want an error", in, got)
		}
	}
}

// TestBenchStreamAtAFixedRate: --rate for tcp-stream is bytes per second
// (here with a multiplier): the point receives about that, and the run
// writes tcp-stream-rate.json, whose report renders the CPU per MiB.
func TestBenchStreamAtAFixedRate(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--workload", "tcp-stream", "--cores", "1", "--systems", "linux",
		"--duration", "400ms", "--warmup", "100ms", "--rate", "40M", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	r := readResult(t, filepath.Join(dir, "tcp-stream-rate.json"))
	if len(r.Points) != 1 || r.Rate != 40e6 {
		t.Fatalf("%+v", r)
	}
	p := r.Points[0]
	if p.Err != "" || p.OfferedRate != 40e6 || p.Rate < 0.8*40e6 || p.Rate > 1.2*40e6 || p.Unit != "bytes/s" {
		t.Errorf("point %+v", p)
	}
	if !strings.Contains(out.String(), "(40.00M offered)") || !strings.Contains(out.String(), "offered") {
		t.Errorf("output:\n%s", out.String())
	}
	// /proc/stat counts in 10 ms ticks: a light point may see none.
	if p.MachineCPUSeconds > 0 {
		if p.MachineCPUUnit != "µs/MiB" || !strings.Contains(out.String(), "machine CPU µs/MiB") {
			t.Errorf("machine CPU %v %q; output:\n%s", p.MachineCPUPerUnit, p.MachineCPUUnit, out.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "tcp-stream-cpu-per-txn.svg")); err != nil {
			t.Error(err)
		}
	}
	out.Reset()
	if code := run([]string{"bench", "report", "--in", dir, "--doc", "-"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "| offered bytes/s | achieved bytes/s |") || !strings.Contains(out.String(), "machine CPU µs/MiB") {
		t.Errorf("report: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// TestBenchAlongTheConnectionAxis: --conns with a list runs each count and
// writes WORKLOAD-conns.json, whose points differ in flows, with the
// rate and memory plots against connections and a ratio per count.
func TestBenchAlongTheConnectionAxis(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--workload", "tcp-rr", "--cores", "1", "--systems", "mkstack-conn,linux",
		"--duration", "300ms", "--warmup", "50ms", "--conns", "8,2", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	r := readResult(t, filepath.Join(dir, "tcp-rr-conns.json"))
	if fmt.Sprint(r.FlowCounts()) != "[2 8]" || len(r.Points) != 4 {
		t.Fatalf("flows %v, %d points: %+v", r.FlowCounts(), len(r.Points), r.Points)
	}
	for _, p := range r.Points {
		if p.Err != "" || p.Rate <= 0 {
			t.Errorf("point %+v", p)
		}
	}
	for _, want := range []string{"mkstack-conn ÷ linux at 1 cores with 2 conns (net.Conn)", "mkstack-conn ÷ linux at 1 cores with 8 conns (net.Conn)", "mem MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, name := range []string{"tcp-rr-conns-rate.svg", "tcp-rr-conns-memory.png"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBenchIdleConnections runs the idle-connection mode along the
// connection axis: each point in a process of its own (here, this test
// binary as bench-point), every connection opened and counted, the memory
// plot drawn; as root, also on the veth, where the kernel's and mkstack's
// load runs in a process of its own in the peer namespace.
func TestBenchIdleConnections(t *testing.T) {
	systems := "mkstack-conn,linux"
	if os.Geteuid() == 0 && !testing.Short() {
		systems += ",mkstack-conn-afxdp,linux-veth"
	}
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--idle", "--workload", "http", "--cores", "1", "--systems", systems,
		"--duration", "1s", "--conns", "30,60", "--idle-settle", "200ms", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	r := readResult(t, filepath.Join(dir, "http-conns-idle.json"))
	n := len(strings.Split(systems, ","))
	if !r.Idle || len(r.Points) != 2*n {
		t.Fatalf("idle %v, %d points, want %d: %+v", r.Idle, len(r.Points), 2*n, r.Points)
	}
	for _, p := range r.Points {
		if p.Err != "" || p.Count != uint64(p.Flows) || p.Rate <= 0 {
			t.Errorf("point %+v", p)
		}
	}
	if !strings.Contains(out.String(), "60 idle connections") {
		t.Errorf("output lacks the idle lines:\n%s", out.String())
	}
	if st, err := os.Stat(filepath.Join(dir, "http-conns-idle-memory.png")); err != nil || st.Size() == 0 {
		t.Errorf("the memory plot: %v", err)
	}
}

// TestBenchRefusesADirtyTree: --out inside a git work tree with
// uncommitted changes fails before anything runs, unless --allow-dirty.
func TestBenchRefusesADirtyTree(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	if err := checkCleanTree(filepath.Join(repo, "docs", "bench"), false); err != nil {
		t.Errorf("clean tree refused: %v", err)
	}
	// Figures already under docs/ (an earlier workload's) do not count.
	os.MkdirAll(filepath.Join(repo, "docs", "bench"), 0o755)
	doc := filepath.Join(repo, "docs", "bench", "tcp-rr.json")
	os.WriteFile(doc, []byte("{}"), 0o644)
	exec.Command("git", "-C", repo, "add", doc).Run()
	if err := checkCleanTree(filepath.Join(repo, "docs", "bench"), false); err != nil {
		t.Errorf("a change under docs/ refused: %v", err)
	}
	f := filepath.Join(repo, "f")
	os.WriteFile(f, []byte("a"), 0o644)
	exec.Command("git", "-C", repo, "add", "f").Run()
	err := checkCleanTree(filepath.Join(repo, "docs", "bench"), false)
	if err == nil || !strings.Contains(err.Error(), "--allow-dirty") {
		t.Errorf("dirty tree: %v, want a refusal naming --allow-dirty", err)
	}
	if err := checkCleanTree(filepath.Join(repo, "docs", "bench"), true); err != nil {
		t.Errorf("dirty tree with --allow-dirty: %v", err)
	}
	if err := checkCleanTree(t.TempDir(), false); err != nil {
		t.Errorf("outside a tree: %v", err)
	}
}

// readResult reads a result mkstack bench wrote.
func readResult(t *testing.T, path string) *bench.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bench.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
