//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadGen is a running runLoadGen child: Sample returns its latest count
// of responses and the time of it.
type loadGen struct {
	mu    sync.Mutex
	count int64
	at    time.Time
	err   string
}

// startLoadGen runs the load generator in the client namespace behind
// prefix (taskset) and waits until its connections are up.
func (l *lab) startLoadGen(t *testing.T, addr string, conns int, prefix ...string) *loadGen {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append(append([]string{"netns", "exec", l.clientNS}, prefix...), self)...)
	cmd.Env = append(os.Environ(), loadGenEnv+"="+addr+" "+strconv.Itoa(conns))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	g := &loadGen{}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" || strings.HasPrefix(line, "error") {
				select {
				case ready <- line:
				default:
				}
			}
			g.mu.Lock()
			if strings.HasPrefix(line, "error") {
				g.err = line
			} else if c, ns, ok := strings.Cut(line, " "); ok {
				n, _ := strconv.ParseInt(c, 10, 64)
				u, _ := strconv.ParseInt(ns, 10, 64)
				g.count, g.at = n, time.Unix(0, u)
			}
			g.mu.Unlock()
		}
		select {
		case ready <- "error: load generator ended":
		default:
		}
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("load generator: %s", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("load generator: its connections did not come up in 10 s")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, at := g.sample(t); !at.IsZero() {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatal("load generator: no progress report in 5 s")
		}
	}
}

// sample returns the responses counted so far and when, or fails the test
// if the generator lost a connection.
func (g *loadGen) sample(t *testing.T) (int64, time.Time) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != "" {
		t.Fatalf("load generator: %s", g.err)
	}
	return g.count, g.at
}

// rate measures the responses per second over d.
func (g *loadGen) rate(t *testing.T, d time.Duration) float64 {
	t.Helper()
	n0, t0 := g.sample(t)
	time.Sleep(d)
	n1, t1 := g.sample(t)
	if !t1.After(t0) {
		t.Fatalf("load generator: no progress report in %v", d)
	}
	return float64(n1-n0) / t1.Sub(t0).Seconds()
}
