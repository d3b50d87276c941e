package stack

import (
	"strings"
	"testing"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// partialSYN injects, from 10.0.0.9, a SYN to port 80 whose checksum field
// is what Linux leaves in a CHECKSUM_PARTIAL frame: the pseudo-header sum
// only (corrupt, if set, adds one to it), with the buffer flags given.
func partialSYN(n *testNet, s *Stack, flags nicq.Flags, corrupt bool) {
	injectFlagged(n, s, 20+20, flags, func(p []byte) {
		src := ip4("10.0.0.9")
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 40, TTL: 64, Protocol: header.ProtocolTCP, Source: src, Destination: s.addr})
		seg := header.TCP(p[20:])
		seg.Encode(&header.TCPFields{SourcePort: 4000, DestinationPort: 80, SequenceNumber: 1000, DataOffset: 20, Flags: header.TCPFlagSYN, Window: 1000})
		field := checksum.PseudoHeaderIPv4(src, s.addr, header.ProtocolTCP, 20)
		if corrupt {
			field++
		}
		seg.SetChecksum(field)
	})
}

// TestPartialChecksumsAcceptedOnlyWhenTheDriverSaysSo: a TCP segment or UDP
// datagram whose checksum field holds only the pseudo-header sum (a local
// sender's CHECKSUM_PARTIAL) is accepted when its buffer carries
// FlagL4ChecksumPartial, or FlagL4ChecksumMaybePartial with the field
// exactly the pseudo-header sum; without a flag it is dropped, counted as
// bad_checksum, and reported through Config.Warn with the cause, at most
// badChecksumWarnings times.
func TestPartialChecksumsAcceptedOnlyWhenTheDriverSaysSo(t *testing.T) {
	n := newTestNet(t)
	var warned []string
	s := n.add("10.0.0.2/24", func(c *Config) { c.Warn = func(m string) { warned = append(warned, m) } })
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	if _, err := s.ListenTCP(80, TCPListenOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := func() uint64 { return s.Stats().Drops[DropReason(header.DropBadChecksum)] }
	synACKs := func() int {
		k := 0
		for _, r := range replies(s) {
			if r.Flags == header.TCPFlagSYN|header.TCPFlagACK {
				k++
			}
		}
		return k
	}
	cases := []struct {
		name     string
		flags    nicq.Flags
		corrupt  bool
		accepted bool
	}{
		{"no flag", 0, false, false},
		{"partial", nicq.FlagL4ChecksumPartial, false, true},
		{"maybe partial, field is the pseudo-header sum", nicq.FlagL4ChecksumMaybePartial, false, true},
		{"maybe partial, field is not", nicq.FlagL4ChecksumMaybePartial, true, false},
		{"no flag, field is not", 0, true, false},
	}
	for _, tc := range cases {
		badBefore, partialBefore := bad(), s.Stats().PartialChecksums
		partialSYN(n, s, tc.flags, tc.corrupt)
		got := synACKs() == 1
		if got != tc.accepted {
			t.Errorf("%s: accepted %v, want %v", tc.name, got, tc.accepted)
		}
		wantBad, wantPartial := uint64(1), uint64(0)
		if tc.accepted {
			wantBad, wantPartial = 0, 1
		}
		if d := bad() - badBefore; d != wantBad {
			t.Errorf("%s: %d bad_checksum drops, want %d", tc.name, d, wantBad)
		}
		if d := s.Stats().PartialChecksums - partialBefore; d != wantPartial {
			t.Errorf("%s: %d counted partial, want %d", tc.name, d, wantPartial)
		}
	}
	if len(warned) != 3 {
		t.Fatalf("%d warnings, want 3 (one per drop): %q", len(warned), warned)
	}
	if w := warned[0]; !strings.Contains(w, "from 10.0.0.9 to port 80") || !strings.Contains(w, "only the pseudo-header sum") || !strings.Contains(w, "ethtool -K") {
		t.Errorf("the warning for a partial checksum does not name the source, the cause and the fix: %q", w)
	}
	if w := warned[2]; !strings.Contains(w, "corrupted") || !strings.Contains(w, "only counted") {
		t.Errorf("the warning for a corrupted checksum does not say so, or that it is the last: %q", w)
	}
	// Beyond the first few, drops are counted and not reported.
	partialSYN(n, s, 0, false)
	if len(warned) != 3 || bad() != 4 {
		t.Errorf("after the third: %d warnings, %d drops; want 3 and 4", len(warned), bad())
	}

	// UDP alike.
	sock, _ := s.BindUDP(7, UDPOptions{})
	for _, flags := range []nicq.Flags{0, nicq.FlagL4ChecksumPartial, nicq.FlagL4ChecksumMaybePartial} {
		injectFlagged(n, s, 20+8+4, flags, func(p []byte) {
			header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 32, TTL: 64, Protocol: header.ProtocolUDP, Source: ip4("10.0.0.9"), Destination: s.addr})
			u := header.UDP(p[20:])
			u.Encode(&header.UDPFields{SourcePort: 1000, DestinationPort: 7, Length: 12})
			copy(u[8:], "ping")
			u.SetChecksum(checksum.PseudoHeaderIPv4(ip4("10.0.0.9"), s.addr, header.ProtocolUDP, 12))
		})
	}
	if sock.Len() != 2 || bad() != 5 {
		t.Errorf("UDP: %d datagrams queued, %d bad_checksum drops in all; want 2 and 5", sock.Len(), bad())
	}
	// A datagram shorter than a TCP header, with a bad checksum, on a
	// stack that still reports: the report reads UDP's field.
	s2 := n.add("10.0.0.3/24", func(c *Config) { c.Warn = func(string) {} })
	injectFlagged(n, s2, 20+8, 0, func(p []byte) {
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 28, TTL: 64, Protocol: header.ProtocolUDP, Source: ip4("10.0.0.9"), Destination: s2.addr})
		header.UDP(p[20:]).Encode(&header.UDPFields{SourcePort: 1000, DestinationPort: 7, Length: 8, Checksum: 0x1234})
	})
	if d := s2.Stats().Drops[DropReason(header.DropBadChecksum)]; d != 1 {
		t.Errorf("an 8-byte datagram with a bad checksum: %d drops, want 1", d)
	}
	sock.Close()
	replies(s)
	n.checkNoLeaks()
}

