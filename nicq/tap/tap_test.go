//go:build linux

package tap

import (
	"testing"

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
