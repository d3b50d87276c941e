package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFixedRatePacesTheLoad: with Spec.Rate every in-process system's
// load runs at the offered rate, not at its peak, and the point reports
// the whole machine's CPU per transaction. It fails if the load is not
// paced (the peak is far above the offered rate here) or not counted.
func TestFixedRatePacesTheLoad(t *testing.T) {
	const offered = 2000.0
	machineSeen := 0
	defer func() {
		if machineSeen == 0 && !t.Failed() {
			t.Error("no point measured any machine CPU from /proc/stat")
		}
	}()
	for _, sys := range []string{SysMkstack, SysMkstackConn, SysLinux} {
		for _, w := range []Workload{TCPRR, UDPEcho, TCPCRR, HTTP} {
			if testing.Short() && w != TCPRR {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", sys, w), func(t *testing.T) {
				spec := Spec{Workload: w, Cores: []int{1}, Systems: []string{sys}, Duration: 600 * time.Millisecond, Warmup: 100 * time.Millisecond, Conns: 4, Rate: offered}
				r, err := Run(context.Background(), spec, RunOptions{})
				if err != nil {
					t.Fatal(err)
				}
				CheckResult(t, r, sys, 1)
				p := r.Points[0]
				// Unpaced, each of these runs at 5-100 times the offered
				// rate; a loaded machine (CI runs packages side by side) may
				// keep a system below it, so the floor is loose.
				if p.Rate > 1.1*offered || p.Rate < 0.3*offered {
					t.Errorf("rate %.0f/s, offered %.0f/s", p.Rate, offered)
				}
				if p.OfferedRate != offered || r.Rate != offered {
					t.Errorf("offered rate recorded as %v (point) and %v (result)", p.OfferedRate, r.Rate)
				}
				// /proc/stat counts busy time in 10 ms ticks: a short,
				// light window may see none, so each point need only have
				// the process's own CPU, and the run some machine CPU.
				if p.CPUSeconds <= 0 || p.MachineCPUSeconds < 0 {
					t.Errorf("process CPU %v s, machine CPU %v s", p.CPUSeconds, p.MachineCPUSeconds)
				}
				if p.MachineCPUSeconds > 0 {
					machineSeen++
				}
				if p.GOMAXPROCS <= 0 || p.API == "" || p.Driver == "" || p.Client == "" {
					t.Errorf("point does not say how it ran: %+v", p)
				}
			})
		}
	}
}

// TestFixedRatePacesTheStreams: at a fixed rate a stream's flows write
// their chunks when due, so the server receives the offered bytes per
// second, all flows together, not the stream's peak (many times more
// here), on every stream client: mkstack's handlers and net.Conn face over
// the mem wire, Go's net and the epoll threads over loopback. The point
// reports its machine CPU per MiB.
func TestFixedRatePacesTheStreams(t *testing.T) {
	if raceEnabled {
		// Under the race detector mkstack's streams peak near the offered
		// rate (20-25 MB/s measured), so pacing would not be what is seen.
		t.Skip("rates under the race detector say nothing")
	}
	const offered = 50e6 // bytes/s: a few percent of any system's peak
	for _, c := range []struct {
		sys string
		w   Workload
	}{
		{SysMkstack, TCPStream},
		{SysMkstackConn, TCPStream},
		{SysLinux, TCPStream},
		{SysLinuxEpoll, TCPStreamMany},
	} {
		t.Run(fmt.Sprintf("%s/%s", c.sys, c.w), func(t *testing.T) {
			spec := Spec{Workload: c.w, Cores: []int{1}, Systems: []string{c.sys}, Duration: 600 * time.Millisecond, Warmup: 150 * time.Millisecond, Rate: offered}
			r, err := Run(context.Background(), spec, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			CheckResult(t, r, c.sys, 1)
			p := r.Points[0]
			t.Logf("offered %s bytes/s: received %s bytes/s, machine CPU %.1f %s, process CPU %.2f s", FormatRate(offered), FormatRate(p.Rate), p.MachineCPUPerUnit, p.MachineCPUUnit, p.CPUSeconds)
			if p.Rate < 0.85*offered || p.Rate > 1.15*offered {
				t.Errorf("received %.0f bytes/s, offered %.0f: off by more than 15%%", p.Rate, offered)
			}
			if p.OfferedRate != offered || p.Unit != "bytes/s" || p.Latency != nil {
				t.Errorf("offered %v, unit %q, latency %v", p.OfferedRate, p.Unit, p.Latency)
			}
			if p.MachineCPUSeconds > 0 && (p.MachineCPUUnit != "µs/MiB" || p.MachineCPUPerUnit != p.CPUPerTxn()*(1<<20)*1e6) {
				t.Errorf("machine CPU %v s for %d bytes reported as %v %q", p.MachineCPUSeconds, p.Count, p.MachineCPUPerUnit, p.MachineCPUUnit)
			}
		})
	}
}

// TestMeterPacesStreamsByChunk: a stream's rate is bytes per second for
// the whole point, so each flow's chunks are slots*StreamChunk/Rate apart.
func TestMeterPacesStreamsByChunk(t *testing.T) {
	m := newMeter(Params{Workload: TCPStreamMany, Cores: 2, Flows: StreamFlows, Rate: 16 * StreamChunk * 1000}, 16)
	if m.interval != int64(time.Millisecond) {
		t.Errorf("interval %v, want 1ms (16 flows, 1000 chunks a second each)", time.Duration(m.interval))
	}
	if m := newMeter(Params{Workload: TCPStream, Cores: 1, Flows: 1, Rate: 1e18}, 1); !m.paced() {
		t.Error("a rate too high for a whole nanosecond between chunks is not paced")
	}
}

func TestFixedRateRefusesTransactionsAndNegativeRates(t *testing.T) {
	for _, s := range []Spec{
		{Workload: TCPRR, Cores: []int{1}, Systems: []string{SysLinux}, Transactions: 100, Rate: 10},
		{Workload: TCPRR, Cores: []int{1}, Systems: []string{SysLinux}, Duration: time.Second, Rate: -1},
		{Workload: TCPStream, Cores: []int{1}, Systems: []string{SysLinux}, Duration: time.Second, Rate: -1},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v validated", s)
		}
	}
	for _, w := range []Workload{TCPStream, TCPStreamMany} {
		s := Spec{Workload: w, Cores: []int{1}, Systems: []string{SysLinux}, Duration: time.Second, Rate: 100e6}
		if err := s.Validate(); err != nil {
			t.Errorf("%s at a fixed rate: %v", w, err)
		}
	}
}

