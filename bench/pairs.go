package bench

// Pair names two systems that run the same application on the same API
// model, one of them mkstack: the only comparisons the harness's tables,
// ratios and plots make.
type Pair struct {
	System, Peer string
	// Model is the API model both serve with: "handler" (mkstack's
	// run-to-completion handlers against the kernel's epoll loop with
	// the same logic), "net.Conn" (goroutines; net/http for http).
	Model string
	// Device says where both run: "mem wire vs loopback" (in-process
	// figures that do not cross a device) or "veth".
	Device string
	// Note says what differs that the pair cannot make equal.
	Note string
}

// Pairs are the like-for-like comparisons, in the order tables use.
var Pairs = []Pair{
	{System: SysMkstack, Peer: SysLinuxEpoll, Model: "handler", Device: "mem wire vs loopback"},
	{System: SysMkstackConn, Peer: SysLinux, Model: "net.Conn", Device: "mem wire vs loopback"},
	{System: SysMkstackConn, Peer: SysGVisor, Model: "net.Conn", Device: "mem wire vs channel link"},
	{System: SysMkstackAFXDP, Peer: SysLinuxEpollVeth, Model: "handler", Device: "veth"},
	{System: SysMkstackTap, Peer: SysLinuxEpollVeth, Model: "handler", Device: "veth vs TAP"},
	{System: SysMkstackConnAFXDP, Peer: SysLinuxVeth, Model: "net.Conn", Device: "veth"},
	{System: SysMkstackConnAFXDP, Peer: SysLinuxVethOffloadsOff, Model: "net.Conn", Device: "veth, offloads off on both"},
	{System: SysMkstackConnTap, Peer: SysLinuxVeth, Model: "net.Conn", Device: "veth vs TAP"},
	{System: SysMkstackAFXDP, Peer: SysMemcachedVeth, Model: "memcached", Device: "veth",
		Note: "items sharded by key across the cores with cross-core calls, against memcached's threads over one locked table"},
}

// PairsFor returns the pairs that compare like for like on w. Every pair
// but the memcached one holds for every other workload: on http the
// handler systems all serve the same fixed responder, the net.Conn
// systems all serve net/http. The memcached workload has that pair
// alone: both serve the memcached protocol, each its own way.
func PairsFor(w Workload) []Pair {
	var out []Pair
	for _, pr := range Pairs {
		if (pr.Model == "memcached") == (w == Memcached) {
			out = append(out, pr)
		}
	}
	return out
}

// ModelOf returns the API model system serves w with, as Point.API
// records it.
func ModelOf(system string, w Workload) string {
	if w == Memcached {
		return "memcached"
	}
	switch system {
	case SysMkstack, SysMkstackAFXDP, SysMkstackTap:
		return "handler"
	case SysLinuxEpoll, SysLinuxEpollVeth:
		return "epoll"
	}
	if w == HTTP {
		return "net/http"
	}
	return "net.Conn"
}
