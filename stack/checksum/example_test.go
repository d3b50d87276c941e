package checksum_test

import (
	"encoding/binary"
	"fmt"

	"github.com/mkstack/mkstack/stack/checksum"
)

// Decrement an IPv4 header's TTL and patch its checksum without summing
// the header again (RFC 1624).
func ExampleUpdate() {
	h := []byte{
		0x45, 0x00, 0x00, 0x20, 0xbb, 0xa3, 0x40, 0x00, 0x40, 0x11,
		0xfb, 0x25, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
	}
	old := binary.BigEndian.Uint16(h[8:]) // TTL and protocol share a word
	h[8]--
	ck := checksum.Update(binary.BigEndian.Uint16(h[10:]), old, binary.BigEndian.Uint16(h[8:]))
	binary.BigEndian.PutUint16(h[10:], ck)
	fmt.Printf("%#04x valid=%v\n", ck, checksum.Sum(h, 0) == 0xffff)
	// Output: 0xfc25 valid=true
}
