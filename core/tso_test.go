package core

import (
	"testing"

	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack"
)

// A NIC with TSO gets stacks that use it, unless the runtime is told not
// to (NoTSO); a NIC without TSO never does.
func TestStacksUseTheNICsTSO(t *testing.T) {
	for _, c := range []struct {
		name          string
		nicTSO, noTSO bool
		want          bool
	}{
		{"nic with TSO", true, false, true},
		{"NoTSO", true, true, false},
		{"nic without TSO", false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
				{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Queues: 1, TSO: c.nicTSO},
				{MAC: [6]byte{2, 0, 0, 0, 0, 2}, Queues: 1, TSO: c.nicTSO},
			}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			rt := start(t, w.NIC(0), [4]byte{10, 0, 0, 1}, func(cfg *Config) { cfg.Cores, cfg.NoTSO = 1, c.noTSO })
			var got bool
			if err := rt.DoWait(ctxT(t), 0, func(s *stack.Stack) { got = s.Config().TSO }); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("the stack's TSO is %v, want %v", got, c.want)
			}
		})
	}
}
