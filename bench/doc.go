// Package bench is the scaling harness: workloads run by core count on
// mkstack and its peers side by side, in the same run and on the same CPUs,
// with results as JSON and tables (plots: bench/plot).
//
// Workloads (Workload): udp-echo (64-byte datagrams), tcp-rr (persistent
// connections, 64-byte request and response), tcp-crr (connect, request,
// response, close; the client closes first), tcp-stream and
// tcp-stream-many (bulk, one and StreamFlows flows per core) and http
// (HTTP/1.1 keep-alive, a 13-byte body). Each transaction flow keeps one
// request in flight.
//
// Systems: mkstack over the mem wire with k queues per NIC, core i owning
// server queue i and client queue i, the client's ports chosen by RSS so
// both directions stay on core i; driven either by per-core handlers on the
// client runtime's cores (SysMkstack, the default: each response starts the
// next request in the same call) or through the net.Conn face
// (SysMkstackConn, goroutines). The kernel over loopback with one
// SO_REUSEPORT listener per core (SysLinux). gVisor's netstack over its
// channel link with its gonet adapter (SysGVisor) lives in the nested
// module bench/gvisorpeer, so this module's go.mod never names gVisor.
//
// The veth systems (Veth; root only, else ErrNotAvailable) run the server
// in a network namespace of its own on a real device: mkstack driving one
// end of a multi-queue veth pair with AF_XDP (SysMkstackAFXDP) or the user
// side of a multi-queue TAP (SysMkstackTap), with k cores and the per-core
// handlers SysMkstack serves with, or the kernel serving on that veth end
// (SysLinuxVeth). The load is the kernel's: the goroutine load generator
// on sockets made in the peer namespace. Each point makes its namespaces
// (nicq/netlab, named from the pid) and removes them when it ends,
// also when it fails or its context is cancelled.
//
// Run confines the whole process to the point's CPUs (Confine) while each
// point runs, so every system, both sides of its wire and the Go runtime's
// threads get the same k CPUs; a point reports its rate, its per-core rate,
// its efficiency rate(k)/(k*rate(1)), latency percentiles (Histogram), the
// CPU time and the garbage collections of the window.
//
// It must not be imported by the library.
package bench
