package rss

import "fmt"

// Key sizes a NIC uses for its Toeplitz key: 40 bytes is the Microsoft RSS
// specification's size (and most NICs'); 52 bytes is what some NICs (Intel
// i40e/ice, for example) take.
const (
	KeySize   = 40
	KeySize52 = 52
)

// DefaultKey is the key of the Microsoft RSS specification, section
// "Verifying the RSS Hash Calculation". Its verification tables are the
// tests of this package. Many drivers also use it as their default key.
var DefaultKey = [KeySize]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
	0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
	0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// SymmetricKey is 0x6d5a repeated. A key whose bits repeat every 16 bits
// makes the hash of (src, dst, sport, dport) equal the hash of (dst, src,
// dport, sport): swapping the addresses moves each input bit by a multiple
// of 32 bits and swapping the ports by 16, and the 32-bit key window at a
// bit position is the same as the window 16 bits further on. Both directions
// of a flow then land on the same queue (Woo and Park, "Scalable TCP
// Session Monitoring with Symmetric Receive-side Scaling", 2012).
var SymmetricKey = [KeySize]byte{
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
}

// SymmetricKey52 is SymmetricKey at the 52-byte size.
var SymmetricKey52 = [KeySize52]byte{
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a,
}

// Toeplitz is the Toeplitz hash for one key, with the key expanded into one
// 256-entry table per input byte position: tab[i][b] is the XOR of the
// 32-bit key windows that the set bits of byte b at input position i select.
// A hash is then one lookup and one XOR per input byte, and never allocates.
//
// A Toeplitz is read-only after NewToeplitz and safe for concurrent use; it
// is about 52 KiB, so a core should keep one per key, not one per flow.
type Toeplitz struct {
	keyLen int
	key    [KeySize52]byte
	// tab has a row for every byte of the key. The last 4 rows' windows run
	// off the end of the key and are filled with zero bits (see Hash).
	tab [KeySize52][256]uint32
}

// NewToeplitz expands key (KeySize or KeySize52 bytes) into hash tables.
func NewToeplitz(key []byte) (*Toeplitz, error) {
	if len(key) != KeySize && len(key) != KeySize52 {
		return nil, fmt.Errorf("rss: Toeplitz key is %d bytes, want %d or %d", len(key), KeySize, KeySize52)
	}
	t := &Toeplitz{keyLen: len(key)}
	copy(t.key[:], key)
	for pos := 0; pos < len(key); pos++ {
		for bit := 0; bit < 8; bit++ {
			w := t.window(pos*8 + bit)
			// Input bit 'bit' of the byte counts from the most significant
			// one, as the specification feeds bytes MSB first.
			mask := 0x80 >> bit
			for b := 0; b < 256; b++ {
				if b&mask != 0 {
					t.tab[pos][b] ^= w
				}
			}
		}
	}
	return t, nil
}

// window returns the 32 key bits starting at bit offset off (bit 0 is the
// most significant bit of key[0]); bits past the end of the key are zero, as
// the specification's "shift K left 1 bit position" shifts zeros in.
func (t *Toeplitz) window(off int) uint32 {
	n := t.keyLen * 8
	var w uint32
	for i := 0; i < 32; i++ {
		w <<= 1
		if p := off + i; p < n {
			w |= uint32(t.key[p/8] >> (7 - p%8) & 1)
		}
	}
	return w
}

// Key returns a copy of the key the hash was built from.
func (t *Toeplitz) Key() []byte {
	return append([]byte(nil), t.key[:t.keyLen]...)
}

// MaxInput is the longest input the specification defines for this key:
// the key length minus 4 bytes (36 for a 40-byte key, enough for an IPv6
// 4-tuple).
func (t *Toeplitz) MaxInput() int { return t.keyLen - 4 }

// Hash hashes input, the bytes as the NIC sees them (for the standard
// tuples: source address, destination address, source port, destination
// port, in network byte order). Input beyond MaxInput follows the
// specification's pseudocode literally: the key shifts in zero bits, so the
// last 4 key bytes' positions see a partly empty window and bytes past the
// key length contribute nothing. No standard tuple is that long.
func (t *Toeplitz) Hash(input []byte) uint32 {
	if len(input) > t.keyLen {
		input = input[:t.keyLen]
	}
	var h uint32
	for pos, b := range input {
		h ^= t.tab[pos][b]
	}
	return h
}

// HashIPv4 is the hash of the IPv4 2-tuple (source, destination), the
// specification's "IPv4 only" column.
func (t *Toeplitz) HashIPv4(src, dst [4]byte) uint32 {
	return t.tab[0][src[0]] ^ t.tab[1][src[1]] ^ t.tab[2][src[2]] ^ t.tab[3][src[3]] ^
		t.tab[4][dst[0]] ^ t.tab[5][dst[1]] ^ t.tab[6][dst[2]] ^ t.tab[7][dst[3]]
}

// HashIPv4Ports is the hash of the IPv4 4-tuple (source, destination,
// source port, destination port), the specification's "with TCP" column;
// NICs use the same input for UDP when told to hash UDP ports.
func (t *Toeplitz) HashIPv4Ports(src, dst [4]byte, srcPort, dstPort uint16) uint32 {
	return t.tab[0][src[0]] ^ t.tab[1][src[1]] ^ t.tab[2][src[2]] ^ t.tab[3][src[3]] ^
		t.tab[4][dst[0]] ^ t.tab[5][dst[1]] ^ t.tab[6][dst[2]] ^ t.tab[7][dst[3]] ^
		t.tab[8][byte(srcPort>>8)] ^ t.tab[9][byte(srcPort)] ^
		t.tab[10][byte(dstPort>>8)] ^ t.tab[11][byte(dstPort)]
}

// HashIPv6 is the hash of the IPv6 2-tuple (source, destination).
func (t *Toeplitz) HashIPv6(src, dst [16]byte) uint32 {
	return t.hash16(0, &src) ^ t.hash16(16, &dst)
}

// HashIPv6Ports is the hash of the IPv6 4-tuple (source, destination,
// source port, destination port).
func (t *Toeplitz) HashIPv6Ports(src, dst [16]byte, srcPort, dstPort uint16) uint32 {
	return t.hash16(0, &src) ^ t.hash16(16, &dst) ^
		t.tab[32][byte(srcPort>>8)] ^ t.tab[33][byte(srcPort)] ^
		t.tab[34][byte(dstPort>>8)] ^ t.tab[35][byte(dstPort)]
}

// hash16 hashes a 16-byte address placed at input position at (0 or 16).
func (t *Toeplitz) hash16(at int, a *[16]byte) uint32 {
	tab := (*[16][256]uint32)(t.tab[at : at+16])
	return tab[0][a[0]] ^ tab[1][a[1]] ^ tab[2][a[2]] ^ tab[3][a[3]] ^
		tab[4][a[4]] ^ tab[5][a[5]] ^ tab[6][a[6]] ^ tab[7][a[7]] ^
		tab[8][a[8]] ^ tab[9][a[9]] ^ tab[10][a[10]] ^ tab[11][a[11]] ^
		tab[12][a[12]] ^ tab[13][a[13]] ^ tab[14][a[14]] ^ tab[15][a[15]]
}
