package plot

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
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

func rateResult() *bench.Result {
	r := &bench.Result{Workload: bench.TCPRR}
	for i, s := range []string{"mkstack", "linux-epoll"} {
		for k := 1; k <= 2; k++ {
			r.Points = append(r.Points, bench.Point{System: s, Workload: bench.TCPRR, Cores: k, OfferedRate: 1e4, Rate: 1e4,
				Count: 30000, MachineCPUSeconds: float64(i+1) * 0.3 * float64(k)})
		}
	}
	r.Points = append(r.Points, bench.Point{System: "mkstack-tap", Cores: 1, OfferedRate: 1e4, Err: "not available"})
	return r
}

func TestWriteRateDrawsCPUPerTransaction(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteRate(rateResult(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("wrote %v, want one figure x 2 formats", paths)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "tcp-rr-cpu-per-txn.svg"))
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("linux-epoll")) || bytes.Contains(svg, []byte("mkstack-tap")) {
		t.Errorf("svg: %v, %d bytes", err, len(svg))
	}
	png, err := os.ReadFile(filepath.Join(dir, "tcp-rr-cpu-per-txn.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 1000 {
		t.Errorf("png: %v, %d bytes", err, len(png))
	}
}

func TestWriteRateRefusesPeakResultsAndSkipsMissingFigures(t *testing.T) {
	if paths, err := WriteRate(result(bench.TCPRR), t.TempDir()); err == nil {
		t.Errorf("a peak result: wrote %v, want an error", paths)
	}
	r := rateResult()
	for i := range r.Points {
		r.Points[i].MachineCPUSeconds = 0
	}
	if paths, err := WriteRate(r, t.TempDir()); err != nil || len(paths) != 0 {
		t.Errorf("no machine CPU figures: wrote %v, %v; want nothing", paths, err)
	}
}

// TestWriteRateDrawsCPUAgainstOfferedRate: a result of several offered
// rates is drawn as CPU per transaction against the offered rate.
func TestWriteRateDrawsCPUAgainstOfferedRate(t *testing.T) {
	r := rateResult()
	more := slices.Clone(r.Points)
	for i := range more {
		more[i].OfferedRate *= 2
		more[i].Count *= 2
	}
	r.Points = append(r.Points, more...)
	dir := t.TempDir()
	if _, err := WriteRate(r, dir); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "tcp-rr-cpu-per-txn.svg"))
	if err != nil || !bytes.Contains(svg, []byte("against offered rate")) || !bytes.Contains(svg, []byte("linux-epoll, 1 core")) {
		t.Errorf("svg: %v, %d bytes", err, len(svg))
	}
}

// TestWriteRateDrawsStreamsPerMiB: a stream's fixed-rate figures are CPU
// per MiB received, not per transaction (nor per byte, which would draw
// as nothing), against MB/s offered for several rates.
func TestWriteRateDrawsStreamsPerMiB(t *testing.T) {
	r := &bench.Result{Workload: bench.TCPStream}
	for i, s := range []string{"mkstack", "linux-epoll"} {
		for _, offered := range []float64{50e6, 100e6} {
			r.Points = append(r.Points, bench.Point{System: s, Workload: bench.TCPStream, Cores: 1, OfferedRate: offered, Rate: offered,
				Count: uint64(3 * offered), MachineCPUSeconds: float64(i+1) * 0.3})
		}
	}
	for _, rates := range []int{1, 2} {
		rr := &bench.Result{Workload: r.Workload}
		for _, p := range r.Points {
			if rates == 2 || p.OfferedRate == 50e6 {
				rr.Points = append(rr.Points, p)
			}
		}
		dir := t.TempDir()
		if _, err := WriteRate(rr, dir); err != nil {
			t.Fatal(err)
		}
		svg, err := os.ReadFile(filepath.Join(dir, "tcp-stream-cpu-per-txn.svg"))
		if err != nil || !bytes.Contains(svg, []byte("µs of CPU per MiB")) || bytes.Contains(svg, []byte("per transaction")) {
			t.Errorf("%d rates: svg: %v, %d bytes", rates, err, len(svg))
		}
		if rates == 2 && !bytes.Contains(svg, []byte("MB/s")) {
			t.Errorf("%d rates: the offered axis is not in MB/s", rates)
		}
	}
}

// TestWriteConnsDrawsRateMemoryAndLatency: a result along the connection
// axis gets its rate, memory and latency percentiles against connections;
// a stream's has no latency figures, and a system without latency is left
// out of those.
func TestWriteConnsDrawsRateMemoryAndLatency(t *testing.T) {
	conns := func(w bench.Workload) *bench.Result {
		r := &bench.Result{Workload: w}
		for _, s := range []string{"mkstack-conn-afxdp", "linux-veth"} {
			for _, flows := range []int{1, 16, 128} {
				p := bench.Point{System: s, Workload: w, Cores: 1, Flows: flows, Rate: 1e4 * float64(flows), Unit: w.Unit(), MachineMemoryBytes: int64(flows) << 20}
				if !w.Stream() && s != "linux-veth" {
					p.Latency = &bench.Latency{P50: 10 * float64(flows), P99: 40 * float64(flows)}
				}
				r.Points = append(r.Points, p)
			}
		}
		r.Finish()
		return r
	}
	dir := t.TempDir()
	paths, err := WriteConns(conns(bench.TCPRR), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rate", "memory", "p50", "p99"} {
		svg, err := os.ReadFile(filepath.Join(dir, "tcp-rr-conns-"+name+".svg"))
		if err != nil || !bytes.Contains(svg, []byte("mkstack-conn-afxdp")) {
			t.Fatalf("tcp-rr-conns-%s.svg: %v, or it does not name the system", name, err)
		}
		if name == "p50" || name == "p99" {
			if bytes.Contains(svg, []byte("linux-veth")) {
				t.Errorf("tcp-rr-conns-%s.svg draws linux-veth, whose points have no latency", name)
			}
		}
	}
	if len(paths) != 8 {
		t.Errorf("wrote %d files, want 4 figures x 2 formats: %v", len(paths), paths)
	}
	paths, err = WriteConns(conns(bench.TCPStream), t.TempDir())
	if err != nil || len(paths) != 4 {
		t.Errorf("a stream along the connection axis: %v, %v; want rate and memory only", paths, err)
	}
}
