package header

import (
	"bytes"
	"testing"
)

// The IPv6 fuzz targets check the contract of fuzz_test.go: no panic, typed
// results in range, views and offsets inside the input, and what was read
// encodes back to the same bytes. Seeds are added here and kept in
// testdata/fuzz.

// ipv6Seeds are packets that exercise every branch of the walk.
func ipv6Seeds() [][]byte {
	tcp := make([]byte, TCPMinimumSize)
	return [][]byte{
		mustPayload(capturedIPv6NS),
		ipv6Packet(ProtocolTCP, tcp),
		ipv6Packet(ProtocolIPv6HopByHop, optionsHeader(ProtocolIPv6DestinationOptions, 0x05, 2, 0, 0),
			optionsHeader(ProtocolIPv6Routing), routingHeader(ProtocolIPv6Fragment, 0),
			fragmentHeader(ProtocolAH, 0, false, 7), append([]byte{ProtocolUDP, 4}, make([]byte, 22)...),
			make([]byte, UDPSize)),
		ipv6Packet(ProtocolIPv6Fragment, fragmentHeader(ProtocolTCP, 0, true, 9), tcp[:16]),
		ipv6Packet(ProtocolIPv6Fragment, fragmentHeader(ProtocolTCP, 65528, false, 9), tcp[:16]),
		ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolTCP, 1, 0, 0xbe, 0)),
		ipv6Packet(ProtocolIPv6DestinationOptions, []byte{ProtocolTCP, 0, 1, 5, 0, 0, 0, 0}),
		ipv6Packet(ProtocolIPv6Routing, routingHeader(ProtocolTCP, 1)),
		ipv6Packet(ProtocolIPv6DestinationOptions, optionsHeader(ProtocolIPv6HopByHop), optionsHeader(ProtocolTCP)),
		ipv6Packet(253, tcp),
	}
}

func FuzzWalkIPv6Extensions(f *testing.F) {
	for _, b := range ipv6Seeds() {
		f.Add(b, ipv6NextHeader, IPv6FixedHeaderSize)
	}
	f.Add([]byte{}, 6, 40)
	f.Add(ipv6Seeds()[3], 40, 48)
	f.Add(ipv6Seeds()[1], -1, 1<<40)
	f.Fuzz(func(t *testing.T, b []byte, field, off int) {
		w := WalkIPv6Extensions(b, field, off)
		if w.Err >= NumIPv6ExtErrors || w.Headers > IPv6MaxExtensionHeaders {
			t.Fatalf("walk %+v", w)
		}
		if w.Err == IPv6ExtOK {
			// The start is the caller's; from the first header on, the
			// walk only moves forward.
			if w.Offset < 0 || w.Offset > len(b) || (w.NextHeaderField != field && w.NextHeaderField >= w.Offset) ||
				b[w.NextHeaderField] != w.Protocol {
				t.Fatalf("walk %+v of %d bytes", w, len(b))
			}
			switch {
			case IsIPv6UpperLayer(w.Protocol), w.Protocol == ProtocolIPv6NoNextHeader:
			case w.Protocol == ProtocolIPv6Fragment:
				if w.Offset+IPv6FragmentSize > len(b) || w.Fragment != w.Offset || IPv6Fragment(b[w.Offset:]).IsAtomic() {
					t.Fatalf("fragment walk %+v of %d bytes", w, len(b))
				}
				_ = WalkIPv6Extensions(b, w.Offset, w.Offset+IPv6FragmentSize)
			default:
				t.Fatalf("walk ended at protocol %d", w.Protocol)
			}
		}
		if _, ptr, send := w.ParameterProblem(false); send && int(ptr) >= len(b) {
			t.Fatalf("pointer %d past %d bytes (%+v)", ptr, len(b), w)
		}
		if len(b) >= IPv6FixedHeaderSize {
			ip := IPv6(b)
			if field == ipv6NextHeader && off == IPv6FixedHeaderSize && ip.WalkExtensions() != w {
				t.Fatalf("method %+v, function %+v", ip.WalkExtensions(), w)
			}
			_ = ICMPv6ErrorAllowed(ICMPv6TimeExceeded, 0, ip, false)
		}
	})
}

