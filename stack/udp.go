package stack

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// ErrPortInUse is returned (wrapped) by BindUDP for a port already bound.
var ErrPortInUse = errors.New("address already in use")

// ErrNoEphemeralPort is returned when every ephemeral port is bound.
var ErrNoEphemeralPort = errors.New("no free ephemeral port")

// The ephemeral range of UDP ports handed out by BindUDP(0) (IANA's).
const (
	ephemeralFirst = 49152
	ephemeralLast  = 65535
)

// maxUDPPayload is the largest UDP payload an IPv4 datagram can carry.
const maxUDPPayload = header.IPv4MaximumTotalLength - header.IPv4MinimumSize - header.UDPSize

// Datagram is a received UDP datagram. Its buffer starts at the payload and
// belongs to whoever holds the Datagram, until Release.
type Datagram struct {
	Buf      *nicq.Buf
	From     [4]byte  // the IPv4 source
	From6    [16]byte // the IPv6 source, when IPv6 is set
	IPv6     bool
	FromPort uint16
}

// Source returns the datagram's source address and port.
func (d Datagram) Source() netip.AddrPort {
	if d.IPv6 {
		return netip.AddrPortFrom(netip.AddrFrom16(d.From6), d.FromPort)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(d.From), d.FromPort)
}

// Payload returns the datagram's data, a view into its buffer.
func (d Datagram) Payload() []byte { return bufData(d.Buf) }

// Release returns the buffer to its pool.
func (d Datagram) Release() { bufFree(d.Buf) }

// UDPError is an ICMP error (or a failed ARP resolution) for a datagram a
// socket sent.
type UDPError struct {
	Err        error
	Remote     [4]byte  // the IPv4 destination
	Remote6    [16]byte // the IPv6 destination, when IPv6 is set
	IPv6       bool
	RemotePort uint16
}

// UDPHandler runs on the owning core for each datagram, with the payload as a
// view valid only during the call (run to completion: it must not block).
type UDPHandler func(ep *UDPEndpoint, payload []byte, from [4]byte, fromPort uint16)

// UDPHandler6 is UDPHandler for datagrams that arrive over IPv6.
type UDPHandler6 func(ep *UDPEndpoint, payload []byte, from [16]byte, fromPort uint16)

// UDPOptions configure a UDP socket.
type UDPOptions struct {
	// Handler, if set, receives datagrams as they arrive instead of the
	// queue.
	Handler UDPHandler
	// Handler6 is Handler for IPv6 datagrams. A socket with a Handler
	// and no Handler6 takes no IPv6 datagrams (they are dropped as
	// no_socket); one with neither queues both families.
	Handler6 UDPHandler6
	// QueueLength bounds the receive queue (default Config.SocketQueue).
	QueueLength int
}

// UDPEndpoint is a UDP socket bound to a port of one stack.
type UDPEndpoint struct {
	s        *Stack
	port     uint16
	handler  UDPHandler
	handler6 UDPHandler6
	closed   bool

	queue      []Datagram // ring
	head, size int
	errs       [8]UDPError // ring; the oldest is overwritten when full
	errHead    int
	errSize    int

	// Received and Dropped count datagrams delivered and dropped because
	// the queue was full.
	Received, Dropped uint64
}

type udpTable struct {
	s             *Stack
	ports         map[uint16]*UDPEndpoint
	nextEphemeral uint16
}

func (t *udpTable) init(s *Stack) {
	t.s = s
	t.ports = make(map[uint16]*UDPEndpoint)
	t.nextEphemeral = ephemeralFirst
}

// BindUDP binds a UDP socket to port on this stack; port 0 picks a free
// ephemeral port.
func (s *Stack) BindUDP(port uint16, opts UDPOptions) (*UDPEndpoint, error) {
	if port == 0 {
		p, err := s.udp.ephemeral()
		if err != nil {
			return nil, err
		}
		port = p
	} else if s.udp.ports[port] != nil {
		return nil, fmt.Errorf("bind udp port %d: %w", port, ErrPortInUse)
	}
	if opts.QueueLength <= 0 {
		opts.QueueLength = s.cfg.SocketQueue
	}
	ep := &UDPEndpoint{s: s, port: port, handler: opts.Handler, handler6: opts.Handler6, queue: make([]Datagram, opts.QueueLength)}
	s.udp.ports[port] = ep
	return ep, nil
}

