// Neighbor Discovery (RFC 4861): the router and neighbor solicitation and
// advertisement messages, which are ICMPv6 messages, their options, and
// the validity checks a node applies to them before acting on them.

package header

import "encoding/binary"

// NDP option types (RFC 4861 4.6).
const (
	NDPOptionSourceLinkLayerAddress uint8 = 1
	NDPOptionTargetLinkLayerAddress uint8 = 2
	NDPOptionPrefixInformation      uint8 = 3
	NDPOptionRedirectedHeader       uint8 = 4
	NDPOptionMTU                    uint8 = 5
	NDPOptionNonce                  uint8 = 14 // RFC 3971 5.3.2, RFC 7527
)

// Flags of a neighbor advertisement (RFC 4861 4.4), in the octet after the
// checksum.
const (
	NDPFlagRouter    uint8 = 0x80 // R: the sender is a router
	NDPFlagSolicited uint8 = 0x40 // S: a reply to a solicitation
	NDPFlagOverride  uint8 = 0x20 // O: override a cached link-layer address
)

// Flags of a router advertisement (RFC 4861 4.2).
const (
	NDPFlagManaged     uint8 = 0x80 // M: addresses by DHCPv6
	NDPFlagOtherConfig uint8 = 0x40 // O: other configuration by DHCPv6
)

// Flags of a prefix information option (RFC 4861 4.6.2).
const (
	NDPPrefixFlagOnLink     uint8 = 0x80 // L
	NDPPrefixFlagAutonomous uint8 = 0x40 // A: usable for SLAAC
)

const (
	// NDPNeighborMessageSize is the size of a neighbor solicitation or
	// advertisement without options: the ICMPv6 header and the target.
	NDPNeighborMessageSize = 24
	// NDPRouterSolicitationSize is the size of a router solicitation
	// without options.
	NDPRouterSolicitationSize = 8
	// NDPRouterAdvertisementSize is the size of a router advertisement
	// without options.
	NDPRouterAdvertisementSize = 16
	// NDPHopLimit is the Hop Limit every NDP message is sent and must be
	// received with, which proves it came from the link (RFC 4861 6.1).
	NDPHopLimit = 255

	// Option sizes, type and length octets included.
	NDPLinkLayerAddressOptionSize  = 8
	NDPPrefixInformationOptionSize = 32
	NDPMTUOptionSize               = 8

	ndpFlags          = 4 // neighbor advertisement
	ndpTarget         = 8 // neighbor solicitation and advertisement
	ndpNeighborOpts   = 24
	ndpRSOpts         = 8
	ndpCurHopLimit    = 4
	ndpRAFlags        = 5
	ndpRouterLifetime = 6
	ndpReachableTime  = 8
	ndpRetransTimer   = 12
	ndpRAOpts         = 16
)

// NDPNeighborSolicitation is a neighbor solicitation (RFC 4861 4.3): an
// ICMPv6 message of type 135, at least NDPNeighborMessageSize bytes.
type NDPNeighborSolicitation []byte

// TargetAddress returns the address whose link-layer address is sought.
func (b NDPNeighborSolicitation) TargetAddress() [16]byte {
	return [16]byte(b[ndpTarget : ndpTarget+16])
}

// Options returns the options after the target.
func (b NDPNeighborSolicitation) Options() []byte { return b[ndpNeighborOpts:] }

// EncodeNDPNeighborSolicitation writes a neighbor solicitation for target
// at the start of b, which must hold NDPNeighborMessageSize bytes, and
// returns that size: options go after it. The checksum is zero.
func EncodeNDPNeighborSolicitation(b []byte, target [16]byte) int {
	ICMPv6(b).Encode(&ICMPv6Fields{Type: ICMPv6NeighborSolicitation})
	copy(b[ndpTarget:ndpTarget+16], target[:])
	return NDPNeighborMessageSize
}

// NDPNeighborAdvertisement is a neighbor advertisement (RFC 4861 4.4): an
// ICMPv6 message of type 136, at least NDPNeighborMessageSize bytes.
type NDPNeighborAdvertisement []byte

// Flags returns the R, S and O flags (NDPFlagRouter, ...).
func (b NDPNeighborAdvertisement) Flags() uint8 { return b[ndpFlags] & 0xe0 }

