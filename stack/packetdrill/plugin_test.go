//go:build linux

package main

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// These tests drive the plugin's Go side directly, as packetdrill's main
// thread would (no cgo, no packetdrill): the errno semantics of the socket
// table and the virtual clock.

var (
	localIP  = [4]byte{192, 168, 0, 2}
	remoteIP = [4]byte{192, 0, 2, 1}
)

func newTestPlugin(t *testing.T, sysctls map[string]string) (*plugin, int) {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	dir := t.TempDir()
	for k, v := range sysctls {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := parseOptions("local=192.168.0.2/16,gateway=192.168.0.1,sysctl=" + dir)
	if err != nil {
		t.Fatal(err)
	}
	tid := syscall.Gettid()
	p, err := newPlugin(opts, tid)
	if err != nil {
		t.Fatal(err)
	}
	p.log = io.Discard
	return p, tid
}

func sa(addr [4]byte, port uint16) []byte { return sockaddr(addr, port) }

// tcpPacket builds an IPv4 TCP packet from the remote end.
func tcpPacket(srcPort, dstPort uint16, seq, ack uint32, flags header.TCPFlags, opts []byte) []byte {
	hl := header.TCPMinimumSize + len(opts)
	b := make([]byte, header.IPv4MinimumSize+hl)
	header.IPv4(b).Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: header.ProtocolTCP, Source: remoteIP, Destination: localIP})
	seg := header.TCP(b[header.IPv4MinimumSize:])
	seg.Encode(&header.TCPFields{SourcePort: srcPort, DestinationPort: dstPort, SequenceNumber: seq, AckNumber: ack, DataOffset: hl, Flags: flags, Window: 65535})
	copy(seg[header.TCPMinimumSize:], opts)
	seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(remoteIP, localIP, header.ProtocolTCP, uint16(hl))))
	return b
}

func receive(t *testing.T, p *plugin, tid int) (header.TCP, int64) {
	t.Helper()
	buf := make([]byte, 2048)
	n, at := p.netdevReceive(tid, buf)
	if n == 0 {
		t.Fatal("netdev_receive: no packet")
	}
	ip := header.IPv4(buf[:n])
	return header.TCP(buf[ip.HeaderLength():n]), at
}

func TestErrnos(t *testing.T) {
	p, tid := newTestPlugin(t, nil)
	if _, e := p.socket(tid, 10, sockStream, 0); e != syscall.EAFNOSUPPORT {
		t.Errorf("socket(AF_INET6): %v, want EAFNOSUPPORT", e)
	}
	fd, e := p.socket(tid, afInet, sockStream, syscall.IPPROTO_TCP)
	if e != 0 || fd != 3 {
		t.Fatalf("socket: %d %v, want 3", fd, e)
	}
	buf := make([]byte, 10)
	if _, e := p.recv(tid, fd, [][]byte{buf}, 0); e != syscall.ENOTCONN {
		t.Errorf("read of a fresh socket: %v, want ENOTCONN", e)
	}
	if _, e := p.send(tid, fd, [][]byte{buf}, 0); e != syscall.EPIPE {
		t.Errorf("write of a fresh socket: %v, want EPIPE", e)
	}
	if _, e := p.accept(tid, fd, nil); e != syscall.EINVAL {
		t.Errorf("accept on a socket not listening: %v, want EINVAL", e)
	}
	if _, e := p.recv(tid, 42, [][]byte{buf}, 0); e != syscall.EBADF {
		t.Errorf("read of fd 42: %v, want EBADF", e)
	}
	pf := []pollFD{{fd: fd, events: pollIn | pollOut}}
	if n, _ := p.poll(tid, pf, 0); n != 1 || pf[0].revent != pollOut|pollHup {
		t.Errorf("poll of a fresh socket: %d %#x, want POLLOUT|POLLHUP", n, pf[0].revent)
	}
	if _, e := p.bind(tid, fd, sa(localIP, 8080)); e != 0 {
		t.Fatalf("bind: %v", e)
	}
	fd2, _ := p.socket(tid, afInet, sockStream, 0)
	if _, e := p.bind(tid, fd2, sa(localIP, 8080)); e != syscall.EADDRINUSE {
		t.Errorf("second bind of a port: %v, want EADDRINUSE", e)
	}
	if _, e := p.listen(tid, fd, 1); e != 0 {
		t.Fatalf("listen: %v", e)
	}
	if _, e := p.fcntl(tid, fd, fSetfl, syscall.O_NONBLOCK); e != 0 {
		t.Fatal(e)
	}
	if fl, _ := p.fcntl(tid, fd, fGetfl, 0); fl&syscall.O_NONBLOCK == 0 {
		t.Errorf("F_GETFL after F_SETFL O_NONBLOCK: %#x", fl)
	}
	if _, e := p.accept(tid, fd, nil); e != syscall.EAGAIN {
		t.Errorf("nonblocking accept with none waiting: %v, want EAGAIN", e)
	}
}

