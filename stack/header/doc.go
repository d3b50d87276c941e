// Package header owns the wire formats the stack speaks: Ethernet (with
// 802.1Q tag detection), ARP, IPv4, IPv6 (the fixed header), ICMPv4, UDP and
// TCP with its options. Each format is a view: a named []byte (Ethernet,
// IPv4, TCP, ...) whose methods read and write fields in place at named
// offsets, so parsing copies nothing and allocates nothing.
//
// # Validation is a separate step
//
// Accessors do no checking: they assume a view of the right size. A view of
// bytes from the wire comes only from its Parse function (ParseEthernet,
// ParseIPv4, ...), which checks what every later accessor relies on
// (lengths, version, header length fields, and the checksum where it needs
// nothing from another layer) and returns either the view, trimmed to the
// length the header claims, or a DropReason saying why the bytes are not a
// valid header. DropReason is a small dense integer so the stack can keep one
// counter per reason in an array of NumDropReasons.
//
// TCP and UDP checksums cover a pseudo-header from the layer below, and a
// NIC may already have checked them, so they are checked on request:
// IsChecksumValid(checksum.PseudoHeaderIPv4(...)). TCP options are parsed on
// request as well (ParseTCPOptions, or IterateTCPOptions to walk them), since
// what to do with a segment whose options are malformed is the TCP layer's
// decision, not the parser's.
//
// # Building
//
// Each view has an Encode(*XFields) that writes a whole header into a buffer
// the caller has sized (typically the headroom of a packet buffer), and
// setters for the fields that change on the way through the stack. Encode
// for IPv4 also computes the header checksum; the checksums of ICMPv4, UDP
// and TCP cover the payload, so the caller sets them with ComputeChecksum
// once the payload is in place.
//
// Names follow the RFCs that define each format. This package must not know
// about sockets, connections or buffers: it reads and writes bytes.
package header
