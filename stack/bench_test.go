package stack

import "testing"

// BenchmarkUDPEcho64 is one 64-byte UDP round trip between two stacks over
// the in-test wire (one core, virtual clock): both stacks' full send and
// receive paths plus two frame copies on the wire.
func BenchmarkUDPEcho64(b *testing.B) {
	t := &testing.T{}
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	srv := n.add("10.0.0.2/24", nil)
	srv.BindUDP(7, UDPOptions{Handler: echoHandler})
	got := 0
	ep, _ := a.BindUDP(0, UDPOptions{Handler: func(*UDPEndpoint, []byte, [4]byte, uint16) { got++ }})
	msg := make([]byte, 64)
	ep.SendTo(msg, ip4("10.0.0.2"), 7)
	n.run()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ep.SendTo(msg, ip4("10.0.0.2"), 7)
		n.step()
		n.step()
	}
	b.StopTimer()
	if got < b.N {
		b.Fatalf("%d echoes for %d sends", got, b.N)
	}
}
