//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"runtime"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/afpacket"
	"github.com/mkstack/mkstack/nicq/afxdp"
	"github.com/mkstack/mkstack/nicq/linkdev"
	"github.com/mkstack/mkstack/nicq/tap"
	"github.com/mkstack/mkstack/stack/header"
)

func init() {
	drivers["afxdp"] = openAFXDP
	drivers["afpacket"] = openAFPacket
	drivers["tap"] = openTAP
}

// defaultQueues is one queue per receive queue of the interface, at most
// one per CPU.
func defaultQueues(o driverOptions) int {
	if o.queues > 0 {
		return o.queues
	}
	n := runtime.NumCPU()
	if info, err := linkdev.Lookup("", o.iface); err == nil && info.RxQueues > 0 {
		n = min(n, info.RxQueues)
	}
	return n
}

// openAFXDP opens a socket on every receive queue of the interface
// (afxdp.Config.Queues 0), however many cores poll them.
func openAFXDP(o driverOptions) (nicq.NIC, func(), error) {
	nic, err := afxdp.Open(afxdp.Config{
		Interface: o.iface, Pollers: defaultQueues(o), Addrs: o.addrs, Generic: o.xdpGeneric,
		Warn: func(m string) { o.warn(m) },
	})
	if err != nil {
		return nil, nil, err
	}
	o.info("AF_XDP", "mode", nic.Mode())
	return nic, func() { nic.Close() }, nil
}

func openAFPacket(o driverOptions) (nicq.NIC, func(), error) {
	nic, err := afpacket.Open(afpacket.Config{Interface: o.iface, Queues: defaultQueues(o), Ring: afpacket.RingVersion(o.afpacketRing),
		Multicast: solicitedNodeMACs(o.addrs), Warn: func(m string) { o.warn(m) }})
	if err != nil {
		return nil, nil, err
	}
	o.info("AF_PACKET", "ring", nic.Ring().String(), "steering", map[bool]string{true: "toeplitz eBPF fanout", false: "kernel flow hash fanout"}[nic.Steered()])
	return nic, func() { nic.Close() }, nil
}

func openTAP(o driverOptions) (nicq.NIC, func(), error) {
	q := o.queues
	if q == 0 {
		q = min(runtime.NumCPU(), 2)
	}
	nic, err := tap.Open(tap.Config{Name: o.iface, Queues: q, Warn: func(m string) { o.warn(m) }})
	if err != nil {
		return nil, nil, err
	}
	if !nic.LinkUp() {
		o.warn(fmt.Sprintf("TAP %s is down on the kernel side: ip link set %s up", o.iface, o.iface))
	}
	o.info("TAP", "steering", map[bool]string{true: "toeplitz eBPF", false: "kernel flow hash"}[nic.Steered()])
	return nic, func() { nic.Close() }, nil
}

// solicitedNodeMACs are the Ethernet groups of the solicited-node groups
// of the IPv6 addresses among addrs.
func solicitedNodeMACs(addrs []netip.Addr) [][6]byte {
	var out [][6]byte
	for _, a := range addrs {
		if a.Is6() && !a.Is4In6() {
			out = append(out, header.IPv6MulticastMAC(header.SolicitedNodeMulticast(a.As16())))
		}
	}
	return out
}
