package bench

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCores(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"1", []int{1}}, {"1,2", []int{1, 2}}, {"2,1,2", []int{1, 2}}, {"1-4", []int{1, 2, 3, 4}}, {"1-2, 8", []int{1, 2, 8}},
	} {
		got, err := ParseCores(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseCores(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "0", "x", "1,", "3-1", "65", "1-100"} {
		if got, err := ParseCores(in); err == nil {
			t.Errorf("ParseCores(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseSystemsAndWorkloads(t *testing.T) {
	got, err := ParseSystems("mkstack,linux,mkstack")
	if err != nil || !reflect.DeepEqual(got, []string{"mkstack", "linux"}) {
		t.Errorf("ParseSystems = %v, %v", got, err)
	}
	if _, err := ParseSystems("mkstack,bsd"); err == nil || !strings.Contains(err.Error(), "bsd") {
		t.Errorf("ParseSystems(bsd) = %v", err)
	}
	for _, w := range Workloads {
		if got, err := ParseWorkload(string(w)); err != nil || got != w {
			t.Errorf("ParseWorkload(%q) = %q, %v", w, got, err)
		}
	}
	if _, err := ParseWorkload("tcp-rrr"); err == nil {
		t.Error("ParseWorkload accepted tcp-rrr")
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{"mkstack"}, Duration: time.Second}
	if err := ok.Validate(); err != nil || ok.Conns != DefaultConns {
		t.Fatalf("Validate = %v, conns %d", err, ok.Conns)
	}
	for name, mod := range map[string]func(*Spec){
		"no duration":           func(s *Spec) { s.Duration = 0 },
		"no cores":              func(s *Spec) { s.Cores = nil },
		"no systems":            func(s *Spec) { s.Systems = nil },
		"bad workload":          func(s *Spec) { s.Workload = "x" },
		"negative conns":        func(s *Spec) { s.Conns = -1 },
		"stream by transaction": func(s *Spec) { s.Workload, s.Transactions = TCPStream, 10 },
		"MTU below IPv6's":      func(s *Spec) { s.MTU = 1000 },
		"MTU above 65535":       func(s *Spec) { s.MTU = 70000 },
	} {
		s := ok
		mod(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, s)
		}
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	r := &Result{Env: ReadEnv(), Workload: TCPRR, Duration: "1s", Warmup: "100ms", Points: []Point{
		{System: "mkstack", Workload: TCPRR, Cores: 1, CPUs: []int{1}, Flows: 16, Seconds: 1, Count: 1000, Rate: 1000, Unit: "trans/s",
			PerCore: 1000, Latency: &Latency{Samples: 1000, P50: 10, P99: 20}, GCCycles: 2, CPUSeconds: 0.9},
		{System: "mkstack", Workload: TCPRR, Cores: 2, Flows: 16, Seconds: 1, Count: 1500, Rate: 1500, PerCore: 750, Unit: "trans/s"},
		{System: "linux-epoll", Workload: TCPRR, Cores: 1, Flows: 16, Seconds: 1, Count: 500, Rate: 500, PerCore: 500, Unit: "trans/s"},
		{System: "linux", Workload: TCPRR, Cores: 1, Flows: 16, Seconds: 1, Count: 400, Rate: 400, PerCore: 400, Unit: "trans/s"},
		{System: "mkstack-afxdp", Workload: TCPRR, Cores: 1, Err: "not available"},
	}}
	r.Finish()
	if e := r.Find("mkstack", 2).Efficiency; e != 0.75 {
		t.Errorf("efficiency at 2 cores = %v, want 0.75", e)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", back, r)
	}
	if _, err := ReadJSON(strings.NewReader(`{"points": [{"bogus": 1}]}`)); err == nil {
		t.Error("ReadJSON accepted an unknown field")
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mkstack ÷ linux-epoll at 1 cores (handler): 2.00", "not available", "0.75"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	// The handler API and a goroutine per connection are not compared.
	if strings.Contains(table.String(), "mkstack ÷ linux at") {
		t.Errorf("table compares mkstack with linux:\n%s", table.String())
	}
}

func TestHTTPMessageLen(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{string(httpResponse), len(httpResponse)},
		{string(httpResponse) + "HTTP/1.1", len(httpResponse)},
		{string(httpResponse[:len(httpResponse)-1]), 0},
		{string(httpRequest), len(httpRequest)},
		{"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc", 41},
		{"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", -1},
		{"GET / HTTP/1.1\r\n", 0},
	} {
		if got := httpMessageLen([]byte(c.in)); got != c.want {
			t.Errorf("httpMessageLen(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestRuntimeCountsPerTransaction: a point's wake-ups and system calls per
// transaction are the runtime's counters' growth over the window (scaled
// to the share of a longer run that the window was), and the table shows
// them only for the points that measured them.
func TestRuntimeCountsPerTransaction(t *testing.T) {
	start := snapshot{rc: RuntimeCounts{Wakeups: 100, Syscalls: 1000}, rcOK: true}
	end := snapshot{rc: RuntimeCounts{Wakeups: 600, Syscalls: 3000}, rcOK: true}
	pt := Point{System: "mkstack-afxdp", Workload: TCPRR, Cores: 1, Flows: 1, Count: 1000, Rate: 1000, PerCore: 1000, Unit: "trans/s"}
	setRuntimeCounts(&pt, start, end, 1)
	if !pt.HasRuntimeCounts || pt.WakeupsPerTxn != 0.5 || pt.SyscallsPerTxn != 2 {
		t.Fatalf("per transaction: %+v, want 0.5 wake-ups and 2 system calls", pt)
	}
	half := Point{Count: 1000}
	setRuntimeCounts(&half, start, end, 0.5)
	if half.WakeupsPerTxn != 0.25 || half.SyscallsPerTxn != 1 {
		t.Errorf("half the run in the window: %v and %v per transaction, want 0.25 and 1", half.WakeupsPerTxn, half.SyscallsPerTxn)
	}
	none := Point{Count: 1000}
	setRuntimeCounts(&none, snapshot{}, end, 1)
	if none.HasRuntimeCounts {
		t.Error("counts from a snapshot without them")
	}
	kernel := Point{System: "linux-epoll-veth", Workload: TCPRR, Cores: 1, Flows: 1, Count: 900, Rate: 900, PerCore: 900, Unit: "trans/s"}
	var out strings.Builder
	r := &Result{Workload: TCPRR, Points: []Point{pt, kernel}}
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	if !strings.Contains(table, "wake-ups/txn") || !strings.Contains(table, "0.50") || !strings.Contains(table, "2.00") {
		t.Errorf("the table lacks the counts:\n%s", table)
	}
	out.Reset()
	(&Result{Workload: TCPRR, Points: []Point{kernel}}).WriteTable(&out)
	if strings.Contains(out.String(), "wake-ups/txn") {
		t.Errorf("a table without counts has their columns:\n%s", out.String())
	}
}
