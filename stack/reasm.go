package stack

import (
	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
	"github.com/mkstack/mkstack/stack/timer"
)

// maxReassemblies bounds the datagrams being reassembled at once per stack.
const maxReassemblies = 64

// reasmKey identifies a datagram being reassembled: IPv4's source,
// destination, ID and protocol (RFC 791), or IPv6's source, destination
// and Identification (RFC 8200 4.5; protocol 0), addresses in the
// tuple's form (addr.go).
type reasmKey struct {
	src, dst [16]byte
	id       uint32
	protocol uint8
}

type fragment struct {
	b        *nicq.Buf // the fragment, from its IP header
	off, end int       // payload bytes [off, end) of the datagram
	data     int       // where those bytes start in b
}

// reassembly is one datagram being put back together.
type reassembly struct {
	r      *reassembler
	inUse  bool
	key    reasmKey
	frags  []fragment // sorted by off, never overlapping
	total  int        // payload length, known once the last fragment came; -1 before
	bytes  int        // buffer bytes held, charged to the memory budget
	expiry timer.Timer
	// IPv6: the first fragment's Fragment header is at fragHeader and
	// the Next Header field naming it at nextHeaderField (both zero for
	// IPv4, and before the first fragment came).
	v6                          bool
	fragHeader, nextHeaderField int
}

// reassembler puts fragmented datagrams back together (RFC 791, RFC 815)
// within a per-stack memory budget and a timeout. Its slots are allocated
// once; a linear search over them is cheaper than a map at this size and
// never allocates.
type reassembler struct {
	s     *Stack
	slots [maxReassemblies]reassembly
	bytes int
}

func (r *reassembler) init(s *Stack) {
	r.s = s
	for i := range r.slots {
		d := &r.slots[i]
		d.r = r
		d.frags = make([]fragment, 0, s.cfg.MaxFragments)
		d.expiry.Init(func(*timer.Timer) { d.timeout() })
	}
}

// ReassemblyBytes returns the buffer bytes held by incomplete datagrams.
func (s *Stack) ReassemblyBytes() int { return s.reasm.bytes }

// add files fragment b (ip is its validated header view). It returns the
// whole datagram when b completes one, else nil: b is kept or dropped.
func (r *reassembler) add(b *nicq.Buf, ip header.IPv4) *nicq.Buf {
	key := reasmKey{src: mapped4(ip.Source()), dst: mapped4(ip.Destination()), id: uint32(ip.ID()), protocol: ip.Protocol()}
	off := int(ip.FragmentOffset())
	return r.addFragment(b, key, fragment{off: off, end: off + ip.PayloadLength(), data: ip.HeaderLength()}, ip.MoreFragments(), nil)
}

// add6 files the IPv6 fragment b, whose Fragment header the walk w
// stopped at (RFC 8200 4.5). It returns the whole packet when b completes
// one, else nil.
func (r *reassembler) add6(b *nicq.Buf, ip header.IPv6, w *header.IPv6ExtensionWalk) *nicq.Buf {
	f := header.IPv6Fragment(ip[w.Offset : w.Offset+header.IPv6FragmentSize])
	key := reasmKey{src: ip.Source(), dst: ip.Destination(), id: f.Identification()}
	off := int(f.FragmentOffset())
	data := w.Offset + header.IPv6FragmentSize
	return r.addFragment(b, key, fragment{off: off, end: off + len(ip) - data, data: data}, f.MoreFragments(), w)
}

// addFragment files fragment fr of the datagram key, whose bytes are in b;
// w is the IPv6 walk, nil for IPv4.
func (r *reassembler) addFragment(b *nicq.Buf, key reasmKey, fr fragment, more bool, w *header.IPv6ExtensionWalk) *nicq.Buf {
	s := r.s
	off, end := fr.off, fr.end
	if end == off || (more && (end-off)%8 != 0) {
		s.drop(b, DropReason(header.DropBadFragment))
		return nil
	}
	d := r.find(key)
	if d == nil {
		if d = r.alloc(key); d == nil {
			s.drop(b, DropReassemblyMemory)
			return nil
		}
	}
	if !more {
		if (d.total >= 0 && d.total != end) || (len(d.frags) > 0 && d.frags[len(d.frags)-1].end > end) {
			r.discard(d, b, DropReason(header.DropBadFragment))
			return nil
		}
		d.total = end
	}
	if d.total >= 0 && end > d.total {
		r.discard(d, b, DropReason(header.DropBadFragment))
		return nil
	}
	// Find the insertion point and reject overlaps: an exact duplicate
	// (the network repeated a fragment) is dropped alone; any other
	// overlap drops the datagram, as no honest sender produces one.
	i := 0
	for i < len(d.frags) && d.frags[i].off < off {
		i++
	}
	if i < len(d.frags) && d.frags[i].off == off && d.frags[i].end == end {
		s.drop(b, DropFragmentOverlap)
		return nil
	}
	if (i > 0 && d.frags[i-1].end > off) || (i < len(d.frags) && d.frags[i].off < end) {
		r.discard(d, b, DropFragmentOverlap)
		return nil
	}
	if len(d.frags) == cap(d.frags) {
		r.discard(d, b, DropTooManyFragments)
		return nil
	}
	// Charge the whole buffer, not the bytes in it, so a flood of tiny
	// fragments cannot pin many buffers under a small byte count.
	size := bufTrueSize(b)
	if r.bytes+size > s.cfg.ReassemblyMemory {
		r.discard(d, b, DropReassemblyMemory)
		return nil
	}
	d.frags = append(d.frags, fragment{})
	copy(d.frags[i+1:], d.frags[i:])
	fr.b = b
	d.frags[i] = fr
	if w != nil {
		d.v6 = true
		if off == 0 {
			d.fragHeader, d.nextHeaderField = w.Offset, w.NextHeaderField
		}
	}
	d.bytes += size
	r.bytes += size
	if d.total < 0 || !d.complete() {
		return nil
	}
	return r.assemble(d)
}