// TestMeterScheduleSpreadsFlows: each flow's transactions are due one
// interval apart, and the flows' first ones are spread over an interval.
func TestMeterScheduleSpreadsFlows(t *testing.T) {
	m := newMeter(Params{Workload: TCPRR, Cores: 1, Flows: 4, Rate: 4000}, 4)
	if !m.paced() || m.interval != int64(time.Millisecond) {
		t.Fatalf("interval %v, want 1ms", time.Duration(m.interval))
	}
	for i := range 4 {
		if got, want := m.due(i), int64(i)*int64(250*time.Microsecond); got != want {
			t.Errorf("flow %d first due at %v, want %v", i, time.Duration(got), time.Duration(want))
		}
		a, b := m.begin(i), m.begin(i)
		if b-a != m.interval || m.due(i) != b+m.interval {
			t.Errorf("flow %d: starts %v then %v, next due %v", i, a, b, m.due(i))
		}
	}
	peak := newMeter(Params{Workload: TCPRR, Cores: 1, Flows: 4}, 4)
	if peak.paced() || peak.due(0) != 0 {
		t.Error("a peak meter is paced")
	}
}

func TestParseProcStat(t *testing.T) {
	in := []byte("cpu  100 5 50 1000 7 3 2 9 0 0\ncpu0 50 5 25 500 3 1 1 4 0 0\ncpu1 50 0 25 500 4 2 1 5 0 0\nintr 1 2\n")
	cpus, notBusy, ok := parseProcStat(in)
	// idle + iowait + steal = 1000 + 7 + 9 ticks of 10 ms; two CPUs.
	if !ok || cpus != 2 || notBusy != 10160*time.Millisecond {
		t.Errorf("%d CPUs, %v not busy, %v; want 2, 10.16s", cpus, notBusy, ok)
	}
	for _, bad := range []string{"cpu0 1 2 3 4 5 6 7 8\n", "cpu  1 2 3 x 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n", "cpu  1 2 3\ncpu0 1 2 3 4 5 6 7 8\n"} {
		if _, _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	a, ok := MachineBusy()
	if !ok {
		t.Fatal("cannot read this machine's /proc/stat")
	}
	// Keep one CPU busy for 300 ms: the reading must grow by about that.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	b, _ := MachineBusy()
	if d := b - a; d < 200*time.Millisecond {
		t.Errorf("300 ms of a busy CPU read as %v of machine CPU", d)
	}
}

func TestRatiosOnlyComparePairs(t *testing.T) {
	r := &Result{Workload: TCPRR, Points: []Point{
		{System: SysMkstack, Cores: 1, Rate: 300, Count: 300, MachineCPUSeconds: 3},
		{System: SysLinux, Cores: 1, Rate: 100, Count: 100},
		{System: SysLinuxEpoll, Cores: 1, Rate: 150, Count: 150, MachineCPUSeconds: 3},
		{System: SysMkstackConn, Cores: 1, Rate: 120, Count: 120},
		{System: SysMkstackConn, Cores: 2, Rate: 200},
		{System: SysLinux, Cores: 2, Err: "failed"},
	}}
	got := r.Ratios()
	want := []Ratio{
		{System: SysMkstack, Peer: SysLinuxEpoll, Cores: 1, Model: "handler", Value: 2, CPUPerTxn: 0.5},
		{System: SysMkstackConn, Peer: SysLinux, Cores: 1, Model: "net.Conn", Value: 1.2},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ratios\n%v\nwant\n%v", got, want)
	}
}
