//go:build linux

package nettest

import (
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func interfaceNames() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names, nil
}

// TestNamespaceHoldsOnlyItsOwnDevices makes a veth pair and a TAP in a
// namespace and checks they are there, with their queues, and nowhere else.
func TestNamespaceHoldsOnlyItsOwnDevices(t *testing.T) {
	ns := NewNS(t)
	VethPair(t, ns, "mkv0", "mkv1", 3)
	taps := Tap(t, ns, "mktap0", 2)
	if len(taps) != 2 {
		t.Fatalf("Tap returned %d queue files, want 2", len(taps))
	}
	var inside []string
	if err := ns.Do(func() (err error) { inside, err = interfaceNames(); return err }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"lo", "mktap0", "mkv0", "mkv1"}; !slices.Equal(inside, want) {
		t.Errorf("interfaces in the namespace: %v, want %v", inside, want)
	}
	l, err := ns.Netlink().LinkByName("mkv1")
	if err != nil {
		t.Fatal(err)
	}
	if a := l.Attrs(); a.NumRxQueues != 3 || a.NumTxQueues != 3 || a.Flags&net.FlagUp == 0 {
		t.Errorf("mkv1: %d rx and %d tx queues, flags %v; want 3, 3, up", a.NumRxQueues, a.NumTxQueues, a.Flags)
	}
	for _, name := range []string{"mkv0", "mkv1", "mktap0"} {
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("%s is visible outside the test's namespace", name)
		}
	}
}

// TestDoReturnsTheErrorAndLeavesTheNamespace checks fn's error comes back
// and that the caller's namespace is not changed by Do.
func TestDoReturnsTheErrorAndLeavesTheNamespace(t *testing.T) {
	ns := NewNS(t)
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	boom := errors.New("boom")
	var inside netns.NsHandle
	err = ns.Do(func() error {
		h, err := netns.Get()
		if err != nil {
			return err
		}
		inside = h
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Do = %v, want fn's error", err)
	}
	defer inside.Close()
	if !inside.Equal(ns.Handle()) {
		t.Errorf("fn ran in %v, want the test namespace %v", inside, ns.Handle())
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Errorf("calling goroutine's namespace changed from %v to %v", before, after)
	}
}
