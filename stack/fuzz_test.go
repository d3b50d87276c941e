package stack

import (
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// seedFrames records the frames of a ping, a UDP echo, a fragmented echo
// and an ICMP error between two stacks, as seeds for the fuzzer.
func seedFrames(t *testing.T) [][]byte {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	var frames [][]byte
	n.filter = func(_ int, f []byte) bool {
		frames = append(frames, append([]byte(nil), f...))
		return true
	}
	b.BindUDP(7, UDPOptions{Handler: echoHandler})
	ep, _ := a.BindUDP(0, UDPOptions{Handler: func(*UDPEndpoint, []byte, [4]byte, uint16) {}})
	a.Start()
	a.Ping(ip4("10.0.0.2"), 1, 1, 32)
	ep.SendTo([]byte("seed"), ip4("10.0.0.2"), 7)
	ep.SendTo(make([]byte, 3000), ip4("10.0.0.2"), 7)
	ep.SendTo([]byte("closed"), ip4("10.0.0.2"), 9)
	n.run()
	return frames
}

// fuzzTargetSeeds are frames to the stack FuzzStackInput builds (MAC
// 02:00:00:00:00:01, 10.0.0.2/24) from 10.0.0.9: ICMP of each kind it
// answers, takes or drops (to it and to broadcast), UDP to the bound and
// to a closed port, a TCP SYN, a pair of fragments, and ARP.
func fuzzTargetSeeds() [][]byte {
	us, peer := header.MAC{2, 0, 0, 0, 0, 1}, header.MAC{2, 0, 0, 0, 0, 9}
	frame := func(dst header.MAC, typ uint16, payload []byte) []byte {
		f := make([]byte, 14+len(payload))
		header.Ethernet(f).Encode(&header.EthernetFields{Destination: dst, Source: peer, Type: typ})
		copy(f[14:], payload)
		return f
	}
	ipv4 := func(dst [4]byte, proto uint8, flags uint8, fragOff uint16, l4 []byte) []byte {
		p := make([]byte, 20+len(l4))
		ip := header.IPv4(p)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(p)), ID: 7, Flags: flags, FragmentOffset: fragOff, TTL: 64, Protocol: proto, Source: ip4("10.0.0.9"), Destination: dst})
		ip.SetChecksum(ip.ComputeChecksum())
		copy(p[20:], l4)
		return p
	}
	icmp := func(t header.ICMPv4Type) []byte {
		m := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+8))
		m.Encode(&header.ICMPv4Fields{Type: t, RestOfHeader: header.EchoRestOfHeader(1, 1)})
		m.SetChecksum(m.ComputeChecksum())
		return m
	}
	udp := func(port uint16, n int) []byte {
		u := make([]byte, 8+n)
		header.UDP(u).Encode(&header.UDPFields{SourcePort: 1000, DestinationPort: port, Length: uint16(len(u))})
		return u
	}
	tcp := make([]byte, header.TCPMinimumSize)
	header.TCP(tcp).Encode(&header.TCPFields{SourcePort: 1000, DestinationPort: 80, SequenceNumber: 1, DataOffset: 20, Flags: header.TCPFlagSYN, Window: 1000})
	header.TCP(tcp).SetChecksum(header.TCP(tcp).ComputeChecksum(checksum.PseudoHeaderIPv4(ip4("10.0.0.9"), ip4("10.0.0.2"), header.ProtocolTCP, uint16(len(tcp)))))
	arp := func(op header.ARPOp, dst header.MAC) []byte {
		a := make([]byte, header.ARPSize)
		header.ARP(a).Encode(&header.ARPFields{Op: op, SenderHardwareAddress: peer, SenderProtocolAddress: ip4("10.0.0.9"), TargetProtocolAddress: ip4("10.0.0.2")})
		return frame(dst, header.EtherTypeARP, a)
	}
	ours, bcast := ip4("10.0.0.2"), ip4("10.0.0.255")
	whole := udp(7, 16)
	return [][]byte{
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolICMPv4, 0, 0, icmp(header.ICMPv4Echo))),
		frame(header.BroadcastMAC, header.EtherTypeIPv4, ipv4(bcast, header.ProtocolICMPv4, 0, 0, icmp(header.ICMPv4Echo))),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolICMPv4, 0, 0, icmp(header.ICMPv4EchoReply))),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolICMPv4, 0, 0, icmp(header.ICMPv4Timestamp))),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolUDP, 0, 0, udp(7, 4))),
		frame(header.BroadcastMAC, header.EtherTypeIPv4, ipv4(bcast, header.ProtocolUDP, 0, 0, udp(7, 4))),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolUDP, 0, 0, udp(9, 4))),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolTCP, 0, 0, tcp)),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolUDP, header.IPv4FlagMoreFragments, 0, whole[:16])),
		frame(us, header.EtherTypeIPv4, ipv4(ours, header.ProtocolUDP, 0, 16, whole[16:])),
		arp(header.ARPRequest, header.BroadcastMAC),
		arp(header.ARPReply, us),
	}
}

