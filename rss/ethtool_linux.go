package rss

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ethtool ioctl. Every call opens a datagram socket in the network
// namespace of the calling thread, so ifname is looked up there: a caller
// that works in another namespace runs these functions on a thread locked
// into it.

// Layout of struct ethtool_rxfh (include/uapi/linux/ethtool.h): a 24-byte
// header, then indir_size u32 table entries, then key_size key bytes.
const (
	rxfhCmd        = 0
	rxfhIndirSize  = 8
	rxfhKeySize    = 12
	rxfhHfunc      = 16
	rxfhInputXfrm  = 17
	rxfhConfig     = 24
	rxfhIndirNoChg = 0xffffffff // ETH_RXFH_INDIR_NO_CHANGE
)

// sizeofRxnfc covers struct ethtool_rxnfc without its flexible rule_locs
// (192 bytes on 64-bit ABIs, 180 on i386), which the kernel copies both
// ways for ETHTOOL_GRXRINGS. Of it this package reads cmd and data, at
// offsets 0 and 8 on every ABI.
const sizeofRxnfc = 192

// ReadNICRSS reads the RSS hash key, indirection table and hash function of
// the NIC ifname (ethtool -x). It wraps ErrNotSupported when the driver has
// no RSS key or table.
func ReadNICRSS(ifname string) (NICRSS, error) {
	var c NICRSS
	err := withEthtool(ifname, func(fd int) error {
		hdr := make([]byte, rxfhConfig)
		binary.NativeEndian.PutUint32(hdr[rxfhCmd:], unix.ETHTOOL_GRSSH)
		if err := ethtool(fd, ifname, hdr); err != nil {
			return rxfhErr(fd, ifname, err)
		}
		indirSize := binary.NativeEndian.Uint32(hdr[rxfhIndirSize:])
		keySize := binary.NativeEndian.Uint32(hdr[rxfhKeySize:])
		if indirSize == 0 && keySize == 0 {
			return notSupported(fd, ifname)
		}
		if indirSize > 1<<16 || keySize > 1<<10 {
			return fmt.Errorf("driver reports an implausible table of %d entries and key of %d bytes", indirSize, keySize)
		}
		buf := make([]byte, rxfhConfig+4*int(indirSize)+int(keySize))
		binary.NativeEndian.PutUint32(buf[rxfhCmd:], unix.ETHTOOL_GRSSH)
		binary.NativeEndian.PutUint32(buf[rxfhIndirSize:], indirSize)
		binary.NativeEndian.PutUint32(buf[rxfhKeySize:], keySize)
		if err := ethtool(fd, ifname, buf); err != nil {
			// EINVAL here means the sizes changed between the two calls.
			return rxfhErr(fd, ifname, err)
		}
		c.HashFunc = HashFunc(buf[rxfhHfunc])
		c.InputXfrm = buf[rxfhInputXfrm]
		c.RETA = make([]uint32, indirSize)
		for i := range c.RETA {
			c.RETA[i] = binary.NativeEndian.Uint32(buf[rxfhConfig+4*i:])
		}
		c.Key = append([]byte(nil), buf[rxfhConfig+4*int(indirSize):]...)
		return nil
	})
	if err != nil {
		return NICRSS{}, fmt.Errorf("read RSS key of %s: %w", ifname, err)
	}
	return c, nil
}

