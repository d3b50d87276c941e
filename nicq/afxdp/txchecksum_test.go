//go:build linux

package afxdp

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/internal/drivertest"
	"github.com/mkstack/mkstack/nicq/internal/vnet"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
)

// TestTxChecksumOffload: in copy mode the NIC offers FeatureTxChecksum; a
// UDP frame sent with its checksum partial and FlagL4ChecksumOffload
// reaches the kernel peer as CHECKSUM_PARTIAL (a packet socket there sees
// TP_STATUS_CSUMNOTREADY: the kernel took the metadata's request, not a
// finished checksum), and the peer's UDP socket takes the datagram.
func TestTxChecksumOffload(t *testing.T) {
	v := drivertest.NewVeth(t, 1)
	nic, _ := openOnVeth(t, v, Config{Interface: v.StackIf, Queues: 1, Addrs: stackAddr(), CopyOnly: true})
	if nic.Features()&nicq.FeatureTxChecksum == 0 {
		t.Fatalf("copy mode: features %v, want tx-checksum", nic.Features())
	}
	drivertest.ConfigureKernel(t, v.KernelNS, v.KernelIf, nic.MAC())
	var conn *net.UDPConn
	var raw int
	if err := nettest.DoIn(v.KernelNS, func() (err error) {
		if conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(drivertest.KernelIP[:]), Port: 7000}); err != nil {
			return err
		}
		if raw, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP))); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(v.KernelIf)
		if err != nil {
			return err
		}
		if err := unix.Bind(raw, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		return unix.SetsockoptInt(raw, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer unix.Close(raw)

	payload := bytes.Repeat([]byte("partial checksum "), 40)
	frame := frametest.UDP4{
		DstMAC: drivertest.LinkMAC(t, v.KernelNS, v.KernelIf), SrcMAC: nic.MAC(),
		Src: drivertest.StackIP, Dst: drivertest.KernelIP, SrcPort: 9000, DstPort: 7000, Payload: payload,
	}.Frame()
	// The field as a sender with the offload leaves it: the folded
	// pseudo-header sum.
	start, field, _ := vnet.PartialChecksum(frame)
	binary.BigEndian.PutUint16(frame[start+field:], pseudoOnly(frame, start))

	q := nic.Queue(0).(*Queue)
	b := q.pool.Get()
	copy(b.Append(len(frame)), frame)
	b.Flags |= nicq.FlagL4ChecksumOffload
	if n := q.Send([]*nicq.Buf{b}); n != 1 {
		t.Fatalf("Send took %d of 1", n)
	}
	if q.Counters().Syscalls == 0 {
		t.Error("a send in copy mode kicked the kernel without counting the system call")
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := make([]byte, 2048)
	n, _, err := conn.ReadFromUDP(got)
	if err != nil || !bytes.Equal(got[:n], payload) {
		t.Fatalf("the kernel's UDP socket: %v, %d bytes (counters %+v)", err, n, q.Counters())
	}
	// The packet socket saw the same frame, partial.
	unix.SetsockoptTimeval(raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	oob := make([]byte, 128)
	for {
		n, oobn, _, _, err := unix.Recvmsg(raw, got, oob, 0)
		if err != nil {
			t.Fatalf("packet socket: %v", err)
		}
		if n < 14+20+8 || got[14+9] != 17 || binary.BigEndian.Uint16(got[14+20+2:]) != 7000 {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 || len(msgs[0].Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			t.Fatalf("no auxdata: %v", err)
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&msgs[0].Data[0]))
		if aux.Status&unix.TP_STATUS_CSUMNOTREADY == 0 {
			t.Errorf("the frame reached the peer with status %#x: not CHECKSUM_PARTIAL, the metadata's request was not taken", aux.Status)
		}
		return
	}
}

// pseudoOnly is the folded IPv4 pseudo-header sum of the UDP or TCP
// segment at start of frame.
func pseudoOnly(frame []byte, start int) uint16 {
	var acc uint32
	for i := 14 + 12; i < 14+20; i += 2 {
		acc += uint32(binary.BigEndian.Uint16(frame[i:]))
	}
	acc += uint32(frame[14+9]) + uint32(len(frame)-start)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