// ipv4Counts is what a stack has counted of the frames it was given: its
// drops, for one reason each, and the frames it handled in one of the
// counted ways (echoReplies: the echo replies Config.OnEchoReply took;
// ep: the fuzzed UDP socket, whose Received counts what it took). Drops
// that come on top of dealing with a frame (an error not sent for the
// rate, no buffer or no room in a queue for an answer or a neighbour) are
// left out, as ipv6Accounted does.
type ipv4Counts struct {
	counted     uint64
	reasmDrops  uint64 // drops by the reassembler (a fragment, or those it held)
	fragments   uint64 // Stats.FragmentsIn
	reassembled uint64 // Stats.Reassembled
}

func ipv4Accounted(s *Stack, ep *UDPEndpoint, echoReplies int) ipv4Counts {
	st := s.Stats()
	var c ipv4Counts
	for r, v := range st.Drops {
		switch DropReason(r) {
		case DropICMPRateLimited, DropNoBuffer, DropTxQueueFull, DropNeighbourTableFull, DropNeighbourQueueFull:
		case DropReason(header.DropBadFragment), DropFragmentOverlap, DropReassemblyMemory, DropTooManyFragments:
			c.reasmDrops += v
			c.counted += v
		default:
			c.counted += v
		}
	}
	c.counted += st.EchoRepliesSent + st.ICMPErrorsDelivered + st.ARPRepliesSent + ep.Received + uint64(echoReplies)
	c.fragments, c.reassembled = st.FragmentsIn, st.Reassembled
	return c
}

// arpReplyToUs reports whether frame is an ARP reply to s from a host
// that may use its address: the stack takes it into its neighbour table
// (RFC 826) and counts nothing.
func arpReplyToUs(s *Stack, frame []byte) bool {
	eth, r := header.ParseEthernet(frame)
	if r != header.DropNone || eth.Tagged() || eth.PayloadType() != header.EtherTypeARP ||
		eth.Destination() != s.mac && !eth.Destination().IsBroadcast() {
		return false
	}
	a, r := header.ParseARP(eth.Payload())
	if r != header.DropNone || a.Op() != header.ARPReply || a.TargetProtocolAddress() != s.addr {
		return false
	}
	spa := a.SenderProtocolAddress()
	return !a.SenderHardwareAddress().IsMulticast() && spa != s.addr && spa != s.bcast && spa[0] != 0
}

// FuzzStackInput feeds arbitrary frames to a stack: it must never panic;
// each frame must be counted exactly once, as a drop or as handled (a
// fragment is handled when the reassembler keeps it, and the datagram it
// completes is counted once more); and once its timers have run and its
// sockets are closed, every buffer is back in the pool.
func FuzzStackInput(f *testing.F) {
	for _, fr := range seedFrames(&testing.T{}) {
		f.Add(fr)
	}
	for _, fr := range fuzzTargetSeeds() {
		f.Add(fr)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		n := newTestNet(t)
		// With Warn set, so the report of a bad checksum reads the
		// frame too; with a gateway, so every answer has a route and
		// no_route is never on top of another count.
		echoReplies := 0
		s := n.add("10.0.0.2/24", func(c *Config) {
			c.Warn = func(string) {}
			c.Gateway = netipAddr("10.0.0.1")
			c.OnEchoReply = func([4]byte, uint16, uint16, []byte) { echoReplies++ }
		})
		ep, _ := s.BindUDP(7, UDPOptions{})
		s.LearnNeighbour(ip4("10.0.0.1"), [6]byte{2, 0, 0, 0, 0, 1})
		pool := n.pools[0]
		if len(frame) > pool.FrameSize()-pool.Headroom() {
			frame = frame[:pool.FrameSize()-pool.Headroom()]
		}
		arpTaken := arpReplyToUs(s, frame)
		for i := 0; i < 3; i++ { // repeated, so fragments meet their twins
			before := ipv4Accounted(s, ep, echoReplies)
			b := pool.Get()
			copy(b.Append(len(frame)), frame)
			s.Input([]*nicq.Buf{b})
			after := ipv4Accounted(s, ep, echoReplies)
			counted := after.counted - before.counted
			if arpTaken {
				counted++
			}
			switch frags := after.fragments - before.fragments; {
			case frags > 1:
				t.Fatalf("one frame counted as %d fragments", frags)
			case frags == 1:
				// Kept, dropped by the reassembler (with what it
				// held), or completing a datagram counted once.
				whole := after.reassembled - before.reassembled
				if whole > 1 || counted-(after.reasmDrops-before.reasmDrops) != whole {
					t.Fatalf("fragment: %d datagrams reassembled, %d counts besides the reassembler's %d; stats %+v drops %v",
						whole, counted-(after.reasmDrops-before.reasmDrops), after.reasmDrops-before.reasmDrops, *s.Stats(), nonZero(s))
				}
			case counted != 1:
				t.Fatalf("frame counted %d times; stats %+v drops %v", counted, *s.Stats(), nonZero(s))
			}
		}
		// Timer to timer for two minutes: reassembly times out, and
		// answers waiting for ARP go once its attempts fail.
		runTimers(n, s, 2*time.Minute, n.run)
		ep.Close()
		n.run()
		if pool.InUse() != 0 {
			t.Fatalf("%d buffers leaked; drops %v", pool.InUse(), nonZero(s))
		}
	})
}