// WriteNICRSS programs the NIC ifname with the parts of c that are set (ethtool
// -X): a non-empty Key replaces the hash key, a non-empty RETA the
// indirection table, a non-zero HashFunc or InputXfrm the hash function or
// input transformation; what is left zero is kept. Key and RETA must have
// the sizes the NIC reports (see ReadNICRSS), and RETA entries must name
// existing receive queues. It wraps ErrNotSupported when the driver cannot
// be programmed.
func WriteNICRSS(ifname string, c NICRSS) error {
	err := withEthtool(ifname, func(fd int) error {
		if len(c.Key) == 0 && len(c.RETA) == 0 && c.HashFunc == 0 && c.InputXfrm == 0 {
			return errors.New("nothing to change: key, table, hash function and input transformation are all unset")
		}
		hdr := make([]byte, rxfhConfig)
		binary.NativeEndian.PutUint32(hdr[rxfhCmd:], unix.ETHTOOL_GRSSH)
		if err := ethtool(fd, ifname, hdr); err != nil {
			return rxfhErr(fd, ifname, err)
		}
		indirSize := int(binary.NativeEndian.Uint32(hdr[rxfhIndirSize:]))
		keySize := int(binary.NativeEndian.Uint32(hdr[rxfhKeySize:]))
		if len(c.Key) != 0 && len(c.Key) != keySize {
			return fmt.Errorf("key is %d bytes, %s takes %d", len(c.Key), ifname, keySize)
		}
		if len(c.RETA) != 0 && len(c.RETA) != indirSize {
			return fmt.Errorf("indirection table has %d entries, %s takes %d", len(c.RETA), ifname, indirSize)
		}
		buf := make([]byte, rxfhConfig+4*len(c.RETA)+len(c.Key))
		binary.NativeEndian.PutUint32(buf[rxfhCmd:], unix.ETHTOOL_SRSSH)
		if len(c.RETA) == 0 {
			binary.NativeEndian.PutUint32(buf[rxfhIndirSize:], rxfhIndirNoChg)
		} else {
			binary.NativeEndian.PutUint32(buf[rxfhIndirSize:], uint32(len(c.RETA)))
		}
		binary.NativeEndian.PutUint32(buf[rxfhKeySize:], uint32(len(c.Key)))
		buf[rxfhHfunc] = byte(c.HashFunc)
		buf[rxfhInputXfrm] = c.InputXfrm
		for i, q := range c.RETA {
			binary.NativeEndian.PutUint32(buf[rxfhConfig+4*i:], q)
		}
		copy(buf[rxfhConfig+4*len(c.RETA):], c.Key)
		if err := ethtool(fd, ifname, buf); err != nil {
			if errors.Is(err, unix.EINVAL) && len(c.RETA) != 0 {
				return fmt.Errorf("%w (an indirection table entry names a queue %s does not have, or the driver refuses the hash function)", err, ifname)
			}
			return rxfhErr(fd, ifname, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write RSS key of %s: %w", ifname, err)
	}
	return nil
}

// ReadNICChannels reads the queue counts of the NIC ifname (ethtool -l).
func ReadNICChannels(ifname string) (Channels, error) {
	var ch Channels
	err := withEthtool(ifname, func(fd int) error {
		buf := make([]byte, 9*4) // struct ethtool_channels: cmd and 8 counts
		binary.NativeEndian.PutUint32(buf, unix.ETHTOOL_GCHANNELS)
		if err := ethtool(fd, ifname, buf); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return notSupportedWhat(fd, ifname, "channel counts")
			}
			return err
		}
		u := func(i int) uint32 { return binary.NativeEndian.Uint32(buf[4*i:]) }
		ch = Channels{
			MaxRX: u(1), MaxTX: u(2), MaxOther: u(3), MaxCombined: u(4),
			RX: u(5), TX: u(6), Other: u(7), Combined: u(8),
		}
		return nil
	})
	if err != nil {
		return Channels{}, fmt.Errorf("read channel counts of %s: %w", ifname, err)
	}
	return ch, nil
}

// ReadNICRXRings reads how many receive queues the NIC ifname spreads flows
// over (ETHTOOL_GRXRINGS): the bound on indirection table entries.
func ReadNICRXRings(ifname string) (int, error) {
	var n int
	err := withEthtool(ifname, func(fd int) error {
		buf := make([]byte, sizeofRxnfc)
		binary.NativeEndian.PutUint32(buf, unix.ETHTOOL_GRXRINGS)
		if err := ethtool(fd, ifname, buf); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return notSupportedWhat(fd, ifname, "receive ring count")
			}
			return err
		}
		n = int(binary.NativeEndian.Uint64(buf[8:])) // ethtool_rxnfc.data
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read receive ring count of %s: %w", ifname, err)
	}
	return n, nil
}

// withEthtool checks ifname and runs fn with a socket to issue ethtool
// ioctls on.
func withEthtool(ifname string, fn func(fd int) error) error {
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q must be 1 to %d bytes", ifname, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	return fn(fd)
}

// ifreqData is struct ifreq with its union holding ifr_data, the pointer
// to the ethtool command buffer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [unsafe.Sizeof(unix.Ifreq{}) - unix.IFNAMSIZ - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool issues SIOCETHTOOL on ifname with buf (which starts with the
// command) as the data the kernel reads and writes back.
func ethtool(fd int, ifname string, buf []byte) error {
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	// buf is heap memory (make with a run-time size) that Go never moves;
	// ifr holds a real pointer to it and KeepAlive keeps both live for the
	// whole call.
	ifr.data = unsafe.Pointer(&buf[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ifr)
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	return nil
}

// rxfhErr turns "operation not supported" from an rxfh command into
// ErrNotSupported with the driver's name.
func rxfhErr(fd int, ifname string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return notSupported(fd, ifname)
	}
	return err
}

func notSupported(fd int, ifname string) error {
	return notSupportedWhat(fd, ifname, "RSS hash key/table")
}

// notSupportedWhat says "<what> not supported by <ifname> (driver <name>)",
// leaving the driver out if even that cannot be read.
func notSupportedWhat(fd int, ifname, what string) error {
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil || info.Driver[0] == 0 {
		return fmt.Errorf("%s %w by %s", what, ErrNotSupported, ifname)
	}
	return fmt.Errorf("%s %w by %s (driver %s)", what, ErrNotSupported, ifname, unix.ByteSliceToString(info.Driver[:]))
}
