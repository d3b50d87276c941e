//go:build linux

package afxdp

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

// TestJumboFramesInPieces: on a veth at MTU 9000, larger than a UMEM frame
// of 2 or 4 KiB, the driver opens in multi-buffer mode, a datagram of 8000
// bytes from the kernel arrives as one buffer with its bytes in order, and
// one the driver sends in pieces reaches the kernel's socket intact.
func TestJumboFramesInPieces(t *testing.T) {
	for _, frameSize := range []int{2048, 4096} {
		v := drivertest.NewVeth(t, 1)
		v.SetMTU(t, 9000)
		nic, _ := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr(), FrameSize: frameSize, Frames: 4096, RxRing: 512, TxRing: 512})
		if nic.Features()&nicq.FeatureMultiBuffer == 0 {
			t.Fatalf("frame size %d, MTU 9000: features %v, want multi-buffer", frameSize, nic.Features())
		}
		drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
		var conn *net.UDPConn
		if err := nettest.DoIn(v.KernelNS, func() (err error) {
			conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(drivertest.KernelIP[:]), Port: 7000})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		payload := make([]byte, 8000)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		q := nic.Queue(0).(*Queue)

		// Kernel → stack.
		dst := &net.UDPAddr{IP: net.IP(drivertest.StackIP[:]), Port: 9000}
		var got *nicq.Buf
		bufs := make([]*nicq.Buf, 8)
		for deadline := time.Now().Add(3 * time.Second); got == nil && time.Now().Before(deadline); {
			conn.WriteToUDP(payload, dst)
			time.Sleep(5 * time.Millisecond)
			n := q.Recv(bufs)
			for _, b := range bufs[:n] {
				if got == nil && b.Len() == 14+20+8+len(payload) {
					got = b
					continue
				}
				b.Free()
			}
		}
		if got == nil {
			t.Fatalf("frame size %d: no frame of %d bytes received (counters %+v)", frameSize, 14+20+8+len(payload), q.Counters())
		}
		if !bytes.Equal(got.Bytes()[14+20+8:], payload) {
			t.Errorf("frame size %d: the received datagram's payload differs from what the kernel sent", frameSize)
		}
		got.Free()
		if q.Gathered() == 0 {
			t.Errorf("frame size %d: the jumbo frame did not come in pieces", frameSize)
		}

		// Stack → kernel: a frame from a pool of the caller's, larger
		// than a UMEM frame.
		frame := frametest.UDP4{
			DstMAC: drivertest.LinkMAC(t, v.KernelNS, v.KernelIf), SrcMAC: nic.MAC(),
			Src: drivertest.StackIP, Dst: drivertest.KernelIP, SrcPort: 9000, DstPort: 7000, Payload: payload,
		}.Frame()
		big, err := nicq.NewPool(nicq.PoolConfig{Name: "big", Buffers: 4, FrameSize: 16384})
		if err != nil {
			t.Fatal(err)
		}
		b := big.Get()
		copy(b.Append(len(frame)), frame)
		if n := q.Send([]*nicq.Buf{b}); n != 1 {
			t.Fatalf("frame size %d: Send took %d of 1", frameSize, n)
		}
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		in := make([]byte, 9000)
		n, _, err := conn.ReadFromUDP(in)
		if err != nil {
			t.Fatalf("frame size %d: the kernel got no datagram: %v (counters %+v)", frameSize, err, q.Counters())
		}
		if !bytes.Equal(in[:n], payload) {
			t.Errorf("frame size %d: the kernel got %d bytes, not the %d sent", frameSize, n, len(payload))
		}
		if big.InUse() != 0 {
			t.Errorf("frame size %d: the sent buffer was not freed", frameSize)
		}
	}
}