// TestFullChecksumIsNotCountedPartial: a frame from a driver that cannot
// say which frames are partial, carrying a correct full checksum (not
// the pseudo-header sum), is accepted and not counted as partial.
func TestFullChecksumIsNotCountedPartial(t *testing.T) {
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", nil)
	s.LearnNeighbour(ip4("10.0.0.9"), header.MAC{2, 0, 0, 0, 0, 9})
	sock, _ := s.BindUDP(7, UDPOptions{})
	injectFlagged(n, s, 20+8+4, nicq.FlagL4ChecksumMaybePartial, func(p []byte) {
		header.IPv4(p).Encode(&header.IPv4Fields{TotalLength: 32, TTL: 64, Protocol: header.ProtocolUDP, Source: ip4("10.0.0.9"), Destination: s.addr})
		u := header.UDP(p[20:])
		u.Encode(&header.UDPFields{SourcePort: 1000, DestinationPort: 7, Length: 12})
		copy(u[8:], "ping")
		u.SetChecksum(u.ComputeChecksum(checksum.PseudoHeaderIPv4(ip4("10.0.0.9"), s.addr, header.ProtocolUDP, 12)))
	})
	if sock.Len() != 1 || s.Stats().PartialChecksums != 0 {
		t.Errorf("queued %d, counted partial %d; want 1 and 0", sock.Len(), s.Stats().PartialChecksums)
	}
	sock.Close()
	n.checkNoLeaks()
}

// injectFlagged is inject with the buffer flags a driver would set.
func injectFlagged(n *testNet, s *Stack, size int, flags nicq.Flags, fill func(ip []byte)) {
	b := n.pools[0].Get()
	f := b.Append(14 + size)
	header.Ethernet(f).Encode(&header.EthernetFields{Destination: s.mac, Source: header.MAC{2, 0, 0, 0, 0, 9}, Type: header.EtherTypeIPv4})
	fill(f[14:])
	b.Flags = flags
	s.Input([]*nicq.Buf{b})
}
