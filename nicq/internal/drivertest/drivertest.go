//go:build linux

// Package drivertest checks a Linux driver against the kernel on the other
// side of its device: frames the kernel sends arrive on the queue the RSS
// configuration names (when the driver steers), frames the stack sends reach
// a kernel socket, counters count them, and the wait protocol wakes a core.
// The driver's own tests build the device (a TAP, a veth pair) inside
// namespaces of their own and call Exercise.
package drivertest

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
	"github.com/mkstack/mkstack/nicq/netlab/nettest"
	"github.com/mkstack/mkstack/rss"
)

// Addresses of the driver tests' little network: the stack (a NIC with no
// stack behind it, driven by the test) and the kernel.
var (
	StackIP  = [4]byte{10, 77, 9, 1}
	KernelIP = [4]byte{10, 77, 9, 2}
)

// Setup is a driver's NIC and the kernel across its device.
type Setup struct {
	NIC nicq.NIC
	// KernelNS holds KernelIf, the kernel's side of the device.
	KernelNS netns.NsHandle
	KernelIf string
	// Steered: each flow must arrive on the queue NIC.RSS() names.
	Steered bool
}

// ConfigureKernel gives the kernel side KernelIP/24, brings it up and adds
// a permanent neighbour entry for StackIP (so no ARP is needed: the NIC
// under test has no stack to answer).
func ConfigureKernel(t testing.TB, h netns.NsHandle, ifname string, stackMAC [6]byte) {
	t.Helper()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatalf("kernel side %s: %v", ifname, err)
	}
	// No IPv6 on the device: its router and neighbour solicitations would
	// be frames the test did not send.
	err = nettest.DoIn(h, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("1"), 0)
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("disable IPv6 on %s: %v", ifname, err)
	}
	a, _ := netlink.ParseAddr(fmt.Sprintf("%d.%d.%d.%d/24", KernelIP[0], KernelIP[1], KernelIP[2], KernelIP[3]))
	if err := nl.AddrAdd(l, a); err != nil {
		t.Fatalf("address on %s: %v", ifname, err)
	}
	if err := nl.LinkSetUp(l); err != nil {
		t.Fatalf("%s up: %v", ifname, err)
	}
	if err := nl.NeighAdd(&netlink.Neigh{
		LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4,
		IP: net.IP(StackIP[:]), HardwareAddr: net.HardwareAddr(stackMAC[:]),
	}); err != nil {
		t.Fatalf("neighbour entry on %s: %v", ifname, err)
	}
}

