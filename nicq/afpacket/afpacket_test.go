//go:build linux

package afpacket

import (
	"testing"

	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

func TestAFPacketAgainstKernel(t *testing.T) {
	for _, steer := range []bool{true, false} {
		name := "toeplitz"
		if !steer {
			name = "hash"
		}
		t.Run(name, func(t *testing.T) {
			v := drivertest.NewVeth(t, 2)
			var nic *NIC
			var warned []string
			err := nettest.DoIn(v.StackNS, func() (err error) {
				nic, err = Open(Config{Interface: v.StackIf, Queues: 2, NoSteering: !steer, Warn: func(m string) { warned = append(warned, m) }})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer nic.Close()
			if nic.Steered() != steer {
				t.Fatalf("steered %v, want %v (%v)", nic.Steered(), steer, warned)
			}
			drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
			drivertest.Exercise(t, drivertest.Setup{NIC: nic, KernelNS: v.KernelNS, KernelIf: v.KernelIf, Steered: steer}, 32)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Config{Interface: "mk-no-such-if", Queues: 1}); err == nil {
		t.Error("Open of a missing interface succeeded")
	}
	if _, err := Open(Config{Interface: "lo", Queues: 0}); err == nil {
		t.Error("Open with 0 queues succeeded")
	}
}