func (d *reassembly) complete() bool {
	at := 0
	for _, f := range d.frags {
		if f.off != at {
			return false
		}
		at = f.end
	}
	return at == d.total
}

func (r *reassembler) find(key reasmKey) *reassembly {
	for i := range r.slots {
		if d := &r.slots[i]; d.inUse && d.key == key {
			return d
		}
	}
	return nil
}

func (r *reassembler) alloc(key reasmKey) *reassembly {
	for i := range r.slots {
		if d := &r.slots[i]; !d.inUse {
			d.inUse = true
			d.key = key
			d.total = -1
			d.bytes = 0
			d.v6, d.fragHeader, d.nextHeaderField = false, 0, 0
			r.s.wheel.Schedule(&d.expiry, r.s.now+int64(r.s.cfg.ReassemblyTimeout))
			return d
		}
	}
	return nil
}

// release frees the slot and every fragment it holds.
func (r *reassembler) release(d *reassembly) {
	for i, f := range d.frags {
		bufFree(f.b)
		d.frags[i] = fragment{}
	}
	d.frags = d.frags[:0]
	r.bytes -= d.bytes
	d.inUse = false
	r.s.wheel.Cancel(&d.expiry)
}

// discard drops the datagram and the fragment that broke it, counting one
// drop per fragment under reason.
func (r *reassembler) discard(d *reassembly, b *nicq.Buf, reason DropReason) {
	r.s.stats.Drops[reason] += uint64(len(d.frags))
	r.release(d)
	r.s.drop(b, reason)
}

func (d *reassembly) timeout() {
	r := d.r
	s := r.s
	// RFC 792/1122, RFC 8200 4.5: tell the sender, if we have the first
	// fragment.
	if len(d.frags) > 0 && d.frags[0].off == 0 {
		if d.v6 {
			s.sendICMPv6Error(header.IPv6(bufData(d.frags[0].b)), header.MAC{}, false, header.ICMPv6TimeExceeded, header.ICMPv6ReassemblyExceeded, 0)
		} else {
			s.sendICMPError(header.IPv4(bufData(d.frags[0].b)), header.ICMPv4TimeExceeded, header.ICMPv4ReassemblyExceeded, 0)
		}
	}
	s.stats.Drops[DropReassemblyTimeout] += uint64(len(d.frags))
	r.release(d)
}

// assemble copies the fragments into one buffer behind the first one's
// header and frees them. An IPv6 packet loses its Fragment header: the
// header that named it names what it named, and the Payload Length is the
// whole packet's.
func (r *reassembler) assemble(d *reassembly) *nicq.Buf {
	s := r.s
	first := bufData(d.frags[0].b)
	hl := d.frags[0].data
	if d.v6 {
		hl = d.fragHeader
	}
	out := s.getBufSize(hl + d.total)
	if out == nil {
		r.s.stats.Drops[DropNoBuffer] += uint64(len(d.frags)) - 1
		r.release(d)
		return nil
	}
	dst := bufAppend(out, hl+d.total)
	copy(dst, first[:hl])
	for _, f := range d.frags {
		copy(dst[hl+f.off:], bufData(f.b)[f.data:])
	}
	if d.v6 {
		dst[d.nextHeaderField] = header.IPv6Fragment(first[d.fragHeader:]).NextHeader()
		header.IPv6(dst).SetPayloadLength(uint16(hl + d.total - header.IPv6FixedHeaderSize))
	} else {
		ip := header.IPv4(dst)
		ip.SetTotalLength(uint16(hl + d.total))
		ip.SetFlagsFragmentOffset(0, 0)
		ip.SetChecksum(0)
		ip.SetChecksum(ip.ComputeChecksum())
	}
	r.release(d)
	return out
}