// Router returns the R flag.
func (b NDPNeighborAdvertisement) Router() bool { return b[ndpFlags]&NDPFlagRouter != 0 }

// Solicited returns the S flag.
func (b NDPNeighborAdvertisement) Solicited() bool { return b[ndpFlags]&NDPFlagSolicited != 0 }

// Override returns the O flag.
func (b NDPNeighborAdvertisement) Override() bool { return b[ndpFlags]&NDPFlagOverride != 0 }

// TargetAddress returns the address advertised.
func (b NDPNeighborAdvertisement) TargetAddress() [16]byte {
	return [16]byte(b[ndpTarget : ndpTarget+16])
}

// Options returns the options after the target.
func (b NDPNeighborAdvertisement) Options() []byte { return b[ndpNeighborOpts:] }

// EncodeNDPNeighborAdvertisement writes a neighbor advertisement for
// target with flags (NDPFlagRouter|NDPFlagSolicited|NDPFlagOverride) at the
// start of b, which must hold NDPNeighborMessageSize bytes, and returns
// that size: options go after it. The checksum is zero.
func EncodeNDPNeighborAdvertisement(b []byte, flags uint8, target [16]byte) int {
	ICMPv6(b).Encode(&ICMPv6Fields{Type: ICMPv6NeighborAdvertisement, RestOfHeader: uint32(flags&0xe0) << 24})
	copy(b[ndpTarget:ndpTarget+16], target[:])
	return NDPNeighborMessageSize
}

// NDPRouterSolicitation is a router solicitation (RFC 4861 4.1): an ICMPv6
// message of type 133.
type NDPRouterSolicitation []byte

// Options returns the options.
func (b NDPRouterSolicitation) Options() []byte { return b[ndpRSOpts:] }

// EncodeNDPRouterSolicitation writes a router solicitation at the start of
// b, which must hold NDPRouterSolicitationSize bytes, and returns that size:
// options go after it. The checksum is zero.
func EncodeNDPRouterSolicitation(b []byte) int {
	ICMPv6(b).Encode(&ICMPv6Fields{Type: ICMPv6RouterSolicitation})
	return NDPRouterSolicitationSize
}

// NDPRouterAdvertisement is a router advertisement (RFC 4861 4.2): an
// ICMPv6 message of type 134, at least NDPRouterAdvertisementSize bytes.
type NDPRouterAdvertisement []byte

// NDPRouterAdvertisementFields is the content of a router advertisement
// before its options.
type NDPRouterAdvertisementFields struct {
	CurrentHopLimit uint8  // 0: unspecified
	Flags           uint8  // NDPFlagManaged, NDPFlagOtherConfig
	RouterLifetime  uint16 // seconds; 0: not a default router
	ReachableTime   uint32 // milliseconds; 0: unspecified
	RetransTimer    uint32 // milliseconds; 0: unspecified
}

// CurrentHopLimit returns the Cur Hop Limit: the Hop Limit to send with,
// 0 if the router leaves it unspecified.
func (b NDPRouterAdvertisement) CurrentHopLimit() uint8 { return b[ndpCurHopLimit] }

// Flags returns the M and O flags (NDPFlagManaged, NDPFlagOtherConfig).
func (b NDPRouterAdvertisement) Flags() uint8 { return b[ndpRAFlags] & 0xc0 }

// Managed returns the M flag.
func (b NDPRouterAdvertisement) Managed() bool { return b[ndpRAFlags]&NDPFlagManaged != 0 }

// OtherConfig returns the O flag.
func (b NDPRouterAdvertisement) OtherConfig() bool { return b[ndpRAFlags]&NDPFlagOtherConfig != 0 }

// RouterLifetime returns the Router Lifetime in seconds.
func (b NDPRouterAdvertisement) RouterLifetime() uint16 {
	return binary.BigEndian.Uint16(b[ndpRouterLifetime:])
}

// ReachableTime returns the Reachable Time in milliseconds.
func (b NDPRouterAdvertisement) ReachableTime() uint32 {
	return binary.BigEndian.Uint32(b[ndpReachableTime:])
}

// RetransTimer returns the Retrans Timer in milliseconds.
func (b NDPRouterAdvertisement) RetransTimer() uint32 {
	return binary.BigEndian.Uint32(b[ndpRetransTimer:])
}

