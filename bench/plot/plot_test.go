package plot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mkstack/mkstack/bench"
)

func result(w bench.Workload) *bench.Result {
	r := &bench.Result{Workload: w}
	for _, s := range []string{"mkstack", "linux"} {
		for k := 1; k <= 2; k++ {
			p := bench.Point{System: s, Workload: w, Cores: k, Rate: float64(k) * 1e5, Unit: w.Unit()}
			if !w.Stream() {
				p.Latency = &bench.Latency{P50: 10, P90: 20, P99: 40, P999: 80}
			}
			r.Points = append(r.Points, p)
		}
	}
	r.Points = append(r.Points, bench.Point{System: "mkstack-tap", Cores: 1, Err: "not available"})
	r.Finish()
	return r
}

func TestWriteDrawsEveryFigureAsSVGAndPNG(t *testing.T) {
	dir := t.TempDir()
	paths, err := Write(result(bench.TCPRR), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 6 {
		t.Fatalf("wrote %v, want 3 figures x 2 formats", paths)
	}
	for _, name := range []string{"throughput", "efficiency", "latency"} {
		svg, err := os.ReadFile(filepath.Join(dir, "tcp-rr-"+name+".svg"))
		if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("mkstack")) {
			t.Errorf("%s.svg: %v, %d bytes", name, err, len(svg))
		}
		png, err := os.ReadFile(filepath.Join(dir, "tcp-rr-"+name+".png"))
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 1000 {
			t.Errorf("%s.png: %v, %d bytes", name, err, len(png))
		}
	}
}

func TestStreamsHaveNoLatencyFigure(t *testing.T) {
	paths, err := Write(result(bench.TCPStream), t.TempDir())
	if err != nil || len(paths) != 4 {
		t.Fatalf("wrote %v, %v; want throughput and efficiency only", paths, err)
	}
}
