package core

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// tcpMetricFields says which stack.TCPStats field each TCP metric
// publishes (core.go, publish), written from the metrics' meaning;
// TCPConnections is the stack's TCPConnCount instead.
var tcpMetricFields = map[Metric]string{
	TCPActiveOpens:             "ActiveOpens",
	TCPPassiveOpens:            "PassiveOpens",
	TCPRetransmits:             "Retransmits",
	TCPEstablished:             "Established",
	TCPTimeWait:                "TimeWait",
	TCPSYNCookiesSent:          "SYNCookiesSent",
	TCPSYNCookiesValid:         "SYNCookiesValid",
	TCPSYNQueueDrops:           "SYNQueueDrops",
	TCPChallengeACKs:           "ChallengeACKs",
	TCPResetsSent:              "ResetsSent",
	TCPRingBytes:               "RingBytes",
	TCPFinWait2Timeouts:        "FinWait2Timeouts",
	TCPZeroWindowAborts:        "ZeroWindowAborts",
	TCPAbortOnData:             "AbortOnData",
	TCPTimeWaitRecycled:        "TimeWaitRecycled",
	TCPTxQueueWaits:            "TxQueueWaits",
	TCPInvalidACKsSkipped:      "InvalidACKsSkipped",
	TCPChallengeACKsOverBudget: "ChallengeACKsOverBudget",
	TCPCookieACKsNoOverflow:    "CookieACKsNoOverflow",
	TCPMemoryPressure:          "MemoryPressure",
	TCPDSACKsSent:              "DSACKsSent",
	TCPDSACKsReceived:          "DSACKsReceived",
	TCPDSACKUndos:              "DSACKUndos",
	TCPEifelUndos:              "EifelUndos",
	TCPFRTOUndos:               "FRTOUndos",
}

// tcpMetrics are every metric named mkstack_tcp_*.
func tcpMetrics() []Metric {
	var ms []Metric
	for m := range numMetrics {
		if strings.HasPrefix(m.Name(), "mkstack_tcp_") {
			ms = append(ms, m)
		}
	}
	return ms
}

// tcpTruth reads, on each core of rt, what every TCP metric must publish.
func tcpTruth(t *testing.T, rt *Runtime) [][numMetrics]uint64 {
	t.Helper()
	out := make([][numMetrics]uint64, rt.NumCores())
	for c := range rt.NumCores() {
		var st stack.TCPStats
		var conns int
		if err := rt.DoWait(ctxT(t), c, func(s *stack.Stack) {
			st, conns = *s.TCPStats(), s.TCPConnCount()
		}); err != nil {
			t.Fatal(err)
		}
		v := reflect.ValueOf(st)
		for _, m := range tcpMetrics() {
			if m == TCPConnections {
				out[c][m] = uint64(conns)
				continue
			}
			f := v.FieldByName(tcpMetricFields[m])
			if !f.IsValid() {
				t.Fatalf("%s: no stack.TCPStats field %q", m, tcpMetricFields[m])
			}
			out[c][m] = f.Uint()
		}
	}
	return out
}

