package rss

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq/netlab/nettest"
	"golang.org/x/sys/unix"
)

// TestSteeringProgramSteersAMultiQueueTAP attaches the program to a
// four-queue TAP device in a namespace of the test's own
// (TUNSETSTEERINGEBPF), makes the kernel transmit crafted frames through
// the device from a packet socket, and checks that each frame comes out of
// the TAP queue Config.QueueFrame names. No frame leaves the namespace.
func TestSteeringProgramSteersAMultiQueueTAP(t *testing.T) {
	const queues = 4
	ns := nettest.NewNS(t)
	taps := nettest.Tap(t, ns, "mkrss0", queues)
	cfg := steerConfig(t, Options{Queues: queues})
	p := loadSteering(t, cfg, false)
	if err := withRawFD(taps[0], p.AttachTAP); err != nil {
		t.Fatal(err)
	}
	link, err := ns.Netlink().LinkByName("mkrss0")
	if err != nil {
		t.Fatal(err)
	}

	var sock int
	if err := ns.Do(func() error {
		// Protocol 0: the socket only sends.
		sock, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(sock) })
	to := &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index}

	// Frames carry a source MAC of their own, so the kernel's own frames
	// on the device (IPv6 router and multicast listener traffic) are told
	// apart.
	marker := []byte{0x02, 0x6d, 0x6b, 0x72, 0x73, 0x73}
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 64
	want := map[string]int{}
	perQueue := make([]int, queues)
	for i := 0; i < n; i++ {
		var f []byte
		proto := []uint8{uint8(ProtoTCP), uint8(ProtoUDP)}[i%2]
		sport, dport := uint16(rng.Uint32()), uint16(rng.Uint32())
		if i%4 < 2 {
			var src, dst [4]byte
			binary.BigEndian.PutUint32(src[:], rng.Uint32())
			binary.BigEndian.PutUint32(dst[:], rng.Uint32())
			f = steerIPv4Frame(src, dst, proto, sport, dport)
		} else {
			var src, dst [16]byte
			binary.BigEndian.PutUint64(src[:], rng.Uint64())
			binary.BigEndian.PutUint64(dst[8:], rng.Uint64())
			f = steerIPv6Frame(src, dst, proto, sport, dport)
		}
		copy(f[6:12], marker)
		q := cfg.QueueFrame(f)
		want[string(f)] = q
		perQueue[q]++
		if err := unix.Sendto(sock, f, 0, to); err != nil {
			t.Fatalf("send frame %d through the TAP: %v", i, err)
		}
	}
	for q, c := range perQueue {
		if c == 0 {
			t.Fatalf("no test frame maps to queue %d (%v): the test would not show steering", q, perQueue)
		}
	}

	// The frames were queued while Sendto ran; poll the queues in turn
	// until all have come out or two seconds have passed.
	got := 0
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(2 * time.Second); got < n && time.Now().Before(deadline); {
		for q, f := range taps {
			if err := f.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := f.Read(buf)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if err != nil {
					t.Fatalf("read TAP queue %d: %v", q, err)
				}
				frame := buf[:m]
				if len(frame) < 12 || !bytes.Equal(frame[6:12], marker) {
					continue // the kernel's own
				}
				wq, ok := want[string(frame)]
				if !ok {
					t.Fatalf("queue %d: a frame that was not sent, or came out twice: %x", q, frame)
				}
				if wq != q {
					t.Errorf("frame %x came out of queue %d, Config.QueueFrame says %d", frame, q, wq)
				}
				delete(want, string(frame))
				got++
			}
		}
	}
	if got != n {
		t.Errorf("%d of %d frames came out of the TAP (frames per queue expected: %v)", got, n, perQueue)
	}
}

// withRawFD calls fn with f's descriptor without taking f out of
// non-blocking mode, as f.Fd would.
func withRawFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
