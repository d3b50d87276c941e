//go:build linux

package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseH2load(t *testing.T) {
	out := `starting benchmark...
finished in 2.00s, 1500.50 req/s, 200KB/s
requests: 3003 total, 3003 started, 3001 done, 3000 succeeded, 1 failed, 1 errored, 0 timeout
status codes: 3000 2xx, 0 3xx, 0 4xx, 1 5xx
`
	log := filepath.Join(t.TempDir(), "log")
	var lines []byte
	for i := range 100 {
		lines = fmt.Appendf(lines, "1700000000%06d\t200\t%d\n", i, 100+i)
	}
	lines = append(lines, "1700000000999999\t500\t99999\n"...)
	if err := os.WriteFile(log, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	pt, err := parseH2load(out, log, Params{Workload: HTTP, Cores: 1, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if pt.Count != 3000 || pt.Seconds != 2 || pt.Rate != 1500 || pt.Errors != 2 {
		t.Errorf("%+v", pt)
	}
	// Durations 100..199 µs; the 500 is left out.
	if l := pt.Latency; l == nil || l.Samples != 100 || math.Abs(l.P50-150) > 6 || l.Max > 205 {
		t.Errorf("latency %+v", pt.Latency)
	}
	if _, err := parseH2load("connect failed", "", Params{}); err == nil {
		t.Error("an h2load failure parsed")
	}
}