// Exercise runs the checks. flows is the number of distinct UDP flows the
// kernel sends (each one datagram).
func Exercise(t *testing.T, s Setup, flows int) {
	t.Helper()
	nic := s.NIC
	var conns []*net.UDPConn
	err := nettest.DoIn(s.KernelNS, func() error {
		for i := 0; i < flows; i++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP(KernelIP[:])})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if err != nil {
		t.Fatalf("kernel sockets: %v", err)
	}

	// Kernel → stack: one datagram per flow, each flow a different source
	// port, to StackIP:9000.
	dst := &net.UDPAddr{IP: net.IP(StackIP[:]), Port: 9000}
	want := map[uint16]int{} // source port → queue RSS names
	for i, c := range conns {
		if _, err := c.WriteToUDP([]byte(fmt.Sprintf("flow %d", i)), dst); err != nil {
			t.Fatalf("kernel send: %v", err)
		}
		sport := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		want[sport] = nic.RSS().QueueIPv4Flow(rss.ProtoUDP, KernelIP, StackIP, sport, 9000)
	}
	got := map[uint16]int{}
	bufs := make([]*nicq.Buf, 32)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < flows && time.Now().Before(deadline) {
		idle := true
		for qi := 0; qi < nic.NumQueues(); qi++ {
			q := nic.Queue(qi)
			n := q.Recv(bufs)
			for _, b := range bufs[:n] {
				idle = false
				f := b.Bytes()
				if b.RxQueue != uint16(qi) {
					t.Errorf("queue %d received a frame marked RxQueue %d", qi, b.RxQueue)
				}
				// Only the test's datagrams: IPv4, UDP, to port 9000.
				if len(f) >= 42 && f[12] == 8 && f[13] == 0 && f[23] == 17 && f[36] == 9000>>8 && f[37] == 9000&0xff {
					sport := uint16(f[34])<<8 | uint16(f[35])
					if _, dup := got[sport]; dup {
						t.Errorf("flow from port %d arrived twice", sport)
					}
					got[sport] = qi
				}
				b.Free()
			}
		}
		if idle {
			time.Sleep(time.Millisecond)
		}
	}
	if len(got) != flows {
		t.Fatalf("the NIC received %d of the kernel's %d flows", len(got), flows)
	}
	perQueue := make([]int, nic.NumQueues())
	for sport, qi := range got {
		perQueue[qi]++
		if s.Steered && want[sport] != qi {
			t.Errorf("flow from port %d arrived on queue %d; RSS names queue %d", sport, qi, want[sport])
		}
	}
	t.Logf("%d flows by queue: %v", flows, perQueue)

	// Stack → kernel: from each queue, one datagram to each kernel socket.
	for qi := 0; qi < nic.NumQueues(); qi++ {
		q := nic.Queue(qi)
		before := q.Counters().TxPackets
		var out []*nicq.Buf
		for i, c := range conns[:min(len(conns), 4)] {
			b := q.Pool().Get()
			if b == nil {
				t.Fatal("pool empty")
			}
			u := frametest.UDP4{DstMAC: kernelMAC(t, s), SrcMAC: nic.MAC(), Src: StackIP, Dst: KernelIP,
				SrcPort: 9000, DstPort: uint16(c.LocalAddr().(*net.UDPAddr).Port), Payload: []byte(fmt.Sprintf("from queue %d to %d", qi, i))}
			copy(b.Append(len(u.Frame())), u.Frame())
			out = append(out, b)
		}
		sent := 0
		for sent < len(out) && time.Now().Before(deadline.Add(5*time.Second)) {
			sent += q.Send(out[sent:])
			if sent < len(out) {
				time.Sleep(time.Millisecond)
			}
			q.Recv(bufs[:0]) // let a driver reap completions
		}
		nicq.FreeAll(out[sent:])
		for i, c := range conns[:min(len(conns), 4)] {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 256)
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("queue %d: kernel socket %d got nothing: %v", qi, i, err)
			}
			if wantP := fmt.Sprintf("from queue %d to %d", qi, i); !bytes.Equal(buf[:n], []byte(wantP)) || from.AddrPort() != netip.AddrPortFrom(netip.AddrFrom4(StackIP), 9000) {
				t.Errorf("queue %d: kernel socket %d got %q from %v", qi, i, buf[:n], from)
			}
		}
		if d := q.Counters().TxPackets - before; d < uint64(len(out)) {
			t.Errorf("queue %d counted %d frames sent of %d", qi, d, len(out))
		}
	}

	// The data path allocates nothing in steady state: a frame out and a
	// receive burst (empty, or whatever the kernel sent) per run.
	{
		q := nic.Queue(0)
		u := frametest.UDP4{DstMAC: kernelMAC(t, s), SrcMAC: nic.MAC(), Src: StackIP, Dst: KernelIP,
			SrcPort: 9000, DstPort: uint16(conns[0].LocalAddr().(*net.UDPAddr).Port), Payload: []byte("steady")}
		frame := u.Frame()
		one := make([]*nicq.Buf, 1)
		allocs := testing.AllocsPerRun(200, func() {
			if b := q.Pool().Get(); b != nil {
				copy(b.Append(len(frame)), frame)
				one[0] = b
				if q.Send(one) == 0 {
					b.Free()
				}
				one[0] = nil
			}
			n := q.Recv(bufs)
			nicq.FreeAll(bufs[:n])
		})
		if allocs != 0 {
			t.Errorf("a send and a receive burst allocate %.1f times per run; want 0", allocs)
		}
	}

	// The wait protocol: with nothing pending a wait times out; a frame
	// from the kernel wakes it.
	for qi := 0; qi < nic.NumQueues(); qi++ {
		drain(nic.Queue(qi), bufs)
	}
	var target *net.UDPConn
	for i, c := range conns {
		if got[uint16(c.LocalAddr().(*net.UDPAddr).Port)] == 0 {
			target = conns[i]
			break
		}
	}
	if target == nil {
		t.Log("no flow landed on queue 0; wait protocol not checked")
		return
	}
	q0 := nic.Queue(0)
	if woken, err := nicq.Wait(q0, 20*time.Millisecond); err != nil || woken {
		t.Errorf("an idle queue's wait: woken %v, err %v", woken, err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		target.WriteToUDP([]byte("wake"), dst)
	}()
	start := time.Now()
	woken, err := nicq.Wait(q0, 3*time.Second)
	if err != nil || !woken {
		t.Errorf("a frame did not wake the waiting queue: woken %v, err %v after %v", woken, err, time.Since(start))
	}
	if n := q0.Recv(bufs); n == 0 {
		t.Error("woken, but Recv found nothing")
	} else {
		nicq.FreeAll(bufs[:n])
	}
	if c := q0.Counters(); c.RxPackets == 0 || c.RxBytes == 0 {
		t.Errorf("queue 0 counters: %+v", c)
	}
}

