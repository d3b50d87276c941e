package header

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// mutated returns a copy of b with fn applied.
func mutated(b []byte, fn func([]byte)) []byte {
	c := bytes.Clone(b)
	fn(c)
	return c
}

// fixIPv4Checksum recomputes the header checksum so a test reaches the
// check after it.
func fixIPv4Checksum(b []byte) {
	h := IPv4(b)
	h.SetChecksum(h.ComputeChecksum())
}

func TestParseIPv4DropsWithReason(t *testing.T) {
	ip := mustEthernet(t, capturedSYN).Payload() // a 60-byte datagram
	cases := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"valid", ip, DropNone},
		{"empty", nil, DropTruncated},
		{"19 bytes", ip[:19], DropTruncated},
		{"version 6", mutated(ip, func(b []byte) { b[0] = 0x65; fixIPv4Checksum(b) }), DropBadVersion},
		{"version 0", mutated(ip, func(b []byte) { b[0] = 0x05 }), DropBadVersion},
		{"ihl 4", mutated(ip, func(b []byte) { b[0] = 0x44 }), DropBadIHL},
		{"ihl 0", mutated(ip, func(b []byte) { b[0] = 0x40 }), DropBadIHL},
		{"ihl past the buffer", mutated(ip, func(b []byte) { b[0] = 0x4f })[:40], DropBadIHL},
		{"total length below header", mutated(ip, func(b []byte) {
			binary.BigEndian.PutUint16(b[2:], 19)
			fixIPv4Checksum(b)
		}), DropBadTotalLength},
		{"total length past the buffer", mutated(ip, func(b []byte) {
			binary.BigEndian.PutUint16(b[2:], 61)
			fixIPv4Checksum(b)
		}), DropBadTotalLength},
		{"checksum off by one", mutated(ip, func(b []byte) { b[11]++ }), DropBadChecksum},
		{"ttl changed, checksum not", mutated(ip, func(b []byte) { b[8] = 63 }), DropBadChecksum},
		{"fragment ending at 65536", mutated(ip, func(b []byte) {
			IPv4(b).SetFlagsFragmentOffset(0, 65496) // + 40 bytes of data
			fixIPv4Checksum(b)
		}), DropBadFragment},
		{"last fragment ending at 65528", mutated(ip, func(b []byte) {
			IPv4(b).SetFlagsFragmentOffset(0, 65488)
			fixIPv4Checksum(b)
		}), DropNone},
	}
	for _, c := range cases {
		h, got := ParseIPv4(c.b)
		if got != c.want {
			t.Errorf("%s: ParseIPv4 = %v, want %v", c.name, got, c.want)
		}
		if (h == nil) != (got != DropNone) {
			t.Errorf("%s: view %v with reason %v", c.name, h != nil, got)
		}
	}
}

func TestParseIPv4TrimsLinkPaddingAndKeepsOptions(t *testing.T) {
	// A 20-byte datagram with 4 bytes of options (a Router Alert, RFC
	// 2113) padded to Ethernet's 46-byte minimum payload.
	b := make([]byte, 46)
	IPv4(b).Encode(&IPv4Fields{
		TotalLength: 28, ID: 7, TTL: 1, Protocol: 2, Source: addrA,
		Destination: [4]byte{224, 0, 0, 22}, Options: []byte{0x94, 0x04, 0, 0},
	})
	h, r := ParseIPv4(b)
	check(t, "ParseIPv4", r, DropNone)
	check(t, "view length", len(h), 28)
	check(t, "header length", h.HeaderLength(), 24)
	check(t, "options", string(h.Options()), "\x94\x04\x00\x00")
	check(t, "payload length", len(h.Payload()), 4)
	check(t, "PayloadLength", h.PayloadLength(), 4)
}

func TestIPv4FragmentFields(t *testing.T) {
	b := make([]byte, IPv4MinimumSize)
	h := IPv4(b)
	h.Encode(&IPv4Fields{TotalLength: 20, Flags: IPv4FlagMoreFragments, FragmentOffset: 1480, TTL: 64, Protocol: ProtocolUDP})
	check(t, "flags/offset word", binary.BigEndian.Uint16(b[6:]), 0x2000|185)
	check(t, "MF", h.MoreFragments(), true)
	check(t, "DF", h.DontFragment(), false)
	check(t, "offset", h.FragmentOffset(), 1480)
	check(t, "is fragment", h.IsFragment(), true)
	h.SetFlagsFragmentOffset(0, 8)
	check(t, "last fragment is fragment", h.IsFragment(), true)
	h.SetFlagsFragmentOffset(IPv4FlagDontFragment, 0)
	check(t, "DF only is fragment", h.IsFragment(), false)
}