// TestHandshakeAndClock opens a connection passively, checks the SYN-ACK
// carries the scale defaults.sh's tcp_rmem implies, the virtual clock
// (usleep, gettimeofday spins) and the RTO of a lost SYN-ACK.
func TestHandshakeAndClock(t *testing.T) {
	p, tid := newTestPlugin(t, map[string]string{"tcp_rmem": "4096 540000 15728640", "tcp_timestamps": "0"})
	fd, _ := p.socket(tid, afInet, sockStream, 0)
	p.bind(tid, fd, sa(localIP, 8080))
	p.listen(tid, fd, 1)
	t0 := p.gettimeofday(tid)
	if t1 := p.gettimeofday(tid); t1 != t0+1 {
		t.Errorf("a second gettimeofday in a row: %d, want %d (a spinning caller must see time pass)", t1, t0+1)
	}
	p.usleep(tid, 100000)
	// SYN with mss 1000, wscale 7.
	p.netdevSend(tid, tcpPacket(5000, 8080, 0, 0, header.TCPFlagSYN, []byte{2, 4, 0x03, 0xe8, 1, 3, 3, 7}))
	synack, at := receive(t, p, tid)
	if synack.Flags() != header.TCPFlagSYN|header.TCPFlagACK {
		t.Fatalf("flags %v, want SYN-ACK", synack.Flags())
	}
	var o header.TCPOptions
	header.ParseTCPOptions(synack.Options(), &o)
	if !o.HasWindowScale || o.WindowScale != 8 || o.HasTimestamps {
		t.Errorf("SYN-ACK options %+v: want wscale 8 (tcp_rmem max 15 MiB) and no timestamps (tcp_timestamps=0)", o)
	}
	if want := t0 + 1 + 100000; at != want {
		t.Errorf("SYN-ACK at %d us, want %d (the time of the SYN)", at, want)
	}
	// No ACK: the SYN-ACK goes again after the initial RTO of 1s.
	again, at2 := receive(t, p, tid)
	if again.Flags() != header.TCPFlagSYN|header.TCPFlagACK || at2-at < 990000 || at2-at > 1010000 {
		t.Errorf("retransmitted SYN-ACK %v after %d us, want one after 1s", again.Flags(), at2-at)
	}
	if now := p.gettimeofday(tid); now != at2 {
		t.Errorf("clock %d after netdev_receive, want the packet's time %d", now, at2)
	}
	iss := synack.SequenceNumber()
	p.netdevSend(tid, tcpPacket(5000, 8080, 1, iss+1, header.TCPFlagACK, nil))
	var peer []byte
	cfd, e := p.accept(tid, fd, &peer)
	if e != 0 {
		t.Fatalf("accept: %v", e)
	}
	if addr, port, _ := parseSockaddr(peer); addr != remoteIP || port != 5000 {
		t.Errorf("accept's address %v:%d, want %v:5000", addr, port, remoteIP)
	}
	// Data, then a nonblocking read, then SIOCINQ.
	p.fcntl(tid, cfd, fSetfl, syscall.O_NONBLOCK)
	buf := make([]byte, 100)
	if _, e := p.recv(tid, cfd, [][]byte{buf}, 0); e != syscall.EAGAIN {
		t.Errorf("nonblocking read with nothing: %v, want EAGAIN", e)
	}
	pkt := tcpPacket(5000, 8080, 1, iss+1, header.TCPFlagACK|header.TCPFlagPSH, nil)
	pkt = append(pkt, "hello"...)
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64, Protocol: header.ProtocolTCP, Source: remoteIP, Destination: localIP})
	seg := header.TCP(pkt[header.IPv4MinimumSize:])
	seg.SetChecksum(0)
	seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(remoteIP, localIP, header.ProtocolTCP, uint16(len(seg)))))
	p.netdevSend(tid, pkt)
	var inq int32
	if _, e := p.ioctl(tid, cfd, siocinq, &inq); e != 0 || inq != 5 {
		t.Errorf("SIOCINQ: %d %v, want 5", inq, e)
	}
	// TCP_INQ: recvmsg reports the bytes left to read (none asked: -1).
	if _, e, hint := p.recvmsg(tid, cfd, [][]byte{buf}, msgPeek); e != 0 || hint != -1 {
		t.Errorf("recvmsg without TCP_INQ: %v, inq %d, want none (-1)", e, hint)
	}
	if _, e := p.setsockopt(tid, cfd, solTCP, tcpInq, []byte{1, 0, 0, 0}); e != 0 {
		t.Errorf("setsockopt(TCP_INQ): %v", e)
	}
	if n, e, hint := p.recvmsg(tid, cfd, [][]byte{buf[:1]}, msgPeek); n != 1 || e != 0 || hint != 5 {
		t.Errorf("recvmsg(MSG_PEEK) of 1 with TCP_INQ: %d %v, inq %d, want 1, inq 5", n, e, hint)
	}
	// TCP_USER_TIMEOUT reaches the connection; negative values are refused.
	if _, e := p.setsockopt(tid, cfd, solTCP, tcpUserTimeout, []byte{0xb8, 0x0b, 0, 0}); e != 0 {
		t.Errorf("setsockopt(TCP_USER_TIMEOUT, 3000): %v", e)
	}
	var uto []byte
	if _, e := p.getsockopt(tid, cfd, solTCP, tcpUserTimeout, &uto); e != 0 || len(uto) != 4 || uto[0] != 0xb8 || uto[1] != 0x0b {
		t.Errorf("getsockopt(TCP_USER_TIMEOUT): %v %v, want 3000", uto, e)
	}
	if d := p.fds[cfd].conn.UserTimeout(); d != 3*time.Second {
		t.Errorf("the connection's user timeout %v, want 3s", d)
	}
	if _, e := p.setsockopt(tid, cfd, solTCP, tcpUserTimeout, []byte{0xff, 0xff, 0xff, 0xff}); e != syscall.EINVAL {
		t.Errorf("setsockopt(TCP_USER_TIMEOUT, -1): %v, want EINVAL", e)
	}
	if n, e := p.recv(tid, cfd, [][]byte{buf[:2], buf[2:]}, msgPeek); n != 5 || e != 0 || string(buf[:5]) != "hello" {
		t.Errorf("recv(MSG_PEEK) into two buffers: %d %v %q", n, e, buf[:n])
	}
	if n, e := p.recv(tid, cfd, [][]byte{buf}, 0); n != 5 || e != 0 {
		t.Errorf("read: %d %v, want 5", n, e)
	}
	// RST: the first read reports ECONNRESET, the next end of file; a
	// write then gets EPIPE.
	p.netdevSend(tid, tcpPacket(5000, 8080, 6, 0, header.TCPFlagRST, nil))
	if _, e := p.recv(tid, cfd, [][]byte{buf}, 0); e != syscall.ECONNRESET {
		t.Errorf("read after RST: %v, want ECONNRESET", e)
	}
	if n, e := p.recv(tid, cfd, [][]byte{buf}, 0); n != 0 || e != 0 {
		t.Errorf("second read after RST: %d %v, want 0 (EOF)", n, e)
	}
	if _, e := p.send(tid, cfd, [][]byte{buf}, 0); e != syscall.EPIPE {
		t.Errorf("write after RST: %v, want EPIPE", e)
	}
	if _, e := p.close(tid, cfd); e != 0 {
		t.Errorf("close: %v", e)
	}
}

