//go:build linux

package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTPClient picks the load generator of the http workload on the veth
// systems at peak: "wrk" (the default), "h2load" (nghttp2's, over
// HTTP/1.1) or "go" (the goroutine load generator). A fixed-rate point
// always uses h2load --rps (wrk cannot pace), or the goroutine load
// generator when h2load is missing. A client that is not installed falls
// back to the goroutine load generator; the point's Client says which ran.
var HTTPClient = "wrk"

// HTTPClients lists HTTPClient's values.
var HTTPClients = []string{"wrk", "h2load", "go"}

// httpClient returns the real client a veth http point of p runs, or ""
// for the goroutine load generator.
func httpClient(p Params) string {
	want := HTTPClient
	if p.Rate > 0 {
		want = "h2load"
	}
	if want == "go" || os.Getenv("MKSTACK_BENCH_NO_WRK") != "" {
		return ""
	}
	if _, err := exec.LookPath(want); err != nil {
		return ""
	}
	return want
}

func wrkAvailable() bool { return httpClient(Params{}) == "wrk" }

// runHTTPClient drives the http workload with client (wrk or h2load) from
// the peer namespace, on the point's CPUs: one thread per core and Flows
// connections per core. The point's CPU figures are this process's (the
// server's side alone; the client is another process) and the whole
// machine's, which includes the client.
func runHTTPClient(ctx context.Context, client string, l *vethLab, t *ConnTarget, p Params) (Point, error) {
	var srv sync.WaitGroup
	serve := func(m *meter) (func(), int, error) { return serveConn(t, m, &srv) }
	if t.serve != nil {
		serve = t.serve
	}
	stop, port, err := serve(newMeter(p, 0))
	if err != nil {
		return Point{}, fmt.Errorf("serve: %w", err)
	}
	defer func() { stop(); srv.Wait() }()
	args := []string{"netns", "exec", l.names.PeerNS(l.driver)}
	if len(p.CPUs) > 0 {
		cpus := make([]string, len(p.CPUs))
		for i, c := range p.CPUs {
			cpus[i] = strconv.Itoa(c)
		}
		args = append(args, "taskset", "-c", strings.Join(cpus, ","))
	}
	url := "http://" + net.JoinHostPort(t.Addr, strconv.Itoa(port)) + "/" // [fd77::1]:80 over IPv6
	conns := p.Cores * p.Flows
	var logFile string
	switch client {
	case "wrk":
		secs := max(1, int(p.Duration.Round(time.Second)/time.Second))
		args = append(args, "wrk", "-t", strconv.Itoa(p.Cores), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", secs), "--latency", url)
	case "h2load":
		dir, err := os.MkdirTemp("", "mkstack-h2load-")
		if err != nil {
			return Point{}, err
		}
		defer os.RemoveAll(dir)
		logFile = filepath.Join(dir, "requests.log")
		args = append(args, "h2load", "--h1", "-t", strconv.Itoa(p.Cores), "-c", strconv.Itoa(conns),
			"-D", fmt.Sprintf("%dms", max(1, p.Duration.Milliseconds())), "--log-file", logFile)
		if p.Warmup > 0 {
			args = append(args, fmt.Sprintf("--warm-up-time=%dms", p.Warmup.Milliseconds()))
		}
		if p.Rate > 0 {
			// --rps is per client (connection), in whole requests.
			args = append(args, "--rps", strconv.Itoa(max(1, int(p.Rate/float64(conns)+0.5))))
		}
		args = append(args, url)
	default:
		return Point{}, fmt.Errorf("http client %q: want one of %s", client, strings.Join(HTTPClients[:2], ", "))
	}
	pt, err := runClient(ctx, client, args, p, func(out string) (Point, error) {
		if client == "wrk" {
			return parseWrk(out, p)
		}
		return parseH2load(out, logFile, p)
	})
	pt.OfferedRate, pt.Family = p.Rate, familyOf(t.Addr)
	return pt, err
}

// runClient runs a load generator (ip with args), parses what it printed,
// and fills in the point's client, this process's CPU and collections,
// and the whole machine's CPU: the client's run includes its start,
// warm-up and end, so the machine's busy time is scaled to the measured
// window.
func runClient(ctx context.Context, client string, args []string, p Params, parse func(out string) (Point, error)) (Point, error) {
	m := newMeter(p, 0)
	before := m.snap()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if ctx.Err() != nil {
		return Point{}, ctx.Err()
	}
	if err != nil {
		return Point{}, fmt.Errorf("%s: %w: %s", client, err, out)
	}
	after := m.snap()
	pt, err := parse(string(out))
	pt.Client = client
	pt.GCCycles, pt.CPUSeconds = after.gc-before.gc, (after.cpu - before.cpu).Seconds()
	if pt.Seconds > 0 {
		whole := after.at.Sub(before.at).Seconds()
		if before.machineOK && after.machineOK {
			pt.MachineCPUSeconds = (after.machine - before.machine).Seconds() * min(1, pt.Seconds/whole)
		}
		setRuntimeCounts(&pt, before, after, min(1, pt.Seconds/whole))
	}
	pt.GOMAXPROCS = after.gomaxprocs
	return pt, err
}

var (
	h2Finished = regexp.MustCompile(`finished in ([0-9.]+)(m?s), ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
)

// parseH2load reads h2load's report, and the latency percentiles from its
// per-request log (start µs, status, µs to the end of the response).
func parseH2load(out, logFile string, p Params) (Point, error) {
	f := h2Finished.FindStringSubmatch(out)
	r := h2Requests.FindStringSubmatch(out)
	if f == nil || r == nil {
		return Point{}, fmt.Errorf("h2load printed no summary: %s", out)
	}
	secs, _ := strconv.ParseFloat(f[1], 64)
	if f[2] == "ms" {
		secs /= 1e3
	}
	succeeded, _ := strconv.ParseUint(r[4], 10, 64)
	var errs uint64
	for _, v := range r[5:8] {
		n, _ := strconv.ParseUint(v, 10, 64)
		errs += n
	}
	if secs <= 0 {
		return Point{}, fmt.Errorf("h2load ran for %v s", secs)
	}
	if p.Duration > 0 {
		// "finished in" counts the warm-up too; the requests counted
		// are those of the main duration (-D).
		secs = p.Duration.Seconds()
	}
	pt := Point{Workload: p.Workload, Cores: p.Cores, CPUs: p.CPUs, Flows: p.Flows, Unit: p.Workload.Unit(),
		Seconds: secs, Count: succeeded, Rate: float64(succeeded) / secs, Errors: errs,
		Note: "driven by h2load --h1 from the peer namespace"}
	pt.PerCore = pt.Rate / float64(max(p.Cores, 1))
	if logFile != "" {
		lat, err := h2loadLatency(logFile)
		if err != nil {
			return pt, err
		}
		pt.Latency = lat
	}
	return pt, nil
}

// h2loadLatency summarises the durations of h2load's request log.
func h2loadLatency(path string) (*Latency, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("h2load log: %w", err)
	}
	defer f.Close()
	var h Histogram
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 3 || cols[1] != "200" {
			continue
		}
		us, err := strconv.ParseUint(cols[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("h2load log: line %q", sc.Text())
		}
		h.Record(time.Duration(us) * time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("h2load log: %w", err)
	}
	return h.Summary(), nil
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(m?s)`)
	wrkErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// parseWrk reads wrk's report into a point.
func parseWrk(out string, p Params) (Point, error) {
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return Point{}, fmt.Errorf("wrk printed no request count: %s", out)
	}
	count, _ := strconv.ParseUint(m[1], 10, 64)
	secs, _ := strconv.ParseFloat(m[2], 64)
	if m[3] == "ms" {
		secs /= 1e3
	}
	if secs <= 0 {
		return Point{}, fmt.Errorf("wrk ran for %v s", secs)
	}
	pt := Point{Workload: p.Workload, Cores: p.Cores, CPUs: p.CPUs, Flows: p.Flows, Unit: p.Workload.Unit(),
		Seconds: secs, Count: count, Rate: float64(count) / secs, Note: "driven by wrk from the peer namespace"}
	pt.PerCore = pt.Rate / float64(max(p.Cores, 1))
	if e := wrkErrors.FindStringSubmatch(out); e != nil {
		for _, v := range e[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			pt.Errors += n
		}
	}
	if e := wrkNon2xx.FindStringSubmatch(out); e != nil {
		n, _ := strconv.ParseUint(e[1], 10, 64)
		pt.Errors += n
	}
	lat := &Latency{Samples: count}
	for _, q := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(q[2], 64)
		switch q[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		switch q[1] {
		case "50":
			lat.P50 = v
		case "90":
			lat.P90 = v
		case "99":
			lat.P99 = v
		}
	}
	if lat.P50 > 0 {
		pt.Latency = lat
	}
	return pt, nil
}
