package core

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names one per-core counter or gauge.
type Metric int

// The per-core metrics. Counters only grow; the ones marked gauge go up and
// down.
const (
	RxPackets Metric = iota
	RxBytes
	TxPackets
	TxBytes
	Polls
	IdleSleeps
	Wakeups
	Syscalls
	ThreadMoves
	SharedWaitMisses
	BusyYields
	AnswerWaits
	SpinHits
	SpinMisses
	ForwardedPackets
	ForwardDrops
	ForwardsReceived
	MailboxMessages
	RingHighWater // gauge: the fullest a mailbox ring has been
	ReplicationDrops
	TCPActiveOpens
	TCPPassiveOpens
	TCPRetransmits
	TCPEstablished // gauge
	TCPTimeWait    // gauge
	TCPSYNCookiesSent
	TCPSYNCookiesValid
	TCPSYNQueueDrops
	TCPChallengeACKs
	TCPResetsSent
	TCPConnections // gauge: every state but LISTEN
	TCPRingBytes   // gauge: send and receive ring memory held
	TCPFinWait2Timeouts
	TCPZeroWindowAborts
	TCPAbortOnData
	TCPTimeWaitRecycled
	TCPTxQueueWaits
	TCPInvalidACKsSkipped
	TCPChallengeACKsOverBudget
	TCPCookieACKsNoOverflow
	TCPMemoryPressure
	TCPDSACKsSent
	TCPDSACKsReceived
	TCPDSACKUndos
	TCPEifelUndos
	TCPFRTOUndos
	IPv6PacketsOut
	NeighbourSolicitsSent
	NeighbourAdvertsSent
	ICMPErrorsDelivered
	DuplicateAddresses6
	numMetrics
)

type metricInfo struct {
	name, help string
	gauge      bool
}

