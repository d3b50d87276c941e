package core

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
	"github.com/mkstack/mkstack/stack"
)

// lyingNIC reports an RSS configuration other than the one that steers its
// frames: a veth, whose receive queue follows the sender's flow hash, looks
// like this to the runtime.
type lyingNIC struct {
	nicq.NIC
	cfg *rss.Config
}

func (n lyingNIC) RSS() *rss.Config       { return n.cfg }
func (n lyingNIC) Queue(i int) nicq.Queue { return lyingQueue{n.NIC.Queue(i), n.cfg} }

type lyingQueue struct {
	nicq.Queue
	cfg *rss.Config
}

func (q lyingQueue) RSS() *rss.Config { return q.cfg }

// TestMisdirectedFlowsReachTheirCore: a runtime whose NIC steers by a hash
// it does not report opens connections with ports chosen for replies that
// then land on the other core about half the time; those segments must be
// forwarded to the core that holds the connection, and every connection
// must work.
func TestMisdirectedFlowsReachTheirCore(t *testing.T) {
	w := newWire(t, 2)
	key := make([]byte, rss.KeySize)
	for i := range key {
		key[i] = byte(i*37 + 11)
	}
	lie, err := rss.NewConfig(rss.Options{Key: key, Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	start(t, w.NIC(0), addrA, func(c *Config) {
		c.OnStart = func(s *stack.Stack) {
			listenTCPEcho(s, 7)
		}
	})
	cli := start(t, lyingNIC{w.NIC(1), lie}, addrB, nil)
	const conns, size = 64, 1000
	var done atomic.Int32
	msg := make([]byte, size)
	for i := range conns {
		err := cli.DoWait(ctxT(t), i%2, func(s *stack.Stack) {
			s.DialTCP(addrA, 7, stack.TCPConnOptions{NoDelay: true, OnEvent: func(c *stack.TCPConn, ev stack.TCPEvent) {
				switch ev {
				case stack.TCPEventEstablished:
					c.Write(msg)
				case stack.TCPEventReadable:
					if c.Buffered() >= size {
						c.Discard(size)
						done.Add(1)
						c.Close()
					}
				}
			}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() string {
		return "every connection to echo"
	}, func() bool { return done.Load() == conns })
	fwd := cli.Counters().Values[ForwardedPackets]
	if fwd == 0 {
		t.Fatal("no packet was forwarded: the NIC did not misdirect, so the test tests nothing")
	}
	t.Logf("%d connections echoed; %d misdirected packets forwarded to their core", conns, fwd)
}
