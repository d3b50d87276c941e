// Package core is the per-core runtime of mkstack: it starts N cores, pins
// each to a CPU, and gives each one NIC queue, one stack instance and one
// mailbox. It owns the poll loop (receive burst with a budget, stack input,
// mailbox drain, timers, transmit flush, adaptive idle), cross-core
// forwarding of packets that land on the wrong core, the control plane that
// replicates listeners, neighbours and routes by message, and per-core
// metrics collected for Prometheus.
//
// It must not hold a lock on the data path.
//
// Status: not built yet; see docs/ARCHITECTURE.md.
package core