func TestParseEthernetDropsWithReasonAndSeesVLANTags(t *testing.T) {
	_, r := ParseEthernet(capturedSYN[:13])
	check(t, "13 bytes", r, DropTruncated)

	// An 802.1Q-tagged frame: VLAN 100, priority 5, carrying IPv4.
	b := make([]byte, 18+4)
	Ethernet(b).Encode(&EthernetFields{Destination: macB, Source: macA, Type: EtherTypeIPv4, TPID: EtherTypeVLAN, TCI: 5<<13 | 100})
	check(t, "tag bytes", string(b[12:18]), "\x81\x00\xa0\x64\x08\x00")
	e, r := ParseEthernet(b)
	check(t, "tagged", r, DropNone)
	check(t, "Tagged", e.Tagged(), true)
	check(t, "Type", e.Type(), EtherTypeVLAN)
	check(t, "PayloadType", e.PayloadType(), EtherTypeIPv4)
	check(t, "VLANID", e.VLANID(), 100)
	check(t, "PCP", e.PCP(), 5)
	check(t, "HeaderLength", e.HeaderLength(), 18)
	check(t, "payload length", len(e.Payload()), 4)

	_, r = ParseEthernet(b[:17])
	check(t, "tag cut short", r, DropTruncated)
	_, r = ParseEthernet(b[:14])
	check(t, "tag missing", r, DropTruncated)

	b[12], b[13] = 0x88, 0xa8 // 802.1ad service tag
	e, _ = ParseEthernet(b)
	check(t, "802.1ad Tagged", e.Tagged(), true)
}

func TestParseARPDropsWithReason(t *testing.T) {
	arp := mustEthernet(t, capturedARPRequest).Payload()
	cases := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"valid", arp, DropNone},
		{"27 bytes", arp[:27], DropTruncated},
		{"padded to 46", append(bytes.Clone(arp), make([]byte, 18)...), DropNone},
		{"hardware type 6 (IEEE 802)", mutated(arp, func(b []byte) { b[1] = 6 }), DropBadARP},
		{"protocol IPv6", mutated(arp, func(b []byte) { b[2], b[3] = 0x86, 0xdd }), DropBadARP},
		{"hln 8", mutated(arp, func(b []byte) { b[4] = 8 }), DropBadARP},
		{"pln 16", mutated(arp, func(b []byte) { b[5] = 16 }), DropBadARP},
		{"op 3 (RARP request)", mutated(arp, func(b []byte) { b[7] = 3 }), DropBadARP},
		{"op 0", mutated(arp, func(b []byte) { b[7] = 0 }), DropBadARP},
	}
	for _, c := range cases {
		a, got := ParseARP(c.b)
		if got != c.want {
			t.Errorf("%s: ParseARP = %v, want %v", c.name, got, c.want)
		}
		if got == DropNone && len(a) != ARPSize {
			t.Errorf("%s: view of %d bytes", c.name, len(a))
		}
	}
}

func TestParseUDPDropsWithReason(t *testing.T) {
	udp := mustIPv4(t, mustEthernet(t, capturedUDP).Payload()).Payload()
	cases := []struct {
		name    string
		b       []byte
		want    DropReason
		wantLen int
	}{
		{"valid", udp, DropNone, 12},
		{"7 bytes", udp[:7], DropTruncated, 0},
		{"length 7", mutated(udp, func(b []byte) { b[5] = 7 }), DropBadUDPLength, 0},
		{"length 13 in 12", mutated(udp, func(b []byte) { b[5] = 13 }), DropBadUDPLength, 0},
		{"length 8 (empty)", mutated(udp, func(b []byte) { b[5] = 8 }), DropNone, 8},
		{"trailing bytes trimmed", append(bytes.Clone(udp), 0, 0), DropNone, 12},
	}
	for _, c := range cases {
		u, got := ParseUDP(c.b)
		if got != c.want || len(u) != c.wantLen {
			t.Errorf("%s: ParseUDP = %d bytes, %v; want %d, %v", c.name, len(u), got, c.wantLen, c.want)
		}
	}
}