var metricInfos = [numMetrics]metricInfo{
	RxPackets:  {"mkstack_rx_packets_total", "Frames received from the core's NIC queue.", false},
	RxBytes:    {"mkstack_rx_bytes_total", "Bytes received from the core's NIC queue.", false},
	TxPackets:  {"mkstack_tx_packets_total", "Frames handed to the core's NIC queue.", false},
	TxBytes:    {"mkstack_tx_bytes_total", "Bytes handed to the core's NIC queue.", false},
	Polls:      {"mkstack_polls_total", "Iterations of the core's poll loop.", false},
	IdleSleeps: {"mkstack_idle_sleeps_total", "Times the core found no work and blocked.", false},
	Wakeups:    {"mkstack_wakeups_total", "Times a blocked core was woken by its queue or doorbell.", false},
	Syscalls: {"mkstack_syscalls_total",
		"System calls made for the core: its queues' own (frame reads and writes, transmit kicks, receive wake-ups), its waits (a wait in Go's network poller counts as one), its doorbell's reads, and the doorbell writes that woke it. Not the yields between a spinning core's looks, which run in time no other thread wanted.", false},
	ThreadMoves: {"mkstack_thread_moves_total", "Times the core moved from its own thread onto the Go scheduler's threads (Threads).", false},
	SharedWaitMisses: {"mkstack_shared_wait_misses_total",
		"Times a core on shared threads found a descriptor ready when its wait ran out, with no wake-up from Go's network poller (each cost the core up to sharedWaitCap).", false},
	BusyYields: {"mkstack_busy_yields_total",
		"Times a core on shared threads, busy without a pause for sharedBusyYield, let the application's goroutines run before its next burst.", false},
	AnswerWaits: {"mkstack_answer_waits_total",
		"Times a core on shared threads yielded to the application's goroutines instead of sleeping, waiting for the answer to frames it delivered (sharedAnswerWindow).", false},
	SpinHits: {"mkstack_spin_hits_total",
		"Idle stretches of a core on its own thread that ended with work within its spin window (SpinWindow): the ones where spinning pays.", false},
	SpinMisses: {"mkstack_spin_misses_total",
		"Idle stretches of a core on its own thread longer than its spin window. The core spins only while at least three in four recent stretches are hits.", false},
	ForwardedPackets:    {"mkstack_forwarded_packets_total", "Packets this core forwarded to the core that owns their flow.", false},
	ForwardDrops:        {"mkstack_forward_drops_total", "Packets not forwarded because the core had too many forwards in flight or the owner's mailbox ring was full.", false},
	ForwardsReceived:    {"mkstack_forwards_received_total", "Packets other cores forwarded to this core.", false},
	MailboxMessages:     {"mkstack_mailbox_messages_total", "Messages drained from the core's mailbox.", false},
	RingHighWater:       {"mkstack_mailbox_ring_high_water", "Most messages found waiting in one mailbox ring.", true},
	ReplicationDrops:    {"mkstack_replication_drops_total", "Replicated-state messages (neighbour entries) not sent because a peer's ring and backlog were full.", false},
	TCPActiveOpens:      {"mkstack_tcp_active_opens_total", "TCP connections this core opened.", false},
	TCPPassiveOpens:     {"mkstack_tcp_passive_opens_total", "TCP connections this core accepted.", false},
	TCPRetransmits:      {"mkstack_tcp_retransmits_total", "TCP segments retransmitted.", false},
	TCPEstablished:      {"mkstack_tcp_established", "TCP connections in ESTABLISHED on this core.", true},
	TCPTimeWait:         {"mkstack_tcp_time_wait", "TCP connections in TIME-WAIT on this core.", true},
	TCPSYNCookiesSent:   {"mkstack_tcp_syn_cookies_sent_total", "SYN-ACKs carrying a SYN cookie because a listener's SYN queue was full.", false},
	TCPSYNCookiesValid:  {"mkstack_tcp_syn_cookies_valid_total", "Connections made from a valid SYN cookie.", false},
	TCPSYNQueueDrops:    {"mkstack_tcp_syn_queue_drops_total", "SYNs dropped because a listener's SYN queue was full (cookies disabled).", false},
	TCPChallengeACKs:    {"mkstack_tcp_challenge_acks_total", "RFC 5961 challenge ACKs sent.", false},
	TCPResetsSent:       {"mkstack_tcp_resets_sent_total", "TCP resets sent.", false},
	TCPConnections:      {"mkstack_tcp_connections", "TCP connections in any state but LISTEN on this core (bounded by TCPConfig.MaxConns).", true},
	TCPRingBytes:        {"mkstack_tcp_ring_bytes", "Send and receive ring memory the core's TCP connections hold.", true},
	TCPFinWait2Timeouts: {"mkstack_tcp_fin_wait2_timeouts_total", "Closed connections ended by the FIN-WAIT-2 timeout.", false},
	TCPZeroWindowAborts: {"mkstack_tcp_zero_window_aborts_total", "Connections ended because the peer's window stayed shut through the probe limit.", false},
	TCPAbortOnData:      {"mkstack_tcp_abort_on_data_total", "Connections reset because data arrived after the application closed them.", false},
	TCPTimeWaitRecycled: {"mkstack_tcp_time_wait_recycled_total", "TIME-WAIT connections recycled early because the table was full.", false},
	TCPTxQueueWaits:     {"mkstack_tcp_tx_queue_waits_total", "Times TCP held data back because the transmit queue was nearly full.", false},
	TCPInvalidACKsSkipped: {"mkstack_tcp_invalid_acks_skipped_total",
		"ACKs to invalid segments (challenge or duplicate) not sent because the connection sent one within TCPConfig.InvalidACKInterval.", false},
	TCPChallengeACKsOverBudget: {"mkstack_tcp_challenge_acks_over_budget_total",
		"Challenge ACKs not sent because the stack's randomised per-second budget was spent.", false},
	TCPCookieACKsNoOverflow: {"mkstack_tcp_cookie_acks_no_overflow_total",
		"ACKs not checked as SYN cookies (answered with a reset) because the listener's SYN queue had not overflowed recently.", false},
	TCPMemoryPressure: {"mkstack_tcp_memory_pressure_total",
		"Times the core's TCP ring memory rose above TCPConfig.MemoryPressure (new connections then offer small windows and rings stop growing).", false},
	TCPDSACKsSent: {"mkstack_tcp_dsacks_sent_total",
		"TCP segments sent reporting a duplicate segment received (D-SACK, RFC 2883).", false},
	TCPDSACKsReceived: {"mkstack_tcp_dsacks_received_total",
		"D-SACK blocks received (RFC 2883).", false},
	TCPDSACKUndos: {"mkstack_tcp_dsack_undos_total",
		"Congestion window reductions undone because D-SACKs reported every retransmission unneeded (RFC 3708).", false},
	TCPEifelUndos: {"mkstack_tcp_eifel_undos_total",
		"Congestion window reductions undone because the first ACK after a retransmission echoed the original's timestamp (Eifel, RFC 3522).", false},
	TCPFRTOUndos: {"mkstack_tcp_frto_undos_total",
		"Retransmission timeouts undone because data sent once was acknowledged after new data went in place of retransmissions (F-RTO, RFC 5682).", false},
	IPv6PacketsOut: {"mkstack_ipv6_packets_out_total", "IPv6 packets TCP and UDP sent.", false},
	NeighbourSolicitsSent: {"mkstack_ndp_solicitations_sent_total",
		"IPv6 neighbour solicitations sent to resolve a next hop (RFC 4861 7.2.2).", false},
	NeighbourAdvertsSent: {"mkstack_ndp_advertisements_sent_total", "IPv6 neighbour advertisements sent in answer to solicitations for our addresses.", false},
	ICMPErrorsDelivered: {"mkstack_icmp_errors_delivered_total",
		"ICMP and ICMPv6 errors delivered to the TCP connection or UDP socket whose packet they quote.", false},
	DuplicateAddresses6: {"mkstack_ipv6_duplicate_addresses_total",
		"IPv6 addresses of the stack withdrawn because duplicate address detection found another node using them.", false},
}

// Counters are one core's metrics, kept as plain fields that only the core
// writes: incrementing one is an ordinary add, with no atomic and no shared
// cache line. Publish makes them visible to the collector.
type Counters struct {
	Values [numMetrics]uint64
	// Drops counts dropped packets by reason; the reasons are the stack's,
	// named by the collector's reason list.
	Drops []uint64
}

