package mem_test

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/bits"
	"slices"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/mem"
)

// faultyRun drives a two-way exchange over a wire with every fault on, from
// one goroutine with a virtual clock, and returns the delivered frames as
// lines "time nic/queue crc". It is the replay test's subject.
func faultyRun(t *testing.T, seed uint64) ([]string, mem.FaultStats) {
	clock := nicq.NewVirtualClock(0)
	c := twoNICs(2, 3)
	c.Seed = seed
	c.Clock = clock
	c.Faults = mem.Faults{
		Loss: 0.1, Duplicate: 0.1, Corrupt: 0.1, Reorder: 0.2, ReorderDelay: 300 * time.Microsecond,
		Delay: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Bandwidth: 1e9,
	}
	w := newWire(t, c)
	a, b := w.NIC(0), w.NIC(1)
	var trace []string
	record := func(n nicq.NIC) {
		for qi := range n.NumQueues() {
			for _, r := range recvAll(n.Queue(qi)) {
				trace = append(trace, fmt.Sprintf("%d %s/%d %08x", r.rxTime, n.Name(), qi, crc32.ChecksumIEEE(r.frame)))
			}
		}
	}
	seq := uint32(0)
	for step := range 200 {
		var frames [][]byte
		for i := range 3 {
			frames = append(frames, udp(uint16(1000+step%7+i), seq))
			seq++
		}
		send(t, a.Queue(step%2), frames...)
		reply := udp(uint16(2000+step%5), seq)
		seq++
		copy(reply[0:6], frametest.MACA[:])
		copy(reply[6:12], frametest.MACB[:])
		send(t, b.Queue(step%3), reply)
		clock.Advance(20 * time.Microsecond)
		record(a)
		record(b)
	}
	clock.Advance(10 * time.Millisecond)
	record(a)
	record(b)
	var stats mem.FaultStats
	for _, n := range []*mem.NIC{a, b} {
		for qi := range n.NumQueues() {
			s := n.MemQueue(qi).FaultStats()
			stats.Lost += s.Lost
			stats.Duplicated += s.Duplicated
			stats.Corrupted += s.Corrupted
			stats.Reordered += s.Reordered
		}
	}
	return trace, stats
}

func TestTheSameSeedReplaysARunAndAnotherSeedDoesNot(t *testing.T) {
	first, stats := faultyRun(t, 42)
	again, _ := faultyRun(t, 42)
	other, _ := faultyRun(t, 43)
	if len(first) < 700 || stats.Lost == 0 || stats.Duplicated == 0 || stats.Corrupted == 0 || stats.Reordered == 0 {
		t.Fatalf("%d of 800 frames delivered, faults %+v: the run must meet every fault", len(first), stats)
	}
	if want := 800 - stats.Lost + stats.Duplicated; uint64(len(first)) != want {
		t.Fatalf("%d frames delivered, want 800 - %d lost + %d duplicated = %d", len(first), stats.Lost, stats.Duplicated, want)
	}
	if !slices.Equal(first, again) {
		for i := range min(len(first), len(again)) {
			if first[i] != again[i] {
				t.Fatalf("seed 42 twice: runs differ at frame %d: %q vs %q", i, first[i], again[i])
			}
		}
		t.Fatalf("seed 42 twice: %d vs %d frames delivered", len(first), len(again))
	}
	if slices.Equal(first, other) {
		t.Fatal("seeds 42 and 43 delivered identical runs: the seed does not drive the faults")
	}
}

func TestInjectedLossMatchesItsProbabilityAndIsCounted(t *testing.T) {
	c := twoNICs(1, 1)
	c.Faults.Loss = 0.25
	c.Seed = 7
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	const frames = 20000
	received := 0
	for i := 0; i < frames; i += 32 {
		var burst [][]byte
		for j := range 32 {
			burst = append(burst, udp(uint16(j), uint32(i+j)))
		}
		send(t, tx, burst...)
		received += len(recvAll(rx))
	}
	lost := frames - received
	// 25% of 20000 is 5000; the standard deviation is 61.
	if lost < 4750 || lost > 5250 {
		t.Fatalf("lost %d of %d frames, want about 5000", lost, frames)
	}
	if s, d := tx.(*mem.Queue).FaultStats().Lost, tx.Counters().Drops[nicq.DropInjectedLoss]; s != uint64(lost) || d != uint64(lost) {
		t.Fatalf("lost %d frames; fault stats say %d, drop counter %d", lost, s, d)
	}
}

