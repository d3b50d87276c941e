package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mkstack/mkstack/bench"
)

// runBenchReport is `mkstack bench report`: it turns the result files of
// earlier runs (mkstack bench --out DIR) into markdown tables and writes
// them into a document between bench.ReportBegin and bench.ReportEnd, so
// the figures in docs/BENCHMARKS.md are always those of the committed JSON
// (TestBenchmarksDocMatchesTheData checks that they are).
func runBenchReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "docs/bench", "read every DIR/*.json written by mkstack bench --out DIR")
	doc := fs.String("doc", "docs/BENCHMARKS.md", "write the report into FILE between its report markers, or print it with -")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkstack bench report [--in DIR] [--doc FILE|-]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "mkstack bench report: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if err := benchReport(*in, *doc, stdout); err != nil {
		fmt.Fprintln(stderr, "mkstack bench report:", err)
		return 1
	}
	return 0
}

// benchReport writes the report of the results in dir into doc ("-":
// stdout), replacing only what lies between the markers.
func benchReport(dir, doc string, stdout io.Writer) error {
	results, err := bench.ReadResults(dir)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return fmt.Errorf("no results (*.json) in %s", dir)
	}
	var report bytes.Buffer
	if err := bench.Report(&report, results); err != nil {
		return err
	}
	if doc == "-" {
		_, err := stdout.Write(report.Bytes())
		return err
	}
	old, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	updated, err := bench.UpdateDoc(old, report.Bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", doc, err)
	}
	if bytes.Equal(old, updated) {
		fmt.Fprintf(stdout, "%s is up to date with %d results in %s\n", doc, len(results), dir)
		return nil
	}
	st, err := os.Stat(doc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(doc, updated, st.Mode().Perm()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the report of %d results in %s into %s\n", len(results), dir, doc)
	return nil
}
