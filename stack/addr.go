package stack

import "net/netip"

// A connection's tuple holds both families in one shape: an IPv6 address,
// or an IPv4 address mapped into IPv6 (::ffff:a.b.c.d, RFC 4291 2.5.5.2),
// so one table and one set of connection code serve both. The mapped form
// never appears on the wire; IPv6 input refuses it as a source.

var v4MappedPrefix = [12]byte{10: 0xff, 11: 0xff}

// mapped4 returns a in the tuple's form.
func mapped4(a [4]byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}
}

// is4 reports whether a tuple address is a mapped IPv4 one.
func is4(a *[16]byte) bool { return [12]byte(a[:12]) == v4MappedPrefix }

// unmap4 returns the IPv4 address inside a mapped one.
func unmap4(a [16]byte) [4]byte { return [4]byte(a[12:]) }

// tupleAddr converts a tuple address for the API: a 4-byte netip.Addr for
// IPv4, a 16-byte one for IPv6.
func tupleAddr(a [16]byte) netip.Addr {
	if is4(&a) {
		return netip.AddrFrom4(unmap4(a))
	}
	return netip.AddrFrom16(a)
}
