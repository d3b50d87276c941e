package rss

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// RandomKey returns a key of size bytes (KeySize or KeySize52) read from r,
// or from crypto/rand when r is nil. A random key makes the flow-to-queue
// mapping unpredictable to remote hosts, so they cannot aim traffic at one
// queue; pass a seeded reader (a math/rand.Rand, or math/rand/v2's ChaCha8)
// for a reproducible key.
//
// A random key is not symmetric: the two directions of a flow usually land
// on different queues. That is what a host terminating its own connections
// wants; a middlebox that sees both directions wants SymmetricKey.
func RandomKey(r io.Reader, size int) ([]byte, error) {
	if size != KeySize && size != KeySize52 {
		return nil, fmt.Errorf("rss: random key of %d bytes, want %d or %d", size, KeySize, KeySize52)
	}
	if r == nil {
		r = crand.Reader
	}
	key := make([]byte, size)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, fmt.Errorf("rss: read random key: %w", err)
	}
	return key, nil
}

// ParseKey parses a key as ethtool prints and takes it ("ethtool -x" prints
// 6d:5a:56:...; "ethtool -X IF hkey" takes the same), or comma-separated
// (6d,5a,56,... or 0x6d, 0x5a, ... as C sources and the Microsoft
// specification write it), or separated by white space, or as one run of
// hex digits (6d5a56...). Each
// byte is one or two hex digits, optionally after 0x, with spaces allowed
// around it. The names "default" and "symmetric" give DefaultKey and
// SymmetricKey. The result has KeySize or KeySize52 bytes; errors name the
// offending byte by its index (from 0) or the length found.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "default":
		return append([]byte(nil), DefaultKey[:]...), nil
	case "symmetric":
		return append([]byte(nil), SymmetricKey[:]...), nil
	case "":
		return nil, errors.New("rss: empty key")
	}
	var key []byte
	switch {
	case strings.ContainsRune(s, ':') && strings.ContainsRune(s, ','):
		return nil, errors.New("rss: key mixes ':' and ',' separators")
	case strings.ContainsAny(s, ":, \t\n"):
		var fields []string
		switch {
		case strings.ContainsRune(s, ':'):
			fields = strings.Split(s, ":")
		case strings.ContainsRune(s, ','):
			fields = strings.Split(s, ",")
			// A trailing comma, as in a C initializer, ends the list.
			if len(fields) > 1 && strings.TrimSpace(fields[len(fields)-1]) == "" {
				fields = fields[:len(fields)-1]
			}
		default:
			fields = strings.Fields(s)
		}
		key = make([]byte, 0, len(fields))
		for i, f := range fields {
			b, err := parseKeyByte(f)
			if err != nil {
				return nil, fmt.Errorf("rss: key byte %d %q: %w", i, strings.TrimSpace(f), err)
			}
			key = append(key, b)
		}
	default:
		digits := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
		for i := 0; i < len(digits); i++ {
			if !isHexDigit(digits[i]) {
				pair := digits[i&^1 : min(i&^1+2, len(digits))]
				return nil, fmt.Errorf("rss: key byte %d %q: not hex (want default, symmetric or hex bytes)", i/2, pair)
			}
		}
		if len(digits)%2 != 0 {
			return nil, fmt.Errorf("rss: key has %d hex digits, not a whole number of bytes", len(digits))
		}
		key = make([]byte, 0, len(digits)/2)
		for i := 0; i < len(digits); i += 2 {
			b, err := strconv.ParseUint(digits[i:i+2], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("rss: key byte %d %q: not hex", i/2, digits[i:i+2])
			}
			key = append(key, byte(b))
		}
	}
	if len(key) != KeySize && len(key) != KeySize52 {
		return nil, fmt.Errorf("rss: key has %d bytes, want %d or %d", len(key), KeySize, KeySize52)
	}
	return key, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func parseKeyByte(f string) (byte, error) {
	f = strings.TrimSpace(f)
	f = strings.TrimPrefix(strings.TrimPrefix(f, "0x"), "0X")
	if len(f) == 0 || len(f) > 2 {
		return 0, errors.New("want one or two hex digits")
	}
	b, err := strconv.ParseUint(f, 16, 8)
	if err != nil {
		return 0, errors.New("not hex")
	}
	return byte(b), nil
}

// FormatKey formats key as ethtool prints it: lower-case hex bytes
// separated by colons. ParseKey reads it back.
func FormatKey(key []byte) string {
	const hex = "0123456789abcdef"
	if len(key) == 0 {
		return ""
	}
	b := make([]byte, 0, len(key)*3-1)
	for i, k := range key {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[k>>4], hex[k&15])
	}
	return string(b)
}

// ParseEndpoint parses an address with an optional port, as a packet's
// source or destination is written on a command line: 192.0.2.1,
// 192.0.2.1:80, 2001:db8::1, [2001:db8::1] or [2001:db8::1]:80. hasPort
// tells whether a port was given. An IPv6 address with a port needs the
// brackets, since "2001:db8::1:80" is itself an address. Zones (fe80::1%eth0)
// are refused: the NIC hashes the address bytes and nothing else. An
// IPv4-mapped IPv6 address stays IPv6, as it is on the wire.
func ParseEndpoint(s string) (ep netip.AddrPort, hasPort bool, err error) {
	host, portStr := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.AddrPort{}, false, fmt.Errorf("rss: address %q: missing ']'", s)
		}
		host, rest := s[1:end], s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return netip.AddrPort{}, false, fmt.Errorf("rss: address %q: unexpected %q after ']'", s, rest)
			}
			portStr, hasPort = rest[1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.AddrPort{}, false, fmt.Errorf("rss: address %q: not an IPv6 address in brackets", s)
		}
		return finishEndpoint(s, a, portStr, hasPort)
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		host, portStr, hasPort = s[:i], s[i+1:], true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("rss: address %q: not an IP address", s)
	}
	return finishEndpoint(s, a, portStr, hasPort)
}

func finishEndpoint(s string, a netip.Addr, portStr string, hasPort bool) (netip.AddrPort, bool, error) {
	if a.Zone() != "" {
		return netip.AddrPort{}, false, fmt.Errorf("rss: address %q: zones are not hashed; drop %%%s", s, a.Zone())
	}
	var port uint64
	if hasPort {
		var err error
		port, err = strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return netip.AddrPort{}, false, fmt.Errorf("rss: address %q: port %q is not a number from 0 to 65535", s, portStr)
		}
	}
	return netip.AddrPortFrom(a, uint16(port)), hasPort, nil
}
