package header

import (
	"bytes"
	"net/netip"
	"testing"
)

var (
	v6A = netip.MustParseAddr("2001:db8::1").As16()
	v6B = netip.MustParseAddr("2001:db8::2").As16()
)

// ipv6Packet returns an IPv6 packet from v6A to v6B with hop limit 64 whose
// payload is the concatenation of parts.
func ipv6Packet(nextHeader uint8, parts ...[]byte) []byte {
	payload := bytes.Join(parts, nil)
	b := make([]byte, IPv6FixedHeaderSize+len(payload))
	IPv6(b).Encode(&IPv6Fields{PayloadLength: uint16(len(payload)), NextHeader: nextHeader,
		HopLimit: 64, Source: v6A, Destination: v6B})
	copy(b[IPv6FixedHeaderSize:], payload)
	return b
}

// optionsHeader returns a Hop-by-Hop or Destination Options header holding
// opts, padded with Pad1 or PadN to a multiple of 8 octets.
func optionsHeader(nextHeader uint8, opts ...byte) []byte {
	h := append([]byte{nextHeader, 0}, opts...)
	switch rem := (8 - len(h)%8) % 8; rem {
	case 0:
	case 1:
		h = append(h, IPv6OptionPad1)
	default:
		h = append(h, IPv6OptionPadN, byte(rem-2))
		h = append(h, make([]byte, rem-2)...)
	}
	h[1] = byte(len(h)/8 - 1)
	return h
}

func routingHeader(nextHeader, segmentsLeft uint8) []byte {
	return []byte{nextHeader, 0, 4, segmentsLeft, 0, 0, 0, 0}
}

func fragmentHeader(nextHeader uint8, offset uint16, more bool, id uint32) []byte {
	b := make([]byte, IPv6FragmentSize)
	IPv6Fragment(b).Encode(&IPv6FragmentFields{NextHeader: nextHeader, FragmentOffset: offset,
		MoreFragments: more, Identification: id})
	return b
}

func TestWalkIPv6ExtensionsReachesTheUpperLayer(t *testing.T) {
	tcp := make([]byte, TCPMinimumSize)
	cases := []struct {
		name                     string
		pkt                      []byte
		protocol                 uint8
		offset, field, headers   int
		fragment, authentication int
	}{
		{"no extension headers", ipv6Packet(ProtocolTCP, tcp), ProtocolTCP, 40, 6, 0, 0, 0},
		{"every kind in RFC 8200 order", ipv6Packet(ProtocolIPv6HopByHop,
			optionsHeader(ProtocolIPv6DestinationOptions, 0x05, 2, 0, 0), // Router Alert: skip
			optionsHeader(ProtocolIPv6Routing),
			routingHeader(ProtocolIPv6Fragment, 0),
			fragmentHeader(ProtocolAH, 0, false, 7),
			append([]byte{ProtocolIPv6DestinationOptions, 4}, make([]byte, 22)...),
			optionsHeader(ProtocolUDP, 0x3e, 1, 0), // unknown, high bits 00: skip
			make([]byte, UDPSize)),
			ProtocolUDP, 40 + 8 + 8 + 8 + 8 + 24 + 8, 40 + 8 + 8 + 8 + 8 + 24, 6, 64, 72},
		{"no next header", ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolIPv6NoNextHeader)),
			ProtocolIPv6NoNextHeader, 48, 40, 1, 0, 0},
		{"first fragment stops the walk", ipv6Packet(ProtocolIPv6HopByHop, optionsHeader(ProtocolIPv6Fragment),
			fragmentHeader(ProtocolTCP, 0, true, 9), tcp[:16]),
			ProtocolIPv6Fragment, 48, 40, 2, 48, 0},
		{"last fragment stops the walk", ipv6Packet(ProtocolIPv6Fragment, fragmentHeader(ProtocolTCP, 1232, false, 9), tcp[:5]),
			ProtocolIPv6Fragment, 40, 6, 1, 40, 0},
	}
	for _, c := range cases {
		w := IPv6(c.pkt).WalkExtensions()
		if w.Err != IPv6ExtOK {
			t.Fatalf("%s: %v at %d", c.name, w.Err, w.Pointer)
		}
		if w.Protocol != c.protocol || w.Offset != c.offset || w.NextHeaderField != c.field ||
			w.Headers != c.headers || w.Fragment != c.fragment || w.AuthenticationHeader != c.authentication {
			t.Fatalf("%s: walk %+v, want protocol %d offset %d field %d headers %d fragment %d AH %d",
				c.name, w, c.protocol, c.offset, c.field, c.headers, c.fragment, c.authentication)
		}
	}
}

