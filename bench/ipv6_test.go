package bench

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestInProcessSystemsRunOverIPv6 runs the in-process systems with
// Spec.IPv6: mkstack's over the mem wire between fd00::1 and fd00::2
// (handlers: the client's UDP ports chosen by FlowOwner6), the kernel's
// on ::1. Each point counts transactions and records IPv6, and the
// like-for-like ratios pair IPv6 points.
func TestInProcessSystemsRunOverIPv6(t *testing.T) {
	systems := []string{SysMkstack, SysMkstackConn, SysLinux, SysLinuxEpoll}
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback (%v): the kernel's systems are left out", err)
		systems = systems[:2]
	} else {
		l.Close()
	}
	for _, w := range []Workload{TCPRR, UDPEcho, TCPCRR} {
		t.Run(string(w), func(t *testing.T) {
			cores := []int{1}
			if w != TCPCRR {
				cores = []int{2} // flows over both cores of each side
			}
			spec := Spec{Workload: w, Cores: cores, Systems: systems, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond, Conns: 4, IPv6: true}
			r, err := Run(context.Background(), spec, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range r.Points {
				if p.Err != "" || p.Count == 0 || p.Errors*10 > p.Count {
					t.Errorf("%s: %d transactions, %d errors, %q", p.System, p.Count, p.Errors, p.Err)
				}
				if p.Family != FamilyIPv6 {
					t.Errorf("%s: family %q, want %q", p.System, p.Family, FamilyIPv6)
				}
			}
			ratios := r.Ratios()
			if len(ratios) != len(systems)/2 {
				t.Errorf("ratios %+v, want one per pair", ratios)
			}
			for _, ratio := range ratios {
				if ratio.Family != FamilyIPv6 {
					t.Errorf("ratio %+v: not over IPv6", ratio)
				}
			}
		})
	}
}

// TestGVisorIgnoresIPv6: the one system that cannot run over IPv6 gets
// Params without it, and its point records IPv4.
func TestGVisorIgnoresIPv6(t *testing.T) {
	if TakesIPv6(SysGVisor) || !TakesIPv6(SysMkstackAFXDP) || !TakesIPv6(SysLinuxEpoll) {
		t.Fatal("TakesIPv6")
	}
	got := map[string]Params{}
	spy := func(name string) System {
		return SystemFunc(func(_ context.Context, p Params) (Point, error) {
			got[name] = p
			return Point{Seconds: 1, Count: 1, Rate: 1}, nil
		})
	}
	spec := Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{SysGVisor, SysMkstack}, Duration: time.Millisecond, IPv6: true}
	r, err := Run(context.Background(), spec, RunOptions{Systems: map[string]System{SysGVisor: spy(SysGVisor), SysMkstack: spy(SysMkstack)}})
	if err != nil {
		t.Fatal(err)
	}
	if got[SysGVisor].IPv6 || !got[SysMkstack].IPv6 || r.Points[0].Family != FamilyIPv4 || r.Points[1].Family != FamilyIPv6 {
		t.Errorf("params %+v; points %+v", got, r.Points)
	}
}

// TestRatiosPairOnlyTheSameFamily: an IPv6 point is never compared with
// an IPv4 one, and a point without a family (an older result) is IPv4.
func TestRatiosPairOnlyTheSameFamily(t *testing.T) {
	r := &Result{Workload: TCPRR, Points: []Point{
		{System: SysMkstack, Cores: 1, Rate: 300, Family: FamilyIPv6},
		{System: SysLinuxEpoll, Cores: 1, Rate: 100},
		{System: SysMkstackConn, Cores: 1, Rate: 120, Family: FamilyIPv6},
		{System: SysLinux, Cores: 1, Rate: 60, Family: FamilyIPv6},
		{System: SysMkstackConn, Cores: 2, Rate: 200},
		{System: SysLinux, Cores: 2, Rate: 100, Family: FamilyIPv4},
	}}
	got := r.Ratios()
	if len(got) != 2 || got[0].Cores != 1 || got[0].Value != 2 || got[0].Family != FamilyIPv6 ||
		got[1].Cores != 2 || got[1].Value != 2 || got[1].Family != "" {
		t.Errorf("ratios %+v", got)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"family", "mkstack-conn ÷ linux at 1 cores over IPv6 (net.Conn): 2.00", "mkstack-conn ÷ linux at 2 cores (net.Conn): 2.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if n := strings.Count(out, "IPv6  "); n != 3 {
		t.Errorf("%d IPv6 rows, want 3:\n%s", n, out)
	}
	// A result without IPv6 points has no family column.
	r4 := &Result{Workload: TCPRR, Points: r.Points[4:]}
	b.Reset()
	r4.WriteTable(&b)
	if strings.Contains(b.String(), "family") || strings.Contains(b.String(), "IPv") {
		t.Errorf("IPv4 table names the family:\n%s", b.String())
	}
}

