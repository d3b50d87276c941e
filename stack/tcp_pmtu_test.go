package stack

import (
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/header"
)

// TestTCPPathMTUDiscovery: every TCP segment goes with Don't Fragment set
// (RFC 1191: a router then answers one too big with the MTU it takes
// rather than fragmenting it, and TestTCPFragmentationNeededLowersTheMSSAndResends
// has what TCP does with the answer), UDP's datagrams without it; and once
// a path MTU is learned, a new connection to that destination starts at
// its size.
func TestTCPPathMTUDiscovery(t *testing.T) {
	n, a, _, l := tcpPair(t)
	var tcpFrames, withoutDF, udpWithDF int
	n.filter = func(from int, f []byte) bool {
		if header.Ethernet(f).Type() != header.EtherTypeIPv4 {
			return true
		}
		ip := header.IPv4(header.Ethernet(f).Payload())
		switch ip.Protocol() {
		case header.ProtocolTCP:
			tcpFrames++
			if !ip.DontFragment() {
				withoutDF++
			}
		case header.ProtocolUDP:
			if ip.DontFragment() {
				udpWithDF++
			}
		}
		return true
	}
	c, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	sc, _ := l.Accept()
	c.Write(pattern(5000))
	n.run()
	var got []byte
	readAll(sc, &got)
	n.advance(50 * time.Millisecond)
	u, err := a.BindUDP(5353, UDPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.SendTo([]byte("hello"), ip4("10.0.0.2"), 5353)
	n.run()
	if tcpFrames < 6 || withoutDF != 0 || udpWithDF != 0 {
		t.Fatalf("%d TCP frames, %d of them without DF; %d UDP datagrams with DF", tcpFrames, withoutDF, udpWithDF)
	}
	if c.sndMSS != 1460 {
		t.Fatalf("MSS %d before any path MTU is learned, want 1460", c.sndMSS)
	}
	// A router says the path to 10.0.0.2 takes 1200 bytes.
	icmpAboutTCP(n, a, header.ICMPv4DestinationUnreachable, header.ICMPv4FragmentationNeeded, 1200, c.LocalPort(), 80, c.sndUna)
	c2, err := a.DialTCP(ip4("10.0.0.2"), 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	if c2.sndMSS != 1160 {
		t.Fatalf("a new connection over a path of 1200 bytes starts at MSS %d, want 1160", c2.sndMSS)
	}
}

// TestTCPPathMTUExpires: a path MTU learned from a fragmentation-needed
// error bounds new connections to that destination for ten minutes
// (pmtuLifetime, docs/ARCHITECTURE.md), then the path is the link's
// again and a new connection starts at MSS 1460.
func TestTCPPathMTUExpires(t *testing.T) {
	n, a, b, _ := tcpPair(t)
	dst := ip4("10.0.0.2")
	c, err := a.DialTCP(dst, 80, TCPConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.run()
	jump := func(d time.Duration) {
		n.clock.Advance(d)
		a.Advance()
		b.Advance()
		n.run()
	}
	dialMSS := func() int {
		t.Helper()
		c, err := a.DialTCP(dst, 80, TCPConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.run()
		if c.State() != "ESTABLISHED" {
			t.Fatalf("new connection %s", c.State())
		}
		return c.sndMSS
	}
	// A router says the path to 10.0.0.2 takes 1200 bytes.
	icmpAboutTCP(n, a, header.ICMPv4DestinationUnreachable, header.ICMPv4FragmentationNeeded, 1200, c.LocalPort(), 80, c.sndUna)
	if got := a.PathMTU(dst); got != 1200 {
		t.Fatalf("path MTU %d after the error, want 1200", got)
	}
	jump(10*time.Minute - time.Second)
	if got := a.PathMTU(dst); got != 1200 {
		t.Fatalf("path MTU %d a second before ten minutes, want 1200", got)
	}
	if mss := dialMSS(); mss != 1160 {
		t.Fatalf("a new connection a second before ten minutes starts at MSS %d, want 1160", mss)
	}
	jump(2 * time.Second)
	if got := a.PathMTU(dst); got != 1500 {
		t.Fatalf("path MTU %d past ten minutes, want the link's 1500", got)
	}
	if mss := dialMSS(); mss != 1460 {
		t.Fatalf("a new connection past ten minutes starts at MSS %d, want 1460", mss)
	}
}
