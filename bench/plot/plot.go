// Package plot draws a bench.Result: throughput against cores per system,
// per-core efficiency, and latency percentiles (Write), or for a
// fixed-rate result the machine CPU per transaction, per MiB for the
// streams (WriteRate), each as
// SVG and PNG (with gonum.org/v1/plot). It is for the command only: bench
// itself draws nothing, so importing it pulls in no plotting code.
package plot

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/mkstack/mkstack/bench"
)

// Size of every figure.
const (
	width  = 6 * vg.Inch
	height = 4 * vg.Inch
)

// stem begins the names of r's figures: the workload, and -ipv6 for a
// result with IPv6 points (mkstack bench --ipv6), so they sit beside the
// IPv4 run's.
func stem(r *bench.Result) string {
	if r.HasIPv6() {
		return string(r.Workload) + "-ipv6"
	}
	return string(r.Workload)
}

// title names r in a figure's title: the workload, "over IPv6" for a
// result with IPv6 points.
func title(r *bench.Result) string {
	if r.HasIPv6() {
		return string(r.Workload) + " over IPv6"
	}
	return string(r.Workload)
}

// Write draws r's figures into dir as WORKLOAD-throughput, -efficiency and
// -latency, each .svg and .png, and returns the paths written.
func Write(r *bench.Result, dir string) ([]string, error) {
	var paths []string
	for _, f := range []struct {
		name string
		draw func(*bench.Result) (*plot.Plot, error)
	}{
		{"throughput", throughput},
		{"efficiency", efficiency},
		{"latency", latency},
	} {
		p, err := f.draw(r)
		if err != nil {
			return paths, fmt.Errorf("plot %s %s: %w", r.Workload, f.name, err)
		}
		if p == nil {
			continue
		}
		for _, ext := range []string{".svg", ".png"} {
			path := filepath.Join(dir, stem(r)+"-"+f.name+ext)
			if err := p.Save(width, height, path); err != nil {
				return paths, fmt.Errorf("plot %s: %w", path, err)
			}
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// WriteRate draws a fixed-rate result (mkstack bench --rate, the
// WORKLOAD-rate.json files) into dir as WORKLOAD-cpu-per-txn.svg and .png:
// the whole machine's CPU per transaction (per MiB received for a stream)
// of each system at each core count, the figure that compares systems at
// the same offered load. It
// returns the paths written, none if no point has a machine CPU figure,
// and an error for a peak result, whose figures would be misread.
func WriteRate(r *bench.Result, dir string) ([]string, error) {
	if !slices.ContainsFunc(r.Points, func(p bench.Point) bool { return p.OfferedRate > 0 }) {
		return nil, fmt.Errorf("plot %s cpu-per-txn: not a fixed-rate result (no point has an offered rate)", r.Workload)
	}
	draw := cpuPerTxn
	if len(r.OfferedRates()) > 1 {
		draw = cpuPerTxnByRate
	}
	p, err := draw(r)
	if err != nil {
		return nil, fmt.Errorf("plot %s cpu-per-txn: %w", r.Workload, err)
	}
	if p == nil {
		return nil, nil
	}
	var paths []string
	for _, ext := range []string{".svg", ".png"} {
		path := filepath.Join(dir, stem(r)+"-cpu-per-txn"+ext)
		if err := p.Save(width, height, path); err != nil {
			return paths, fmt.Errorf("plot %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// cpuPerTxn draws the machine CPU µs per transaction (per MiB for a
// stream) of each system as bars grouped by core count (nil if no point
// has the figure).
func cpuPerTxn(r *bench.Result) (*plot.Plot, error) {
	var cores []int
	var syss []string
	for _, pt := range r.Points {
		if pt.Err != "" || pt.CPUPerTxn() <= 0 {
			continue
		}
		if !slices.Contains(cores, pt.Cores) {
			cores = append(cores, pt.Cores)
		}
		if !slices.Contains(syss, pt.System) {
			syss = append(syss, pt.System)
		}
	}
	if len(syss) == 0 {
		return nil, nil
	}
	slices.Sort(cores)
	offered := ""
	for _, pt := range r.Points {
		if pt.OfferedRate > 0 {
			offered = fmt.Sprintf(" at %s %s offered", bench.FormatRate(pt.OfferedRate), r.Workload.Unit())
			break
		}
	}
	per, scale := cpuAxis(r.Workload)
	p := newPlot(fmt.Sprintf("%s%s: machine CPU per %s", title(r), offered, per), "", "µs of CPU per "+per)
	w := vg.Points(60 / float64(len(syss)))
	for i, s := range syss {
		v := make(plotter.Values, len(cores))
		for j, k := range cores {
			if pt := r.Find(s, k); pt != nil && pt.Err == "" {
				v[j] = pt.CPUPerTxn() * scale
			}
		}
		b, err := plotter.NewBarChart(v, w)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Color = color.Black
		b.LineStyle.Width = vg.Points(0.3)
		b.Offset = w * vg.Length(float64(i)-float64(len(syss)-1)/2)
		p.Add(b)
		p.Legend.Add(s, b)
	}
	names := make([]string, len(cores))
	for j, k := range cores {
		names[j] = fmt.Sprintf("%d cores", k)
		if k == 1 {
			names[j] = "1 core"
		}
	}
	p.NominalX(names...)
	p.Y.Min = 0
	return p, nil
}

// cpuAxis is what the CPU figures of w are per, in words, and the factor
// from bench.Point.CPUPerTxn to µs per it (bench.CPUUnit): a
// transaction, or for a stream a MiB received.
func cpuAxis(w bench.Workload) (string, float64) {
	_, scale := bench.CPUUnit(w)
	return bench.CPUPerUnitText(w), scale
}

// cpuPerTxnByRate draws, for each system at each core count, the machine
// CPU µs per transaction (per MiB for a stream) against the offered rate
// (a result of several rates: mkstack bench --rate 4000,8000,16000), so
// each pair's curves can be read side by side (nil if no point has the
// figure).
func cpuPerTxnByRate(r *bench.Result) (*plot.Plot, error) {
	per, scale := cpuAxis(r.Workload)
	xScale, xLabel := 1e3, "offered rate, thousand "+r.Workload.Unit()
	if r.Workload.Stream() {
		xScale, xLabel = 1e6, "offered rate, MB/s"
	}
	p := newPlot(fmt.Sprintf("%s: machine CPU per %s against offered rate", title(r), per),
		xLabel, "µs of CPU per "+per)
	var lines []any
	type series struct {
		system string
		cores  int
	}
	var seen []series
	for _, pt := range r.Points {
		s := series{pt.System, pt.Cores}
		if pt.Err != "" || pt.CPUPerTxn() <= 0 || slices.Contains(seen, s) {
			continue
		}
		seen = append(seen, s)
		var xy plotter.XYs
		for _, q := range r.Points {
			if q.System == s.system && q.Cores == s.cores && q.Err == "" && q.CPUPerTxn() > 0 {
				xy = append(xy, plotter.XY{X: q.OfferedRate / xScale, Y: q.CPUPerTxn() * scale})
			}
		}
		slices.SortFunc(xy, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
		label := fmt.Sprintf("%s, %d cores", s.system, s.cores)
		if s.cores == 1 {
			label = s.system + ", 1 core"
		}
		lines = append(lines, label, xy)
	}
	if len(lines) == 0 {
		return nil, nil
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	return p, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// systems returns the systems with at least one figure, in run order.
func systems(r *bench.Result) []string {
	var out []string
	for _, p := range r.Points {
		if p.Err == "" && !slices.Contains(out, p.System) {
			out = append(out, p.System)
		}
	}
	return out
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

// byCores draws, for each system, value(point) against its core count.
func byCores(r *bench.Result, title, ylabel string, value func(bench.Point) float64) (*plot.Plot, error) {
	p := newPlot(title, "cores", ylabel)
	var lines []any
	for _, s := range systems(r) {
		var xy plotter.XYs
		for _, pt := range r.Points {
			if pt.System == s && pt.Err == "" {
				xy = append(xy, plotter.XY{X: float64(pt.Cores), Y: value(pt)})
			}
		}
		lines = append(lines, s, xy)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, err
	}
	p.X.Tick.Marker = plot.TickerFunc(integerTicks)
	p.Y.Min = 0
	return p, nil
}

// integerTicks marks whole core counts only.
func integerTicks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for v := float64(int(min)); v <= max; v++ {
		if v >= min {
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
		}
	}
	return ts
}

func throughput(r *bench.Result) (*plot.Plot, error) {
	unit := r.Workload.Unit()
	scale, label := 1e3, "thousand "+unit
	if r.Workload.Stream() {
		scale, label = 1e9/8, "Gbit/s"
	}
	return byCores(r, fmt.Sprintf("%s: throughput", title(r)), label, func(p bench.Point) float64 { return p.Rate / scale })
}

func efficiency(r *bench.Result) (*plot.Plot, error) {
	return byCores(r, fmt.Sprintf("%s: per-core efficiency, rate(k) / (k * rate(1))", title(r)), "efficiency",
		func(p bench.Point) float64 { return p.Efficiency })
}

// latency draws p50, p90, p99 and p99.9 of each system at each core count
// as groups of bars (nil for the streams, which have none).
func latency(r *bench.Result) (*plot.Plot, error) {
	if r.Workload.Stream() {
		return nil, nil
	}
	p := newPlot(fmt.Sprintf("%s: latency percentiles", title(r)), "", "µs")
	names := []string{"p50", "p90", "p99", "p99.9"}
	type series struct {
		label string
		v     plotter.Values
	}
	var ss []series
	for _, pt := range r.Points {
		if pt.Err != "" || pt.Latency == nil {
			continue
		}
		l := pt.Latency
		ss = append(ss, series{fmt.Sprintf("%s, %d cores", pt.System, pt.Cores), plotter.Values{l.P50, l.P90, l.P99, l.P999}})
	}
	if len(ss) == 0 {
		return nil, nil
	}
	w := vg.Points(60 / float64(len(ss)))
	for i, s := range ss {
		b, err := plotter.NewBarChart(s.v, w)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Color = color.Black
		b.LineStyle.Width = vg.Points(0.3)
		b.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(b)
		p.Legend.Add(s.label, b)
	}
	p.NominalX(names...)
	p.Y.Min = 0
	return p, nil
}

// WriteConns draws a result along the connection axis (mkstack bench
// --conns 100,1000,5000, the WORKLOAD-conns.json files) into dir as
// WORKLOAD-conns-rate and WORKLOAD-conns-memory, .svg and .png: each
// system's rate, and the growth of the whole machine's memory in use,
// against the connections open (all cores together), a line per system
// and core count; and, for the transaction workloads, WORKLOAD-conns-p50
// and WORKLOAD-conns-p99, the latency percentiles against connections
// (a point without latency figures is left out). An idle-connection
// result (bench.Spec.Idle) gets WORKLOAD-conns-idle-memory instead: the
// memory per idle connection against connections. It returns the paths
// written.
func WriteConns(r *bench.Result, dir string) ([]string, error) {
	if len(r.FlowCounts()) < 2 {
		return nil, fmt.Errorf("plot %s conns: not a result along the connection axis (one connection count)", r.Workload)
	}
	scale, label := 1e3, "thousand "+r.Workload.Unit()
	if r.Workload.Stream() {
		scale, label = 1e9/8, "Gbit/s"
	}
	type figure struct {
		name, title, y string
		value          func(bench.Point) float64
	}
	figures := []figure{
		{"rate", "rate against connections", label, func(p bench.Point) float64 { return p.Rate / scale }},
		{"memory", "machine memory in use against connections", "MiB", func(p bench.Point) float64 {
			return float64(p.MachineMemoryBytes) / (1 << 20)
		}},
	}
	if r.Idle {
		// The idle-connection mode: its rate is the opening's, and its
		// figure the memory each open idle connection holds.
		figures = []figure{{"idle-memory", "memory per idle connection against connections", "KiB per connection", func(p bench.Point) float64 {
			if k := p.IdleKiBPerConn(); k > 0 {
				return k
			}
			return math.NaN()
		}}}
	} else if !r.Workload.Stream() {
		figures = append(figures,
			figure{"p50", "median latency against connections", "p50 µs", func(p bench.Point) float64 { return latencyOf(p, 50) }},
			figure{"p99", "99th percentile latency against connections", "p99 µs", func(p bench.Point) float64 { return latencyOf(p, 99) }})
	}
	var paths []string
	for _, f := range figures {
		p, err := byConns(r, fmt.Sprintf("%s: %s", title(r), f.title), f.y, f.value)
		if err != nil {
			return paths, fmt.Errorf("plot %s conns-%s: %w", r.Workload, f.name, err)
		}
		for _, ext := range []string{".svg", ".png"} {
			path := filepath.Join(dir, stem(r)+"-conns-"+f.name+ext)
			if err := p.Save(width, height, path); err != nil {
				return paths, fmt.Errorf("plot %s: %w", path, err)
			}
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// latencyOf is a point's 50th or 99th percentile in µs, NaN (left out of
// the line) when the point has no latency figures.
func latencyOf(p bench.Point, pct int) float64 {
	if p.Latency == nil {
		return math.NaN()
	}
	if pct == 50 {
		return p.Latency.P50
	}
	return p.Latency.P99
}

// byConns draws, for each system and core count, value(point) against the
// point's connections (cores × flows), on a logarithmic axis; a NaN value
// leaves its point out.
func byConns(r *bench.Result, title, ylabel string, value func(bench.Point) float64) (*plot.Plot, error) {
	p := newPlot(title, "connections (log scale)", ylabel)
	type series struct {
		system string
		cores  int
	}
	var seen []series
	var lines []any
	for _, pt := range r.Points {
		s := series{pt.System, pt.Cores}
		if pt.Err != "" || slices.Contains(seen, s) {
			continue
		}
		seen = append(seen, s)
		var xy plotter.XYs
		for _, q := range r.Points {
			if q.System == s.system && q.Cores == s.cores && q.Err == "" {
				if y := value(q); !math.IsNaN(y) {
					xy = append(xy, plotter.XY{X: float64(q.Cores * q.Flows), Y: y})
				}
			}
		}
		if len(xy) == 0 {
			continue
		}
		slices.SortFunc(xy, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
		label := fmt.Sprintf("%s, %d cores", s.system, s.cores)
		if s.cores == 1 {
			label = s.system + ", 1 core"
		}
		lines = append(lines, label, xy)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, err
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	return p, nil
}
