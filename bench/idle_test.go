package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestIdleModeOpensEveryConnection runs the idle-connection mode on the
// in-process systems of each API model: every connection must open and
// make its exchange (an echo, or a GET and its response), the point must
// count them and say how fast they opened, and nothing may be left
// running.
func TestIdleModeOpensEveryConnection(t *testing.T) {
	for _, c := range []struct {
		w   Workload
		sys []string
	}{
		{TCPRR, []string{SysMkstackConn, SysLinuxEpoll}},
		{HTTP, []string{SysMkstackConn, SysLinux}},
	} {
		spec := Spec{Workload: c.w, Cores: []int{1}, Systems: c.sys, Duration: time.Second, Conns: 40, Idle: true, IdleSettle: 100 * time.Millisecond}
		r, err := Run(context.Background(), spec, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Idle || len(r.Points) != len(c.sys) {
			t.Fatalf("%s: idle %v, %d points", c.w, r.Idle, len(r.Points))
		}
		for _, p := range r.Points {
			if p.Err != "" || p.Count != 40 || p.Errors != 0 || p.Rate <= 0 || p.PerCore != p.Rate {
				t.Errorf("%s %s: err %q, %d opened, %d failed, rate %v per core %v", c.w, p.System, p.Err, p.Count, p.Errors, p.Rate, p.PerCore)
			}
		}
		var table bytes.Buffer
		if err := r.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), "idle KiB/conn") || !strings.Contains(table.String(), "conns opened/s") {
			t.Errorf("%s: the table has no idle columns:\n%s", c.w, table.String())
		}
	}
}

func TestIdleModeIsForRequestResponseConnections(t *testing.T) {
	r, err := Run(context.Background(), Spec{Workload: TCPRR, Idle: true, Cores: []int{1}, Systems: []string{SysMkstack}, Duration: time.Second, Conns: 2}, RunOptions{})
	if err != nil || len(r.Points) != 1 || !strings.Contains(r.Points[0].Err, "not available") {
		t.Errorf("the mem wire's handler system in the idle mode: %v, %+v", err, r)
	}
	for _, s := range []Spec{
		{Workload: UDPEcho, Idle: true},
		{Workload: TCPStream, Idle: true},
		{Workload: TCPRR, Idle: true, Rate: 1000},
	} {
		s.Cores, s.Systems, s.Duration = []int{1}, []string{SysMkstack}, time.Second
		if err := s.Validate(); err == nil {
			t.Errorf("%s idle (rate %v): no error", s.Workload, s.Rate)
		}
	}
	s := Spec{Workload: HTTP, Idle: true, Cores: []int{1}, Systems: []string{SysMkstack}, Duration: time.Second}
	if err := s.Validate(); err != nil {
		t.Errorf("http idle: %v", err)
	}
}

// TestIdleClientProcessProtocol: the load in a process of its own says
// how many connections it opened, or why it failed, and ends when its
// input closes.
func TestIdleClientProcessProtocol(t *testing.T) {
	opened, release, err := idleClientProcess(context.Background(), exec.Command("sh", "-c", "echo opened 7; cat >/dev/null; echo done >&2"))
	if err != nil || opened != 7 {
		t.Fatalf("opened %d, %v", opened, err)
	}
	ended := make(chan struct{})
	go func() { release(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the load did not end when its input closed")
	}
	if _, _, err := idleClientProcess(context.Background(), exec.Command("sh", "-c", "echo 'error: 3 of 9 failed'")); err == nil || !strings.Contains(err.Error(), "3 of 9 failed") {
		t.Errorf("a failed load: %v", err)
	}
	if _, _, err := idleClientProcess(context.Background(), exec.Command("sh", "-c", "echo no namespace >&2; exit 1")); err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Errorf("a load that died: %v", err)
	}
}

// TestRunIdleClientHoldsUntilReleased runs the out-of-process load's body
// in-process against a kernel echo server on loopback.
func TestRunIdleClientHoldsUntilReleased(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc")
	}
	tgt := kernelTarget(context.Background(), Params{Workload: TCPRR, Cores: 1, Flows: 1}, "127.0.0.1", func(fn func() error) error { return fn() })
	m := newMeter(Params{Workload: TCPRR, Cores: 1, Flows: 1}, 1)
	var srv sync.WaitGroup
	stop, port, err := serveConn(tgt, m, &srv)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); srv.Wait() }()
	pr, pw, _ := os.Pipe()
	var ready bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- RunIdleClient(context.Background(), "127.0.0.1:"+strconv.Itoa(port), TCPRR, 25, &ready, pr)
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ended before its input closed: %v", err)
	default:
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ready.String(); got != "opened 25\n" {
		t.Errorf("said %q, want \"opened 25\\n\"", got)
	}
}
