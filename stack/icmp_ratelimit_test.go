package stack

import (
	"testing"
	"time"
)

// TestICMPErrorsAreRateLimited: docs/ARCHITECTURE.md promises rate-limited
// ICMP errors (Config.ICMPErrorsPerSecond, a token bucket), so that a flood
// of datagrams to closed ports cannot turn the stack into an amplifier. A
// burst of 50 gets 10 port unreachables at 10 per second; the rest are
// counted as icmp_rate_limited; a second later the bucket has refilled.
func TestICMPErrorsAreRateLimited(t *testing.T) {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", func(c *Config) { c.ICMPErrorsPerSecond = 10 })
	ep, _ := a.BindUDP(0, UDPOptions{})
	// One datagram first, so that both sides have resolved each other
	// (a burst to an unresolved neighbour waits in a bounded queue).
	ep.SendTo([]byte("x"), ip4("10.0.0.2"), 9999)
	n.run()
	n.advance(time.Second) // the bucket full again
	st := b.Stats()
	sent0, noSock0 := st.ICMPErrorsSent, st.Drops[DropNoSocket]
	burst := func() {
		for range 50 {
			ep.SendTo([]byte("x"), ip4("10.0.0.2"), 9999)
		}
		n.run()
	}
	burst()
	if got := st.Drops[DropNoSocket] - noSock0; got != 50 || st.ICMPErrorsSent-sent0 != 10 || st.Drops[DropICMPRateLimited] != 40 {
		t.Fatalf("50 datagrams to a closed port: no_socket %d, ICMP errors sent %d, icmp_rate_limited %d; want 50, 10, 40",
			got, st.ICMPErrorsSent-sent0, st.Drops[DropICMPRateLimited])
	}
	n.advance(time.Second)
	burst()
	if st.ICMPErrorsSent-sent0 != 20 || st.Drops[DropICMPRateLimited] != 80 {
		t.Fatalf("after a second, another 50: ICMP errors sent %d, icmp_rate_limited %d; want 20, 80", st.ICMPErrorsSent-sent0, st.Drops[DropICMPRateLimited])
	}
	for {
		if _, ok := ep.Err(); !ok {
			break
		}
	}
	ep.Close()
	n.checkNoLeaks()
}
