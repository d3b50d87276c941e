package header

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/mkstack/mkstack/stack/checksum"
)

// rfc1071Checksum is the checksum computed the slow way, word by word, as
// RFC 1071 describes it: independent of the checksum package.
func rfc1071Checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// ipv6PseudoHeader spells out the pseudo-header of RFC 8200 8.1.
func ipv6PseudoHeader(src, dst [16]byte, nextHeader uint8, length int) []byte {
	b := make([]byte, 40)
	copy(b, src[:])
	copy(b[16:], dst[:])
	binary.BigEndian.PutUint32(b[32:], uint32(length))
	b[39] = nextHeader
	return b
}

func TestICMPv6EchoChecksumMatchesOneComputedByHand(t *testing.T) {
	// Echo request 2001:db8::1 -> 2001:db8::2, identifier 0x1234,
	// sequence 1, data "abcdefgh": checksum 0x8075 (computed outside Go).
	b := make([]byte, 64)
	n := EncodeICMPv6Echo(b, ICMPv6EchoRequest, 0x1234, 1, []byte("abcdefgh"))
	m := ICMPv6(b[:n])
	ip := IPv6(ipv6Packet(ProtocolICMPv6, m))
	m.SetChecksum(m.ComputeChecksum(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))))
	want := []byte{128, 0, 0x80, 0x75, 0x12, 0x34, 0, 1, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
	if !bytes.Equal(m, want) {
		t.Fatalf("echo %x, want %x", []byte(m), want)
	}
	if c := rfc1071Checksum(append(ipv6PseudoHeader(v6A, v6B, ProtocolICMPv6, len(m)), m...)); c != 0 {
		t.Fatalf("RFC 1071 sum over pseudo-header and message: %#04x, want 0", c)
	}
	p, r := ParseICMPv6(m)
	if r != DropNone || !p.IsChecksumValid(ip.PseudoHeaderSum(ProtocolICMPv6, len(p))) {
		t.Fatalf("parse %v, checksum valid %v", r, p.IsChecksumValid(ip.PseudoHeaderSum(ProtocolICMPv6, len(p))))
	}
	if p.Type() != ICMPv6EchoRequest || p.Code() != 0 || p.Identifier() != 0x1234 || p.Sequence() != 1 ||
		string(p.Payload()) != "abcdefgh" || p.Type().IsError() {
		t.Fatalf("fields %+v payload %q", p.Fields(), p.Payload())
	}
	// The checksum covers the addresses: another destination fails.
	if p.IsChecksumValid(checksum.PseudoHeaderIPv6(v6A, v6A, ProtocolICMPv6, uint32(len(p)))) {
		t.Fatal("checksum verified against the wrong destination")
	}
	if _, r := ParseICMPv6(m[:7]); r != DropTruncated {
		t.Fatalf("7 bytes: %v", r)
	}
}

func TestCapturedNeighbourSolicitationChecksumVerifiesOverThePseudoHeader(t *testing.T) {
	ip, _ := ParseIPv6(mustPayload(capturedIPv6NS))
	m, r := ParseICMPv6(ip.Payload())
	if r != DropNone || m.Checksum() != 0x6c0d {
		t.Fatalf("parse %v, checksum %#04x", r, m.Checksum())
	}
	if !m.IsChecksumValid(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))) {
		t.Fatal("Linux's checksum does not verify")
	}
	if c := m.ComputeChecksum(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))); c != 0x6c0d {
		t.Fatalf("computed %#04x, Linux sent 0x6c0d", c)
	}
}

