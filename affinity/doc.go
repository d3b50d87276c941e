// Package affinity owns where code runs: the CPU topology read from sysfs
// (online CPUs, NUMA nodes, SMT siblings, a NIC's NUMA node and queue IRQs),
// pinning the calling goroutine to one CPU, and choosing the CPUs for N
// cores.
//
// It must not start goroutines.
package affinity