// Options returns the options.
func (b NDPRouterAdvertisement) Options() []byte { return b[ndpRAOpts:] }

// Fields returns the content before the options.
func (b NDPRouterAdvertisement) Fields() NDPRouterAdvertisementFields {
	return NDPRouterAdvertisementFields{
		CurrentHopLimit: b.CurrentHopLimit(),
		Flags:           b.Flags(),
		RouterLifetime:  b.RouterLifetime(),
		ReachableTime:   b.ReachableTime(),
		RetransTimer:    b.RetransTimer(),
	}
}

// EncodeNDPRouterAdvertisement writes a router advertisement described by
// f at the start of b, which must hold NDPRouterAdvertisementSize bytes,
// and returns that size: options go after it. The checksum is zero.
func EncodeNDPRouterAdvertisement(b []byte, f *NDPRouterAdvertisementFields) int {
	_ = b[NDPRouterAdvertisementSize-1]
	ICMPv6(b).Encode(&ICMPv6Fields{Type: ICMPv6RouterAdvertisement})
	b[ndpCurHopLimit] = f.CurrentHopLimit
	b[ndpRAFlags] = f.Flags & 0xc0
	binary.BigEndian.PutUint16(b[ndpRouterLifetime:], f.RouterLifetime)
	binary.BigEndian.PutUint32(b[ndpReachableTime:], f.ReachableTime)
	binary.BigEndian.PutUint32(b[ndpRetransTimer:], f.RetransTimer)
	return NDPRouterAdvertisementSize
}

// An NDPOption is one option of an NDP message: its type and its data, the
// bytes after its type and length octets (8*Length-2 of them), a view into
// the message.
type NDPOption struct {
	Type uint8
	Data []byte
}

// LinkLayerAddress returns the Ethernet address of a source or target
// link-layer address option, or false if the option is not 8 octets.
func (o NDPOption) LinkLayerAddress() (MAC, bool) {
	if len(o.Data) != NDPLinkLayerAddressOptionSize-2 {
		return MAC{}, false
	}
	return MAC(o.Data), true
}

// NDPPrefixInformation is the content of a prefix information option (RFC
// 4861 4.6.2). Lifetimes are in seconds; 0xffffffff is infinity.
type NDPPrefixInformation struct {
	PrefixLength      uint8
	Flags             uint8 // NDPPrefixFlagOnLink, NDPPrefixFlagAutonomous
	ValidLifetime     uint32
	PreferredLifetime uint32
	Prefix            [16]byte
}

// PrefixInformation returns the content of a prefix information option, or
// false if the option is not 32 octets.
func (o NDPOption) PrefixInformation() (NDPPrefixInformation, bool) {
	d := o.Data
	if len(d) != NDPPrefixInformationOptionSize-2 {
		return NDPPrefixInformation{}, false
	}
	return NDPPrefixInformation{
		PrefixLength:      d[0],
		Flags:             d[1] & 0xc0,
		ValidLifetime:     binary.BigEndian.Uint32(d[2:]),
		PreferredLifetime: binary.BigEndian.Uint32(d[6:]),
		Prefix:            [16]byte(d[14:30]),
	}, true
}

// MTU returns the MTU of an MTU option, or false if the option is not 8
// octets.
func (o NDPOption) MTU() (uint32, bool) {
	if len(o.Data) != NDPMTUOptionSize-2 {
		return 0, false
	}
	return binary.BigEndian.Uint32(o.Data[2:]), true
}

// EncodeNDPLinkLayerAddressOption writes a source or target link-layer
// address option (typ NDPOptionSourceLinkLayerAddress or
// NDPOptionTargetLinkLayerAddress) for m at the start of b, which must
// hold NDPLinkLayerAddressOptionSize bytes, and returns that size.
func EncodeNDPLinkLayerAddressOption(b []byte, typ uint8, m MAC) int {
	_ = b[NDPLinkLayerAddressOptionSize-1]
	b[0], b[1] = typ, NDPLinkLayerAddressOptionSize/8
	copy(b[2:8], m[:])
	return NDPLinkLayerAddressOptionSize
}