func TestWalkIPv6ExtensionsContinuesAfterReassembly(t *testing.T) {
	pkt := ipv6Packet(ProtocolIPv6Fragment, fragmentHeader(ProtocolIPv6DestinationOptions, 0, true, 1),
		optionsHeader(ProtocolICMPv6), make([]byte, 8))
	w := IPv6(pkt).WalkExtensions()
	if w.Protocol != ProtocolIPv6Fragment || w.Offset != 40 {
		t.Fatalf("walk %+v, want a fragment at 40", w)
	}
	w = WalkIPv6Extensions(pkt, w.Offset, w.Offset+IPv6FragmentSize)
	if w.Err != IPv6ExtOK || w.Protocol != ProtocolICMPv6 || w.Offset != 56 || w.NextHeaderField != 48 {
		t.Fatalf("walk after the fragment header %+v", w)
	}
	// A first fragment that ends inside the chain (RFC 7112).
	w = WalkIPv6Extensions(pkt[:52], 40, 48)
	if w.Err != IPv6ExtTruncated {
		t.Fatalf("incomplete chain: %+v", w)
	}
}

func TestWalkIPv6ExtensionsStopsWithTypedErrorAndPointer(t *testing.T) {
	tooMany := make([][]byte, 9)
	for i := range tooMany {
		tooMany[i] = optionsHeader(ProtocolIPv6DestinationOptions)
	}
	tooMany[8] = optionsHeader(ProtocolTCP)
	cases := []struct {
		name    string
		pkt     []byte
		err     IPv6ExtError
		pointer int
	}{
		{"unknown upper layer", ipv6Packet(253, make([]byte, 8)), IPv6ExtUnknownNextHeader, 6},
		{"unknown after options", ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(132), make([]byte, 8)),
			IPv6ExtUnknownNextHeader, 40},
		{"ESP is not walked", ipv6Packet(ProtocolESP, make([]byte, 8)), IPv6ExtUnknownNextHeader, 6},
		{"hop-by-hop not first", ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolIPv6HopByHop),
			optionsHeader(ProtocolTCP)), IPv6ExtHopByHopNotFirst, 40},
		{"too many", ipv6Packet(ProtocolIPv6DestinationOptions, tooMany...), IPv6ExtTooMany, 40 + 7*8},
		{"no room for the header", ipv6Packet(ProtocolIPv6DestinationOptions, []byte{ProtocolTCP, 0, 1}),
			IPv6ExtTruncated, 40},
		{"length past the end", ipv6Packet(ProtocolIPv6DestinationOptions, []byte{ProtocolTCP, 1, 1, 4, 0, 0, 0, 0}),
			IPv6ExtTruncated, 41},
		{"option 01 discards", ipv6Packet(ProtocolIPv6HopByHop, optionsHeader(ProtocolTCP, 0x7e, 0)),
			IPv6ExtOptionDiscard, 42},
		{"option 10 sends ICMP", ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolTCP, 1, 0, 0xbe, 0)),
			IPv6ExtOptionDiscardSendICMP, 44},
		{"option 11 sends ICMP unless multicast", ipv6Packet(ProtocolIPv6HopByHop, optionsHeader(ProtocolTCP, 0, 0xc2, 4, 0, 1, 0, 0)),
			IPv6ExtOptionDiscardSendICMPUnlessMulticast, 43},
		{"option past its header", ipv6Packet(ProtocolIPv6DestinationOptions, []byte{ProtocolTCP, 0, 1, 5, 0, 0, 0, 0}),
			IPv6ExtBadOption, 43},
		{"option type in the last octet", ipv6Packet(ProtocolIPv6DestinationOptions, []byte{ProtocolTCP, 0, 1, 2, 0, 0, 0, 5}),
			IPv6ExtBadOption, 47},
		{"routing with segments left", ipv6Packet(ProtocolIPv6Routing, routingHeader(ProtocolTCP, 1)),
			IPv6ExtRoutingSegmentsLeft, 42},
		{"AH not a multiple of 8", ipv6Packet(ProtocolAH, append([]byte{ProtocolTCP, 3}, make([]byte, 18)...)),
			IPv6ExtBadAHLength, 41},
		{"fragment with M not a multiple of 8", ipv6Packet(ProtocolIPv6Fragment, fragmentHeader(ProtocolTCP, 0, true, 1),
			make([]byte, 15)), IPv6ExtFragmentNotMultipleOf8, 4},
		{"fragment past 65535", ipv6Packet(ProtocolIPv6Fragment, fragmentHeader(ProtocolTCP, 65528, false, 1),
			make([]byte, 8)), IPv6ExtFragmentTooLong, 42},
	}
	for _, c := range cases {
		w := IPv6(c.pkt).WalkExtensions()
		if w.Err != c.err || w.Pointer != c.pointer {
			t.Fatalf("%s: %v at %d, want %v at %d (%+v)", c.name, w.Err, w.Pointer, c.err, c.pointer, w)
		}
	}
	if w := WalkIPv6Extensions(make([]byte, 20), 6, 40); w.Err != IPv6ExtTruncated {
		t.Fatalf("short packet: %+v", w)
	}
	if w := WalkIPv6Extensions(nil, 6, 40); w.Err != IPv6ExtTruncated {
		t.Fatalf("empty packet: %+v", w)
	}
}