func FuzzIPv6Options(f *testing.F) {
	f.Add(optionsHeader(ProtocolTCP, IPv6OptionPad1, IPv6OptionPadN, 1, 0, 0x05, 2, 0, 0, 0x1e, 0))
	f.Add([]byte{0, 0, 0x05, 9, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		it := IterateIPv6Options(b)
		n := 0
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			if o.Type == IPv6OptionPad1 || o.Type == IPv6OptionPadN || len(o.Data) > 255 {
				t.Fatalf("option %+v", o)
			}
			if n++; n > len(b) {
				t.Fatal("iterator does not advance")
			}
		}
		if len(b) >= 2 {
			if e, _ := walkIPv6Options(b, 2); e >= NumIPv6ExtErrors || (e == IPv6ExtBadOption) != it.Err() && e != IPv6ExtOptionDiscard &&
				e != IPv6ExtOptionDiscardSendICMP && e != IPv6ExtOptionDiscardSendICMPUnlessMulticast {
				t.Fatalf("options walk %v, iterator error %v", e, it.Err())
			}
		}
	})
}

func FuzzParseIPv6Fragment(f *testing.F) {
	f.Add([]byte{17, 0, 0x05, 0xc9, 0xde, 0xad, 0xbe, 0xef})
	f.Add([]byte{17, 0xff, 0x05, 0xcf, 0xde, 0xad, 0xbe, 0xef, 1, 2})
	f.Add([]byte{6, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, r := ParseIPv6Fragment(b)
		checkReason(t, h, r)
		if r != DropNone {
			return
		}
		fields := h.Fields()
		if len(h) != IPv6FragmentSize || fields.FragmentOffset%8 != 0 ||
			h.IsAtomic() != (fields.FragmentOffset == 0 && !fields.MoreFragments) {
			t.Fatalf("view %d, fields %+v, atomic %v", len(h), fields, h.IsAtomic())
		}
		out := make([]byte, IPv6FragmentSize)
		IPv6Fragment(out).Encode(&fields)
		want := bytes.Clone(b[:IPv6FragmentSize])
		want[1], want[3] = 0, want[3]&^0x06
		if !bytes.Equal(out, want) {
			t.Fatalf("re-encoded %x, want %x", out, want)
		}
	})
}

func FuzzParseICMPv6(f *testing.F) {
	ip, _ := ParseIPv6(mustPayload(capturedIPv6NS))
	f.Add(bytes.Clone(ip.Payload()))
	echo := make([]byte, 16)
	EncodeICMPv6Echo(echo, ICMPv6EchoRequest, 0x1234, 1, []byte("abcdefgh"))
	f.Add(echo)
	f.Add(echo[:7])
	f.Add(ipv6Packet(ProtocolUDP, make([]byte, 1400))[:9])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, r := ParseICMPv6(b)
		checkReason(t, m, r)
		if r != DropNone {
			return
		}
		if len(m) != len(b) || len(m.Payload()) != len(b)-ICMPv6MinimumSize {
			t.Fatalf("view %d of %d, payload %d", len(m), len(b), len(m.Payload()))
		}
		fields := m.Fields()
		out := make([]byte, len(b))
		ICMPv6(out).Encode(&fields)
		copy(out[ICMPv6MinimumSize:], m.Payload())
		pseudo := IPv6(ipv6Packet(ProtocolICMPv6)).PseudoHeaderSum(ProtocolICMPv6, len(out))
		ICMPv6(out).SetChecksum(ICMPv6(out).ComputeChecksum(pseudo))
		if !bytes.Equal(out[:2], b[:2]) || !bytes.Equal(out[4:], b[4:]) || !ICMPv6(out).IsChecksumValid(pseudo) {
			t.Fatalf("re-encoded %x, want %x", out, b)
		}
		// Quoting b in an error never exceeds the minimum MTU.
		q := make([]byte, 2*IPv6MinimumMTU)
		n := EncodeICMPv6ParameterProblem(q, ICMPv6ErroneousHeaderField, 4, b)
		if n > IPv6MinimumMTU-IPv6FixedHeaderSize || n != ICMPv6MinimumSize+min(len(b), ICMPv6ErrorQuoteMax) {
			t.Fatalf("error of %d bytes quoting %d", n, len(b))
		}
	})
}

