// Package gvisorpeer runs the bench workloads on gVisor's netstack: a
// server stack and a client stack in one process, joined by two of its
// channel links (a goroutine per direction moves each packet from one
// stack's outbound queue into the other's inbound path), driven through
// its gonet net.Conn adapter by bench.RunConn, the same goroutine load
// the kernel and mkstack's net.Conn face get.
//
// It is a nested module so that mkstack's own go.mod never names gVisor:
// `mkstack bench --systems gvisor` builds cmd/gvisorpeer and runs each
// point in it, confined to the point's CPUs like every other system.
package gvisorpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/mkstack/mkstack/bench"
)

const (
	serverAddr = "10.0.0.1"
	clientAddr = "10.0.0.2"
	nicID      = 1
	mtu        = 1500
	queueLen   = 4096
)

// System is gVisor's netstack as a bench system.
func System() bench.System {
	return bench.SystemFunc(func(ctx context.Context, p bench.Params) (bench.Point, error) {
		srv, err := newStack(serverAddr, p.Workload)
		if err != nil {
			return bench.Point{}, err
		}
		cli, err := newStack(clientAddr, p.Workload)
		if err != nil {
			srv.close()
			return bench.Point{}, err
		}
		pumpCtx, stopPumps := context.WithCancel(context.Background())
		var pumps sync.WaitGroup
		pumps.Go(func() { pump(pumpCtx, srv.link, cli.link) })
		pumps.Go(func() { pump(pumpCtx, cli.link, srv.link) })
		t := &bench.ConnTarget{
			Addr: serverAddr,
			Listen: func(port int) ([]net.Listener, error) {
				l, err := gonet.ListenTCP(srv.s, srv.full(port), ipv4.ProtocolNumber)
				if err != nil {
					return nil, err
				}
				return []net.Listener{l}, nil
			},
			ListenPacket: func(port int) ([]net.PacketConn, error) {
				a := srv.full(port)
				c, err := gonet.DialUDP(srv.s, &a, nil, ipv4.ProtocolNumber)
				if err != nil {
					return nil, err
				}
				return []net.PacketConn{c}, nil
			},
			Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
				ap, err := netip.ParseAddrPort(address)
				if err != nil {
					return nil, err
				}
				dst := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(ap.Addr().As4()), Port: ap.Port()}
				switch network {
				case "tcp", "tcp4":
					return gonet.DialContextTCP(ctx, cli.s, dst, ipv4.ProtocolNumber)
				case "udp", "udp4":
					return gonet.DialUDP(cli.s, nil, &dst, ipv4.ProtocolNumber)
				}
				return nil, fmt.Errorf("gvisor: dial %s: unsupported network", network)
			},
		}
		pt, err := bench.RunConn(ctx, t, p)
		stopPumps()
		srv.close()
		cli.close()
		pumps.Wait()
		pt.System = bench.SysGVisor
		return pt, err
	})
}

type gstack struct {
	s    *stack.Stack
	link *channel.Endpoint
	addr tcpip.Address
}

func newStack(addr string, w bench.Workload) (*gstack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	g := &gstack{s: s, link: channel.New(queueLen, mtu, ""), addr: tcpip.AddrFrom4(netip.MustParseAddr(addr).As4())}
	if err := s.CreateNIC(nicID, g.link); err != nil {
		return nil, fmt.Errorf("gvisor: create NIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: g.addr, PrefixLen: 24}}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("gvisor: add address: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})
	var errs []error
	set := func(name string, o tcpip.SettableTransportProtocolOption) {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			errs = append(errs, fmt.Errorf("gvisor: %s: %s", name, err))
		}
	}
	sack, delay := tcpip.TCPSACKEnabled(true), tcpip.TCPDelayEnabled(false)
	set("SACK", &sack)
	set("Nagle off", &delay)
	if w == bench.TCPCRR {
		// The client closes first: a short TIME-WAIT keeps its ports
		// from running out, as mkstack's in the same workload.
		tw := tcpip.TCPTimeWaitTimeoutOption(200 * time.Millisecond)
		set("TIME-WAIT", &tw)
	}
	return g, errors.Join(errs...)
}

func (g *gstack) full(port int) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nicID, Addr: g.addr, Port: uint16(port)}
}

func (g *gstack) close() {
	g.link.Close()
	g.s.Close()
	g.s.Wait()
}

// pump moves every packet from's stack sends into to's stack.
func pump(ctx context.Context, from, to *channel.Endpoint) {
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		in := pkt.CloneToInbound()
		pkt.DecRef()
		to.InjectInbound(ipv4.ProtocolNumber, in)
		in.DecRef()
	}
}
