package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/bench"
)

// TestBenchIPv6Flag: --ipv6 is a boolean flag (off by default: the spec
// without it is IPv4); a bad value is a usage error.
func TestBenchIPv6Flag(t *testing.T) {
	for _, args := range [][]string{{"--ipv6=maybe"}, {"--ipv6", "extra"}} {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"bench"}, args...), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "-ipv6") {
			t.Errorf("bench %v: exit %d, want 2 and a usage naming -ipv6\n%s", args, code, errOut.String())
		}
	}
}

// TestBenchOverIPv6WritesItsOwnFiles runs the mem wire systems with
// --ipv6 (in-process, fd00::1 and fd00::2): every point records IPv6, the
// progress lines and the table say so, and the files are
// WORKLOAD-ipv6.json and WORKLOAD-ipv6-*.svg, beside where an IPv4 run's
// would be.
func TestBenchOverIPv6WritesItsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "--ipv6", "--workload", "tcp-rr", "--cores", "1", "--systems", "mkstack,mkstack-conn",
		"--duration", "200ms", "--warmup", "50ms", "--conns", "2", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	r := readResult(t, filepath.Join(dir, "tcp-rr-ipv6.json"))
	if len(r.Points) != 2 {
		t.Fatalf("points %+v", r.Points)
	}
	for _, p := range r.Points {
		if p.Err != "" || p.Count == 0 || p.Family != bench.FamilyIPv6 {
			t.Errorf("point %s: %d transactions, family %q, %q", p.System, p.Count, p.Family, p.Err)
		}
	}
	for _, name := range []string{"tcp-rr.json", "tcp-rr-throughput.svg"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("an IPv6 run wrote %s", name)
		}
	}
	for _, name := range []string{"tcp-rr-ipv6.txt", "tcp-rr-ipv6-throughput.svg", "tcp-rr-ipv6-latency.png"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, want := range []string{"tcp-rr mkstack, 1 cores, IPv6: ", "tcp-rr mkstack-conn, 1 cores, IPv6: ", "tcp-rr over IPv6 (", "family"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
