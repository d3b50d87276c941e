package core

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorEmitsPublishedCountersPerCPU(t *testing.T) {
	reasons := []string{"bad_checksum", "truncated"}
	c0, c1 := NewCounters(2), NewCounters(2)
	p0, p1 := NewPublished(2), NewPublished(2)
	c0.Add(RxPackets, 10)
	c0.Add(RxBytes, 640)
	c0.Drops[1] = 3
	c1.Add(RxPackets, 7)
	c1.Set(TCPEstablished, 5)
	p0.Publish(c0)
	p1.Publish(c1)
	// Not yet published: must not show.
	c0.Add(RxPackets, 100)

	col := NewCollector([]*Published{p0, p1}, []int{2, 3}, reasons)
	want := `
# HELP mkstack_rx_packets_total Frames received from the core's NIC queue.
# TYPE mkstack_rx_packets_total counter
mkstack_rx_packets_total{core="0",cpu="2"} 10
mkstack_rx_packets_total{core="1",cpu="3"} 7
# HELP mkstack_tcp_established TCP connections in ESTABLISHED on this core.
# TYPE mkstack_tcp_established gauge
mkstack_tcp_established{core="0",cpu="2"} 0
mkstack_tcp_established{core="1",cpu="3"} 5
# HELP mkstack_drops_total Packets dropped, by reason.
# TYPE mkstack_drops_total counter
mkstack_drops_total{core="0",cpu="2",reason="bad_checksum"} 0
mkstack_drops_total{core="0",cpu="2",reason="truncated"} 3
mkstack_drops_total{core="1",cpu="3",reason="bad_checksum"} 0
mkstack_drops_total{core="1",cpu="3",reason="truncated"} 0
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(want),
		"mkstack_rx_packets_total", "mkstack_tcp_established", "mkstack_drops_total"); err != nil {
		t.Fatal(err)
	}
	p0.Publish(c0)
	if got := p0.Load(RxPackets); got != 110 {
		t.Fatalf("after second publish rx = %d, want 110", got)
	}
}

func TestCollectorPassesLint(t *testing.T) {
	col := NewCollector([]*Published{NewPublished(1)}, []int{0}, []string{"truncated"})
	problems, err := testutil.CollectAndLint(col)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(col); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != int(numMetrics)+1 {
		t.Fatalf("gathered %d series, err %v; want %d", n, err, int(numMetrics)+1)
	}
}

func TestPublishDoesNotAllocate(t *testing.T) {
	c, p := NewCounters(8), NewPublished(8)
	allocs := testing.AllocsPerRun(1000, func() {
		c.Add(RxPackets, 1)
		c.Drops[3]++
		p.Publish(c)
	})
	if allocs != 0 {
		t.Fatalf("Publish allocates %.1f times per run", allocs)
	}
}

func BenchmarkPublishBusyCore(b *testing.B) {
	c, p := NewCounters(16), NewPublished(16)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.Add(RxPackets, 64)
		c.Add(RxBytes, 64*64)
		c.Add(TxPackets, 64)
		c.Add(Polls, 1)
		p.Publish(c)
	}
}