func TestDuplicatedFramesArriveTwice(t *testing.T) {
	c := twoNICs(1, 1)
	c.Faults.Duplicate = 1
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	send(t, tx, udp(1, 0), udp(1, 1), udp(1, 2))
	got := recvAll(rx)
	var seqs []uint32
	for _, r := range got {
		seqs = append(seqs, seqOf(r.frame))
	}
	if !slices.Equal(seqs, []uint32{0, 0, 1, 1, 2, 2}) {
		t.Fatalf("received %v, want each frame twice", seqs)
	}
	if rx.Counters().RxPackets != 6 || tx.(*mem.Queue).FaultStats().Duplicated != 3 {
		t.Fatalf("rx packets %d, duplicated %d", rx.Counters().RxPackets, tx.(*mem.Queue).FaultStats().Duplicated)
	}
	tx.Send(nil)
	if tx.Pool().InUse() != 0 || rx.Pool().InUse() != 0 {
		t.Fatalf("buffers leaked: sender %d, receiver %d", tx.Pool().InUse(), rx.Pool().InUse())
	}
}

func TestCorruptionFlipsOneBitThatChecksumsCatch(t *testing.T) {
	c := twoNICs(1, 1)
	c.Faults.Corrupt = 1
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	positions := map[int]bool{}
	for i := range 200 {
		frame := udpSized(uint16(i), uint32(i), 60+i)
		if !frametest.ChecksumsValid(frame) {
			t.Fatal("test frame has bad checksums")
		}
		send(t, tx, frame)
		got := recvAll(rx)
		if len(got) != 1 || len(got[0].frame) != len(frame) {
			t.Fatalf("frame %d: received %d frames", i, len(got))
		}
		flipped := -1
		for j := range frame {
			if d := frame[j] ^ got[0].frame[j]; d != 0 {
				if flipped >= 0 || bits.OnesCount8(d) != 1 {
					t.Fatalf("frame %d: more than one bit changed", i)
				}
				flipped = j*8 + bits.LeadingZeros8(d)
			}
		}
		if flipped < nicq.EthernetHeaderLen*8 {
			t.Fatalf("frame %d: bit %d flipped; corruption must spare the Ethernet header and change exactly one bit", i, flipped)
		}
		if frametest.ChecksumsValid(got[0].frame) {
			t.Fatalf("frame %d: bit %d flipped and the IPv4 and UDP checksums still pass", i, flipped)
		}
		positions[flipped] = true
	}
	if len(positions) < 150 {
		t.Fatalf("only %d distinct bits flipped in 200 frames: not uniform", len(positions))
	}
	if n := tx.(*mem.Queue).FaultStats().Corrupted; n != 200 {
		t.Fatalf("Corrupted = %d, want 200", n)
	}
}

func TestDelayHoldsFramesUntilTheirArrivalTime(t *testing.T) {
	clock := nicq.NewVirtualClock(5_000)
	c := twoNICs(1, 1)
	c.Clock = clock
	c.Faults.Delay = time.Millisecond
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	send(t, tx, udp(1, 0), udp(1, 1))
	if got := recvAll(rx); len(got) != 0 {
		t.Fatalf("received %d frames before their delay passed", len(got))
	}
	if !rx.Pending() {
		t.Fatal("Pending is false with delayed frames waiting: a core would sleep past their arrival")
	}
	due, ok := rx.(*mem.Queue).NextArrival()
	if want := int64(5_000 + time.Millisecond); !ok || due != want {
		t.Fatalf("NextArrival = %d, %v; want %d", due, ok, want)
	}
	clock.Set(due - 1)
	if got := recvAll(rx); len(got) != 0 {
		t.Fatalf("received %d frames 1 ns early", len(got))
	}
	clock.Set(due)
	got := recvAll(rx)
	if len(got) != 2 || got[0].rxTime != due || got[1].rxTime != due || seqOf(got[0].frame) != 0 {
		t.Fatalf("at the arrival time received %d frames (%+v)", len(got), got)
	}
	if rx.Pending() {
		t.Fatal("Pending with nothing left")
	}
}

