package core

import (
	"errors"
	"testing"

	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/stack"
)

// TestLocalPortsBoundActiveOpens: Config.LocalPorts is where the cores'
// dials take their local ports (each core the ports of the range its
// queue receives the replies of), and a range that is no range is
// refused.
func TestLocalPortsBoundActiveOpens(t *testing.T) {
	w := newWire(t, 2)
	start(t, w.NIC(0), addrA, nil)
	b := start(t, w.NIC(1), addrB, func(c *Config) { c.LocalPorts = rss.PortRange{First: 40000, Last: 40999} })
	for c := range b.NumCores() {
		var ports []uint16
		err := b.DoWait(ctxT(t), c, func(s *stack.Stack) {
			for range 20 {
				conn, err := s.DialTCP(addrA, 7, stack.TCPConnOptions{OnEvent: func(*stack.TCPConn, stack.TCPEvent) {}})
				if err != nil {
					t.Errorf("core %d: dial: %v", c, err)
					return
				}
				ports = append(ports, conn.LocalPort())
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if p < 40000 || p > 40999 {
				t.Errorf("core %d dialled from port %d, outside 40000-40999", c, p)
			}
		}
	}
	_, err := Start(Config{NIC: w.NIC(1), StackConfig: func(int) stack.Config { return stack.Config{} }, LocalPorts: rss.PortRange{First: 5000, Last: 4000}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("local ports 5000-4000: %v, want ErrInvalidConfig", err)
	}
}
