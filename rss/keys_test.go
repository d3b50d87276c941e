package rss

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
)

// defaultKeyColons is DefaultKey as "ethtool -x" prints it.
const defaultKeyColons = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:" +
	"ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa"

func TestParseKeyAcceptsTheFormsEthtoolAndSourcesWrite(t *testing.T) {
	commas := strings.ReplaceAll(defaultKeyColons, ":", ",")
	cStyle := "0x" + strings.ReplaceAll(defaultKeyColons, ":", ", 0x") + ","
	for name, s := range map[string]string{
		"ethtool colons":    defaultKeyColons,
		"upper case":        strings.ToUpper(defaultKeyColons),
		"commas":            commas,
		"C initializer":     cStyle,
		"spaces":            strings.ReplaceAll(defaultKeyColons, ":", " "),
		"one run":           strings.ReplaceAll(defaultKeyColons, ":", ""),
		"one run with 0x":   "0x" + strings.ReplaceAll(defaultKeyColons, ":", ""),
		"surrounding space": "  " + defaultKeyColons + "\n",
		"name":              "default",
		"single digits":     "6d:5a:56:da:25:5b:e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:c:6a:42:b7:3b:be:ac:1:fa",
	} {
		key, err := ParseKey(s)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(key, DefaultKey[:]) {
			t.Errorf("%s: parsed %x, want the default key", name, key)
		}
	}
	if key, err := ParseKey("Symmetric"); err != nil || !bytes.Equal(key, SymmetricKey[:]) {
		t.Errorf("ParseKey(symmetric) = %x, %v", key, err)
	}
	long := FormatKey(SymmetricKey52[:])
	if key, err := ParseKey(long); err != nil || !bytes.Equal(key, SymmetricKey52[:]) {
		t.Errorf("52-byte key %s: %x, %v", long, key, err)
	}
}

func TestParseKeyErrorsNameTheBadByteOrLength(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty key"},
		{"6d:5a:zz" + defaultKeyColons[8:], `key byte 2 "zz"`},
		{"6d:5a:" + ":" + defaultKeyColons[6:], `key byte 2 ""`},
		{"6d,5a,123," + defaultKeyColons[9:], "key mixes"},
		{"6d,5a,123,00", `key byte 2 "123"`},
		{defaultKeyColons[:len(defaultKeyColons)-3], "key has 39 bytes, want 40 or 52"},
		{defaultKeyColons + ":00", "key has 41 bytes"},
		{strings.ReplaceAll(defaultKeyColons, ":", "")[:79], "79 hex digits"},
		{"6d5aXX" + strings.ReplaceAll(defaultKeyColons, ":", "")[6:], `key byte 2 "XX"`},
		{"fe80::1", `key byte 0 "fe80"`},
	} {
		_, err := ParseKey(c.in)
		if err == nil {
			t.Errorf("ParseKey(%q) accepted", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKey(%q) error %q, want it to say %q", c.in, err, c.want)
		}
	}
}

func TestFormatKeyPrintsLikeEthtool(t *testing.T) {
	if got := FormatKey(DefaultKey[:]); got != defaultKeyColons {
		t.Fatalf("FormatKey(DefaultKey) = %s", got)
	}
	if got := FormatKey(nil); got != "" {
		t.Fatalf("FormatKey(nil) = %q", got)
	}
}

func TestRandomKeyReadsItsSizeFromTheReader(t *testing.T) {
	seeded := func() *rand.ChaCha8 { return rand.NewChaCha8([32]byte{7}) }
	a, err := RandomKey(seeded(), KeySize)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomKey(seeded(), KeySize)
	if len(a) != KeySize || !bytes.Equal(a, b) {
		t.Fatalf("same seed gave %x and %x", a, b)
	}
	want := make([]byte, KeySize52)
	seeded().Read(want)
	if c, _ := RandomKey(seeded(), KeySize52); !bytes.Equal(c, want) {
		t.Fatalf("52-byte key %x, want the reader's first 52 bytes %x", c, want)
	}
	x, _ := RandomKey(nil, KeySize)
	y, _ := RandomKey(nil, KeySize)
	if bytes.Equal(x, y) {
		t.Fatalf("two keys from crypto/rand are equal: %x", x)
	}
	if _, err := NewToeplitz(x); err != nil {
		t.Fatal(err)
	}
	if _, err := RandomKey(nil, 32); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("32-byte random key: %v", err)
	}
	failing := iotest.ErrReader(errors.New("entropy gone"))
	if _, err := RandomKey(failing, KeySize); err == nil || !strings.Contains(err.Error(), "entropy gone") {
		t.Fatalf("failing reader: %v", err)
	}
}

