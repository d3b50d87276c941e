// Package bench is the scaling harness: workloads (UDP echo, TCP
// request/response, TCP connect/request/response, TCP stream) run by core
// count against peers side by side, with results as JSON, tables and plots.
//
// It must not be imported by the library.
//
// Status: not built yet; see docs/ARCHITECTURE.md.
package bench
