//go:build linux

package tap

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

func TestTAPAgainstKernel(t *testing.T) {
	h := nettest.NewNS(t).Handle()
	var nic *NIC
	var warned []string
	err := nettest.DoIn(h, func() (err error) {
		nic, err = Open(Config{Name: "mkt0", Queues: 2, Warn: func(m string) { warned = append(warned, m) }})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	if !nic.Steered() {
		t.Fatalf("the steering program did not attach: %v", warned)
	}
	drivertest.ConfigureKernel(t, h, "mkt0", nic.MAC())
	drivertest.Exercise(t, drivertest.Setup{NIC: nic, KernelNS: h, KernelIf: "mkt0", Steered: true}, 32)
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []Config{
		{Name: "", Queues: 1},
		{Name: "this-name-is-too-long", Queues: 1},
		{Name: "x", Queues: 0},
		{Name: "x", Queues: 300},
	} {
		if _, err := Open(c); err == nil {
			t.Errorf("Open(%+v) succeeded", c)
		}
	}
}

// TestOpenRaisesTheQueueLength: the kernel's queue for each TAP queue
// (the device's txqueuelen, 1000 when made) is raised to QueueLen's
// default, or to what Config asks; one already longer is left alone.
func TestOpenRaisesTheQueueLength(t *testing.T) {
	h := nettest.NewNS(t).Handle()
	qlen := func() int {
		var n int
		if err := nettest.DoIn(h, func() error {
			l, err := netlink.LinkByName("mkt0")
			if err == nil {
				n = l.Attrs().TxQLen
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := func(ask int) *NIC {
		var nic *NIC
		if err := nettest.DoIn(h, func() (err error) {
			nic, err = Open(Config{Name: "mkt0", Queues: 1, QueueLen: ask, NoSteering: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return nic
	}
	// A device Open makes goes when it closes.
	for _, tc := range []struct{ ask, want int }{{0, DefaultQueueLen}, {4 * DefaultQueueLen, 4 * DefaultQueueLen}} {
		nic := open(tc.ask)
		if got := qlen(); got != tc.want {
			t.Errorf("QueueLen %d: txqueuelen %d, want %d", tc.ask, got, tc.want)
		}
		nic.Close()
	}
	// A persistent one set longer (as the lab's are made) stays as it is.
	if err := nettest.DoIn(h, func() error {
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: "mkt0"},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_MULTI_QUEUE_DEFAULTS,
			Queues:    1,
		}
		if err := netlink.LinkAdd(tap); err != nil {
			return err
		}
		for _, f := range tap.Fds {
			f.Close()
		}
		return netlink.LinkSetTxQLen(tap, 3*DefaultQueueLen)
	}); err != nil {
		t.Fatal(err)
	}
	nic := open(0)
	defer nic.Close()
	if got := qlen(); got != 3*DefaultQueueLen {
		t.Errorf("a device at %d frames: txqueuelen %d after Open", 3*DefaultQueueLen, got)
	}
}