func drain(q nicq.Queue, bufs []*nicq.Buf) {
	for i := 0; i < 100; i++ {
		n := q.Recv(bufs)
		nicq.FreeAll(bufs[:n])
		if n == 0 {
			time.Sleep(time.Millisecond)
			if !q.Pending() {
				return
			}
		}
	}
}

func kernelMAC(t *testing.T, s Setup) [6]byte { return LinkMAC(t, s.KernelNS, s.KernelIf) }

// LinkMAC returns the address of device ifname in namespace ns.
func LinkMAC(t testing.TB, ns netns.NsHandle, ifname string) [6]byte {
	t.Helper()
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	var m [6]byte
	copy(m[:], l.Attrs().HardwareAddr)
	return m
}

// Veth is a veth pair across two namespaces of the test's own: the stack's
// end (no address, for the driver under test) and the kernel's end.
type Veth struct {
	StackNS, KernelNS netns.NsHandle
	StackIf, KernelIf string
}

// NewVeth makes the namespaces and the pair, queues receive and transmit
// queues each way, the kernel end's offloads at the kernel's defaults
// (transmit checksumming and TSO on), as a container's veth is: the
// drivers take partial checksums and large frames from it. Everything
// goes when the test ends.
func NewVeth(t testing.TB, queues int) Veth {
	t.Helper()
	v := Veth{StackIf: "mkts0", KernelIf: "mktk0"}
	v.StackNS = nettest.NewNS(t).Handle()
	v.KernelNS = nettest.NewNS(t).Handle()
	snl, err := netlink.NewHandleAt(v.StackNS)
	if err != nil {
		t.Fatal(err)
	}
	defer snl.Close()
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: v.StackIf, NumTxQueues: queues, NumRxQueues: queues, MTU: 1500},
		PeerName:  v.KernelIf, PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues),
	}
	if err := snl.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	peer, err := snl.LinkByName(v.KernelIf)
	if err == nil {
		err = snl.LinkSetNsFd(peer, int(v.KernelNS))
	}
	if err != nil {
		t.Fatalf("move %s: %v", v.KernelIf, err)
	}
	own, err := snl.LinkByName(v.StackIf)
	if err == nil {
		err = snl.LinkSetUp(own)
	}
	if err != nil {
		t.Fatalf("%s up: %v", v.StackIf, err)
	}
	// Quiet the stack's end too: only the test's frames cross the pair.
	err = nettest.DoIn(v.StackNS, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/"+v.StackIf+"/disable_ipv6", []byte("1"), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// StackMulticast returns the Ethernet groups the interfaces in the stack's
// namespace have joined (/proc/net/dev_mcast, read from a thread in it).
func (v Veth) StackMulticast(t testing.TB) string {
	t.Helper()
	var out []byte
	if err := nettest.DoIn(v.StackNS, func() (err error) {
		out, err = os.ReadFile("/proc/thread-self/net/dev_mcast")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// SetMTU sets the MTU of both ends of the pair.
func (v Veth) SetMTU(t testing.TB, mtu int) {
	t.Helper()
	for _, end := range []struct {
		ns     netns.NsHandle
		ifname string
	}{{v.StackNS, v.StackIf}, {v.KernelNS, v.KernelIf}} {
		nl, err := netlink.NewHandleAt(end.ns)
		if err != nil {
			t.Fatal(err)
		}
		l, err := nl.LinkByName(end.ifname)
		if err == nil {
			err = nl.LinkSetMTU(l, mtu)
		}
		nl.Close()
		if err != nil {
			t.Fatalf("MTU %d on %s: %v", mtu, end.ifname, err)
		}
	}
}
