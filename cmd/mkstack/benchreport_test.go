package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/bench"
)

// regenerate is the command that brings docs/BENCHMARKS.md in line with
// docs/bench/*.json, run from the repository root.
const regenerate = "go run ./cmd/mkstack bench report --in docs/bench"

// TestBenchmarksDocMatchesTheData keeps the tables of docs/BENCHMARKS.md
// those of the committed results: the section between the report markers
// must be what bench.Report makes of docs/bench/*.json.
func TestBenchmarksDocMatchesTheData(t *testing.T) {
	const dir, docPath = "../../docs/bench", "../../docs/BENCHMARKS.md"
	results, err := bench.ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatalf("no results in %s", dir)
	}
	var report bytes.Buffer
	if err := bench.Report(&report, results); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := bench.UpdateDoc(doc, report.Bytes())
	if err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	if bytes.Equal(doc, want) {
		return
	}
	have, gen := strings.Split(string(doc), "\n"), strings.Split(string(want), "\n")
	line := 0
	for line < len(have) && line < len(gen) && have[line] == gen[line] {
		line++
	}
	at := func(ls []string) string {
		if line < len(ls) {
			return ls[line]
		}
		return "(end of file)"
	}
	t.Errorf("docs/BENCHMARKS.md does not match docs/bench/*.json; first difference at line %d:\n  doc:  %s\n  data: %s\n"+
		"regenerate it from the repository root with:\n  %s", line+1, at(have), at(gen), regenerate)
}

func TestBenchReportWritesBetweenTheMarkersOrPrints(t *testing.T) {
	dir := t.TempDir()
	r := &bench.Result{Workload: bench.TCPRR, Points: []bench.Point{
		{System: bench.SysMkstackConn, Cores: 1, Rate: 30000, Count: 90000},
		{System: bench.SysLinux, Cores: 1, Rate: 20000, Count: 60000},
	}}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tcp-rr.json"), js.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "doc.md")
	prose := "# B\n\nintro\n\n" + bench.ReportBegin + "\nstale\n" + bench.ReportEnd + "\n\n## After\n"
	if err := os.WriteFile(doc, []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"bench", "report", "--in", dir, "--doc", doc}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got, _ := os.ReadFile(doc)
	row := "| tcp-rr | mkstack-conn ÷ linux | net.Conn | mem wire vs loopback | 1 | 1.50 |"
	if !strings.HasPrefix(string(got), "# B\n\nintro\n\n"+bench.ReportBegin+"\n\n") || !strings.HasSuffix(string(got), bench.ReportEnd+"\n\n## After\n") ||
		strings.Contains(string(got), "stale") || !strings.Contains(string(got), row) {
		t.Fatalf("doc:\n%s", got)
	}
	out.Reset()
	if code := run([]string{"bench", "report", "--in", dir, "--doc", doc}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "up to date") {
		t.Errorf("second run: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"bench", "report", "--in", dir, "--doc", "-"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), row) {
		t.Errorf("--doc -: exit %d\n%s", code, out.String())
	}
	for _, args := range [][]string{
		{"--in", filepath.Join(dir, "missing")},
		{"--in", t.TempDir()},
		{"--in", dir, "--doc", filepath.Join(dir, "tcp-rr.json")}, // no markers
	} {
		errOut.Reset()
		if code := run(append([]string{"bench", "report"}, args...), &out, &errOut); code != 1 {
			t.Errorf("%v: exit %d, want 1: %s", args, code, errOut.String())
		}
	}
	if code := run([]string{"bench", "report", "extra"}, &out, &errOut); code != 2 {
		t.Errorf("an extra argument: exit %d, want 2", code)
	}
}