// TestTCPMetricsPublishTheStacksTCPStats: every TCP metric a core
// publishes is the stack's TCPStats field it stands for (TCPConnections:
// the stack's connection count), per core and summed over cores, once the
// traffic is over. The traffic makes many of them non-zero and different
// from one another (opens both ways, ESTABLISHED and TIME-WAIT
// connections, resets, bytes held in rings), so a field copied into the
// wrong metric, or not copied, shows.
func TestTCPMetricsPublishTheStacksTCPStats(t *testing.T) {
	for _, m := range tcpMetrics() {
		if _, ok := tcpMetricFields[m]; !ok && m != TCPConnections {
			t.Fatalf("%s is not in the test's table: add the stack.TCPStats field it publishes", m)
		}
	}
	w := newWire(t, 2)
	const echo, sink, closedPort = 7, 8, 9
	srv := start(t, w.NIC(0), addrA, func(c *Config) {
		c.OnStart = func(s *stack.Stack) {
			// Echo, and close when the peer does.
			s.ListenTCP(echo, stack.TCPListenOptions{NoDelay: true, OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
				switch ev {
				case stack.TCPEventReadable:
					a, _ := c.Peek()
					n, _ := c.Write(a)
					c.Discard(n)
				case stack.TCPEventPeerClosed:
					c.Close()
				}
			}})
			// Never reads: what arrives stays in the receive ring.
			s.ListenTCP(sink, stack.TCPListenOptions{OnEvent: func(*stack.TCPConn, stack.TCPEvent) {}})
		}
	})
	cli := start(t, w.NIC(1), addrB, nil)

	const size, sinkBytes, closers = 1000, 5000, 2
	msg := make([]byte, size)
	var echoed, sinkSent, refused, failed atomic.Int32
	wantEchoes := 0
	for c := range cli.NumCores() {
		conns := 4 + c // a different count on each core
		wantEchoes += conns
		err := cli.DoWait(ctxT(t), c, func(s *stack.Stack) {
			for i := range conns {
				_, err := s.DialTCP(addrA, echo, stack.TCPConnOptions{NoDelay: true, OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
					switch ev {
					case stack.TCPEventEstablished:
						c.Write(msg)
					case stack.TCPEventReadable:
						if c.Buffered() >= size {
							c.Discard(size)
							echoed.Add(1)
							if i < closers {
								c.Close() // this end goes to TIME-WAIT
							}
						}
					case stack.TCPEventClosed:
						if c.Err() != nil {
							failed.Add(1)
						}
					}
				}})
				if err != nil {
					panic(err)
				}
			}
			_, err := s.DialTCP(addrA, sink, stack.TCPConnOptions{OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
				if ev == stack.TCPEventEstablished {
					if n, _ := c.Write(make([]byte, sinkBytes)); n == sinkBytes {
						sinkSent.Add(1)
					}
				}
			}})
			if err != nil {
				panic(err)
			}
			_, err = s.DialTCP(addrA, closedPort, stack.TCPConnOptions{OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
				if ev == stack.TCPEventClosed {
					refused.Add(1)
				}
			}})
			if err != nil {
				panic(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cores := int32(cli.NumCores())
	sum := func(rt *Runtime, m Metric) (n uint64) {
		for _, v := range tcpTruth(t, rt) {
			n += v[m]
		}
		return n
	}
	// The traffic is over once every exchange is done, the closers' ends
	// are in TIME-WAIT, the server has let go of theirs, and the sinks'
	// bytes are in the server's rings (and acknowledged).
	waitFor(t, 10*time.Second, func() string {
		return fmt.Sprintf("the traffic to end: %d of %d echoes, %d of %d sinks sent, %d of %d refused, %d failed; client TIME-WAIT %d, server connections %d",
			echoed.Load(), wantEchoes, sinkSent.Load(), cores, refused.Load(), cores, failed.Load(),
			sum(cli, TCPTimeWait), sum(srv, TCPConnections))
	}, func() bool {
		return echoed.Load() == int32(wantEchoes) && sinkSent.Load() == cores && refused.Load() == cores &&
			sum(cli, TCPTimeWait) == uint64(closers*cores) &&
			sum(srv, TCPConnections) == uint64(wantEchoes-closers*int(cores)+int(cores)) &&
			sum(cli, TCPRingBytes) == 0 && sum(srv, TCPRingBytes) > 0
	})
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d echo connections failed", f)
	}

	// Each core publishes at the end of an iteration with work (the call
	// that reads its stack is work) and before it sleeps: poll until what
	// it published matches what its stack says.
	var mismatch []string
	compare := func() bool {
		mismatch = mismatch[:0]
		for _, side := range []struct {
			name string
			rt   *Runtime
		}{{"server", srv}, {"client", cli}} {
			truth := tcpTruth(t, side.rt)
			total := side.rt.Counters()
			for _, m := range tcpMetrics() {
				var want uint64
				for c := range truth {
					want += truth[c][m]
					if got := side.rt.CoreCounters(c).Values[m]; got != truth[c][m] {
						mismatch = append(mismatch, fmt.Sprintf("%s core %d: %s = %d, stack says %d", side.name, c, m, got, truth[c][m]))
					}
				}
				if got := total.Values[m]; got != want {
					mismatch = append(mismatch, fmt.Sprintf("%s, all cores: %s = %d, stacks say %d", side.name, m, got, want))
				}
			}
		}
		return len(mismatch) == 0
	}
	waitFor(t, 5*time.Second, func() string {
		return "the published TCP metrics to match the stacks' TCPStats:\n\t" + strings.Join(mismatch, "\n\t")
	}, compare)

	// The test means something only if the traffic moved these.
	for _, need := range []struct {
		rt   *Runtime
		side string
		m    Metric
	}{
		{cli, "client", TCPActiveOpens}, {srv, "server", TCPPassiveOpens},
		{cli, "client", TCPEstablished}, {srv, "server", TCPEstablished},
		{cli, "client", TCPTimeWait}, {srv, "server", TCPResetsSent},
		{cli, "client", TCPConnections}, {srv, "server", TCPConnections},
		{srv, "server", TCPRingBytes},
	} {
		if need.rt.Counters().Values[need.m] == 0 {
			t.Errorf("the traffic left %s's %s at 0", need.side, need.m)
		}
	}
	var nonzero []string
	for _, m := range tcpMetrics() {
		if v := srv.Counters().Values[m] + cli.Counters().Values[m]; v != 0 {
			nonzero = append(nonzero, fmt.Sprintf("%s=%d", strings.TrimPrefix(m.Name(), "mkstack_tcp_"), v))
		}
	}
	t.Logf("non-zero TCP metrics, both runtimes: %s", strings.Join(nonzero, " "))
}