func (t *udpTable) ephemeral() (uint16, error) {
	for range ephemeralLast - ephemeralFirst + 1 {
		p := t.nextEphemeral
		if t.nextEphemeral == ephemeralLast {
			t.nextEphemeral = ephemeralFirst
		} else {
			t.nextEphemeral++
		}
		if t.ports[p] == nil {
			return p, nil
		}
	}
	return 0, ErrNoEphemeralPort
}

// Port returns the bound port.
func (ep *UDPEndpoint) Port() uint16 { return ep.port }

// Len returns the number of datagrams waiting in the receive queue.
func (ep *UDPEndpoint) Len() int { return ep.size }

// Recv takes the oldest queued datagram; ok is false when none waits.
func (ep *UDPEndpoint) Recv() (d Datagram, ok bool) {
	if ep.size == 0 {
		return d, false
	}
	d = ep.queue[ep.head]
	ep.queue[ep.head] = Datagram{}
	ep.head = (ep.head + 1) % len(ep.queue)
	ep.size--
	return d, true
}

// Err takes the oldest pending error; ok is false when none waits.
func (ep *UDPEndpoint) Err() (e UDPError, ok bool) {
	if ep.errSize == 0 {
		return e, false
	}
	e = ep.errs[ep.errHead]
	ep.errHead = (ep.errHead + 1) % len(ep.errs)
	ep.errSize--
	return e, true
}

func (ep *UDPEndpoint) pushError(e UDPError) {
	if ep.errSize == len(ep.errs) {
		ep.errHead = (ep.errHead + 1) % len(ep.errs)
		ep.errSize--
	}
	ep.errs[(ep.errHead+ep.errSize)%len(ep.errs)] = e
	ep.errSize++
}

// Close unbinds the socket and frees what it still holds.
func (ep *UDPEndpoint) Close() {
	if ep.closed {
		return
	}
	ep.closed = true
	for {
		d, ok := ep.Recv()
		if !ok {
			break
		}
		d.Release()
	}
	delete(ep.s.udp.ports, ep.port)
}

// SendTo sends payload to dst:port. The payload is copied; large payloads
// are fragmented.
func (ep *UDPEndpoint) SendTo(payload []byte, dst [4]byte, port uint16) error {
	if ep.closed {
		return fmt.Errorf("udp send from closed port %d", ep.port)
	}
	s := ep.s
	if !s.ip4 {
		return errNoIPv4
	}
	if len(payload) > maxUDPPayload {
		return ErrMessageTooLong
	}
	s.now = s.clock.Now()
	total := header.UDPSize + len(payload)
	pseudo := checksum.PseudoHeaderIPv4(s.addr, dst, header.ProtocolUDP, uint16(total))
	var hdr [header.UDPSize]byte
	header.UDP(hdr[:]).Encode(&header.UDPFields{SourcePort: ep.port, DestinationPort: port, Length: uint16(total)})
	s.stats.UDPDatagramsOut++
	if mtu := s.pmtu.lookup(dst, s.cfg.MTU, s.now); header.IPv4MinimumSize+total > mtu {
		// The checksum covers the whole datagram, computed before it
		// is cut into fragments.
		c := checksum.Checksum(payload, checksum.Sum(hdr[:], pseudo))
		if c == 0 {
			c = 0xffff
		}
		header.UDP(hdr[:]).SetChecksum(c)
		nextHop, ok := s.routes.nextHop(dst)
		if !ok {
			s.stats.Drops[DropNoRoute]++
			return ErrNoRoute
		}
		s.ipID++
		return s.fragment(hdr[:], payload, header.ProtocolUDP, dst, nextHop, mtu)
	}
	b := s.getBufSize(total) // beyond a buffer of the pool only with Config.LargeFrames
	if b == nil {
		return ErrNoBuffers
	}
	u := header.UDP(bufAppend(b, total))
	copy(u, hdr[:])
	copy(u[header.UDPSize:], payload)
	u.SetChecksum(u.ComputeChecksum(pseudo))
	return s.sendIPv4(b, header.ProtocolUDP, dst)
}