func TestParseEndpointTakesAddressesWithAndWithoutPorts(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    netip.AddrPort
		hasPort bool
	}{
		{"66.9.149.187", netip.MustParseAddrPort("66.9.149.187:0"), false},
		{"66.9.149.187:2794", netip.MustParseAddrPort("66.9.149.187:2794"), true},
		{"0.0.0.0:0", netip.MustParseAddrPort("0.0.0.0:0"), true},
		{"3ffe:2501:200:3::1", netip.MustParseAddrPort("[3ffe:2501:200:3::1]:0"), false},
		{"[::1]", netip.MustParseAddrPort("[::1]:0"), false},
		{"[::1]:80", netip.MustParseAddrPort("[::1]:80"), true},
		{"[::ffff:1.2.3.4]:65535", netip.MustParseAddrPort("[::ffff:1.2.3.4]:65535"), true},
		{"::ffff:1.2.3.4", netip.MustParseAddrPort("[::ffff:1.2.3.4]:0"), false},
	} {
		got, hasPort, err := ParseEndpoint(c.in)
		if err != nil || got != c.want || hasPort != c.hasPort {
			t.Errorf("ParseEndpoint(%q) = %v, %v, %v; want %v, %v", c.in, got, hasPort, err, c.want, c.hasPort)
		}
	}
	if ep, _, _ := ParseEndpoint("::ffff:1.2.3.4"); !ep.Addr().Is6() {
		t.Error("IPv4-mapped address became IPv4; the NIC hashes it as IPv6")
	}
}

func TestParseEndpointRejectsMalformedInput(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "not an IP address"},
		{"1.2.3", "not an IP address"},
		{"1.2.3.4:", `port ""`},
		{"1.2.3.4:65536", `port "65536"`},
		{"1.2.3.4:-1", `port "-1"`},
		{"1.2.3.4:http", `port "http"`},
		{"[::1", "missing ']'"},
		{"[::1]80", "after ']'"},
		{"[1.2.3.4]:80", "not an IPv6 address in brackets"},
		{"[::1]:", `port ""`},
		{"fe80::1%eth0", "zones are not hashed"},
		{"[fe80::1%eth0]:80", "zones are not hashed"},
		{"example.com:80", "not an IP address"},
	} {
		_, _, err := ParseEndpoint(c.in)
		if err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseEndpoint(%q) error %q, want it to say %q", c.in, err, c.want)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(defaultKeyColons)
	f.Add(strings.ReplaceAll(defaultKeyColons, ":", ","))
	f.Add("0x6d, 0x5a,")
	f.Add(strings.ReplaceAll(defaultKeyColons, ":", ""))
	f.Add("symmetric")
	f.Add("6d:5a:zz")
	f.Add("")
	f.Add(FormatKey(SymmetricKey52[:]))
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseKey(s)
		if err != nil {
			if key != nil {
				t.Fatalf("ParseKey(%q) returned %x with error %v", s, key, err)
			}
			return
		}
		if len(key) != KeySize && len(key) != KeySize52 {
			t.Fatalf("ParseKey(%q) accepted a %d-byte key", s, len(key))
		}
		// Whatever was accepted prints and parses back to itself and
		// builds a hash.
		again, err := ParseKey(FormatKey(key))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("ParseKey(FormatKey(%x)) = %x, %v", key, again, err)
		}
		if _, err := NewToeplitz(key); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80", "[::1]", "[fe80::1%eth0]:1", "1.2.3.4:99999", "[::ffff:1.2.3.4]:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, hasPort, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		if !ep.IsValid() || ep.Addr().Zone() != "" {
			t.Fatalf("ParseEndpoint(%q) = %v", s, ep)
		}
		if !hasPort && ep.Port() != 0 {
			t.Fatalf("ParseEndpoint(%q) = %v without a port", s, ep)
		}
		// The canonical form parses back to the same endpoint.
		text := ep.Addr().String()
		if hasPort {
			text = ep.String()
		}
		again, againHasPort, err := ParseEndpoint(text)
		if err != nil || again != ep || againHasPort != hasPort {
			t.Fatalf("ParseEndpoint(%q) = %v, %v; its form %q parses to %v, %v, %v", s, ep, hasPort, text, again, againHasPort, err)
		}
	})
}
