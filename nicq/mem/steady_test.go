package mem_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/mem"
)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestSteadyStateSendAndRecvAllocateNothing(t *testing.T) {
	cases := map[string]func(*mem.WireConfig){
		"perfect wire": func(*mem.WireConfig) {},
		"flow control": func(c *mem.WireConfig) { c.FlowControl = true },
		"every fault": func(c *mem.WireConfig) {
			c.Faults = mem.Faults{Loss: 0.1, Duplicate: 0.1, Corrupt: 0.1, Reorder: 0.1, Delay: time.Microsecond, Jitter: time.Microsecond, Bandwidth: 1e10}
		},
		"tap on": func(c *mem.WireConfig) {},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			clock := nicq.NewVirtualClock(0)
			c := twoNICs(1, 2)
			c.Clock = clock
			mutate(&c)
			w := newWire(t, c)
			tx := w.NIC(0).Queue(0)
			if name == "tap on" {
				pw, err := nicq.NewPcapWriter(discard{}, nicq.PcapConfig{})
				if err != nil {
					t.Fatal(err)
				}
				tx.SetTap(pw)
				w.NIC(1).Queue(0).SetTap(pw)
			}
			frames := make([][]byte, 32)
			for i := range frames {
				frames[i] = udp(uint16(i), uint32(i))
			}
			bufs := make([]*nicq.Buf, 32)
			round := func() {
				n := tx.Pool().GetBatch(bufs)
				for i, b := range bufs[:n] {
					copy(b.Append(len(frames[i])), frames[i])
				}
				k := tx.Send(bufs[:n])
				nicq.FreeAll(bufs[k:n])
				clock.Advance(time.Millisecond)
				for qi := range 2 {
					rx := w.NIC(1).Queue(qi)
					for {
						m := rx.Recv(bufs)
						if m == 0 {
							break
						}
						nicq.FreeAll(bufs[:m])
					}
				}
			}
			round() // warm up: first uses of the rings
			if allocs := testing.AllocsPerRun(200, round); allocs != 0 {
				t.Fatalf("%.1f allocations per burst of 32 sent and received, want 0", allocs)
			}
		})
	}
}

func TestASleepingCoreIsWokenWhenFramesLand(t *testing.T) {
	w := newWire(t, twoNICs(1, 1))
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	mq := rx.(*mem.Queue)

	// Nothing pending: Wait sleeps until the timeout.
	start := time.Now()
	woken, err := nicq.Wait(rx, 20*time.Millisecond)
	if err != nil || woken || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("Wait on an idle queue: woken %v err %v after %v; want a 20ms timeout", woken, err, time.Since(start))
	}

	// Frames pending: Wait returns at once without sleeping.
	send(t, tx, udp(1, 1))
	sleeps := mq.Doorbell().Sleeps()
	if woken, err := nicq.Wait(rx, time.Hour); err != nil || woken || mq.Doorbell().Sleeps() != sleeps {
		t.Fatalf("Wait with a frame pending: woken %v err %v, slept %d times", woken, err, mq.Doorbell().Sleeps()-sleeps)
	}
	recvAll(rx)

	// Asleep: a Send on the other core rings the doorbell.
	result := make(chan error)
	go func() {
		woken, err := nicq.Wait(rx, 10*time.Second)
		if err == nil && !woken {
			err = os.ErrDeadlineExceeded
		}
		result <- err
	}()
	for !mq.Doorbell().Asleep() {
		time.Sleep(time.Millisecond)
	}
	wakeups := mq.Doorbell().Wakeups()
	send(t, tx, udp(1, 2))
	if err := <-result; err != nil {
		t.Fatalf("the sleeping receiver was not woken by the frame: %v", err)
	}
	if mq.Doorbell().Wakeups() != wakeups+1 {
		t.Fatalf("%d wake-ups for one Send to a sleeping core, want 1", mq.Doorbell().Wakeups()-wakeups)
	}
	if got := recvAll(rx); len(got) != 1 || seqOf(got[0].frame) != 2 {
		t.Fatalf("after waking received %d frames", len(got))
	}
	// While the receiver is awake, sending makes no system call.
	send(t, tx, udp(1, 3))
	if mq.Doorbell().Wakeups() != wakeups+1 {
		t.Fatal("a Send to an awake core wrote its eventfd")
	}
	if rx.WaitFD() != mq.Doorbell().Fd() {
		t.Fatal("WaitFD is not the doorbell's eventfd")
	}
}