func TestReorderedFramesAreOvertakenByLaterOnes(t *testing.T) {
	clock := nicq.NewVirtualClock(0)
	c := twoNICs(1, 1)
	c.Clock = clock
	c.Faults = mem.Faults{Reorder: 0.5, ReorderDelay: time.Millisecond}
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	var frames [][]byte
	for i := range 100 {
		frames = append(frames, udp(1, uint32(i)))
	}
	send(t, tx, frames[:50]...)
	send(t, tx, frames[50:]...)
	early := recvAll(rx)
	clock.Advance(time.Millisecond)
	late := recvAll(rx)
	reordered := tx.(*mem.Queue).FaultStats().Reordered
	if len(early)+len(late) != 100 || uint64(len(late)) != reordered || reordered < 30 || reordered > 70 {
		t.Fatalf("%d on time, %d late, %d reordered; want all 100, about half late", len(early), len(late), reordered)
	}
	var seqs []uint32
	for _, r := range append(early, late...) {
		seqs = append(seqs, seqOf(r.frame))
	}
	if slices.IsSorted(seqs) {
		t.Fatal("frames arrived in order with half of them held back")
	}
	for _, part := range [][]received{early, late} {
		for i := 1; i < len(part); i++ {
			if seqOf(part[i].frame) < seqOf(part[i-1].frame) {
				t.Fatal("frames with equal delay arrived out of order: ties must keep wire order")
			}
		}
	}
}

func TestBandwidthLimitSpacesFramesAndPushesBack(t *testing.T) {
	clock := nicq.NewVirtualClock(0)
	c := twoNICs(1, 1)
	c.Clock = clock
	// 101-byte frames cost 125 bytes on the wire: 1000 bits, 1 ms at 1 Mb/s.
	c.Faults = mem.Faults{Bandwidth: 1_000_000, MaxQueueDelay: 5 * time.Millisecond}
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	var frames [][]byte
	for i := range 10 {
		frames = append(frames, udpSized(1, uint32(i), 101))
	}
	if n := send(t, tx, frames...); n != 6 {
		t.Fatalf("Send took %d frames, want 6: frames starting up to 5 ms ahead", n)
	}
	for k := range 6 {
		clock.Advance(time.Millisecond)
		got := recvAll(rx)
		if len(got) != 1 || seqOf(got[0].frame) != uint32(k) || got[0].rxTime != int64(k+1)*int64(time.Millisecond) {
			t.Fatalf("at %v received %d frames (%+v), want frame %d", time.Duration(clock.Now()), len(got), got, k)
		}
	}
	if n := send(t, tx, frames[6:]...); n != 4 {
		t.Fatalf("once the wire drained, Send took %d of 4", n)
	}
}

func TestFaultsConfiguredPerNICApplyToWhatThatNICSends(t *testing.T) {
	c := twoNICs(1, 1)
	c.NICs[0].Faults = &mem.Faults{Loss: 1}
	w := newWire(t, c)
	a, b := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	send(t, a, udp(1, 1))
	reply := udp(2, 2)
	copy(reply[0:6], frametest.MACA[:])
	copy(reply[6:12], frametest.MACB[:])
	send(t, b, reply)
	if got := recvAll(b); len(got) != 0 {
		t.Fatalf("B received %d frames from A, whose frames are all lost", len(got))
	}
	if got := recvAll(a); len(got) != 1 || !bytes.Equal(got[0].frame, reply) {
		t.Fatalf("A received %d frames from B, whose wire is perfect", len(got))
	}
}