func (s *Stack) inputUDP(b *nicq.Buf, ip header.IPv4) {
	u, r := header.ParseUDP(ip.Payload())
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	u = u[:u.Length()]
	if u.Checksum() != 0 && b.Flags&nicq.FlagL4ChecksumVerified == 0 && !s.l4ChecksumOK(b, u, u.Checksum(), checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), header.ProtocolUDP, u.Length())) {
		s.dropBadL4Checksum(b, ip, header.ProtocolUDP, u.DestinationPort())
		return
	}
	b.Flags |= nicq.FlagL4ChecksumVerified // a core it is forwarded to need not check again
	s.stats.UDPDatagramsIn++
	ep := s.udp.ports[u.DestinationPort()]
	if ep == nil {
		if s.forwardToOwner(b, ip, u.SourcePort(), u.DestinationPort()) {
			return
		}
		s.sendICMPError(ip, header.ICMPv4DestinationUnreachable, header.ICMPv4PortUnreachable, 0)
		s.drop(b, DropNoSocket)
		return
	}
	from, fromPort := ip.Source(), u.SourcePort()
	hl := ip.HeaderLength()
	bufPull(b, hl+header.UDPSize)
	bufTruncate(b, int(u.Length())-header.UDPSize)
	if ep.handler != nil {
		ep.Received++
		ep.handler(ep, bufData(b), from, fromPort)
		bufFree(b)
		return
	}
	ep.enqueue(Datagram{Buf: b, From: from, FromPort: fromPort})
}

// enqueue queues d, whose buffer starts at the payload, for Recv, or drops
// and counts it when the queue is full.
func (ep *UDPEndpoint) enqueue(d Datagram) {
	if ep.size == len(ep.queue) {
		ep.Dropped++
		ep.s.drop(d.Buf, DropSocketQueueFull)
		return
	}
	ep.queue[(ep.head+ep.size)%len(ep.queue)] = d
	ep.size++
	ep.Received++
}

// deliverError gives e, an ICMP or ICMPv6 error, to the socket bound to
// localPort.
func (t *udpTable) deliverError(localPort uint16, e UDPError) bool {
	ep := t.ports[localPort]
	if ep == nil {
		return false
	}
	ep.pushError(e)
	return true
}

// deliverLocalError tells the sender of datagram ip (one of ours, IPv4
// header first) that it could not be sent.
func (t *udpTable) deliverLocalError(ip []byte, err error) {
	h := header.IPv4(ip)
	if len(ip) < header.IPv4MinimumSize || h.Protocol() != header.ProtocolUDP || h.FragmentOffset() != 0 {
		return
	}
	sport, dport, ok := transportPorts(h)
	if ok {
		t.deliverError(sport, UDPError{Err: err, Remote: h.Destination(), RemotePort: dport})
	}
}

