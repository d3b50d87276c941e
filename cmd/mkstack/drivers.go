package main

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
)

// driverOptions is what serve knows when it opens a NIC.
type driverOptions struct {
	iface  string
	queues int
	addrs  []netip.Addr
	// xdpGeneric asks afxdp for generic (skb) mode.
	xdpGeneric bool
	// afpacketRing is afpacket's receive ring version, 2 or 3; 0 leaves
	// the driver's default.
	afpacketRing int
	warn, info   func(msg string, args ...any)
}

// openDriver opens a NIC by driver name. Each driver registers itself from
// its own file so serve does not depend on drivers a build leaves out.
type openDriver func(o driverOptions) (nicq.NIC, func(), error)

var drivers = map[string]openDriver{
	"mem": openMem,
}

func driverNames() string {
	var names []string
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "|")
}

// memPeer is the second NIC of the wire serve --driver mem makes: tests
// drive a client stack on it; from the command line it is unreachable.
var memPeer func(nicq.NIC)

func openMem(o driverOptions) (nicq.NIC, func(), error) {
	if o.queues == 0 {
		o.queues = 2
	}
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0x6d, 0x6b, 0, 0, 1}, Queues: o.queues, TSO: true},
		{MAC: [6]byte{2, 0x6d, 0x6b, 0, 0, 2}, Queues: o.queues, TSO: true},
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("mem wire: %w", err)
	}
	if memPeer != nil {
		memPeer(w.NIC(1))
	} else {
		o.warn("the mem driver is an in-process wire: nothing outside this process can reach the stack")
	}
	return w.NIC(0), func() { w.Close() }, nil
}