// NewCounters returns counters with room for dropReasons drop reasons.
func NewCounters(dropReasons int) *Counters {
	return &Counters{Drops: make([]uint64, dropReasons)}
}

// Add adds n to metric m.
func (c *Counters) Add(m Metric, n uint64) { c.Values[m] += n }

// Set sets gauge m.
func (c *Counters) Set(m Metric, v uint64) { c.Values[m] = v }

// Published is the copy of one core's counters that other goroutines may
// read. The core calls Publish once per loop iteration; only values that
// changed since the last publication are stored, so a quiet counter costs one
// compare, and a busy core pays a few atomic stores per iteration rather than
// one per packet.
type Published struct {
	values [numMetrics]atomic.Uint64
	drops  []atomic.Uint64
	last   Counters // core-private: what was stored last time
}

// NewPublished returns the published side for counters with dropReasons
// drop reasons.
func NewPublished(dropReasons int) *Published {
	return &Published{drops: make([]atomic.Uint64, dropReasons), last: Counters{Drops: make([]uint64, dropReasons)}}
}

// Publish copies c into p. Only the core that owns c calls it.
func (p *Published) Publish(c *Counters) {
	for i, v := range c.Values {
		if v != p.last.Values[i] {
			p.values[i].Store(v)
			p.last.Values[i] = v
		}
	}
	for i, v := range c.Drops {
		if v != p.last.Drops[i] {
			p.drops[i].Store(v)
			p.last.Drops[i] = v
		}
	}
}

// Load returns the published value of m.
func (p *Published) Load(m Metric) uint64 { return p.values[m].Load() }

// LoadDrops returns the published drop count for reason index r.
func (p *Published) LoadDrops(r int) uint64 { return p.drops[r].Load() }

// Snapshot returns a copy of the published counters. Any goroutine may call
// it; it allocates the copy's Drops, so it belongs to the control plane.
func (p *Published) Snapshot() Counters {
	c := Counters{Drops: make([]uint64, len(p.drops))}
	for i := range c.Values {
		c.Values[i] = p.values[i].Load()
	}
	for i := range c.Drops {
		c.Drops[i] = p.drops[i].Load()
	}
	return c
}

// Merge adds o into c, as a total over cores: counters and the TCP state
// gauges add up, RingHighWater keeps the larger value.
func (c *Counters) Merge(o *Counters) {
	for m, v := range o.Values {
		if Metric(m) == RingHighWater {
			c.Values[m] = max(c.Values[m], v)
			continue
		}
		c.Values[m] += v
	}
	if len(c.Drops) < len(o.Drops) {
		c.Drops = append(c.Drops, make([]uint64, len(o.Drops)-len(c.Drops))...)
	}
	for r, v := range o.Drops {
		c.Drops[r] += v
	}
}

// Get returns the value of metric m.
func (c Counters) Get(m Metric) uint64 { return c.Values[m] }

// Name returns the metric's Prometheus name, such as
// "mkstack_rx_packets_total".
func (m Metric) Name() string {
	if m < 0 || m >= numMetrics {
		return "Metric(" + strconv.Itoa(int(m)) + ")"
	}
	return metricInfos[m].name
}

// String returns the metric's name.
func (m Metric) String() string { return m.Name() }

// Collector is a prometheus.Collector that reads every core's published
// counters at scrape time and emits them as const metrics labelled with the
// core's index and CPU. Nothing on the data path touches a Prometheus
// object.
type Collector struct {
	cores   []*Published
	cpus    []string
	reasons []string
	descs   [numMetrics]*prometheus.Desc
	drops   *prometheus.Desc
	// A runtime's collector also emits its cross-core call counters
	// (calls.go).
	calls     []*callsPublished
	callDescs *callDescs
}

// NewCollector collects cores[i] under the labels core=i, cpu=cpus[i]; a
// negative CPU (a core that is not pinned) is labelled cpu="any". reasons
// names the drop reasons by index.
func NewCollector(cores []*Published, cpus []int, reasons []string) *Collector {
	c := &Collector{cores: cores, reasons: reasons}
	for _, cpu := range cpus {
		if cpu < 0 {
			c.cpus = append(c.cpus, "any")
			continue
		}
		c.cpus = append(c.cpus, strconv.Itoa(cpu))
	}
	for m, info := range metricInfos {
		c.descs[m] = prometheus.NewDesc(info.name, info.help, []string{"core", "cpu"}, nil)
	}
	c.drops = prometheus.NewDesc("mkstack_drops_total", "Packets dropped, by reason.", []string{"core", "cpu", "reason"}, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.drops
	c.describeCalls(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for i, p := range c.cores {
		core, cpu := strconv.Itoa(i), c.cpus[i]
		for m, info := range metricInfos {
			kind := prometheus.CounterValue
			if info.gauge {
				kind = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(c.descs[m], kind, float64(p.values[m].Load()), core, cpu)
		}
		for r, name := range c.reasons {
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(p.drops[r].Load()), core, cpu, name)
		}
	}
	c.collectCalls(ch)
}