// TestConnectRefused: a nonblocking connect is EINPROGRESS, then EALREADY;
// a RST makes SO_ERROR ECONNREFUSED.
func TestConnectRefused(t *testing.T) {
	p, tid := newTestPlugin(t, nil)
	fd, _ := p.socket(tid, afInet, sockStream|sockNonblock, 0)
	if _, e := p.connect(tid, fd, sa(remoteIP, 8080)); e != syscall.EINPROGRESS {
		t.Fatalf("nonblocking connect: %v, want EINPROGRESS", e)
	}
	if _, e := p.connect(tid, fd, sa(remoteIP, 8080)); e != syscall.EALREADY {
		t.Errorf("second connect: %v, want EALREADY", e)
	}
	syn, _ := receive(t, p, tid)
	if syn.Flags() != header.TCPFlagSYN {
		t.Fatalf("flags %v, want SYN", syn.Flags())
	}
	p.netdevSend(tid, tcpPacket(8080, syn.SourcePort(), 0, syn.SequenceNumber()+1, header.TCPFlagRST|header.TCPFlagACK, nil))
	var v []byte
	if _, e := p.getsockopt(tid, fd, solSocket, soError, &v); e != 0 {
		t.Fatal(e)
	}
	if n, _ := getInt(v); syscall.Errno(n) != syscall.ECONNREFUSED {
		t.Errorf("SO_ERROR %d, want ECONNREFUSED", n)
	}
	p.getsockopt(tid, fd, solSocket, soError, &v)
	if n, _ := getInt(v); n != 0 {
		t.Errorf("SO_ERROR read twice: %d, want 0", n)
	}
}