func TestIPv6ExtensionWalkAsksForTheParameterProblemRFC8200Says(t *testing.T) {
	cases := []struct {
		err       IPv6ExtError
		multicast bool
		code      ICMPv6Code
		send      bool
	}{
		{IPv6ExtUnknownNextHeader, false, ICMPv6UnrecognizedNextHeader, true},
		{IPv6ExtUnknownNextHeader, true, 0, false},
		{IPv6ExtHopByHopNotFirst, false, ICMPv6UnrecognizedNextHeader, true},
		{IPv6ExtOptionDiscard, false, 0, false},
		{IPv6ExtOptionDiscardSendICMP, true, ICMPv6UnrecognizedOption, true},
		{IPv6ExtOptionDiscardSendICMPUnlessMulticast, false, ICMPv6UnrecognizedOption, true},
		{IPv6ExtOptionDiscardSendICMPUnlessMulticast, true, 0, false},
		{IPv6ExtRoutingSegmentsLeft, false, ICMPv6ErroneousHeaderField, true},
		{IPv6ExtFragmentNotMultipleOf8, false, ICMPv6ErroneousHeaderField, true},
		{IPv6ExtFragmentTooLong, false, ICMPv6ErroneousHeaderField, true},
		{IPv6ExtTruncated, false, 0, false},
		{IPv6ExtTooMany, false, 0, false},
		{IPv6ExtBadOption, false, 0, false},
		{IPv6ExtOK, false, 0, false},
	}
	for _, c := range cases {
		w := IPv6ExtensionWalk{Err: c.err, Pointer: 42}
		code, ptr, send := w.ParameterProblem(c.multicast)
		if send != c.send || code != c.code || (send && ptr != 42) {
			t.Fatalf("%v multicast=%v: code %d pointer %d send %v, want code %d send %v",
				c.err, c.multicast, code, ptr, send, c.code, c.send)
		}
	}
}

func TestIPv6ExtErrorsAreDenseAndNamed(t *testing.T) {
	seen := map[string]bool{}
	for e := IPv6ExtOK; e < NumIPv6ExtErrors; e++ {
		s := e.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Fatalf("error %d named %q", e, s)
		}
		seen[s] = true
	}
	if NumIPv6ExtErrors.String() != "unknown" || IPv6ExtTooMany.String() != "too_many_extension_headers" {
		t.Fatalf("names: %q, %q", NumIPv6ExtErrors.String(), IPv6ExtTooMany.String())
	}
}

func TestIPv6FragmentHeaderFieldsAndAtomicFragments(t *testing.T) {
	// Next Header 17, offset 185 units (1480 bytes), M set, ID 0xdeadbeef.
	wire := []byte{17, 0, 0x05, 0xc9, 0xde, 0xad, 0xbe, 0xef}
	f, r := ParseIPv6Fragment(wire)
	if r != DropNone {
		t.Fatal(r)
	}
	want := IPv6FragmentFields{NextHeader: 17, FragmentOffset: 1480, MoreFragments: true, Identification: 0xdeadbeef}
	if f.Fields() != want || f.IsAtomic() {
		t.Fatalf("fields %+v atomic %v, want %+v", f.Fields(), f.IsAtomic(), want)
	}
	out := make([]byte, IPv6FragmentSize)
	IPv6Fragment(out).Encode(&want)
	if !bytes.Equal(out, wire) {
		t.Fatalf("encoded %x, want %x", out, wire)
	}
	// Reserved bits are ignored on receipt and zero when built.
	wire[1], wire[3] = 0xff, 0xc9|0x06
	if f, _ := ParseIPv6Fragment(wire); f.Fields() != want {
		t.Fatalf("with reserved bits: %+v", f.Fields())
	}
	atomic := fragmentHeader(ProtocolTCP, 0, false, 5)
	if f, _ := ParseIPv6Fragment(atomic); !f.IsAtomic() {
		t.Fatal("offset 0 without M is not atomic")
	}
	if f, _ := ParseIPv6Fragment(fragmentHeader(ProtocolTCP, 8, false, 5)); f.IsAtomic() {
		t.Fatal("a last fragment is atomic")
	}
	if _, r := ParseIPv6Fragment(wire[:7]); r != DropTruncated {
		t.Fatalf("7 bytes: %v", r)
	}
}

func TestIPv6OptionIteratorSkipsPadding(t *testing.T) {
	h := optionsHeader(ProtocolTCP, IPv6OptionPad1, IPv6OptionPadN, 1, 0, 0x05, 2, 0, 0, 0x1e, 0)
	it := IterateIPv6Options(h)
	var types []uint8
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		types = append(types, o.Type)
		if o.Type == 0x05 && !bytes.Equal(o.Data, []byte{0, 0}) {
			t.Fatalf("router alert data %x", o.Data)
		}
	}
	if it.Err() || !bytes.Equal(types, []byte{0x05, 0x1e}) {
		t.Fatalf("types %x, err %v", types, it.Err())
	}
	it = IterateIPv6Options([]byte{0, 0, 0x05, 9, 0})
	if _, ok := it.Next(); ok || !it.Err() {
		t.Fatal("option past the header accepted")
	}
}
