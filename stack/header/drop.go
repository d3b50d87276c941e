package header

// A DropReason says why bytes from the wire are not a valid header. The zero
// value, DropNone, means they are. Values are dense, so a stack can count
// drops in a [NumDropReasons]uint64 indexed by reason.
type DropReason uint8

const (
	// DropNone: the header is valid.
	DropNone DropReason = iota
	// DropTruncated: fewer bytes than the fixed part of the header.
	DropTruncated
	// DropBadVersion: an IPv4 header whose version is not 4, or an IPv6
	// header whose version is not 6.
	DropBadVersion
	// DropBadIHL: an IPv4 Internet Header Length below 5 words, or beyond
	// the bytes received.
	DropBadIHL
	// DropBadTotalLength: an IPv4 Total Length shorter than the header or
	// longer than the bytes received.
	DropBadTotalLength
	// DropBadChecksum: an IPv4 header or ICMPv4 message whose checksum does
	// not verify (TCP and UDP checksums are counted by their layers with
	// the same reason).
	DropBadChecksum
	// DropBadFragment: an IPv4 fragment that would end past the largest
	// datagram, 65535 bytes.
	DropBadFragment
	// DropBadPayloadLength: an IPv6 Payload Length beyond the bytes
	// received.
	DropBadPayloadLength
	// DropBadDataOffset: a TCP Data Offset below 5 words, or beyond the
	// segment.
	DropBadDataOffset
	// DropBadTCPOption: a TCP option with a length below 2, running past
	// the options, or of the wrong length for its kind.
	DropBadTCPOption
	// DropBadUDPLength: a UDP Length below 8 or beyond the datagram.
	DropBadUDPLength
	// DropBadARP: an ARP packet for other than Ethernet and IPv4
	// addresses, or with an operation other than request and reply.
	DropBadARP

	// NumDropReasons is the number of DropReason values.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropNone:             "none",
	DropTruncated:        "truncated",
	DropBadVersion:       "bad_version",
	DropBadIHL:           "bad_ihl",
	DropBadTotalLength:   "bad_total_length",
	DropBadChecksum:      "bad_checksum",
	DropBadFragment:      "bad_fragment",
	DropBadPayloadLength: "bad_payload_length",
	DropBadDataOffset:    "bad_data_offset",
	DropBadTCPOption:     "bad_tcp_option",
	DropBadUDPLength:     "bad_udp_length",
	DropBadARP:           "bad_arp",
}

// String returns the reason in snake case, fit for a metric label value.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}