// TestBlockingOnMainThreadGivesUp: a blocking call the script did not mark
// as blocking runs time forward itself and, with nothing coming, fails
// instead of hanging.
func TestBlockingOnMainThreadGivesUp(t *testing.T) {
	p, tid := newTestPlugin(t, nil)
	p.opts.horizon = time.Minute
	fd, _ := p.socket(tid, afInet, sockStream, 0)
	p.bind(tid, fd, sa(localIP, 8080))
	p.listen(tid, fd, 1)
	done := make(chan syscall.Errno, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, e := p.accept(tid, fd, nil) // as the main thread
		done <- e
	}()
	select {
	case e := <-done:
		if e == 0 {
			t.Error("accept with nothing to accept succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("accept on the main thread hung")
	}
}

// TestBufferSysctlsMapOntoTheBounds: tcp_rmem[2] is both the initial
// receive bound and the most (the windows scripts expect are those of a
// buffer autotuning has no need to grow, and the scale is Linux's), and
// the send buffer starts at tcp_wmem[1] and may grow to tcp_wmem[2].
func TestBufferSysctlsMapOntoTheBounds(t *testing.T) {
	p, _ := newTestPlugin(t, map[string]string{"tcp_rmem": "4096 540000 15728640", "tcp_wmem": "4096 16384 4194304"})
	cfg := p.tcpConfig()
	if cfg.ReceiveBuffer != 15728640 || cfg.ReceiveBufferMax != 15728640 || cfg.SendBuffer != 16384 || cfg.SendBufferMax != 4194304 {
		t.Errorf("receive %d up to %d, send %d up to %d", cfg.ReceiveBuffer, cfg.ReceiveBufferMax, cfg.SendBuffer, cfg.SendBufferMax)
	}
	p, _ = newTestPlugin(t, map[string]string{"tcp_rmem": "4096 87380 1048576"})
	if cfg := p.tcpConfig(); cfg.ReceiveBufferMax != 1<<20 {
		t.Errorf("tcp_rmem max 1 MiB: ReceiveBufferMax %d", cfg.ReceiveBufferMax)
	}
}
