package bench

import (
	"context"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/affinity"
)

// Linux is the kernel's stack over loopback through Go's net package: one
// SO_REUSEPORT listener (and UDP socket) per core. Run confines the
// process to the point's CPUs; with PinLinuxGoroutines the server
// goroutines of listener i and the client goroutines of core i are also
// locked to threads pinned to CPUs[i].
func Linux() System {
	return SystemFunc(func(ctx context.Context, p Params) (Point, error) {
		var d net.Dialer
		t := kernelTarget(ctx, p, loopbackAddr(p), func(fn func() error) error { return fn() })
		t.Dial = d.DialContext
		if p.CPUs != nil && PinLinuxGoroutines {
			t.Pin = func(core int) error { return affinity.Pin(p.CPUs[core]) }
		}
		pt, err := RunConn(ctx, t, p)
		pt.System = SysLinux
		return pt, err
	})
}

// loopbackAddr is the loopback address of p's family: 127.0.0.1, or ::1
// with p.IPv6.
func loopbackAddr(p Params) string {
	if p.IPv6 {
		return "::1"
	}
	return "127.0.0.1"
}

// kernelTarget is the kernel's stack serving at addr (IPv4 or IPv6) with
// one SO_REUSEPORT listener (and UDP socket) per core, each made by a
// function run by in (which may enter a network namespace first). Dial is
// the caller's.
func kernelTarget(ctx context.Context, p Params, addr string, in func(func() error) error) *ConnTarget {
	tcp, udp := "tcp4", "udp4"
	if familyOf(addr) == FamilyIPv6 {
		tcp, udp = "tcp6", "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &ConnTarget{
		Addr: addr,
		Listen: func(port int) ([]net.Listener, error) {
			var out []net.Listener
			for range p.Cores {
				var l net.Listener
				err := in(func() (err error) {
					l, err = lc.Listen(ctx, tcp, net.JoinHostPort(addr, strconv.Itoa(port)))
					return err
				})
				if err != nil {
					closeAll(out)
					return nil, err
				}
				port = l.Addr().(*net.TCPAddr).Port
				out = append(out, l)
			}
			return out, nil
		},
		ListenPacket: func(port int) ([]net.PacketConn, error) {
			var out []net.PacketConn
			for range p.Cores {
				var c net.PacketConn
				err := in(func() (err error) {
					c, err = lc.ListenPacket(ctx, udp, net.JoinHostPort(addr, strconv.Itoa(port)))
					return err
				})
				if err != nil {
					closeAll(out)
					return nil, err
				}
				port = c.LocalAddr().(*net.UDPAddr).Port
				out = append(out, c)
			}
			return out, nil
		},
	}
}

func closeAll[T interface{ Close() error }](cs []T) {
	for _, c := range cs {
		c.Close()
	}
}

// PinLinuxGoroutines locks each goroutine of the kernel's load to a thread
// pinned to its core's CPU (affinity.Pin). Off by default: a locked
// goroutine's every wake-up is a hand-off between threads, which halved
// the kernel's tcp-rr rate on a 2-CPU VM (28K against 59K
// transactions/s), a cost of the harness rather than of the kernel.
var PinLinuxGoroutines = false
