//go:build linux

package tap

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/internal/vnet"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

// TestLargeTCPFramesTakenWhole has the kernel send a bulk TCP stream
// through the TAP to a minimal TCP receiver the test plays on the queue:
// the kernel's TSO frames must reach the queue whole (longer than the
// MTU allows a frame, partial checksums marked), carry the stream's bytes
// in order, and, once the queue's large buffers are all taken, arrive cut
// into frames of one MTU instead.
func TestLargeTCPFramesTakenWhole(t *testing.T) {
	h := nettest.NewNS(t).Handle()
	var nic *NIC
	err := nettest.DoIn(h, func() (err error) {
		nic, err = Open(Config{Name: "mkt1", Queues: 1, NoSteering: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	drivertest.ConfigureKernel(t, h, "mkt1", nic.MAC())
	kernelMAC := drivertest.LinkMAC(t, h, "mkt1")
	q := nic.queues[0]

	const size = 4 << 20
	stream := make([]byte, size)
	for i := range stream {
		stream[i] = byte(i*7 + i>>11)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- nettest.DoIn(h, func() error {
			c, err := net.DialTimeout("tcp4", net.JoinHostPort(net.IP(drivertest.StackIP[:]).String(), "5001"), 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			_, err = c.Write(stream)
			return err
		})
	}()

	r := tcpReceiver{t: t, q: q, ours: nic.MAC(), theirs: kernelMAC, isn: 1000}
	var got bytes.Buffer
	bufs := make([]*nicq.Buf, 64)
	var whole, cut int
	var held []*nicq.Buf // the large pool's buffers, taken in the second half
	deadline := time.Now().Add(30 * time.Second)
	for got.Len() < size && time.Now().Before(deadline) {
		if got.Len() >= size/2 && held == nil {
			// Take every large buffer: what comes now must be cut.
			q.large.DropSpare()
			for b := q.large.Pool().Get(); b != nil; b = q.large.Pool().Get() {
				held = append(held, b)
			}
		}
		n := q.Recv(bufs)
		if n == 0 {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for _, b := range bufs[:n] {
			if b.Len() > q.maxFrame {
				whole++
				if held != nil {
					t.Errorf("a frame of %d bytes arrived whole with the large buffers all taken", b.Len())
				}
				if b.Flags&(nicq.FlagL4ChecksumPartial|nicq.FlagL4ChecksumVerified) == 0 {
					t.Errorf("a large frame arrived with flags %b: its checksum is partial and must say so", b.Flags)
				}
			} else if held != nil && b.Len() > 1000 {
				cut++
			}
			r.take(b.Bytes(), &got)
			b.Free()
		}
	}
	nicq.FreeAll(held)
	if err := <-sent; err != nil {
		t.Fatalf("kernel sender: %v", err)
	}
	if got.Len() != size || !bytes.Equal(got.Bytes(), stream) {
		t.Fatalf("received %d of %d bytes, equal to what was sent: %v", got.Len(), size, bytes.Equal(got.Bytes(), stream[:got.Len()]))
	}
	t.Logf("%d large frames taken whole (the queue counted %d); with the large buffers taken, %d cut into %d full frames", whole, q.Whole(), q.Segmented(), cut)
	if whole == 0 || q.Whole() != uint64(whole) {
		t.Errorf("%d frames longer than the MTU arrived, the queue counted %d taken whole: the kernel's TSO did not reach the stack whole", whole, q.Whole())
	}
	if q.Segmented() == 0 || cut == 0 {
		t.Errorf("with the large buffers taken, %d large frames were cut (%d full frames seen): want some", q.Segmented(), cut)
	}
	if d := q.counters.Drops[nicq.DropOversize] + q.counters.Drops[nicq.DropNoBuffer]; d != 0 {
		t.Errorf("%d frames dropped", d)
	}
}

// tcpReceiver plays the receiving end of one TCP connection on a queue,
// just enough for a kernel sender: it answers the SYN (MSS 1460, a window
// of 64 KiB scaled by 2^4), takes in-order data and acknowledges each
// frame; anything else it answers with the ACK of what it has, for the
// kernel to send again.
type tcpReceiver struct {
	t            *testing.T
	q            *Queue
	ours, theirs [6]byte
	isn          uint32
	port         uint16 // the kernel's port, once its SYN came
	rcvNxt       uint32
}

func (r *tcpReceiver) take(f []byte, got *bytes.Buffer) {
	if len(f) < 14+20+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 6 {
		return // ARP, IPv6 and the like: not ours
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) {
		r.t.Fatalf("IPv4 total length %d in a frame of %d", total, len(f))
	}
	tcp := ip[ihl:total]
	sport := binary.BigEndian.Uint16(tcp)
	seq := binary.BigEndian.Uint32(tcp[4:])
	flags := tcp[13]
	payload := tcp[int(tcp[12]>>4)*4:]
	switch {
	case flags&0x02 != 0: // SYN
		r.port, r.rcvNxt = sport, seq+1
		opts := []byte{2, 4, 0x05, 0xb4, 1, 3, 3, 4} // MSS 1460, NOP, window scale 4
		r.send(0x12, opts)
	case sport != r.port:
	case seq != r.rcvNxt:
		// A retransmission of bytes already here, or bytes beyond one
		// the TAP's queue dropped while this receiver was slow (under
		// the race detector, say): acknowledge what is here, and the
		// kernel sends the rest again.
		if len(payload) > 0 {
			r.send(0x10, nil)
		}
	default:
		got.Write(payload)
		r.rcvNxt += uint32(len(payload))
		if flags&0x01 != 0 { // FIN
			r.rcvNxt++
		}
		if len(payload) > 0 || flags&0x01 != 0 {
			r.send(0x10, nil)
		}
	}
}

// send writes a segment with flags (and our ISN's next sequence number,
// acknowledging rcvNxt) to the kernel.
func (r *tcpReceiver) send(flags byte, opts []byte) {
	seq := r.isn
	if flags&0x02 == 0 {
		seq++
	}
	tcpLen := 20 + len(opts)
	f := make([]byte, 14+20+tcpLen)
	copy(f, r.theirs[:])
	copy(f[6:], r.ours[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen))
	copy(ip[12:], drivertest.StackIP[:])
	copy(ip[16:], drivertest.KernelIP[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold16(sum16(ip[:20], 0)))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp, 5001)
	binary.BigEndian.PutUint16(tcp[2:], r.port)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], r.rcvNxt)
	tcp[12], tcp[13] = byte(tcpLen/4)<<4, flags
	binary.BigEndian.PutUint16(tcp[14:], 4096) // 4096 << 4: 64 KiB
	copy(tcp[20:], opts)
	pseudo := sum16(ip[12:20], 6+uint32(tcpLen))
	binary.BigEndian.PutUint16(tcp[16:], ^fold16(sum16(tcp, pseudo)))
	if err := r.q.write(vnet.Zero[:], f); err != nil {
		r.t.Fatalf("write to the TAP: %v", err)
	}
}

func sum16(b []byte, acc uint32) uint32 {
	for ; len(b) >= 2; b = b[2:] {
		acc += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold16(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