// readPcapFrames reads the records of a classic little-endian pcap file.
func readPcapFrames(t *testing.T, path string) (times []int64, frames [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != nicq.PcapMagicNanoseconds {
		t.Fatalf("not a nanosecond pcap file: % x", data[:min(len(data), 24)])
	}
	for data = data[24:]; len(data) >= 16; {
		ts := int64(binary.LittleEndian.Uint32(data))*1e9 + int64(binary.LittleEndian.Uint32(data[4:]))
		n := int(binary.LittleEndian.Uint32(data[8:]))
		times = append(times, ts)
		frames = append(frames, data[16:16+n])
		data = data[16+n:]
	}
	return times, frames
}

func TestTapCapturesBothDirectionsAndSwitchesAtRunTime(t *testing.T) {
	clock := nicq.NewVirtualClock(1_700_000_000_000_000_000)
	c := twoNICs(1, 1)
	c.Clock = clock
	c.NICs[0].Faults = &mem.Faults{Corrupt: 1} // so received frames differ from sent ones
	w := newWire(t, c)
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	path := filepath.Join(t.TempDir(), "wire.pcap")
	pw, err := nicq.CreatePcap(path, nicq.PcapConfig{Nanosecond: true})
	if err != nil {
		t.Fatal(err)
	}
	send(t, tx, udp(1, 0)) // before the tap: not captured
	recvAll(rx)
	tx.SetTap(pw)
	rx.SetTap(pw)
	clock.Advance(time.Second)
	send(t, tx, udp(1, 1), udp(1, 2))
	clock.Advance(time.Microsecond)
	got := recvAll(rx)
	tx.SetTap(nil) // the sender stops capturing; the receiver goes on
	send(t, tx, udp(1, 3))
	got = append(got, recvAll(rx)...)
	rx.SetTap(nil)
	send(t, tx, udp(1, 4))
	recvAll(rx)
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}

	times, frames := readPcapFrames(t, path)
	// A frame's arrival time is when it left plus the wire's delay (none
	// here), whenever Recv picks it up.
	first, later := int64(1_700_000_001_000_000_000), int64(1_700_000_001_000_001_000)
	want := [][]byte{udp(1, 1), udp(1, 2), got[0].frame, got[1].frame, got[2].frame}
	wantTimes := []int64{first, first, first, first, later}
	if len(frames) != len(want) {
		t.Fatalf("capture holds %d frames, want %d: 2 sent while the sender's tap was on, 3 received while the receiver's was", len(frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(frames[i], want[i]) || times[i] != wantTimes[i] {
			t.Fatalf("record %d: time %d frame % x, want time %d frame % x", i, times[i], frames[i], wantTimes[i], want[i])
		}
	}
	if bytes.Equal(frames[0], frames[2]) {
		t.Fatal("the capture shows the received frame undamaged: the receiving tap must see what arrived")
	}

	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.Command(tcpdump, "-nn", "-vv", "-r", path).CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
		if n := strings.Count(string(out), "10.0.0.1"); n < 2 {
			t.Fatalf("tcpdump decoded %d of the sent frames:\n%s", n, out)
		}
	} else {
		t.Logf("tcpdump is not installed; the format is checked by nicq's tests: %v", err)
	}
}

// TestTapCanBeSwitchedWhileTheQueueRuns flips a queue's tap from another
// goroutine while the owning core sends; run with -race.
func TestTapCanBeSwitchedWhileTheQueueRuns(t *testing.T) {
	w := newWire(t, twoNICs(1, 1))
	tx, rx := w.NIC(0).Queue(0), w.NIC(1).Queue(0)
	pw, err := nicq.NewPcapWriter(discard{}, nicq.PcapConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for on := true; ; on = !on {
			select {
			case <-stop:
				return
			default:
			}
			if on {
				tx.SetTap(pw)
			} else {
				tx.SetTap(nil)
			}
		}
	})
	for i := range 2000 {
		send(t, tx, udp(1, uint32(i)))
		recvAll(rx)
	}
	close(stop)
	wg.Wait()
	if pw.Frames() > 2000 {
		t.Fatalf("tap captured %d frames of 2000 sent", pw.Frames())
	}
}
