package header

import "encoding/binary"

// TCP option kinds (IANA "TCP Option Kind Numbers").
const (
	TCPOptionEOL           uint8 = 0 // End of Option List
	TCPOptionNOP           uint8 = 1 // No-Operation
	TCPOptionMSS           uint8 = 2 // Maximum Segment Size, RFC 9293
	TCPOptionWindowScale   uint8 = 3 // RFC 7323
	TCPOptionSACKPermitted uint8 = 4 // RFC 2018
	TCPOptionSACK          uint8 = 5 // RFC 2018
	TCPOptionTimestamps    uint8 = 8 // RFC 7323
)

// Option lengths (kind and length octets included).
const (
	TCPOptionMSSLength           = 4
	TCPOptionWindowScaleLength   = 3
	TCPOptionSACKPermittedLength = 2
	TCPOptionTimestampsLength    = 10
	// TCPOptionSACKBlockLength is the size of one SACK block; the SACK
	// option is 2 + 8n bytes for n blocks.
	TCPOptionSACKBlockLength = 8

	// MaxWindowScale is the largest shift count RFC 7323 allows; a larger
	// one received is used as 14 (section 2.3).
	MaxWindowScale = 14
	// MaxSACKBlocks is the most SACK blocks 40 option bytes can hold.
	MaxSACKBlocks = 4
)

// A SACKBlock is one block of a SACK option: the received bytes from Left
// Edge up to, not including, Right Edge (RFC 2018).
type SACKBlock struct {
	Left, Right uint32
}

// A TCPOption is one option of a TCP header, other than NOP and EOL. Data is
// the option's value: the bytes after its kind and length, a view into the
// header.
type TCPOption struct {
	Kind uint8
	Data []byte
}

// MSS returns the value of an MSS option.
func (o TCPOption) MSS() uint16 { return binary.BigEndian.Uint16(o.Data) }

// WindowScale returns the shift count of a Window Scale option, as sent.
func (o TCPOption) WindowScale() uint8 { return o.Data[0] }

// Timestamps returns TSval and TSecr of a Timestamps option.
func (o TCPOption) Timestamps() (tsVal, tsEcr uint32) {
	return binary.BigEndian.Uint32(o.Data), binary.BigEndian.Uint32(o.Data[4:])
}

// NumSACKBlocks returns the number of blocks in a SACK option.
func (o TCPOption) NumSACKBlocks() int { return len(o.Data) / TCPOptionSACKBlockLength }

// SACKBlock returns block i of a SACK option.
func (o TCPOption) SACKBlock(i int) SACKBlock {
	d := o.Data[i*TCPOptionSACKBlockLength:]
	return SACKBlock{Left: binary.BigEndian.Uint32(d), Right: binary.BigEndian.Uint32(d[4:])}
}

// A TCPOptionIterator walks the options of a TCP header without allocating:
//
//	it := header.IterateTCPOptions(seg.Options())
//	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
//		switch opt.Kind { ... }
//	}
//	if it.Err() != header.DropNone { ... }
//
// NOPs are skipped and EOL ends the walk. Options of unknown kind are
// returned, for the caller to ignore (RFC 9293 3.1: a TCP must ignore an
// option it does not implement). Options of known kind are returned only
// with the length their kind requires, so their accessors are safe.
type TCPOptionIterator struct {
	opts []byte
	off  int
	err  DropReason
}

// IterateTCPOptions returns an iterator over opts, a TCP header's option
// bytes.
func IterateTCPOptions(opts []byte) TCPOptionIterator {
	return TCPOptionIterator{opts: opts}
}

// Next returns the next option, or false at the end of the options or at
// the first malformed one (then Err says why). Every call consumes at least
// one byte, so a walk ends after at most len(opts) calls.
func (it *TCPOptionIterator) Next() (TCPOption, bool) {
	for it.off < len(it.opts) {
		kind := it.opts[it.off]
		switch kind {
		case TCPOptionEOL:
			it.off = len(it.opts)
			return TCPOption{}, false
		case TCPOptionNOP:
			it.off++
			continue
		}
		// Every other kind has a length octet counting kind and length;
		// below 2 it would not advance, past the end it would overrun.
		if it.off+1 >= len(it.opts) {
			return it.fail()
		}
		n := int(it.opts[it.off+1])
		if n < 2 || it.off+n > len(it.opts) {
			return it.fail()
		}
		if !tcpOptionLengthValid(kind, n) {
			return it.fail()
		}
		opt := TCPOption{Kind: kind, Data: it.opts[it.off+2 : it.off+n]}
		it.off += n
		return opt, true
	}
	return TCPOption{}, false
}

func (it *TCPOptionIterator) fail() (TCPOption, bool) {
	it.err = DropBadTCPOption
	it.off = len(it.opts)
	return TCPOption{}, false
}

// Err returns DropBadTCPOption if the walk stopped at a malformed option,
// or DropNone.
func (it *TCPOptionIterator) Err() DropReason { return it.err }

func tcpOptionLengthValid(kind uint8, n int) bool {
	switch kind {
	case TCPOptionMSS:
		return n == TCPOptionMSSLength
	case TCPOptionWindowScale:
		return n == TCPOptionWindowScaleLength
	case TCPOptionSACKPermitted:
		return n == TCPOptionSACKPermittedLength
	case TCPOptionTimestamps:
		return n == TCPOptionTimestampsLength
	case TCPOptionSACK:
		return n >= 2+TCPOptionSACKBlockLength && (n-2)%TCPOptionSACKBlockLength == 0
	}
	return true
}

