package main

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// mcCollector exports the memcached application's statistics per core. A
// scrape asks each core for its shard's numbers with a blocking call
// (core.Call.Wait), so nothing on the data path is shared or atomic.
type mcCollector struct {
	s     *mcServer
	descs []mcMetric
}

type mcMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*mcStats) uint64
}

func newMCCollector(s *mcServer) *mcCollector {
	l := []string{"core"}
	counter := func(name, help string, v func(*mcStats) uint64) mcMetric {
		return mcMetric{prometheus.NewDesc("mkstack_memcached_"+name, help, l, nil), prometheus.CounterValue, v}
	}
	gauge := func(name, help string, v func(*mcStats) uint64) mcMetric {
		return mcMetric{prometheus.NewDesc("mkstack_memcached_"+name, help, l, nil), prometheus.GaugeValue, v}
	}
	return &mcCollector{s: s, descs: []mcMetric{
		counter("get_hits_total", "Keys found by get, gets, gat and gats.", func(s *mcStats) uint64 { return s.store.GetHits }),
		counter("get_misses_total", "Keys not found by get, gets, gat and gats.", func(s *mcStats) uint64 { return s.store.GetMisses }),
		counter("get_expired_total", "Keys a get found expired.", func(s *mcStats) uint64 { return s.store.GetExpired }),
		counter("sets_total", "Storage commands (set, add, replace, append, prepend, cas).", func(s *mcStats) uint64 { return s.store.CmdSet }),
		counter("evictions_total", "Live items evicted (least recently used first) to stay within the core's memory bound.", func(s *mcStats) uint64 { return s.store.Evictions }),
		counter("reclaimed_total", "Expired or flushed items whose memory was reused for new items.", func(s *mcStats) uint64 { return s.store.Reclaimed }),
		counter("expired_total", "Items found expired and removed.", func(s *mcStats) uint64 { return s.store.Expired }),
		counter("out_of_memory_total", "Items refused because they cannot fit in the core's memory bound.", func(s *mcStats) uint64 { return s.store.OutOfMemory }),
		counter("protocol_errors_total", "Requests answered with ERROR, CLIENT_ERROR or SERVER_ERROR for bad input.", func(s *mcStats) uint64 { return s.protocolErrors }),
		counter("busy_stalls_total", "Times a connection stopped reading because a call to another core was refused for back-pressure.", func(s *mcStats) uint64 { return s.busyStalls }),
		counter("connections_total", "Connections accepted.", func(s *mcStats) uint64 { return s.totalConns }),
		gauge("connections", "Open connections.", func(s *mcStats) uint64 { return s.currConns }),
		gauge("items", "Items held (the core's share of the keys).", func(s *mcStats) uint64 { return s.store.CurrItems }),
		gauge("bytes", "Bytes the items take, counted against the bound.", func(s *mcStats) uint64 { return s.store.Bytes }),
		gauge("limit_bytes", "The core's memory bound for items.", func(s *mcStats) uint64 { return s.store.MaxBytes }),
	}}
}

// Describe implements prometheus.Collector.
func (c *mcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.descs {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *mcCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	per, err := c.s.Stats(ctx)
	if err != nil {
		return
	}
	for i := range per {
		core := strconv.Itoa(i)
		for _, m := range c.descs {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(&per[i])), core)
		}
	}
}