// TestFamilyRoundTripsAndOldJSONIsIPv4: the family survives JSON; a point
// written before it was recorded reads as IPv4.
func TestFamilyRoundTripsAndOldJSONIsIPv4(t *testing.T) {
	r := &Result{Workload: TCPRR, Points: []Point{{System: SysMkstack, Cores: 1, Family: FamilyIPv6}}}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"family": "ipv6"`) {
		t.Errorf("no family in\n%s", b.String())
	}
	back, err := ReadJSON(&b)
	if err != nil || !back.Points[0].IsIPv6() || !back.HasIPv6() {
		t.Fatalf("%v %+v", err, back)
	}
	old, err := ReadJSON(strings.NewReader(`{"env":{},"workload":"tcp-rr","points":[{"system":"mkstack","workload":"tcp-rr","cores":1,"flows_per_core":4,"seconds":1,"count":5,"rate":5,"unit":"trans/s","per_core":5,"gc_cycles":0,"cpu_seconds":0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := old.Points[0]; p.IsIPv6() || p.FamilyText() != "IPv4" || old.HasIPv6() {
		t.Errorf("old point %+v", p)
	}
}

// TestReportKeepsIPv4SummaryAndComparesFamilies: an IPv6 result beside
// the IPv4 ones leaves the like-for-like summary to the IPv4 results
// (even though its file sorts first), gets a table of its own marked
// IPv6, and a section dividing each system's IPv6 rate by its IPv4 one;
// without an IPv6 result the report has no such section.
func TestReportKeepsIPv4SummaryAndComparesFamilies(t *testing.T) {
	base := reportResults()
	without := report(t, base)
	if strings.Contains(without, "IPv6") {
		t.Fatalf("a report without IPv6 results mentions IPv6:\n%s", without)
	}
	v6 := &Result{Env: Env{Commit: "abc"}, Workload: TCPRR, Duration: "3s", Points: []Point{
		{System: SysMkstack, Cores: 1, Rate: 270000, Count: 810000, Family: FamilyIPv6, MachineCPUSeconds: 2.7},
		{System: SysLinuxEpoll, Cores: 1, Rate: 90000, Count: 270000, Family: FamilyIPv6},
		{System: SysGVisor, Cores: 1, Rate: 1000, Count: 3000, Family: FamilyIPv4},
	}}
	out := report(t, append([]*Result{v6}, base...))
	// The summary's tcp-rr peak ratio is still the IPv4 one (3.00).
	if !strings.Contains(out, "| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 | 3.00 |") {
		t.Errorf("the IPv4 summary row changed:\n%s", out)
	}
	for _, want := range []string{
		"### IPv6\n",
		"| tcp-rr | mkstack | 1 | 300.0K | 270.0K | 0.90 | 3.00 µs/trans | 3.33 µs/trans |\n",
		"| tcp-rr | linux-epoll | 1 | 100.0K | 90.0K | 0.90 |  |  |\n",
		"| tcp-rr | mkstack ÷ linux-epoll | handler | mem wire vs loopback | 1 | 3.00 |\n",
		"Peak, over IPv6: commit abc",
		"| gvisor |  |  |  |  | 1 |  |  | 1.0K |  |  |  | 0.00 | 0 | 0 | over IPv4 |\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no\n%s\nin\n%s", want, out)
		}
	}
	// gVisor ran over IPv4 in the IPv6 run: it is not divided by itself.
	if strings.Contains(out, "| tcp-rr | gvisor | 1 |") {
		t.Errorf("gvisor compared across families:\n%s", out)
	}
}