// TCPOptions holds the options the stack implements, parsed from or to be
// encoded into a header.
type TCPOptions struct {
	HasMSS bool
	MSS    uint16
	// WindowScale is the shift count; ParseTCPOptions caps it at
	// MaxWindowScale as RFC 7323 section 2.3 requires.
	HasWindowScale bool
	WindowScale    uint8
	SACKPermitted  bool
	HasTimestamps  bool
	TSVal, TSEcr   uint32
	// SACKBlocks[:NumSACKBlocks] are the SACK blocks, first the one
	// holding the most recently received segment (RFC 2018 section 4).
	NumSACKBlocks int
	SACKBlocks    [MaxSACKBlocks]SACKBlock
}

// ParseTCPOptions parses opts, a TCP header's option bytes, into o (which
// it clears first). When an option appears twice the later one wins.
// Unknown options are skipped. It returns DropBadTCPOption, with o holding
// the options before the bad one, if an option is malformed.
func ParseTCPOptions(opts []byte, o *TCPOptions) DropReason {
	*o = TCPOptions{}
	it := IterateTCPOptions(opts)
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		switch opt.Kind {
		case TCPOptionMSS:
			o.HasMSS = true
			o.MSS = opt.MSS()
		case TCPOptionWindowScale:
			o.HasWindowScale = true
			o.WindowScale = min(opt.WindowScale(), MaxWindowScale)
		case TCPOptionSACKPermitted:
			o.SACKPermitted = true
		case TCPOptionTimestamps:
			o.HasTimestamps = true
			o.TSVal, o.TSEcr = opt.Timestamps()
		case TCPOptionSACK:
			// 40 option bytes hold at most 4 blocks, and the length
			// check admits no more, so this always fits. A second SACK
			// option replaces the first entirely.
			o.NumSACKBlocks = opt.NumSACKBlocks()
			o.SACKBlocks = [MaxSACKBlocks]SACKBlock{}
			for i := range o.NumSACKBlocks {
				o.SACKBlocks[i] = opt.SACKBlock(i)
			}
		}
	}
	return it.Err()
}

// EncodedLength returns the number of bytes EncodeTCPOptions writes for o:
// a multiple of 4, at most TCPMaximumOptionsSize.
func (o *TCPOptions) EncodedLength() int {
	n, _ := o.layout()
	return n
}

// layout returns the encoded length and the number of SACK blocks that fit.
func (o *TCPOptions) layout() (n, sackBlocks int) {
	if o.HasMSS {
		n += 4
	}
	if o.HasTimestamps {
		n += 12 // with SACK-permitted in front, or two NOPs
	} else if o.SACKPermitted {
		n += 4
	}
	if o.HasWindowScale {
		n += 4
	}
	if o.NumSACKBlocks > 0 {
		sackBlocks = min(o.NumSACKBlocks, MaxSACKBlocks, (TCPMaximumOptionsSize-n-4)/TCPOptionSACKBlockLength)
		if sackBlocks > 0 {
			n += 4 + sackBlocks*TCPOptionSACKBlockLength
		}
	}
	return n, sackBlocks
}

// EncodeTCPOptions writes o at the start of b in the order and alignment
// Linux uses, so each multi-byte value lands on a 4-byte boundary:
//
//	MSS                      kind 2, len 4, value
//	SACK-permitted + TS      4, 2, 8, 10, TSval, TSecr (or NOP, NOP, 8, 10, ...)
//	SACK-permitted alone     NOP, NOP, 4, 2
//	Window Scale             NOP, 3, 3, shift
//	SACK                     NOP, NOP, 5, 2+8n, blocks
//
// SACK blocks that do not fit in the 40 option bytes are left out, the last
// first. b must hold o.EncodedLength() bytes; the length written is
// returned.
func EncodeTCPOptions(b []byte, o *TCPOptions) int {
	n, sackBlocks := o.layout()
	_ = b[:n]
	i := 0
	if o.HasMSS {
		b[i], b[i+1] = TCPOptionMSS, TCPOptionMSSLength
		binary.BigEndian.PutUint16(b[i+2:], o.MSS)
		i += 4
	}
	if o.HasTimestamps {
		if o.SACKPermitted {
			b[i], b[i+1] = TCPOptionSACKPermitted, TCPOptionSACKPermittedLength
		} else {
			b[i], b[i+1] = TCPOptionNOP, TCPOptionNOP
		}
		b[i+2], b[i+3] = TCPOptionTimestamps, TCPOptionTimestampsLength
		binary.BigEndian.PutUint32(b[i+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+8:], o.TSEcr)
		i += 12
	} else if o.SACKPermitted {
		b[i], b[i+1] = TCPOptionNOP, TCPOptionNOP
		b[i+2], b[i+3] = TCPOptionSACKPermitted, TCPOptionSACKPermittedLength
		i += 4
	}
	if o.HasWindowScale {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptionNOP, TCPOptionWindowScale, TCPOptionWindowScaleLength, o.WindowScale
		i += 4
	}
	if sackBlocks > 0 {
		b[i], b[i+1] = TCPOptionNOP, TCPOptionNOP
		b[i+2], b[i+3] = TCPOptionSACK, uint8(2+sackBlocks*TCPOptionSACKBlockLength)
		i += 4
		for _, blk := range o.SACKBlocks[:sackBlocks] {
			binary.BigEndian.PutUint32(b[i:], blk.Left)
			binary.BigEndian.PutUint32(b[i+4:], blk.Right)
			i += TCPOptionSACKBlockLength
		}
	}
	return i
}