func TestUDPChecksumZeroIsSentAsAllOnes(t *testing.T) {
	// Choose a payload word that makes the computed checksum 0 and expect
	// 0xffff on the wire (RFC 768), which still verifies.
	b := make([]byte, 10)
	u := UDP(b)
	u.Encode(&UDPFields{SourcePort: 1, DestinationPort: 2, Length: 10})
	pseudo := uint16(0x1234)
	// Sum without the last word, then pick the word that brings it to 0xffff.
	c := u.ComputeChecksum(pseudo)
	binary.BigEndian.PutUint16(b[8:], c) // now sum over all is 0xffff
	got := u.ComputeChecksum(pseudo)
	check(t, "computed", got, 0xffff)
	u.SetChecksum(got)
	check(t, "verifies", u.IsChecksumValid(pseudo), true)
}

func TestParseTCPDropsWithReason(t *testing.T) {
	seg := mustIPv4(t, mustEthernet(t, capturedSYN).Payload()).Payload() // 40-byte header
	cases := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"valid", seg, DropNone},
		{"19 bytes", seg[:19], DropTruncated},
		{"data offset 4", mutated(seg, func(b []byte) { b[12] = 0x40 }), DropBadDataOffset},
		{"data offset 0", mutated(seg, func(b []byte) { b[12] = 0x00 }), DropBadDataOffset},
		{"data offset past segment", seg[:39], DropBadDataOffset},
		{"data offset 15 in 40", mutated(seg, func(b []byte) { b[12] = 0xf0 }), DropBadDataOffset},
		{"header cut to 20 bytes", seg[:20], DropBadDataOffset}, // the field still says 40
	}
	for _, c := range cases {
		_, got := ParseTCP(c.b)
		if got != c.want {
			t.Errorf("%s: ParseTCP = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseICMPv4DropsWithReason(t *testing.T) {
	icmp := mustIPv4(t, mustEthernet(t, capturedICMPPortUnreachable).Payload()).Payload()
	if _, r := ParseICMPv4(icmp[:7]); r != DropTruncated {
		t.Errorf("7 bytes: %v", r)
	}
	if _, r := ParseICMPv4(icmp[:len(icmp)-2]); r != DropBadChecksum {
		t.Errorf("cut by a word: %v", r)
	}
}

func TestParseIPv6DropsWithReason(t *testing.T) {
	h := mustEthernet(t, capturedIPv6NS).Payload()
	if _, r := ParseIPv6(h[:39]); r != DropTruncated {
		t.Errorf("39 bytes: %v", r)
	}
	if _, r := ParseIPv6(mutated(h, func(b []byte) { b[0] = 0x40 })); r != DropBadVersion {
		t.Errorf("version 4: %v", r)
	}
	if _, r := ParseIPv6(h[:len(h)-1]); r != DropBadPayloadLength {
		t.Errorf("payload cut: %v", r)
	}
}

func TestDropReasonsAreDenseAndNamed(t *testing.T) {
	seen := map[string]bool{}
	for r := DropNone; r < NumDropReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("DropReason(%d).String() = %q", r, s)
		}
		seen[s] = true
	}
	check(t, "DropNone", DropNone.String(), "none")
	check(t, "out of range", NumDropReasons.String(), "unknown")
	check(t, "DropBadChecksum", DropBadChecksum.String(), "bad_checksum")
}

func TestTCPFlagsString(t *testing.T) {
	check(t, "SYN|ACK", (TCPFlagSYN | TCPFlagACK).String(), "SYN|ACK")
	check(t, "none", TCPFlags(0).String(), "0")
	check(t, "all", TCPFlags(0xff).String(), "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR")
	check(t, "Has", (TCPFlagSYN | TCPFlagACK).Has(TCPFlagACK), true)
	check(t, "Has both", TCPFlagSYN.Has(TCPFlagSYN|TCPFlagACK), false)
}

func TestMACString(t *testing.T) {
	check(t, "String", MAC{0x02, 0, 0x5e, 0x10, 0xab, 0xff}.String(), "02:00:5e:10:ab:ff")
	check(t, "unicast", macA.IsMulticast(), false)
}
