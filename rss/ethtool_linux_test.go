package rss

import (
	"errors"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/nicq/netlab/nettest"
	"golang.org/x/sys/unix"
)

// vethNS makes a namespace holding veth0 <-> veth1 with queues queues each.
func vethNS(t *testing.T, queues int) *nettest.NS {
	t.Helper()
	ns := nettest.NewNS(t)
	nettest.VethPair(t, ns, "veth0", "veth1", queues)
	return ns
}

// TestReadNICRSSOfVethIsNotSupported reads the RSS key of a veth device,
// whose driver has none, through the real ioctl.
func TestReadNICRSSOfVethIsNotSupported(t *testing.T) {
	ns := vethNS(t, 2)
	var c NICRSS
	var err error
	if derr := ns.Do(func() error { c, err = ReadNICRSS("veth0"); return nil }); derr != nil {
		t.Fatal(derr)
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("ReadNICRSS(veth0) = %+v, %v; want an error wrapping ErrNotSupported", c, err)
	}
	const want = "read RSS key of veth0: RSS hash key/table not supported by veth0 (driver veth)"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestWriteNICRSSOfVethIsNotSupported(t *testing.T) {
	ns := vethNS(t, 2)
	var err error
	cfg := NICRSS{Key: DefaultKey[:], RETA: []uint32{0, 1, 0, 1}}
	if derr := ns.Do(func() error { err = WriteNICRSS("veth1", cfg); return nil }); derr != nil {
		t.Fatal(derr)
	}
	const want = "write RSS key of veth1: RSS hash key/table not supported by veth1 (driver veth)"
	if !errors.Is(err, ErrNotSupported) || err.Error() != want {
		t.Errorf("WriteNICRSS(veth1) = %v, want %q wrapping ErrNotSupported", err, want)
	}
}

func TestWriteNICRSSWithNothingToChangeIsRefused(t *testing.T) {
	err := WriteNICRSS("lo", NICRSS{})
	if err == nil || !strings.HasPrefix(err.Error(), "write RSS key of lo: nothing to change") {
		t.Errorf("WriteNICRSS(lo, {}) = %v, want a 'nothing to change' error", err)
	}
}

// TestReadNICChannelsOfVethReportsItsQueues checks the ioctl plumbing on a
// call veth does answer: the queue counts it was created with.
func TestReadNICChannelsOfVethReportsItsQueues(t *testing.T) {
	ns := vethNS(t, 3)
	var ch Channels
	var err error
	if derr := ns.Do(func() error { ch, err = ReadNICChannels("veth0"); return nil }); derr != nil {
		t.Fatal(derr)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := Channels{MaxRX: 3, MaxTX: 3, RX: 3, TX: 3}
	if ch != want {
		t.Errorf("ReadNICChannels(veth0) = %+v, want %+v", ch, want)
	}
}

func TestReadNICRXRingsOfVethIsNotSupported(t *testing.T) {
	ns := vethNS(t, 2)
	var err error
	if derr := ns.Do(func() error { _, err = ReadNICRXRings("veth0"); return nil }); derr != nil {
		t.Fatal(derr)
	}
	const want = "read receive ring count of veth0: receive ring count not supported by veth0 (driver veth)"
	if !errors.Is(err, ErrNotSupported) || err.Error() != want {
		t.Errorf("ReadNICRXRings(veth0) = %v, want %q wrapping ErrNotSupported", err, want)
	}
}

// TestEthtoolOnMissingInterfaceSaysSo looks up a name that does not exist
// in a fresh namespace, and names that cannot exist anywhere.
func TestEthtoolOnMissingInterfaceSaysSo(t *testing.T) {
	ns := nettest.NewNS(t)
	var rssErr, chErr error
	if derr := ns.Do(func() error {
		_, rssErr = ReadNICRSS("nosuch0")
		_, chErr = ReadNICChannels("nosuch0")
		return nil
	}); derr != nil {
		t.Fatal(derr)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{rssErr, "read RSS key of nosuch0: no such device"},
		{chErr, "read channel counts of nosuch0: no such device"},
	} {
		if c.err == nil || c.err.Error() != c.want || !errors.Is(c.err, unix.ENODEV) || errors.Is(c.err, ErrNotSupported) {
			t.Errorf("got %v, want %q wrapping ENODEV (and not ErrNotSupported)", c.err, c.want)
		}
	}
	for _, name := range []string{"", "a-name-of-16-byt"} {
		_, err := ReadNICRSS(name)
		if err == nil || !strings.Contains(err.Error(), "must be 1 to 15 bytes") {
			t.Errorf("ReadNICRSS(%q) = %v, want a name length error", name, err)
		}
	}
}
