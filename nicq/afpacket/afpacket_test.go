//go:build linux

package afpacket

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

var rings = []RingVersion{RingV2, RingV3}

func TestAFPacketAgainstKernel(t *testing.T) {
	for _, ring := range rings {
		for _, steer := range []bool{true, false} {
			name := "toeplitz"
			if !steer {
				name = "hash"
			}
			t.Run(ring.String()+"/"+name, func(t *testing.T) {
				v := drivertest.NewVeth(t, 2)
				var nic *NIC
				var warned []string
				err := nettest.DoIn(v.StackNS, func() (err error) {
					nic, err = Open(Config{Interface: v.StackIf, Queues: 2, Ring: ring, NoSteering: !steer, Warn: func(m string) { warned = append(warned, m) }})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				defer nic.Close()
				if nic.Steered() != steer {
					t.Fatalf("steered %v, want %v (%v)", nic.Steered(), steer, warned)
				}
				if nic.Ring() != ring {
					t.Fatalf("ring %v, want %v", nic.Ring(), ring)
				}
				drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
				drivertest.Exercise(t, drivertest.Setup{NIC: nic, KernelNS: v.KernelNS, KernelIf: v.KernelIf, Steered: steer}, 32)
			})
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Config{Interface: "mk-no-such-if", Queues: 1}); err == nil || !strings.Contains(err.Error(), "ip link") {
		t.Errorf("Open of a missing interface: %v, want an error naming the interface and how to list them", err)
	}
	if _, err := Open(Config{Interface: "lo", Queues: 0}); err == nil {
		t.Error("Open with 0 queues succeeded")
	}
	if _, err := Open(Config{Interface: "lo", Queues: 1, Ring: 1}); !errors.Is(err, nicq.ErrInvalidConfig) || !strings.Contains(err.Error(), "TPACKET_V2") {
		t.Errorf("Open with ring version 1: %v, want ErrInvalidConfig naming the versions", err)
	}
}

// openOne opens a one-queue NIC as c says on the veth's stack end; it
// closes when the test ends.
func openOne(t *testing.T, v drivertest.Veth, c Config) *NIC {
	t.Helper()
	c.Interface, c.Queues = v.StackIf, 1
	var nic *NIC
	err := nettest.DoIn(v.StackNS, func() (err error) {
		nic, err = Open(c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nic.Close() })
	return nic
}

// kernelUDP opens a UDP socket on the kernel's end of the veth.
func kernelUDP(t *testing.T, ns netns.NsHandle) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := nettest.DoIn(ns, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(drivertest.KernelIP[:])})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var stackUDP = &net.UDPAddr{IP: net.IP(drivertest.StackIP[:]), Port: 9000}

// isTestDatagram reports whether f is a UDP datagram to stackUDP.
func isTestDatagram(f []byte) bool {
	return len(f) >= 42 && f[12] == 8 && f[13] == 0 && f[23] == 17 && f[36] == 9000>>8 && f[37] == 9000&0xff
}

// TestRingV2HandsOverALoneFrameAtOnce is a request-response exchange
// between a kernel UDP socket and a responder on the driver that sleeps in
// the wait protocol between requests, as an idle core does. Each request
// is a lone frame: a V3 ring holds it until its block's timeout (1 ms), a
// V2 ring hands it over at once. Rounds of V2 and V3 alternate, so a
// machine busy with other work slows both alike. V2's median round trip
// must be under 500 µs, half the block timeout, or failing that (a very
// busy machine) under half V3's.
func TestRingV2HandsOverALoneFrameAtOnce(t *testing.T) {
	const rounds, exchanges = 3, 200
	v := drivertest.NewVeth(t, 1)
	kernel := kernelUDP(t, v.KernelNS)
	var kernelMAC [6]byte
	medians := map[RingVersion][]time.Duration{}
	for r := 0; r < rounds; r++ {
		for _, ring := range rings {
			nic := openOne(t, v, Config{Ring: ring})
			if r == 0 && ring == rings[0] {
				drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
				kernelMAC = drivertest.LinkMAC(t, v.KernelNS, v.KernelIf)
			}
			rtts := roundTrips(t, nic, kernel, kernelMAC, exchanges)
			nic.Close()
			slices.Sort(rtts)
			med := rtts[len(rtts)/2]
			medians[ring] = append(medians[ring], med)
			t.Logf("round %d %s: round trip median %v, 10th percentile %v, 90th %v", r, ring, med, rtts[len(rtts)/10], rtts[len(rtts)*9/10])
		}
	}
	var ratios []string
	for r := 0; r < rounds; r++ {
		ratios = append(ratios, fmt.Sprintf("%.2f", float64(medians[RingV2][r])/float64(medians[RingV3][r])))
	}
	v2 := slices.Sorted(slices.Values(medians[RingV2]))[rounds/2]
	v3 := slices.Sorted(slices.Values(medians[RingV3]))[rounds/2]
	t.Logf("median round trip: V2 %v, V3 %v; V2÷V3 by round: %s", v2, v3, strings.Join(ratios, " "))
	if v2 >= 500*time.Microsecond && v2 >= v3/2 {
		t.Errorf("V2's median round trip is %v against V3's %v: a lone frame waited as if for a block's timeout", v2, v3)
	}
}

// roundTrips has the kernel send n requests, one at a time, that a
// goroutine on nic's queue 0 answers, and returns each one's round trip.
func roundTrips(t *testing.T, nic *NIC, kernel *net.UDPConn, kernelMAC [6]byte, n int) []time.Duration {
	t.Helper()
	q := nic.Queue(0)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		bufs := make([]*nicq.Buf, 32)
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := nicq.Wait(q, 20*time.Millisecond); err != nil {
				done <- err
				return
			}
			k := q.Recv(bufs)
			var out []*nicq.Buf
			for _, b := range bufs[:k] {
				if f := b.Bytes(); isTestDatagram(f) {
					u := frametest.UDP4{DstMAC: kernelMAC, SrcMAC: nic.MAC(), Src: drivertest.StackIP, Dst: drivertest.KernelIP,
						SrcPort: 9000, DstPort: uint16(f[34])<<8 | uint16(f[35]), Payload: f[42:]}
					r := q.Pool().Get()
					copy(r.Append(len(u.Frame())), u.Frame())
					out = append(out, r)
				}
			}
			nicq.FreeAll(bufs[:k])
			if sent := q.Send(out); sent < len(out) {
				nicq.FreeAll(out[sent:])
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("responder: %v", err)
		}
	}()
	rtts := make([]time.Duration, 0, n)
	req, resp := make([]byte, 32), make([]byte, 64)
	for i := 0; i < n; i++ {
		copy(req, fmt.Sprintf("request %d", i))
		start := time.Now()
		if _, err := kernel.WriteToUDP(req, stackUDP); err != nil {
			t.Fatal(err)
		}
		kernel.SetReadDeadline(time.Now().Add(time.Second))
		k, _, err := kernel.ReadFromUDP(resp)
		if err != nil || !bytes.Equal(resp[:k], req) {
			t.Fatalf("exchange %d: %q, %v", i, resp[:k], err)
		}
		rtts = append(rtts, time.Since(start))
	}
	return rtts
}

func setMTU(t *testing.T, ns netns.NsHandle, ifname string, mtu int) {
	t.Helper()
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err == nil {
		err = nl.LinkSetMTU(l, mtu)
	}
	if err != nil {
		t.Fatalf("MTU %d on %s: %v", mtu, ifname, err)
	}
}

// recvUntil calls Recv and Pending, as a core does, until done says so or
// 3 s pass, freeing what arrives after counting the test's datagrams.
func recvUntil(q nicq.Queue, done func(datagrams int) bool) (datagrams int) {
	bufs := make([]*nicq.Buf, 64)
	for deadline := time.Now().Add(3 * time.Second); !done(datagrams) && time.Now().Before(deadline); {
		n := q.Recv(bufs)
		for _, b := range bufs[:n] {
			if isTestDatagram(b.Bytes()) {
				datagrams++
			}
		}
		nicq.FreeAll(bufs[:n])
		if n == 0 && !q.Pending() {
			time.Sleep(time.Millisecond)
		}
	}
	return datagrams
}

// TestRingsDropAndCountFramesLongerThanTheMTU: a frame longer than the MTU
// the driver opened with (here the MTU rose afterwards, as a peer's
// segmentation offload would send) is counted as oversize, whether the
// V2 slot truncated it or the V3 block held it whole, and the frames after
// it arrive.
func TestRingsDropAndCountFramesLongerThanTheMTU(t *testing.T) {
	for _, ring := range rings {
		t.Run(ring.String(), func(t *testing.T) {
			v := drivertest.NewVeth(t, 1)
			nic := openOne(t, v, Config{Ring: ring})
			drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
			setMTU(t, v.StackNS, v.StackIf, 9000)
			setMTU(t, v.KernelNS, v.KernelIf, 9000)
			kernel := kernelUDP(t, v.KernelNS)
			for _, size := range []int{4000, 100} {
				if _, err := kernel.WriteToUDP(make([]byte, size), stackUDP); err != nil {
					t.Fatal(err)
				}
			}
			q := nic.Queue(0)
			got := recvUntil(q, func(d int) bool { return d == 1 && q.Counters().Drops[nicq.DropOversize] == 1 })
			if c := q.Counters(); got != 1 || c.Drops[nicq.DropOversize] != 1 {
				t.Errorf("received %d small datagrams (want 1), counted %d oversize (want 1): %+v", got, c.Drops[nicq.DropOversize], c)
			}
		})
	}
}

// TestRingsCountEveryFrameTheFullRingDropped: a ring too small for a burst
// the kernel sends loses frames; every one of them shows in the queue's
// rx_ring_full count (the kernel's tp_drops), read on the way to sleep.
func TestRingsCountEveryFrameTheFullRingDropped(t *testing.T) {
	const sent = 300
	for _, ring := range rings {
		t.Run(ring.String(), func(t *testing.T) {
			v := drivertest.NewVeth(t, 1)
			// One 4 KiB block: 2 slots of V2, a few dozen small V3 frames.
			nic := openOne(t, v, Config{Ring: ring, BlockSize: 4096, Blocks: 1})
			drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
			kernel := kernelUDP(t, v.KernelNS)
			for i := 0; i < sent; i++ {
				if _, err := kernel.WriteToUDP([]byte("burst"), stackUDP); err != nil {
					t.Fatal(err)
				}
			}
			q := nic.Queue(0)
			got := recvUntil(q, func(d int) bool { return uint64(d)+q.Counters().Drops[nicq.DropRxRingFull] >= sent })
			drops := q.Counters().Drops[nicq.DropRxRingFull]
			t.Logf("%d received, %d counted as dropped by the full ring", got, drops)
			if drops == 0 || uint64(got)+drops != sent {
				t.Errorf("of %d frames, %d received and %d counted dropped: want all accounted for, some dropped", sent, got, drops)
			}
		})
	}
}

// TestRingsMarkChecksumPartialFrames: a kernel peer on the same host that
// leaves its checksums to an offload sends frames whose UDP checksum holds
// only the pseudo-header's sum; the kernel says so in the frame's status
// and vouches for the data, and the driver marks the buffer partial so the
// stack accepts it unchecked instead of dropping it.
func TestRingsMarkChecksumPartialFrames(t *testing.T) {
	for _, ring := range rings {
		t.Run(ring.String(), func(t *testing.T) {
			v := drivertest.NewVeth(t, 1)
			nic := openOne(t, v, Config{Ring: ring})
			drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
			if err := nettest.DoIn(v.KernelNS, func() error { return setTxChecksum(v.KernelIf, true) }); err != nil {
				t.Fatal(err)
			}
			kernel := kernelUDP(t, v.KernelNS)
			if _, err := kernel.WriteToUDP([]byte("offloaded"), stackUDP); err != nil {
				t.Fatal(err)
			}
			q := nic.Queue(0)
			bufs := make([]*nicq.Buf, 8)
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				n := q.Recv(bufs)
				for _, b := range bufs[:n] {
					if isTestDatagram(b.Bytes()) {
						if b.Flags&nicq.FlagL4ChecksumPartial == 0 {
							t.Errorf("a checksum-partial frame arrived without FlagL4ChecksumPartial (flags %#x)", b.Flags)
						}
						nicq.FreeAll(bufs[:n])
						return
					}
				}
				nicq.FreeAll(bufs[:n])
			}
			t.Fatal("the datagram did not arrive")
		})
	}
}

// setTxChecksum switches ifname's transmit checksum offload with the
// legacy ethtool command ETHTOOL_STXCSUM, in the calling thread's
// namespace.
func setTxChecksum(ifname string, on bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	value := struct{ cmd, data uint32 }{cmd: 0x17}
	if on {
		value.data = 1
	}
	var req struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(req.name[:], ifname)
	req.data = uintptr(unsafe.Pointer(&value))
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	runtime.KeepAlive(&value)
	if e != 0 {
		return fmt.Errorf("ETHTOOL_STXCSUM on %s: %w", ifname, e)
	}
	return nil
}

// TestRingsSegmentAPeersGSOFrame: a kernel peer at its default offloads
// (segmentation on) sends one UDP_SEGMENT write of 20 datagrams; the veth
// carries it to the packet socket as one 28 KiB GSO frame (the V2 slot
// truncates it, the V3 block holds it), and the driver hands over 20
// datagrams of one MTU each, in order, with their payload intact, their
// IPv4 checksums valid and their UDP checksums marked partial, none
// counted as oversize. Then a frame after it arrives too.
func TestRingsSegmentAPeersGSOFrame(t *testing.T) {
	const count, size = 20, 1400
	for _, ring := range rings {
		t.Run(ring.String(), func(t *testing.T) {
			v := drivertest.NewVeth(t, 1)
			nic := openOne(t, v, Config{Ring: ring})
			drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
			kernel := kernelUDP(t, v.KernelNS)
			raw, err := kernel.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, size) })
			if serr != nil {
				t.Skipf("UDP_SEGMENT: %v", serr)
			}
			payload := make([]byte, count*size)
			for i := range payload {
				payload[i] = byte(i / size)
			}
			if _, err := kernel.WriteToUDP(payload, stackUDP); err != nil {
				t.Fatal(err)
			}
			raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 0) })
			if _, err := kernel.WriteToUDP([]byte("after"), stackUDP); err != nil {
				t.Fatal(err)
			}
			q := nic.Queue(0)
			bufs := make([]*nicq.Buf, 7) // a burst smaller than the frame's segments
			var got [][]byte
			for deadline := time.Now().Add(3 * time.Second); len(got) < count+1 && time.Now().Before(deadline); {
				n := q.Recv(bufs)
				for _, b := range bufs[:n] {
					if f := b.Bytes(); isTestDatagram(f) {
						if len(f) > 14+1500 {
							t.Errorf("a %d-byte frame, longer than the MTU", len(f))
						}
						if len(f) > 100 && b.Flags&nicq.FlagL4ChecksumPartial == 0 {
							t.Errorf("segment %d: flags %#x, want partial", len(got), b.Flags)
						}
						got = append(got, append([]byte(nil), f...))
					}
				}
				nicq.FreeAll(bufs[:n])
				if n == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			if c := q.Counters(); len(got) != count+1 || c.Drops[nicq.DropOversize] != 0 {
				t.Fatalf("%d datagrams (want %d), %d counted oversize (want 0)", len(got), count+1, c.Drops[nicq.DropOversize])
			}
			for i, f := range got[:count] {
				if !frametestIPv4ChecksumOK(f[14:34]) || len(f) != 42+size || f[42] != byte(i) || f[len(f)-1] != byte(i) {
					t.Errorf("datagram %d: %d bytes, first payload byte %d, IP checksum ok %v", i, len(f), f[42], frametestIPv4ChecksumOK(f[14:34]))
				}
			}
			// The point of the test: the frame came whole, and the driver
			// cut it (the kernel did not segment it before the socket).
			if q.(*Queue).large.Pool() == nil {
				t.Error("no large frame reached the driver: the kernel segmented the write itself, and this test no longer tests the driver's segmentation")
			}
			if string(got[count][42:]) != "after" {
				t.Errorf("the frame after the GSO frame: %q", got[count][42:])
			}
		})
	}
}

func frametestIPv4ChecksumOK(h []byte) bool {
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}

// TestOpenJoinsTheMulticastGroups: the interface's multicast filter holds
// Config.Multicast's groups while the NIC is open, and not after.
func TestOpenJoinsTheMulticastGroups(t *testing.T) {
	v := drivertest.NewVeth(t, 1)
	group := [6]byte{0x33, 0x33, 0xff, 0x01, 0x23, 0x45}
	mcast := func() string { return v.StackMulticast(t) }
	want := fmt.Sprintf("%x", group[:])
	if strings.Contains(mcast(), want) {
		t.Fatalf("group %s joined before Open", want)
	}
	var nic *NIC
	if err := nettest.DoIn(v.StackNS, func() (err error) {
		nic, err = Open(Config{Interface: v.StackIf, Queues: 1, Multicast: [][6]byte{group}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if m := mcast(); !strings.Contains(m, want) {
		nic.Close()
		t.Fatalf("group %s not joined while open:\n%s", want, m)
	}
	nic.Close()
	if m := mcast(); strings.Contains(m, want) {
		t.Fatalf("group %s still joined after Close:\n%s", want, m)
	}
}