func TestTCPAndUDPChecksumsOverIPv6(t *testing.T) {
	seg := make([]byte, TCPMinimumSize+5)
	TCP(seg).Encode(&TCPFields{SourcePort: 40000, DestinationPort: 80, SequenceNumber: 1, AckNumber: 2,
		DataOffset: TCPMinimumSize, Flags: TCPFlagACK | TCPFlagPSH, Window: 65535})
	copy(seg[TCPMinimumSize:], "hello")
	ip := IPv6(ipv6Packet(ProtocolTCP, seg))
	s := TCP(ip.Payload())
	s.SetChecksum(s.ComputeChecksum(ip.PseudoHeaderSum(ProtocolTCP, len(s))))
	if rfc1071Checksum(append(ipv6PseudoHeader(v6A, v6B, ProtocolTCP, len(s)), s...)) != 0 ||
		!s.IsChecksumValid(ip.PseudoHeaderSum(ProtocolTCP, len(s))) {
		t.Fatalf("TCP checksum %#04x does not verify", s.Checksum())
	}

	dg := make([]byte, UDPSize+4)
	UDP(dg).Encode(&UDPFields{SourcePort: 5353, DestinationPort: 5353, Length: uint16(len(dg))})
	copy(dg[UDPSize:], "ping")
	ip = IPv6(ipv6Packet(ProtocolUDP, dg))
	u := UDP(ip.Payload())
	u.SetChecksum(u.ComputeChecksum(ip.PseudoHeaderSum(ProtocolUDP, len(u))))
	if u.Checksum() == 0 || rfc1071Checksum(append(ipv6PseudoHeader(v6A, v6B, ProtocolUDP, len(u)), u...)) != 0 {
		t.Fatalf("UDP checksum %#04x does not verify", u.Checksum())
	}
	pseudo := ip.PseudoHeaderSum(ProtocolUDP, len(u))
	if !u.IsChecksumValidIPv6(pseudo) {
		t.Fatal("UDP checksum does not verify over IPv6")
	}
	// Zero is "no checksum" over IPv4 only (RFC 8200 8.1), even where the
	// sum would verify: a datagram whose computed checksum is zero is sent
	// with 0xffff.
	u.SetChecksum(0)
	if u.IsChecksumValidIPv6(pseudo) {
		t.Fatal("zero UDP checksum accepted over IPv6")
	}
	for i := 0; i < 0x10000; i++ { // find a payload whose checksum computes to 0xffff
		u[UDPSize], u[UDPSize+1] = byte(i>>8), byte(i)
		u.SetChecksum(u.ComputeChecksum(pseudo))
		if u.Checksum() == 0xffff {
			break
		}
	}
	if u.Checksum() != 0xffff || !u.IsChecksumValidIPv6(pseudo) {
		t.Fatalf("checksum %#04x", u.Checksum())
	}
	u.SetChecksum(0)
	if !u.IsChecksumValid(pseudo) || u.IsChecksumValidIPv6(pseudo) {
		t.Fatal("a zero field that sums right must still fail over IPv6")
	}
}

func TestICMPv6ErrorsQuoteWhatFitsInTheMinimumMTU(t *testing.T) {
	invoking := ipv6Packet(ProtocolUDP, make([]byte, 1452)) // a 1492-byte packet
	for i := range invoking[40:] {
		invoking[40+i] = byte(i)
	}
	b := make([]byte, 2000)
	cases := []struct {
		n    int
		typ  ICMPv6Type
		code ICMPv6Code
		rest uint32
	}{
		{EncodeICMPv6DestinationUnreachable(b, ICMPv6PortUnreachable, invoking), ICMPv6DestinationUnreachable, ICMPv6PortUnreachable, 0},
		{EncodeICMPv6PacketTooBig(b, 1280, invoking), ICMPv6PacketTooBig, 0, 1280},
		{EncodeICMPv6TimeExceeded(b, ICMPv6HopLimitExceeded, invoking), ICMPv6TimeExceeded, ICMPv6HopLimitExceeded, 0},
		{EncodeICMPv6ParameterProblem(b, ICMPv6UnrecognizedNextHeader, 6, invoking), ICMPv6ParameterProblem, ICMPv6UnrecognizedNextHeader, 6},
	}
	for _, c := range cases {
		// Each call rewrote b; rebuild this one to check it.
		n := EncodeICMPv6Error(b, c.typ, c.code, c.rest, invoking)
		if n != c.n || IPv6FixedHeaderSize+n != IPv6MinimumMTU {
			t.Fatalf("%d: message %d bytes (builder %d), packet %d, want %d", c.typ, n, c.n, IPv6FixedHeaderSize+n, IPv6MinimumMTU)
		}
		m := ICMPv6(b[:n])
		if m.Fields() != (ICMPv6Fields{Type: c.typ, Code: c.code, RestOfHeader: c.rest}) || !c.typ.IsError() ||
			!bytes.Equal(m.Payload(), invoking[:ICMPv6ErrorQuoteMax]) {
			t.Fatalf("%d: fields %+v", c.typ, m.Fields())
		}
	}
	if m := ICMPv6(b); m.MTU() != 6 || m.Pointer() != 6 {
		t.Fatalf("pointer %d", m.Pointer())
	}
	// A short packet is quoted whole; a short buffer takes what fits.
	if n := EncodeICMPv6PacketTooBig(b, 1400, invoking[:100]); n != 108 || ICMPv6(b).MTU() != 1400 {
		t.Fatalf("short quote: %d bytes, MTU %d", n, ICMPv6(b).MTU())
	}
	if n := EncodeICMPv6TimeExceeded(b[:50], ICMPv6ReassemblyExceeded, invoking); n != 50 {
		t.Fatalf("short buffer: %d bytes", n)
	}
}

