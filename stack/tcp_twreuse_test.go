package stack

import (
	"errors"
	"testing"
	"time"
)

// twoPorts is a port picker with two local ports.
type twoPorts struct{ used [2]bool }

func (p *twoPorts) PickIPv4(local, remote [4]byte, remotePort uint16) (uint16, error) {
	for i := range p.used {
		if !p.used[i] {
			p.used[i] = true
			return uint16(50000 + i), nil
		}
	}
	return 0, ErrNoEphemeralPort
}

func (p *twoPorts) Release(port uint16) bool {
	i := int(port) - 50000
	if i < 0 || i >= len(p.used) || !p.used[i] {
		return false
	}
	p.used[i] = false
	return true
}

// TestDialReusesAQuietTimeWaitPort: with every local port held by
// connections of ours in TIME-WAIT (we closed first), a dial to the same
// remote takes the port of one that used timestamps and has heard nothing
// for a second, starts its sequence numbers above the old ones, and
// completes an exchange; before that second, or with NoTimeWaitReuse, the
// dial fails for want of a port.
func TestDialReusesAQuietTimeWaitPort(t *testing.T) {
	for _, noReuse := range []bool{false, true} {
		picker := &twoPorts{}
		m := tcpBenchPair(t, func(c *Config) { c.TCP.Ports, c.TCP.NoTimeWaitReuse = picker, noReuse }, echoServer)
		a := m.stacks[0]
		a.tcp.cfg.Ports = picker // the client's only: the server has no picker of its own
		m.stacks[1].tcp.cfg.Ports = nil
		exchange := func() (*TCPConn, error) {
			r := &rrClient{limit: 1}
			c, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: r.handle, NoDelay: true})
			if err != nil {
				return nil, err
			}
			if !runUntil(m, func() bool { return r.done >= 1 }, 100) {
				t.Fatalf("no exchange on %v (%s)", c.id, c.State())
			}
			c.Close()
			runUntil(m, func() bool { return c.State() == "TIME-WAIT" }, 100)
			return c, nil
		}
		first, err := exchange()
		if err != nil {
			t.Fatal(err)
		}
		lastSeq := first.sndNxt
		if _, err := exchange(); err != nil {
			t.Fatal(err)
		}
		if _, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{}); !errors.Is(err, ErrNoEphemeralPort) {
			t.Fatalf("both ports in TIME-WAIT for less than a second: %v, want %v", err, ErrNoEphemeralPort)
		}
		m.clock.Advance(1100 * time.Millisecond)
		m.step()
		c, err := exchange()
		if noReuse {
			if !errors.Is(err, ErrNoEphemeralPort) || a.TCPStats().TimeWaitReused != 0 {
				t.Fatalf("NoTimeWaitReuse: %v, %d reused", err, a.TCPStats().TimeWaitReused)
			}
			continue
		}
		if err != nil {
			t.Fatalf("a second later: %v", err)
		}
		if a.TCPStats().TimeWaitReused != 1 || c.id.localPort != first.id.localPort && c.id.localPort != 50001 {
			t.Fatalf("reused %d, port %d", a.TCPStats().TimeWaitReused, c.id.localPort)
		}
		if c.id.localPort == first.id.localPort && !seqGT(c.iss, lastSeq) {
			t.Errorf("the new connection's ISS %d is not above the old one's last sequence number %d", c.iss, lastSeq)
		}
	}
}
