package rss

import "errors"

// ErrNotSupported is returned, wrapped with what was being done and on
// which interface, when a NIC's driver has no RSS hash key or indirection
// table (veth, for example), or when the platform has no ethtool or eBPF.
// Match it with errors.Is.
var ErrNotSupported = errors.New("not supported")

// HashFunc is a set of RSS hash functions as ethtool numbers them
// (ETH_RSS_HASH_*): one bit per function.
type HashFunc uint8

// The hash functions ethtool knows. A NIC reports the one it uses; only
// HashToeplitz is what this package computes.
const (
	HashToeplitz HashFunc = 1 << 0 // ETH_RSS_HASH_TOP
	HashXOR      HashFunc = 1 << 1 // ETH_RSS_HASH_XOR
	HashCRC32    HashFunc = 1 << 2 // ETH_RSS_HASH_CRC32
)

// String names the functions in the set, as ethtool -x does.
func (f HashFunc) String() string {
	if f == 0 {
		return "none"
	}
	s := ""
	for _, n := range []struct {
		f    HashFunc
		name string
	}{{HashToeplitz, "toeplitz"}, {HashXOR, "xor"}, {HashCRC32, "crc32"}} {
		if f&n.f != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
			f &^= n.f
		}
	}
	if f != 0 {
		if s != "" {
			s += "|"
		}
		s += "unknown"
	}
	return s
}

// NICRSS is the RSS configuration of a real NIC as its driver reports it
// through ethtool (ETHTOOL_GRSSH), or the part of it to change
// (ETHTOOL_SRSSH).
type NICRSS struct {
	// Key is the Toeplitz key, in the NIC's size (40 bytes on most, 52 on
	// Intel i40e and ice). Empty if the driver has no key.
	Key []byte
	// RETA is the indirection table: a packet with hash h goes to receive
	// queue RETA[h % len(RETA)], the rule of this package. The size is the
	// hardware's (commonly 128 or 512) and a write must keep it.
	RETA []uint32
	// HashFunc is the hash function the NIC uses (read), or the one to
	// switch it to (write; 0 keeps the current one).
	HashFunc HashFunc
	// InputXfrm is ethtool's input transformation (RXH_XFRM_*; bit 0 is
	// the symmetric XOR some NICs apply to the tuple before hashing). 0
	// is none on read and "no change" on write.
	InputXfrm uint8
}

// Channels is a NIC's queue counts as ethtool reports them
// (ETHTOOL_GCHANNELS): maxima the hardware offers and counts in use, by
// kind of queue. Veth and most virtual NICs report RX and TX; physical NICs
// usually report Combined (one rx/tx pair per channel).
type Channels struct {
	MaxRX, MaxTX, MaxOther, MaxCombined uint32
	RX, TX, Other, Combined             uint32
}