func TestICMPv6ErrorAllowedFollowsRFC4443Section2_4e(t *testing.T) {
	udp := ipv6Packet(ProtocolUDP, make([]byte, 8))
	toMulticast := bytes.Clone(udp)
	copy(toMulticast[24:], IPv6AllNodesMulticast[:])
	fromUnspecified := bytes.Clone(udp)
	clear(fromUnspecified[8:24])
	icmpError := ipv6Packet(ProtocolICMPv6, []byte{byte(ICMPv6DestinationUnreachable), 4, 0, 0, 0, 0, 0, 0})
	redirect := ipv6Packet(ProtocolICMPv6, []byte{byte(ICMPv6Redirect), 0, 0, 0, 0, 0, 0, 0})
	echo := ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolICMPv6), []byte{128, 0, 0, 0, 0, 0, 0, 0})
	errorBehindOptions := ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolICMPv6), []byte{1, 0, 0, 0, 0, 0, 0, 0})
	cases := []struct {
		name     string
		t        ICMPv6Type
		c        ICMPv6Code
		invoking []byte
		linkMC   bool
		want     bool
	}{
		{"port unreachable", ICMPv6DestinationUnreachable, ICMPv6PortUnreachable, udp, false, true},
		{"to a multicast group", ICMPv6DestinationUnreachable, ICMPv6PortUnreachable, toMulticast, false, false},
		{"as link-layer multicast", ICMPv6DestinationUnreachable, ICMPv6PortUnreachable, udp, true, false},
		{"packet too big to multicast", ICMPv6PacketTooBig, 0, toMulticast, false, true},
		{"unrecognized option to multicast", ICMPv6ParameterProblem, ICMPv6UnrecognizedOption, toMulticast, false, true},
		{"unrecognized next header to multicast", ICMPv6ParameterProblem, ICMPv6UnrecognizedNextHeader, toMulticast, false, false},
		{"from the unspecified address", ICMPv6PacketTooBig, 0, fromUnspecified, false, false},
		{"about an ICMPv6 error", ICMPv6TimeExceeded, 0, icmpError, false, false},
		{"about an ICMPv6 error behind options", ICMPv6TimeExceeded, 0, errorBehindOptions, false, false},
		{"about a redirect", ICMPv6TimeExceeded, 0, redirect, false, false},
		{"about an echo request", ICMPv6TimeExceeded, 0, echo, false, true},
		{"about a runt", ICMPv6TimeExceeded, 0, udp[:20], false, false},
	}
	for _, c := range cases {
		if got := ICMPv6ErrorAllowed(c.t, c.c, c.invoking, c.linkMC); got != c.want {
			t.Fatalf("%s: allowed %v, want %v", c.name, got, c.want)
		}
	}
}
