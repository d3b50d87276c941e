package stack

import (
	"bytes"
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// TestLargePingIsAnsweredInFragments: ping -s 5000 and -s 20000 between
// two stacks at MTU 1500: the request leaves in fragments, the answering
// stack reassembles it and answers in fragments (before, its reply was one
// datagram larger than the MTU, which no driver sends), and the pinging
// stack gets every payload byte back.
func TestLargePingIsAnsweredInFragments(t *testing.T) {
	for _, size := range []int{5000, 20000} {
		n := newTestNet(t)
		var got []byte
		replies := 0
		a := n.add("10.0.0.1/24", func(c *Config) {
			c.OnEchoReply = func(_ [4]byte, _, _ uint16, payload []byte) {
				replies++
				got = append([]byte(nil), payload...)
			}
		})
		b := n.add("10.0.0.2/24", nil)
		if err := a.Ping(ip4("10.0.0.2"), 9, 1, size); err != nil {
			t.Fatalf("ping -s %d: %v", size, err)
		}
		n.run()
		if replies != 1 || len(got) != size {
			t.Fatalf("ping -s %d: %d replies, %d bytes; drops a %v b %v", size, replies, len(got), nonZero(a), nonZero(b))
		}
		for i, c := range got {
			if c != byte(i) {
				t.Fatalf("ping -s %d: payload byte %d is %d, want %d", size, i, c, byte(i))
			}
		}
		want := uint64((size + 8 + 1479) / 1480) // 1480 bytes of ICMP per fragment
		if b.Stats().FragmentsOut != want || b.Stats().EchoRepliesSent != 1 {
			t.Errorf("ping -s %d: the reply went in %d fragments (want %d), %d echo replies", size, b.Stats().FragmentsOut, want, b.Stats().EchoRepliesSent)
		}
		n.checkNoLeaks()
	}
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	if err := a.Ping(ip4("10.0.0.2"), 9, 1, 65508); err != ErrMessageTooLong {
		t.Errorf("ping -s 65508 (one byte over an IPv4 datagram): %v, want ErrMessageTooLong", err)
	}
}

// TestLargePing6IsAnsweredInFragments: an echo request of 3000 bytes that
// arrives in fragments is answered in fragments of the link's MTU, which
// together carry the whole reply.
func TestLargePing6IsAnsweredInFragments(t *testing.T) {
	n, s := newIPv6Stack(t, nil)
	// Fragments go through neighbour resolution (the whole reply went
	// to the request's source MAC): the peer is known, as it is once it
	// has answered one solicitation.
	s.LearnNeighbour6(peer6, peerMAC)
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i * 3)
	}
	msg := echo6(peer6, ours6, 0x42, 1, data)
	// Two fragments: 1448 bytes (a multiple of 8), then the rest.
	for _, part := range []struct {
		off, end int
		more     bool
	}{{0, 1448, true}, {1448, len(msg), false}} {
		frag := make([]byte, header.IPv6FragmentSize)
		header.IPv6Fragment(frag).Encode(&header.IPv6FragmentFields{NextHeader: header.ProtocolICMPv6, FragmentOffset: uint16(part.off), MoreFragments: part.more, Identification: 7})
		inject6(n, s, peerMAC, s.mac, packet6(peer6, ours6, 64, header.ProtocolIPv6Fragment, frag, msg[part.off:part.end]))
	}
	var reply []byte
	frames := sent(s)
	for _, f := range frames {
		ip, r := header.ParseIPv6(header.Ethernet(f).Payload())
		if r != header.DropNone || ip.NextHeader() != header.ProtocolIPv6Fragment {
			t.Fatalf("a reply frame that is not an IPv6 fragment (%v, next header %d)", r, ip.NextHeader())
		}
		if len(ip) > 1500 {
			t.Fatalf("a reply fragment of %d bytes, over the MTU", len(ip))
		}
		fh := header.IPv6Fragment(ip.Payload())
		if int(fh.FragmentOffset()) != len(reply) {
			t.Fatalf("fragment at offset %d after %d bytes", fh.FragmentOffset(), len(reply))
		}
		reply = append(reply, ip.Payload()[header.IPv6FragmentSize:]...)
	}
	if len(frames) != 3 {
		t.Errorf("the reply went in %d fragments, want 3", len(frames))
	}
	m := header.ICMPv6(reply)
	if len(reply) != len(msg) || m.Type() != header.ICMPv6EchoReply || !bytes.Equal(m.Payload(), data) ||
		!m.IsChecksumValid(header.IPv6(packet6(ours6, peer6, 64, header.ProtocolICMPv6, nil, reply)).PseudoHeaderSum(header.ProtocolICMPv6, len(reply))) {
		t.Fatalf("the reassembled reply: %d bytes (want %d), type %d, payload intact %v", len(reply), len(msg), m.Type(), bytes.Equal(m.Payload(), data))
	}
	n.checkNoLeaks()
}
