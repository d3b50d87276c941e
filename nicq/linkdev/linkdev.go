//go:build linux

// Package linkdev holds what the Linux drivers (afxdp, afpacket, tap) and
// the tools that set up their devices share: finding an interface with the
// facts a driver checks before it opens queues, turning a kernel's refusal
// into an error that names the cause and the fix, naming an interface's
// kernel driver (Driver), and switching off the offloads of a kernel peer
// for comparisons (DisableOffloads).
package linkdev

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/rss"
)

// Info is what a driver needs to know about an interface.
type Info struct {
	Name     string
	Index    int
	MAC      [6]byte
	MTU      int
	Up       bool // administratively up
	RxQueues int  // receive queues the kernel created for it
	TxQueues int
}

// Lookup finds ifname in the calling thread's network namespace.
func Lookup(driver, ifname string) (Info, error) {
	if ifname == "" {
		return Info{}, fmt.Errorf("%s: no interface given (--iface)", driver)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return Info{}, fmt.Errorf("%s: interface %q not found in this network namespace (list them with: ip link; in a namespace: ip netns exec NS ip link): %w", driver, ifname, err)
	}
	in := Info{Name: ifname, Index: ifi.Index, MTU: ifi.MTU, Up: ifi.Flags&net.FlagUp != 0}
	copy(in.MAC[:], ifi.HardwareAddr)
	// ethtool answers in the calling thread's namespace; /sys shows the
	// namespace it was mounted in, right only under ip netns exec.
	if ch, err := rss.ReadNICChannels(ifname); err == nil && ch.RX+ch.Combined > 0 {
		in.RxQueues = int(ch.RX + ch.Combined)
		in.TxQueues = int(ch.TX + ch.Combined)
	} else {
		in.RxQueues = countQueues(ifname, "rx-")
		in.TxQueues = countQueues(ifname, "tx-")
	}
	return in, nil
}

func countQueues(ifname, prefix string) int {
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", ifname, "queues"))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			n++
		}
	}
	return n
}

// RandomMAC returns a random locally administered unicast address.
func RandomMAC() [6]byte {
	var m [6]byte
	rand.Read(m[:]) // never fails (crypto/rand)
	m[0] = m[0]&^1 | 2
	return m
}

// Explain wraps err from the kernel with the fix for the refusals a user
// meets first: missing privileges and missing kernel support.
func Explain(driver, what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: %s: %w (needs root, or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF: run with sudo)", driver, what, err)
	case errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EPROTONOSUPPORT):
		return fmt.Errorf("%s: %s: %w (the kernel lacks this socket family: check its config)", driver, what, err)
	}
	return fmt.Errorf("%s: %s: %w", driver, what, err)
}

// Pending reports whether fd polls readable now, without blocking.
func Pending(fd int) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// CaptureReceived stamps bufs with the time now and writes them to w, for
// a driver whose NIC gives no arrival time; w may be nil (capture off).
func CaptureReceived(w *nicq.PcapWriter, bufs []*nicq.Buf) {
	if w == nil || len(bufs) == 0 {
		return
	}
	now := time.Now().UnixNano()
	for _, b := range bufs {
		b.RxTime = now
	}
	w.WriteReceived(bufs)
}

// Legacy ethtool commands (linux/ethtool.h); they set one feature each and
// every kernel still takes them.
const (
	ethtoolSTXCSUM = 0x17
	ethtoolSTSO    = 0x1f
	ethtoolSGSO    = 0x24
)

type ethtoolValue struct{ cmd, data uint32 }

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// DisableOffloads turns off transmit checksumming and segmentation offload
// on ifname, in the calling thread's namespace. A kernel on the same host
// sending through a veth or a TAP hands the frame on as it built it: with
// the checksum left for a NIC to fill in and up to 64 KiB per segment, which
// a stack reading frames from a packet socket or AF_XDP then receives as
// they are. With these off, the kernel sends what a wire would carry. The
// drivers handle such frames (see the tap, afpacket and afxdp packages);
// this is for comparisons of the kernel with and without its offloads.
func DisableOffloads(ifname string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, cmd := range []uint32{ethtoolSTXCSUM, ethtoolSTSO, ethtoolSGSO} {
		v := ethtoolValue{cmd: cmd}
		var req ifreqData
		copy(req.name[:], ifname)
		req.data = uintptr(unsafe.Pointer(&v))
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
		runtime.KeepAlive(&v)
		if e != 0 && e != unix.EOPNOTSUPP {
			return fmt.Errorf("ethtool %#x on %s: %w", cmd, ifname, e)
		}
	}
	return nil
}

// ethtoolGDRVINFO is ETHTOOL_GDRVINFO; ethtoolDrvInfo is the head of
// struct ethtool_drvinfo up to the fields read here, padded to its size.
const ethtoolGDRVINFO = 0x3

type ethtoolDrvInfo struct {
	cmd     uint32
	driver  [32]byte
	version [32]byte
	_       [196 - 4 - 64]byte
}

// Driver returns the name of ifname's kernel driver ("veth", "tun",
// "mlx5_core"), as ethtool -i reports it, in the calling thread's
// namespace.
func Driver(ifname string) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	info := ethtoolDrvInfo{cmd: ethtoolGDRVINFO}
	var req ifreqData
	copy(req.name[:], ifname)
	req.data = uintptr(unsafe.Pointer(&info))
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	runtime.KeepAlive(&info)
	if e != 0 {
		return "", fmt.Errorf("ethtool driver info of %s: %w", ifname, e)
	}
	name := info.driver[:]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	return string(name), nil
}
