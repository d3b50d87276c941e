package stack

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/mem"
)

var bidirSeeds = flag.Int("bidir-seeds", 3, "seeds of TestTCPManyBidirectionalTransfersOverAFaultyWire")
var bidirConns = flag.Int("bidir-conns", 0, "connections of TestTCPManyBidirectionalTransfersOverAFaultyWire")

// TestTCPManyBidirectionalTransfersOverAFaultyWire runs several
// connections at once, each sending size bytes both ways, over the mem
// wire with loss, reordering, duplication and corruption, in virtual time:
// every stream must arrive intact and every connection must close within
// the bound.
func TestTCPManyBidirectionalTransfersOverAFaultyWire(t *testing.T) {
	conns, size := 20, 256<<10
	if *bidirConns > 0 {
		conns = *bidirConns
	}
	if testing.Short() {
		conns, size = 8, 64<<10
	}
	for seed := uint64(1); seed <= uint64(*bidirSeeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			faults := mem.Faults{Loss: 0.05, Reorder: 0.05, ReorderDelay: 200 * time.Microsecond, Duplicate: 0.01, Corrupt: 0.001, Delay: 100 * time.Microsecond}
			m := newMemNet(t, faults, seed, "10.0.0.1/24", "10.0.0.2/24")
			a, b := m.stacks[0], m.stacks[1]
			for _, s := range m.stacks {
				cfg := s.cfg
				cfg.TCP.SendBuffer, cfg.TCP.ReceiveBuffer, cfg.TCP.MinRTO = 64<<10, 64<<10, 50*time.Millisecond
				s.tcp.init(s, cfg.TCP)
			}
			a.LearnNeighbour(ip4("10.0.0.2"), b.mac)
			b.LearnNeighbour(ip4("10.0.0.1"), a.mac)
			type end struct {
				src      *streamSource
				written  int
				got      int
				closed   bool
				err      error
				conn     *TCPConn
				recvHash interface{ Write([]byte) (int, error) }
				expect   *streamSource // what the peer sends
				badAt    int           // the first wrong byte received, -1 for none
			}
			newEnd := func(seed uint64) *end {
				h := sha256.New()
				return &end{src: newStreamSource(seed), recvHash: h}
			}
			pump := func(e *end, c *TCPConn) {
				for e.written < size {
					p := e.src.next(min(size-e.written, 16<<10))
					n, err := c.Write(p)
					if err != nil {
						return
					}
					e.written += n
					e.src.pos += n
					if n < len(p) {
						return
					}
				}
				c.CloseWrite()
			}
			handler := func(e *end) TCPHandler {
				return func(c *TCPConn, ev TCPEvent) {
					e.conn = c
					switch ev {
					case TCPEventEstablished, TCPEventWritable:
						pump(e, c)
					case TCPEventReadable:
						x, y := c.Peek()
						if e.expect != nil && e.badAt < 0 {
							// Compare with what the peer sends, byte for byte.
							off := e.got
							for _, buf := range [][]byte{x, y} {
								for j := 0; j < len(buf); {
									want := e.expect.next(len(buf) - j)
									for q := range want {
										if want[q] != buf[j+q] && e.badAt < 0 {
											e.badAt = off + j + q
										}
									}
									e.expect.pos += len(want)
									j += len(want)
								}
								off += len(buf)
							}
						}
						e.recvHash.Write(x)
						e.recvHash.Write(y)
						e.got += len(x) + len(y)
						c.Discard(len(x) + len(y))
					case TCPEventClosed:
						e.closed, e.err = true, c.Err()
					}
				}
			}
			var servers []*end
			b.ListenTCP(5001, TCPListenOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
				if ev == TCPEventEstablished {
					e := newEnd(uint64(c.RemotePort()) + 1000)
					e.expect, e.badAt = newStreamSource(uint64(c.RemotePort())), -1
					servers = append(servers, e)
					c.handler = handler(e)
				}
				c.handler(c, ev)
			}})
			var clients []*end
			for range conns {
				e := newEnd(0)
				clients = append(clients, e)
				c, err := a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: handler(e)})
				if err != nil {
					t.Fatal(err)
				}
				e.src = newStreamSource(uint64(c.LocalPort()))
				e.expect, e.badAt = newStreamSource(uint64(c.LocalPort())+1000), -1
			}
			start := m.clock.Now()
			done := func() bool {
				if len(servers) < conns {
					return false
				}
				for _, e := range append(append([]*end{}, clients...), servers...) {
					if !e.closed {
						return false
					}
				}
				return true
			}
			for !done() && time.Duration(m.clock.Now()-start) < 120*time.Second {
				m.run(10 * time.Millisecond)
			}
			t.Logf("%d connections, %d KiB each way: %v virtual; a retransmits %d (rto %d, tlp %d), drops a %v b %v", conns, size>>10,
				time.Duration(m.clock.Now()-start), a.TCPStats().Retransmits, a.TCPStats().RTOs, a.TCPStats().TailLossProbes, nonZero(a), nonZero(b))
			for i, e := range append(append([]*end{}, clients...), servers...) {
				if e.badAt >= 0 {
					t.Errorf("end %d (%v): first wrong byte at %d of %d", i, e.conn.id, e.badAt, e.got)
				}
			}
			for i, e := range clients {
				if e.got != size || !e.closed || e.err != nil {
					var info []TCPConnInfo
					info = a.TCPConnections(info)
					info = b.TCPConnections(info)
					for _, ci := range info {
						if ci.State != "TIME-WAIT" {
							t.Logf("  %+v", ci)
						}
					}
					t.Fatalf("client %d: got %d of %d, closed %v err %v", i, e.got, size, e.closed, e.err)
				}
			}
		})
	}
}