// EncodeNDPPrefixInformationOption writes a prefix information option at
// the start of b, which must hold NDPPrefixInformationOptionSize bytes, and
// returns that size.
func EncodeNDPPrefixInformationOption(b []byte, p *NDPPrefixInformation) int {
	_ = b[NDPPrefixInformationOptionSize-1]
	b[0], b[1] = NDPOptionPrefixInformation, NDPPrefixInformationOptionSize/8
	b[2], b[3] = p.PrefixLength, p.Flags&0xc0
	binary.BigEndian.PutUint32(b[4:], p.ValidLifetime)
	binary.BigEndian.PutUint32(b[8:], p.PreferredLifetime)
	binary.BigEndian.PutUint32(b[12:], 0) // Reserved2
	copy(b[16:32], p.Prefix[:])
	return NDPPrefixInformationOptionSize
}

// EncodeNDPMTUOption writes an MTU option at the start of b, which must hold
// NDPMTUOptionSize bytes, and returns that size.
func EncodeNDPMTUOption(b []byte, mtu uint32) int {
	_ = b[NDPMTUOptionSize-1]
	b[0], b[1], b[2], b[3] = NDPOptionMTU, NDPMTUOptionSize/8, 0, 0
	binary.BigEndian.PutUint32(b[4:], mtu)
	return NDPMTUOptionSize
}

// An NDPOptionIterator walks the options of an NDP message without
// allocating:
//
//	it := header.IterateNDPOptions(ns.Options())
//	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
//		switch opt.Type { ... }
//	}
//	if it.Err() { ... }
//
// Options of every type are returned; a receiver ignores those it does not
// know (RFC 4861 4.6). A length of zero, or one that runs past the message,
// ends the walk with Err (and makes the message invalid, 6.1 and 7.1).
type NDPOptionIterator struct {
	opts []byte
	off  int
	err  bool
}

// IterateNDPOptions returns an iterator over opts, an NDP message's
// options.
func IterateNDPOptions(opts []byte) NDPOptionIterator {
	return NDPOptionIterator{opts: opts}
}

// Next returns the next option, or false at the end of the options or at
// a malformed one (then Err is true).
func (it *NDPOptionIterator) Next() (NDPOption, bool) {
	if it.off >= len(it.opts) {
		return NDPOption{}, false
	}
	if it.off+2 > len(it.opts) {
		return it.fail()
	}
	n := int(it.opts[it.off+1]) * 8
	if n == 0 || it.off+n > len(it.opts) {
		return it.fail()
	}
	o := NDPOption{Type: it.opts[it.off], Data: it.opts[it.off+2 : it.off+n]}
	it.off += n
	return o, true
}

func (it *NDPOptionIterator) fail() (NDPOption, bool) {
	it.err, it.off = true, len(it.opts)
	return NDPOption{}, false
}

// Err reports whether the walk stopped at a malformed option.
func (it *NDPOptionIterator) Err() bool { return it.err }

// ndpOptionsValid checks every option's length, and reports whether there
// is a source link-layer address option.
func ndpOptionsValid(opts []byte) (valid, hasSLLA bool) {
	it := IterateNDPOptions(opts)
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		if o.Type == NDPOptionSourceLinkLayerAddress {
			hasSLLA = true
		}
	}
	return !it.Err(), hasSLLA
}

// An NDPError says why an NDP message is invalid (RFC 4861 6.1, 7.1), and
// must be silently discarded. NDPValid, the zero value, means it is valid.
// Like DropReason it is a small dense integer (NumNDPErrors) that can index
// counters.
type NDPError uint8

const (
	// NDPValid: the message passes the checks.
	NDPValid NDPError = iota
	// NDPNotNDP: not a router or neighbor solicitation or advertisement.
	NDPNotNDP
	// NDPBadHopLimit: an IP Hop Limit other than 255, so the message
	// may come from off the link.
	NDPBadHopLimit
	// NDPBadChecksum: the ICMPv6 checksum does not verify.
	NDPBadChecksum
	// NDPBadCode: an ICMP Code other than 0.
	NDPBadCode
	// NDPTooShort: shorter than the message's fixed part.
	NDPTooShort
	// NDPBadOptionLength: an option of length 0, or running past the
	// message.
	NDPBadOptionLength
	// NDPTargetMulticast: a neighbor message whose target is multicast.
	NDPTargetMulticast
	// NDPSourceLinkLayerFromUnspecified: a solicitation from the
	// unspecified address with a source link-layer address option.
	NDPSourceLinkLayerFromUnspecified
	// NDPUnspecifiedSourceNotSolicitedNode: a neighbor solicitation from
	// the unspecified address (duplicate address detection) not sent to
	// a solicited-node multicast address.
	NDPUnspecifiedSourceNotSolicitedNode
	// NDPSolicitedToMulticast: a neighbor advertisement to a multicast
	// address with the S flag set.
	NDPSolicitedToMulticast
	// NDPSourceNotLinkLocal: a router advertisement from other than a
	// link-local address.
	NDPSourceNotLinkLocal

	// NumNDPErrors is the number of NDPError values.
	NumNDPErrors
)

