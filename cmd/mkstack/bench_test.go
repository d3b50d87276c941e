package main

import (
	"bytes"
	"os"
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
		{"--workload", "tcp-stream", "--transactions", "100"},
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
	code := run([]string{"bench", "--workload", "tcp-rr,udp-echo", "--cores", "1", "--systems", "mkstack,linux,mkstack-tap",
		"--duration", "300ms", "--warmup", "50ms", "--conns", "4", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, w := range []string{"tcp-rr", "udp-echo"} {
		f, err := os.Open(filepath.Join(dir, w+".json"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := bench.ReadJSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
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
	want := []string{"mkstack ÷ linux at 1 cores", "p99 µs", "mkstack-tap, 1 cores: mkstack-tap: not available: needs root"}
	if root {
		want[2] = "mkstack-tap, 1 cores: "
	}
	for _, want := range want {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