// FuzzValidateNDP builds an IPv6 packet around the message with a correct
// checksum, so the fuzzer reaches the checks after it.
func FuzzValidateNDP(f *testing.F) {
	ip, _ := ParseIPv6(mustPayload(capturedIPv6NS))
	f.Add(bytes.Clone(ip.Payload()), true, true, uint8(255))
	b := make([]byte, 64)
	n := EncodeNDPRouterAdvertisement(b, &NDPRouterAdvertisementFields{CurrentHopLimit: 64, RouterLifetime: 1800})
	n += EncodeNDPMTUOption(b[n:], 1500)
	n += EncodeNDPPrefixInformationOption(b[n:], &NDPPrefixInformation{PrefixLength: 64, Flags: NDPPrefixFlagOnLink})
	f.Add(bytes.Clone(b[:n]), false, true, uint8(255))
	n = EncodeNDPNeighborAdvertisement(b, NDPFlagSolicited, llB)
	n += EncodeNDPLinkLayerAddressOption(b[n:], NDPOptionTargetLinkLayerAddress, macLL)
	f.Add(bytes.Clone(b[:n]), false, false, uint8(255))
	n = EncodeNDPRouterSolicitation(b)
	f.Add(append(bytes.Clone(b[:n]), 1, 0), true, true, uint8(255))
	f.Add(bytes.Clone(b[:n]), false, true, uint8(1))
	f.Fuzz(func(t *testing.T, msg []byte, srcUnspecified, dstMulticast bool, hopLimit uint8) {
		src, dst := llA, llB
		if srcUnspecified {
			src = [16]byte{}
		}
		if dstMulticast && len(msg) >= 24 {
			dst = SolicitedNodeMulticast(NDPNeighborSolicitation(msg).TargetAddress())
		} else if dstMulticast {
			dst = IPv6AllNodesMulticast
		}
		ip, m := ndpPacket(src, dst, msg)
		ip.SetHopLimit(hopLimit)
		r := ValidateNDP(ip, m)
		if r >= NumNDPErrors {
			t.Fatalf("error %d", r)
		}
		if r != NDPValid {
			return
		}
		if hopLimit != NDPHopLimit || m.Code() != 0 || !m.IsChecksumValid(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))) {
			t.Fatalf("accepted hop limit %d, code %d", hopLimit, m.Code())
		}
		var opts []byte
		switch m.Type() {
		case ICMPv6NeighborSolicitation:
			ns := NDPNeighborSolicitation(m)
			if IsIPv6Multicast(ns.TargetAddress()) {
				t.Fatal("multicast target accepted")
			}
			opts = ns.Options()
		case ICMPv6NeighborAdvertisement:
			na := NDPNeighborAdvertisement(m)
			if IsIPv6Multicast(na.TargetAddress()) || (dstMulticast && na.Solicited()) {
				t.Fatalf("NA to %v flags %#x accepted", dst, na.Flags())
			}
			out := make([]byte, NDPNeighborMessageSize)
			EncodeNDPNeighborAdvertisement(out, na.Flags(), na.TargetAddress())
			if !bytes.Equal(out[4:], m[4:NDPNeighborMessageSize]) && m[4]&0x1f == 0 && m[5]|m[6]|m[7] == 0 {
				t.Fatalf("NA re-encoded %x, want %x", out, []byte(m[:NDPNeighborMessageSize]))
			}
			opts = na.Options()
		case ICMPv6RouterSolicitation:
			opts = NDPRouterSolicitation(m).Options()
		case ICMPv6RouterAdvertisement:
			ra := NDPRouterAdvertisement(m)
			fields := ra.Fields()
			out := make([]byte, NDPRouterAdvertisementSize)
			EncodeNDPRouterAdvertisement(out, &fields)
			if NDPRouterAdvertisement(out).Fields() != fields {
				t.Fatalf("RA fields %+v", fields)
			}
			opts = ra.Options()
		default:
			t.Fatalf("type %d accepted", m.Type())
		}
		it := IterateNDPOptions(opts)
		total := 0
		for o, ok := it.Next(); ok; o, ok = it.Next() {
			total += 2 + len(o.Data)
			if (2+len(o.Data))%8 != 0 {
				t.Fatalf("option of %d bytes", 2+len(o.Data))
			}
			_, _ = o.LinkLayerAddress()
			_, _ = o.MTU()
			if p, ok := o.PrefixInformation(); ok {
				out := make([]byte, NDPPrefixInformationOptionSize)
				EncodeNDPPrefixInformationOption(out, &p)
				if q, _ := (NDPOption{Type: out[0], Data: out[2:]}).PrefixInformation(); q != p {
					t.Fatalf("prefix %+v, re-read %+v", p, q)
				}
			}
		}
		if it.Err() || total != len(opts) {
			t.Fatalf("options of a valid message: err %v, %d of %d bytes", it.Err(), total, len(opts))
		}
	})
}
