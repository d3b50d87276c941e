package bench

import (
	"context"
	"fmt"
	"net"
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
		var d net.Dialer
		t := &ConnTarget{
			Addr: "127.0.0.1",
			Listen: func(port int) ([]net.Listener, error) {
				var out []net.Listener
				for range p.Cores {
					l, err := lc.Listen(ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
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
					c, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("127.0.0.1:%d", port))
					if err != nil {
						closeAll(out)
						return nil, err
					}
					port = c.LocalAddr().(*net.UDPAddr).Port
					out = append(out, c)
				}
				return out, nil
			},
			Dial: d.DialContext,
		}
		if p.CPUs != nil && PinLinuxGoroutines {
			t.Pin = func(core int) error { return affinity.Pin(p.CPUs[core]) }
		}
		pt, err := RunConn(ctx, t, p)
		pt.System = SysLinux
		return pt, err
	})
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