// SendTo6 sends payload to the IPv6 address dst, port port, from our
// address that talks to dst. A datagram larger than the path MTU is sent
// in fragments (RFC 8200 4.5).
func (ep *UDPEndpoint) SendTo6(payload []byte, dst [16]byte, port uint16) error {
	if ep.closed {
		return fmt.Errorf("udp send from closed port %d", ep.port)
	}
	s := ep.s
	s.now = s.clock.Now()
	src, err := s.ip6.sourceTo(dst)
	if err != nil {
		return err
	}
	total := header.UDPSize + len(payload)
	if total > 0xffff {
		return ErrMessageTooLong
	}
	pseudo := checksum.PseudoHeaderIPv6(src, dst, header.ProtocolUDP, uint32(total))
	if mtu := s.pathMTU6(dst); header.IPv6FixedHeaderSize+total > mtu {
		// Source fragmentation (RFC 8200 4.5): the checksum covers the
		// whole datagram, computed before it is cut.
		var hdr [header.UDPSize]byte
		header.UDP(hdr[:]).Encode(&header.UDPFields{SourcePort: ep.port, DestinationPort: port, Length: uint16(total)})
		c := checksum.Checksum(payload, checksum.Sum(hdr[:], pseudo))
		if c == 0 {
			c = 0xffff
		}
		header.UDP(hdr[:]).SetChecksum(c)
		s.stats.UDPDatagramsOut++
		return s.fragment6(hdr[:], payload, header.ProtocolUDP, src, dst, mtu)
	}
	b := s.getBufSize(total)
	if b == nil {
		return ErrNoBuffers
	}
	if total > bufTailroom(b) {
		bufFree(b)
		return ErrMessageTooLong
	}
	u := header.UDP(bufAppend(b, total))
	header.UDP(u).Encode(&header.UDPFields{SourcePort: ep.port, DestinationPort: port, Length: uint16(total)})
	copy(u[header.UDPSize:], payload)
	u.SetChecksum(u.ComputeChecksum(pseudo))
	if u.Checksum() == 0 {
		u.SetChecksum(0xffff) // RFC 8200 8.1: zero means none, which IPv6 forbids
	}
	s.stats.UDPDatagramsOut++
	return s.sendIPv6(b, header.ProtocolUDP, src, dst, 0)
}

// SendToAddr sends payload to dst over IPv4 or IPv6 by its family (an
// IPv4-mapped address counts as IPv4).
func (ep *UDPEndpoint) SendToAddr(payload []byte, dst netip.AddrPort) error {
	a := dst.Addr().Unmap()
	if a.Is4() {
		return ep.SendTo(payload, a.As4(), dst.Port())
	}
	return ep.SendTo6(payload, a.As16(), dst.Port())
}

// inputUDP6 is inputUDP for IPv6: the datagram is ip[off:]. Its checksum
// is mandatory (RFC 8200 8.1).
func (s *Stack) inputUDP6(b *nicq.Buf, ip header.IPv6, off int) {
	u, r := header.ParseUDP(ip[off:])
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	u = u[:u.Length()]
	src, dst, ok := s.flowAddrs6(b, ip)
	if !ok {
		return
	}
	if b.Flags&nicq.FlagL4ChecksumVerified == 0 && (u.Checksum() == 0 || !s.l4ChecksumOK(b, u, u.Checksum(), checksum.PseudoHeaderIPv6(src, dst, header.ProtocolUDP, uint32(u.Length())))) {
		s.dropBadL4Checksum6(b, src, header.ProtocolUDP, u.DestinationPort(), u.Checksum())
		return
	}
	b.Flags |= nicq.FlagL4ChecksumVerified
	s.stats.UDPDatagramsIn++
	ep := s.udp.ports[u.DestinationPort()]
	if ep == nil || (ep.handler != nil && ep.handler6 == nil) {
		if ep == nil && s.forwardToOwner6(b, header.ProtocolUDP, src, dst, u.SourcePort(), u.DestinationPort()) {
			return
		}
		s.sendICMPv6Error(ip, header.MAC{}, false, header.ICMPv6DestinationUnreachable, header.ICMPv6PortUnreachable, 0)
		s.drop(b, DropNoSocket)
		return
	}
	fromPort := u.SourcePort()
	bufPull(b, off+header.UDPSize)
	bufTruncate(b, int(u.Length())-header.UDPSize)
	if ep.handler6 != nil {
		ep.Received++
		ep.handler6(ep, bufData(b), src, fromPort)
		bufFree(b)
		return
	}
	ep.enqueue(Datagram{Buf: b, From6: src, IPv6: true, FromPort: fromPort})
}

// deliverLocalError6 is deliverLocalError for an IPv6 packet of ours (a
// UDP datagram right after the fixed header).
func (t *udpTable) deliverLocalError6(ip []byte, err error) {
	if len(ip) < header.IPv6FixedHeaderSize+header.UDPSize || header.IPv6(ip).NextHeader() != header.ProtocolUDP {
		return
	}
	u := header.UDP(ip[header.IPv6FixedHeaderSize:])
	t.deliverError(u.SourcePort(), UDPError{Err: err, Remote6: header.IPv6(ip).Destination(), IPv6: true, RemotePort: u.DestinationPort()})
}