var ndpErrorNames = [NumNDPErrors]string{
	NDPValid:                             "valid",
	NDPNotNDP:                            "not_ndp",
	NDPBadHopLimit:                       "bad_hop_limit",
	NDPBadChecksum:                       "bad_checksum",
	NDPBadCode:                           "bad_code",
	NDPTooShort:                          "too_short",
	NDPBadOptionLength:                   "bad_option_length",
	NDPTargetMulticast:                   "target_multicast",
	NDPSourceLinkLayerFromUnspecified:    "source_link_layer_from_unspecified",
	NDPUnspecifiedSourceNotSolicitedNode: "unspecified_source_not_solicited_node",
	NDPSolicitedToMulticast:              "solicited_to_multicast",
	NDPSourceNotLinkLocal:                "source_not_link_local",
}

// String returns the error in snake case, fit for a metric label value.
func (e NDPError) String() string {
	if e < NumNDPErrors {
		return ndpErrorNames[e]
	}
	return "unknown"
}

// ValidateNDP applies the validity checks of RFC 4861 (6.1.1, 6.1.2, 7.1.1,
// 7.1.2) to m, a router or neighbor solicitation or advertisement, the
// upper-layer packet of ip: Hop Limit 255, the checksum, Code 0, the
// length of the fixed part, every option's length, and the rules of each
// type about the target and the addresses. Once it returns NDPValid, the
// accessors of the message's view are safe to call.
func ValidateNDP(ip IPv6, m ICMPv6) NDPError {
	if len(m) < ICMPv6MinimumSize {
		return NDPTooShort
	}
	var fixed int
	switch m.Type() {
	case ICMPv6RouterSolicitation:
		fixed = NDPRouterSolicitationSize
	case ICMPv6RouterAdvertisement:
		fixed = NDPRouterAdvertisementSize
	case ICMPv6NeighborSolicitation, ICMPv6NeighborAdvertisement:
		fixed = NDPNeighborMessageSize
	default:
		return NDPNotNDP
	}
	if ip.HopLimit() != NDPHopLimit {
		return NDPBadHopLimit
	}
	if !m.IsChecksumValid(ip.PseudoHeaderSum(ProtocolICMPv6, len(m))) {
		return NDPBadChecksum
	}
	if m.Code() != 0 {
		return NDPBadCode
	}
	if len(m) < fixed {
		return NDPTooShort
	}
	ok, hasSLLA := ndpOptionsValid(m[fixed:])
	if !ok {
		return NDPBadOptionLength
	}
	src, dst := ip.Source(), ip.Destination()
	switch m.Type() {
	case ICMPv6RouterSolicitation:
		if IsIPv6Unspecified(src) && hasSLLA {
			return NDPSourceLinkLayerFromUnspecified
		}
	case ICMPv6RouterAdvertisement:
		if !IsIPv6LinkLocalUnicast(src) {
			return NDPSourceNotLinkLocal
		}
	case ICMPv6NeighborSolicitation:
		if IsIPv6Multicast(NDPNeighborSolicitation(m).TargetAddress()) {
			return NDPTargetMulticast
		}
		if IsIPv6Unspecified(src) {
			if !IsSolicitedNodeMulticast(dst) {
				return NDPUnspecifiedSourceNotSolicitedNode
			}
			if hasSLLA {
				return NDPSourceLinkLayerFromUnspecified
			}
		}
	case ICMPv6NeighborAdvertisement:
		na := NDPNeighborAdvertisement(m)
		if IsIPv6Multicast(na.TargetAddress()) {
			return NDPTargetMulticast
		}
		if IsIPv6Multicast(dst) && na.Solicited() {
			return NDPSolicitedToMulticast
		}
	}
	return NDPValid
}
