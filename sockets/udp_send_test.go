package sockets

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestPacketConnStagedWritesArriveInOrder: WriteTo stages datagrams for
// their core and returns; every one arrives, in order, and those written
// just before Close are sent too.
func TestPacketConnStagedWritesArriveInOrder(t *testing.T) {
	srv, cli := pair(t, 2)
	in, err := srv.ListenPacket("udp", ":5300")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := cli.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.UDPAddr{IP: net.IP(serverAddr.AsSlice()), Port: 5300}
	buf := make([]byte, 2048)
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	// One datagram first, so the burst does not wait for ARP (its queue of
	// unresolved frames is short, as Linux's).
	if _, err := out.WriteTo([]byte("hello"), dst); err != nil {
		t.Fatal(err)
	}
	if n, _, err := in.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("first datagram: %q, %v", buf[:n], err)
	}
	// Fewer than the receiving socket's queue, and more than a core's
	// send slots, so some writes find the slots taken and wait.
	const total = 300
	msg := make([]byte, 200)
	for i := range total {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := out.WriteTo(msg, dst); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	out.Close()
	for i := range total {
		n, _, err := in.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v (UDP drops %d)", i, err, srv.Stats().UDPDrops.Load())
		}
		if got := binary.BigEndian.Uint32(buf); n != len(msg) || got != uint32(i) {
			t.Fatalf("datagram %d: %d bytes, number %d", i, n, got)
		}
	}
}

// TestPacketConnWriteWithNoRouteFailsAtOnce: the stacks' routes are
// fixed, so a datagram they cannot route fails its own write, although
// routable ones are sent later by the core.
func TestPacketConnWriteWithNoRouteFailsAtOnce(t *testing.T) {
	_, cli := pair(t, 1)
	pc, err := cli.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = pc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:53")))
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("write off the subnet with no gateway: %v, want ENETUNREACH", err)
	}
}

// TestPacketConnStagedWriteAllocatesNothing: a datagram that fits a slot
// costs the writer no allocation.
func TestPacketConnStagedWriteAllocatesNothing(t *testing.T) {
	if debugBuild {
		t.Skip("the mkstackdebug build allocates to record each buffer's free")
	}
	srv, cli := pair(t, 1)
	in, err := srv.ListenPacket("udp", ":5301")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// The reader counts too (AllocsPerRun counts the process): it uses
	// the read that allocates nothing.
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := in.(*packetConn).ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	out, err := cli.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	pc := out.(*packetConn)
	dst := netip.MustParseAddrPort("10.0.0.1:5301")
	msg := make([]byte, 64)
	if a := testing.AllocsPerRun(200, func() {
		if _, err := pc.WriteToUDPAddrPort(msg, dst); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("%.1f allocations per staged write", a)
	}
}
