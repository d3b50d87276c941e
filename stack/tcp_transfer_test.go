package stack

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/mem"
)

// streamSource is a deterministic byte stream: a random block of a size
// prime to every window and segment size, repeated.
type streamSource struct {
	block []byte
	pos   int
}

func newStreamSource(seed uint64) *streamSource {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 1<<20+7)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return &streamSource{block: b}
}

// next returns the bytes from the current position to the end of the block.
func (s *streamSource) next(max int) []byte {
	off := s.pos % len(s.block)
	return s.block[off:min(len(s.block), off+max)]
}

type transferResult struct {
	sentSum, gotSum [32]byte
	got             int64
	elapsed         time.Duration
	client, server  *TCPStats
	clientErr       error
	serverErr       error
	done            bool
}

// tcpTransfer sends size bytes from a to b over a mem wire with the given
// faults, both ends driven by their event handlers as a per-core
// application would, and returns what arrived.
func tcpTransfer(t *testing.T, faults mem.Faults, seed uint64, size int64, limit time.Duration, tweak func(*Config)) transferResult {
	t.Helper()
	var want Config // a tweak that sets TSO asks for NICs with it
	if tweak != nil {
		tweak(&want)
	}
	m := newMemNetNICs(t, faults, seed, want.TSO, nil, "10.0.0.1/24", "10.0.0.2/24")
	a, b := m.stacks[0], m.stacks[1]
	if tweak != nil {
		for _, s := range m.stacks {
			cfg := s.cfg
			tweak(&cfg)
			s.tcp.init(s, cfg.TCP)
		}
	}
	// ARP is not what is under test: both ends know each other.
	a.LearnNeighbour(ip4("10.0.0.2"), b.mac)
	b.LearnNeighbour(ip4("10.0.0.1"), a.mac)

	var res transferResult
	sent := sha256.New()
	got := sha256.New()
	src := newStreamSource(seed)
	var written int64
	serverClosed, clientClosed := false, false
	_, err := b.ListenTCP(5001, TCPListenOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
		switch ev {
		case TCPEventReadable:
			x, y := c.Peek()
			got.Write(x)
			got.Write(y)
			res.got += int64(len(x) + len(y))
			c.Discard(len(x) + len(y))
		case TCPEventPeerClosed:
			c.Close()
		case TCPEventClosed:
			serverClosed = true
			res.serverErr = c.Err()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	pump := func(c *TCPConn) {
		for written < size {
			p := src.next(int(min(size-written, 64<<10)))
			n, err := c.Write(p)
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
			sent.Write(p[:n])
			written += int64(n)
			src.pos += n
			if n < len(p) {
				return
			}
		}
		c.Close()
	}
	start := m.clock.Now()
	_, err = a.DialTCP(ip4("10.0.0.2"), 5001, TCPConnOptions{OnEvent: func(c *TCPConn, ev TCPEvent) {
		switch ev {
		case TCPEventEstablished, TCPEventWritable:
			pump(c)
		case TCPEventClosed:
			clientClosed = true
			res.clientErr = c.Err()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for m.clock.Now()-start < int64(limit) && !(serverClosed && res.got == size) {
		m.run(10 * time.Millisecond)
	}
	res.elapsed = time.Duration(m.clock.Now() - start)
	if testing.Verbose() {
		t.Logf("drops a %v b %v", nonZero(a), nonZero(b))
		for _, s := range m.stacks {
			for _, c := range s.tcp.conns {
				t.Logf("%v %s una %d nxt %d wnd %d cwnd %d pipe %d rec %v dup %d sacked %d rto %v retries %d buf %d | rcvNxt %d ooo %d free %d",
					c.id, c.state, c.sndUna-c.iss, c.sndNxt-c.iss, c.sndWnd, c.cc.Cwnd(), c.pipe(), c.inRecovery, c.dupAcks, c.nSacked, time.Duration(c.rto), c.retries, c.sndBuf.len(), c.rcvNxt-c.irs, c.nOOO, c.rcvBuf.free())
			}
		}
	}
	res.done = serverClosed && clientClosed || serverClosed && res.got == size
	copy(res.sentSum[:], sent.Sum(nil))
	copy(res.gotSum[:], got.Sum(nil))
	res.client, res.server = a.TCPStats(), b.TCPStats()
	return res
}

func (r transferResult) String() string {
	return fmt.Sprintf("%d bytes in %v virtual; client retransmits %d (fast %d, sack %d, rto %d, tlp %d), server ooo %d",
		r.got, r.elapsed, r.client.Retransmits, r.client.FastRetransmits, r.client.SACKRecoveries, r.client.RTOs, r.client.TailLossProbes, r.server.OutOfOrderSegments)
}

func TestTCPTransfersIntactOverFaultyWires(t *testing.T) {
	big := int64(100 << 20)
	if testing.Short() {
		big = 8 << 20
	}
	link := mem.Faults{Delay: time.Millisecond, Bandwidth: 1e9}
	with := func(f func(*mem.Faults)) mem.Faults { l := link; f(&l); return l }
	cases := []struct {
		name   string
		faults mem.Faults
		size   int64
		limit  time.Duration
		tweak  func(*Config)
	}{
		{"clean", link, big, 10 * time.Second, nil},
		{"loss1%", with(func(f *mem.Faults) { f.Loss = 0.01 }), big, 120 * time.Second, nil},
		{"loss5%", with(func(f *mem.Faults) { f.Loss = 0.05 }), big, 300 * time.Second, nil},
		{"loss2%+reorder+dup+corrupt", with(func(f *mem.Faults) {
			f.Loss, f.Reorder, f.Duplicate, f.Corrupt = 0.02, 0.02, 0.01, 0.01
		}), big, 200 * time.Second, nil},
		{"loss3%-newreno-nosack", with(func(f *mem.Faults) { f.Loss = 0.03 }), big, 300 * time.Second, func(c *Config) {
			c.TCP.Congestion, c.TCP.DisableSACK = "newreno", true
		}},
		{"loss3%-no-timestamps", with(func(f *mem.Faults) { f.Loss = 0.03 }), big, 300 * time.Second, func(c *Config) {
			c.TCP.DisableTimestamps = true
		}},
		{"tso-clean", link, big, 10 * time.Second, func(c *Config) { c.TSO = true }},
		{"tso-loss2%+reorder+dup+corrupt", with(func(f *mem.Faults) {
			f.Loss, f.Reorder, f.Duplicate, f.Corrupt = 0.02, 0.02, 0.01, 0.01
		}), big, 300 * time.Second, func(c *Config) { c.TSO = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tcpTransfer(t, tc.faults, 11, tc.size, tc.limit, tc.tweak)
			t.Log(r)
			if r.got != tc.size || r.gotSum != r.sentSum {
				t.Fatalf("%v: %d of %d bytes arrived, hash equal %v", r, r.got, tc.size, r.gotSum == r.sentSum)
			}
			if !r.done || r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("%v: not closed cleanly: client %v server %v", r, r.clientErr, r.serverErr)
			}
			if tc.faults.Loss > 0 && r.client.Retransmits == 0 {
				t.Fatal("a lossy wire and no retransmission")
			}
			if want := tc.tweak != nil && strings.HasPrefix(tc.name, "tso"); want != (r.client.TSOSegmentsOut > 0) {
				t.Fatalf("%v: %d TSO segments sent (%d cut from them)", r, r.client.TSOSegmentsOut, r.client.TSOSegmentsCut)
			}
		})
	}
}
