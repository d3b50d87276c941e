//go:build linux

package afxdp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A NIC that filters multicast in hardware drops frames to groups its
// interface has not joined. The kernel joins the groups of its own IPv6
// addresses; the stack's solicited-node groups are usually others (a
// neighbour solicitation for the stack's address would never arrive), so
// Open adds their Ethernet addresses to the interface's filter
// (SIOCADDMULTI) and Close takes them out again. The kernel counts
// references per address, so a group the kernel joined too stays joined.

// ifreqHW is struct ifreq with a hardware address (ifr_hwaddr).
type ifreqHW struct {
	name   [unix.IFNAMSIZ]byte
	family uint16
	data   [14]byte
	_      [8]byte
}

// multicastFilter holds the groups a NIC joined and the socket (made in
// the interface's network namespace) that joined them.
type multicastFilter struct {
	fd     int
	ifname string
	macs   [][6]byte
}

// join adds each MAC to ifname's multicast filter.
func (m *multicastFilter) join(ifname string, macs [][6]byte) error {
	if len(macs) == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	m.fd, m.ifname = fd, ifname
	for _, mac := range macs {
		if err := m.ioctl(unix.SIOCADDMULTI, mac); err != nil {
			return fmt.Errorf("join Ethernet group %x on %s (SIOCADDMULTI): %w", mac, ifname, err)
		}
		m.macs = append(m.macs, mac)
	}
	return nil
}

// leave takes the joined groups out again and closes the socket.
func (m *multicastFilter) leave() {
	if m.fd <= 0 {
		return
	}
	for _, mac := range m.macs {
		m.ioctl(unix.SIOCDELMULTI, mac)
	}
	m.macs = nil
	unix.Close(m.fd)
	m.fd = 0
}

func (m *multicastFilter) ioctl(req uintptr, mac [6]byte) error {
	var r ifreqHW
	copy(r.name[:], m.ifname)
	r.family = unix.AF_UNSPEC
	copy(r.data[:], mac[:])
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m.fd), req, uintptr(unsafe.Pointer(&r))); e != 0 {
		return e
	}
	return nil
}

// ipv6GroupMAC is the Ethernet address of an IPv6 multicast group (RFC
// 2464 7: 33:33 and the group's last 32 bits).
func ipv6GroupMAC(g [16]byte) [6]byte { return [6]byte{0x33, 0x33, g[12], g[13], g[14], g[15]} }
