// Package bench is the scaling harness: workloads run by core count on
// mkstack and its peers side by side, in the same run and on the same CPUs,
// with results as JSON and tables (plots: bench/plot).
//
// Workloads (Workload): udp-echo (64-byte datagrams), tcp-rr (persistent
// connections, 64-byte request and response), tcp-crr (connect, request,
// response, close; the client closes first), tcp-stream and
// tcp-stream-many (bulk, one and StreamFlows flows per core) and http
// (HTTP/1.1 keep-alive, a 13-byte body), and memcached (the text
// protocol, memcaslap's default mix of 64-byte keys, 1024-byte values and
// nine gets to a set). Each transaction flow keeps one request in flight.
//
// Systems, grouped by the API model the server uses, since a ratio is only
// given between systems of one model (Pairs; Result.Ratios):
//
//   - handler: mkstack's run-to-completion per-core handlers (SysMkstack
//     over the mem wire, handlers on the client side too; SysMkstackAFXDP
//     and SysMkstackTap on the lab's veth) against the kernel's best
//     equivalent, a pinned thread per core with its own SO_REUSEPORT
//     socket and an epoll loop serving the same logic (SysLinuxEpoll over
//     loopback, with an epoll load; SysLinuxEpollVeth on the veth). On
//     http both sides serve the same fixed responder.
//   - net.Conn: a goroutine per connection, net/http for http: mkstack's
//     net.Conn face (SysMkstackConn over the mem wire; SysMkstackConnAFXDP
//     and SysMkstackConnTap on the veth) against Go's net on the kernel
//     (SysLinux over loopback, SysLinuxVeth on the veth) and gVisor's
//     netstack through its gonet adapter (SysGVisor, in the nested module
//     bench/gvisorpeer, so this module's go.mod never names gVisor).
//   - memcached: the same protocol, each side its own server: mkstack's
//     sharded application (serve --app memcached: items sharded by key
//     across the cores, cross-core calls; linked in through
//     MemcachedServer) on SysMkstackAFXDP against stock memcached -t k
//     on the kernel (SysMemcachedVeth), both on the lab's veth, loaded
//     by memcaslap at peak and by the goroutine flows at a fixed rate
//     (memcaslap's --tps does not pace). No other system serves it
//     (Supports).
//
// The mem-wire and loopback systems never cross a device: their ratios
// compare stacks in one process, not what a device costs. The veth
// systems (Veth; root only, else ErrNotAvailable) run the server in a
// network namespace of its own on a real device, with the load from the
// peer namespace: the goroutine load generator on kernel sockets, or for
// http wrk (peak) and h2load (peak with HTTPClient, and every fixed-rate
// point). The kernel's devices stay at their default offloads, the
// mkstack veth systems' kernel peer too, except in SysLinuxVethOffloadsOff;
// each point records which (Point.PeerOffloads). Each point makes its namespaces
// (nicq/netlab, named from the pid) and removes them when it ends, also
// when it fails or its context is cancelled.
//
// Two address families: IPv4 (the default) and IPv6 (Spec.IPv6, mkstack
// bench --ipv6), on every system but gVisor (TakesIPv6): the veth systems
// between the lab's fd77::1 and fd77::2 (mkstack with the address in
// its Addrs6 and its AF_XDP program's addresses, the kernel with it on
// the device; the peer's added without duplicate address detection), the
// mem-wire systems between fd00::1 and fd00::2, the loopback ones on ::1.
// Each point records its family (Point.Family; missing in older results:
// IPv4), ratios pair points of one family only, and the report compares
// each system's IPv6 rate with its IPv4 one.
//
// Two modes: peak (the default: every flow keeps one request in flight)
// and fixed rate (Spec.Rate: the load is paced, open loop, at a given
// rate, and a transaction's latency counts from when it was due). Both
// report the whole machine's CPU time in the window from /proc/stat
// (Point.MachineCPUSeconds, and Point.CPUPerTxn), which at a fixed rate
// compares what two stacks spend on the same work. For the streams the
// rate is bytes per second received by the server, all flows together:
// each flow writes a StreamChunk when it is due (every
// flows*StreamChunk/Rate seconds), finishing a chunk the socket took
// only part of before the next begins, and a late flow writes its
// overdue chunks back to back but never one ahead of its schedule. The
// CPU per unit of work is µs per transaction, or per MiB received for a
// stream (CPUUnit, Point.MachineCPUPerUnit).
//
// Run confines the whole process to the point's CPUs (Confine) while each
// point runs, so every system, both sides of its wire and the Go runtime's
// threads get the same k CPUs; a point reports its rate, its per-core rate,
// its efficiency rate(k)/(k*rate(1)), latency percentiles (Histogram), the
// CPU time and the garbage collections of the window.
//
// It must not be imported by the library.
package bench
