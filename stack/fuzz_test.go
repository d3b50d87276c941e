package stack

import (
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
)

// seedFrames records the frames of a ping, a UDP echo, a fragmented echo
// and an ICMP error between two stacks, as seeds for the fuzzer.
func seedFrames(t *testing.T) [][]byte {
	n := newTestNet(t)
	a := n.add("10.0.0.1/24", nil)
	b := n.add("10.0.0.2/24", nil)
	var frames [][]byte
	n.filter = func(_ int, f []byte) bool {
		frames = append(frames, append([]byte(nil), f...))
		return true
	}
	b.BindUDP(7, UDPOptions{Handler: echoHandler})
	ep, _ := a.BindUDP(0, UDPOptions{Handler: func(*UDPEndpoint, []byte, [4]byte, uint16) {}})
	a.Start()
	a.Ping(ip4("10.0.0.2"), 1, 1, 32)
	ep.SendTo([]byte("seed"), ip4("10.0.0.2"), 7)
	ep.SendTo(make([]byte, 3000), ip4("10.0.0.2"), 7)
	ep.SendTo([]byte("closed"), ip4("10.0.0.2"), 9)
	n.run()
	return frames
}

// FuzzStackInput feeds arbitrary frames to a stack: it must never panic,
// and once its timers have run and its sockets are closed, every buffer is
// back in the pool.
func FuzzStackInput(f *testing.F) {
	for _, fr := range seedFrames(&testing.T{}) {
		f.Add(fr)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		n := newTestNet(t)
		// With Warn set, so the report of a bad checksum reads the
		// frame too.
		s := n.add("10.0.0.2/24", func(c *Config) { c.Warn = func(string) {} })
		ep, _ := s.BindUDP(7, UDPOptions{})
		s.LearnNeighbour(ip4("10.0.0.1"), [6]byte{2, 0, 0, 0, 0, 1})
		pool := n.pools[0]
		if len(frame) > pool.FrameSize()-pool.Headroom() {
			frame = frame[:pool.FrameSize()-pool.Headroom()]
		}
		for i := 0; i < 3; i++ { // repeated, so fragments meet their twins
			b := pool.Get()
			copy(b.Append(len(frame)), frame)
			s.Input([]*nicq.Buf{b})
		}
		n.clock.Advance(31 * time.Second)
		s.Advance()
		n.run()
		ep.Close()
		n.run()
		if pool.InUse() != 0 {
			t.Fatalf("%d buffers leaked; drops %v", pool.InUse(), nonZero(s))
		}
	})
}
