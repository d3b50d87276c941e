package stack

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/stack/header"
)

// memNet runs stacks on the mem driver: NIC i of one wire, one queue each,
// every stack stepped by one virtual clock, as a core's loop would step it.
type memNet struct {
	t      testing.TB
	clock  *nicq.VirtualClock
	wire   *mem.Wire
	stacks []*Stack
	burst  []*nicq.Buf
}

func newMemNet(t testing.TB, faults mem.Faults, seed uint64, addrs ...string) *memNet {
	return newMemNetWith(t, faults, seed, nil, addrs...)
}

// newMemNetWith is newMemNet with a tweak of stack i's config.
func newMemNetWith(t testing.TB, faults mem.Faults, seed uint64, tweak func(i int, c *Config), addrs ...string) *memNet {
	return newMemNetNICs(t, faults, seed, false, tweak, addrs...)
}

// newMemNetNICs is newMemNetWith with NICs that have TSO if tso (and
// stacks that use it).
func newMemNetNICs(t testing.TB, faults mem.Faults, seed uint64, tso bool, tweak func(i int, c *Config), addrs ...string) *memNet {
	t.Helper()
	clock := nicq.NewVirtualClock(1_000_000_000)
	var nics []mem.NICConfig
	for i := range addrs {
		nics = append(nics, mem.NICConfig{MAC: [6]byte{2, 0, 0, 0, 1, byte(i + 1)}, Queues: 1, TSO: tso})
	}
	w, err := mem.NewWire(mem.WireConfig{NICs: nics, Faults: faults, Seed: seed, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	m := &memNet{t: t, clock: clock, wire: w, burst: make([]*nicq.Buf, 32)}
	for i, a := range addrs {
		nic := w.NIC(i)
		cfg := Config{MAC: header.MAC(nic.MAC()), Addr: netip.MustParsePrefix(a), Clock: clock, Pool: nic.Queue(0).Pool(), TSO: tso}
		if tweak != nil {
			tweak(i, &cfg)
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.stacks = append(m.stacks, s)
	}
	return m
}

// step runs one loop iteration on every stack: receive a burst, timers,
// transmit.
func (m *memNet) step() int {
	moved := 0
	for i, s := range m.stacks {
		q := m.wire.NIC(i).Queue(0)
		n := q.Recv(m.burst)
		s.Input(m.burst[:n])
		clear(m.burst[:n])
		s.Advance()
		moved += n + s.Flush(q.Send)
	}
	return moved
}

func (m *memNet) run(d time.Duration) {
	for end := m.clock.Now() + int64(d); m.clock.Now() < end; {
		for i := 0; i < 100 && m.step() > 0; i++ {
		}
		m.clock.Advance(time.Millisecond)
	}
}

func TestStacksOverTheMemWirePingAndEchoFragmentedUDP(t *testing.T) {
	m := newMemNet(t, mem.Faults{}, 1, "10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24")
	a, b, c := m.stacks[0], m.stacks[1], m.stacks[2]
	b.BindUDP(7, UDPOptions{Handler: echoHandler})
	ep, _ := a.BindUDP(0, UDPOptions{})
	msg := make([]byte, 6000)
	for i := range msg {
		msg[i] = byte(i)
	}
	ep.SendTo(msg, ip4("10.0.0.2"), 7)
	if err := c.Ping(ip4("10.0.0.1"), 3, 1, 100); err != nil {
		t.Fatal(err)
	}
	m.run(20 * time.Millisecond)
	d, ok := ep.Recv()
	if !ok || !bytes.Equal(d.Payload(), msg) {
		t.Fatalf("fragmented echo over mem: ok=%v; a drops %v, b drops %v", ok, nonZero(a), nonZero(b))
	}
	d.Release()
	if a.Stats().EchoRepliesSent != 1 {
		t.Fatal("a did not answer c's ping")
	}
	if _, ok := c.Neighbour(ip4("10.0.0.1")); !ok {
		t.Fatal("c did not resolve a")
	}
}

// echoesUnderLoss sends 200 numbered datagrams from a to b's echo port over
// a lossy, reordering, duplicating wire and returns the numbers that came
// back, in arrival order.
func echoesUnderLoss(t *testing.T, seed uint64) []uint16 {
	m := newMemNet(t, mem.Faults{Loss: 0.1, Duplicate: 0.05, Reorder: 0.1, ReorderDelay: 2 * time.Millisecond}, seed, "10.0.0.1/24", "10.0.0.2/24")
	a, b := m.stacks[0], m.stacks[1]
	b.BindUDP(7, UDPOptions{Handler: echoHandler})
	var got []uint16
	ep, _ := a.BindUDP(0, UDPOptions{Handler: func(_ *UDPEndpoint, p []byte, _ [4]byte, _ uint16) {
		got = append(got, uint16(p[0])<<8|uint16(p[1]))
	}})
	// Resolve ARP first, retrying as the wire may lose it.
	for i := 0; i < 20; i++ {
		if _, ok := a.Neighbour(ip4("10.0.0.2")); ok {
			break
		}
		a.Ping(ip4("10.0.0.2"), 1, uint16(i), 8)
		m.run(1100 * time.Millisecond)
	}
	for i := uint16(0); i < 200; i++ {
		ep.SendTo([]byte{byte(i >> 8), byte(i), 0, 0}, ip4("10.0.0.2"), 7)
		m.run(time.Millisecond)
	}
	m.run(50 * time.Millisecond)
	return got
}

func TestLossyMemWireReplaysFromItsSeed(t *testing.T) {
	first := echoesUnderLoss(t, 42)
	again := echoesUnderLoss(t, 42)
	other := echoesUnderLoss(t, 43)
	if len(first) < 100 || len(first) >= 260 {
		t.Fatalf("%d echoes of 200 at 10%% loss each way with 5%% duplication", len(first))
	}
	distinct := map[uint16]bool{}
	for _, v := range first {
		distinct[v] = true
	}
	if len(distinct) == 200 || len(distinct) == len(first) {
		t.Fatalf("%d distinct of %d echoes: the wire injected no loss or no duplication", len(distinct), len(first))
	}
	if !slices.Equal(first, again) {
		t.Fatalf("same seed, different runs:\n%v\n%v", first, again)
	}
	if slices.Equal(first, other) {
		t.Fatal("different seeds gave the same run")
	}
}
