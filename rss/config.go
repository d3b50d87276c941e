package rss

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
)

// Proto is an IP protocol number, as in the IPv4 protocol field and the
// IPv6 next header.
type Proto uint8

// The protocols whose ports a NIC can hash.
const (
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return "ip proto " + strconv.Itoa(int(p))
}

// Tuple says which fields of a packet are hashed, as "ethtool -N IF
// rx-flow-hash tcp4 sdfn" chooses them per flow type.
type Tuple uint8

const (
	// TupleDefault, the zero value in Options, means Tuple4 for TCP and UDP.
	TupleDefault Tuple = iota
	// Tuple2 hashes the source and destination addresses ("sd"). All flows
	// between two hosts then share a queue; fragments of a datagram land
	// where its first fragment does.
	Tuple2
	// Tuple4 hashes the addresses and then the source and destination ports
	// ("sdfn").
	Tuple4
)

func (t Tuple) String() string {
	switch t {
	case TupleDefault:
		return "default"
	case Tuple2:
		return "2-tuple"
	case Tuple4:
		return "4-tuple"
	}
	return fmt.Sprintf("Tuple(%d)", uint8(t))
}

// Options describe an RSS configuration for NewConfig.
type Options struct {
	// Key is the Toeplitz key, KeySize or KeySize52 bytes; nil means
	// DefaultKey.
	Key []byte
	// Queues is the number of receive queues, at least 1. With RETA set it
	// may be 0, meaning the largest entry plus one.
	Queues int
	// RETASize is the number of entries of the indirection table, from
	// MinRETASize to MaxRETASize; 0 means DefaultRETASize.
	RETASize int
	// Weights, if set (one per queue), fill the table as WeightedRETA does;
	// otherwise it is filled as EqualRETA does.
	Weights []int
	// RETA, if set, is the indirection table as it is (read from a NIC, say)
	// and RETASize and Weights must be unset.
	RETA RETA
	// TCP4, UDP4, TCP6, UDP6 choose the tuple hashed for TCP and UDP over
	// IPv4 and IPv6. Other IP protocols, and fragments, are always hashed
	// on the 2-tuple.
	TCP4, UDP4, TCP6, UDP6 Tuple
}

// Config is an RSS configuration: a Toeplitz key, an indirection table and
// the tuple hashed per protocol. It is what steers a packet into a receive
// queue, so a driver carries it, the in-memory NIC's software RSS calls
// QueueFrame per frame, and the stack consults it to choose local ports
// whose replies come back to its own queue (PortAllocator).
//
// A Config is immutable after NewConfig and safe for concurrent use: cores
// may share one, as reading shared memory costs no coherence traffic. Its
// hash and queue methods do not allocate.
type Config struct {
	t      *Toeplitz
	reta   RETA
	mask   uint32 // len(reta)-1 when len(reta) is a power of two
	pow2   bool
	queues int

	tcp4, udp4, tcp6, udp6 Tuple
}

// NewConfig checks o and builds the Config it describes.
func NewConfig(o Options) (*Config, error) {
	key := o.Key
	if key == nil {
		key = DefaultKey[:]
	}
	t, err := NewToeplitz(key)
	if err != nil {
		return nil, err
	}
	c := &Config{t: t}
	switch {
	case o.RETA != nil:
		if o.RETASize != 0 || o.Weights != nil {
			return nil, fmt.Errorf("rss: an explicit indirection table excludes RETASize and Weights")
		}
		queues := o.Queues
		if queues == 0 {
			queues = o.RETA.Queues()
		}
		if err := o.RETA.Validate(queues); err != nil {
			return nil, err
		}
		c.reta = append(RETA(nil), o.RETA...)
		c.queues = queues
	default:
		size := o.RETASize
		if size == 0 {
			size = DefaultRETASize
		}
		if o.Queues < 1 {
			return nil, fmt.Errorf("rss: %d queues, want at least 1", o.Queues)
		}
		if o.Weights != nil {
			if len(o.Weights) != o.Queues {
				return nil, fmt.Errorf("rss: %d weights for %d queues", len(o.Weights), o.Queues)
			}
			c.reta, err = WeightedRETA(size, o.Weights)
		} else {
			c.reta, err = EqualRETA(size, o.Queues)
		}
		if err != nil {
			return nil, err
		}
		c.queues = o.Queues
	}
	c.pow2 = isPow2(len(c.reta))
	if c.pow2 {
		c.mask = uint32(len(c.reta) - 1)
	}
	for _, p := range []struct {
		name string
		in   Tuple
		out  *Tuple
	}{{"TCP4", o.TCP4, &c.tcp4}, {"UDP4", o.UDP4, &c.udp4}, {"TCP6", o.TCP6, &c.tcp6}, {"UDP6", o.UDP6, &c.udp6}} {
		switch p.in {
		case TupleDefault:
			*p.out = Tuple4
		case Tuple2, Tuple4:
			*p.out = p.in
		default:
			return nil, fmt.Errorf("rss: %s hashes %v, want Tuple2 or Tuple4", p.name, p.in)
		}
	}
	return c, nil
}

// Toeplitz returns the hash of the configuration's key.
func (c *Config) Toeplitz() *Toeplitz { return c.t }

// Key returns a copy of the key.
func (c *Config) Key() []byte { return c.t.Key() }

// RETA returns a copy of the indirection table.
func (c *Config) RETA() RETA { return append(RETA(nil), c.reta...) }

// Queues returns the number of receive queues.
func (c *Config) Queues() int { return c.queues }

// Tuple returns the tuple hashed for proto over IPv4 (ipv6 false) or IPv6:
// the configured one for TCP and UDP, Tuple2 for any other protocol.
func (c *Config) Tuple(proto Proto, ipv6 bool) Tuple {
	switch {
	case proto == ProtoTCP && !ipv6:
		return c.tcp4
	case proto == ProtoUDP && !ipv6:
		return c.udp4
	case proto == ProtoTCP:
		return c.tcp6
	case proto == ProtoUDP:
		return c.udp6
	}
	return Tuple2
}

// Queue returns the queue a hash steers to: reta[hash % len(reta)], which
// for a power-of-two table is reta[hash & (len-1)], the hash's low bits.
func (c *Config) Queue(hash uint32) int {
	if c.pow2 {
		return int(c.reta[hash&c.mask])
	}
	return int(c.reta[hash%uint32(len(c.reta))])
}

// QueueIPv4 is the queue of an IPv4 packet hashed on its 2-tuple.
func (c *Config) QueueIPv4(src, dst [4]byte) int {
	return c.Queue(c.t.HashIPv4(src, dst))
}

// QueueIPv4Ports is the queue of an IPv4 packet hashed on its 4-tuple.
func (c *Config) QueueIPv4Ports(src, dst [4]byte, srcPort, dstPort uint16) int {
	return c.Queue(c.t.HashIPv4Ports(src, dst, srcPort, dstPort))
}

// QueueIPv6 is the queue of an IPv6 packet hashed on its 2-tuple.
func (c *Config) QueueIPv6(src, dst [16]byte) int {
	return c.Queue(c.t.HashIPv6(src, dst))
}

// QueueIPv6Ports is the queue of an IPv6 packet hashed on its 4-tuple.
func (c *Config) QueueIPv6Ports(src, dst [16]byte, srcPort, dstPort uint16) int {
	return c.Queue(c.t.HashIPv6Ports(src, dst, srcPort, dstPort))
}

// HashIPv4Flow hashes an unfragmented IPv4 packet of protocol proto on the
// tuple the configuration hashes for it (see Tuple); the ports are ignored
// when that is Tuple2.
func (c *Config) HashIPv4Flow(proto Proto, src, dst [4]byte, srcPort, dstPort uint16) uint32 {
	if c.Tuple(proto, false) == Tuple4 {
		return c.t.HashIPv4Ports(src, dst, srcPort, dstPort)
	}
	return c.t.HashIPv4(src, dst)
}

// HashIPv6Flow is HashIPv4Flow for IPv6.
func (c *Config) HashIPv6Flow(proto Proto, src, dst [16]byte, srcPort, dstPort uint16) uint32 {
	if c.Tuple(proto, true) == Tuple4 {
		return c.t.HashIPv6Ports(src, dst, srcPort, dstPort)
	}
	return c.t.HashIPv6(src, dst)
}

// QueueIPv4Flow is the queue of HashIPv4Flow.
func (c *Config) QueueIPv4Flow(proto Proto, src, dst [4]byte, srcPort, dstPort uint16) int {
	return c.Queue(c.HashIPv4Flow(proto, src, dst, srcPort, dstPort))
}

// QueueIPv6Flow is the queue of HashIPv6Flow.
func (c *Config) QueueIPv6Flow(proto Proto, src, dst [16]byte, srcPort, dstPort uint16) int {
	return c.Queue(c.HashIPv6Flow(proto, src, dst, srcPort, dstPort))
}

// HashAddrPorts hashes a packet from src to dst of protocol proto as
// HashIPv4Flow or HashIPv6Flow does. It is for control-plane callers that
// hold netip values; both addresses must be of one family (an IPv4-mapped
// IPv6 address is IPv6).
func (c *Config) HashAddrPorts(proto Proto, src, dst netip.AddrPort) (uint32, error) {
	s, d := src.Addr(), dst.Addr()
	switch {
	case s.Is4() && d.Is4():
		return c.HashIPv4Flow(proto, s.As4(), d.As4(), src.Port(), dst.Port()), nil
	case s.Is6() && d.Is6():
		return c.HashIPv6Flow(proto, s.As16(), d.As16(), src.Port(), dst.Port()), nil
	}
	return 0, fmt.Errorf("rss: cannot hash %v to %v: want two IPv4 or two IPv6 addresses", s, d)
}

// HashAddrs hashes the 2-tuple of a packet from src to dst, for
// control-plane callers that hold netip values; both addresses must be of
// one family.
func (c *Config) HashAddrs(src, dst netip.Addr) (uint32, error) {
	switch {
	case src.Is4() && dst.Is4():
		return c.t.HashIPv4(src.As4(), dst.As4()), nil
	case src.Is6() && dst.Is6():
		return c.t.HashIPv6(src.As16(), dst.As16()), nil
	}
	return 0, fmt.Errorf("rss: cannot hash %v to %v: want two IPv4 or two IPv6 addresses", src, dst)
}

// Frame layout constants for HashFrame.
const (
	etherHeaderLen  = 14
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherTypeVLAN   = 0x8100
	etherTypeQinQ   = 0x88a8
	ipv4MinHeader   = 20
	ipv6HeaderLen   = 40
	ipv6HopByHop    = 0
	ipv6Routing     = 43
	ipv6Fragment    = 44
	ipv6DestOptions = 60
	maxVLANTags     = 2
	maxIPv6ExtHdrs  = 8
)

// HashFrame hashes an Ethernet frame as a NIC configured with c does, and
// reports false for a frame a NIC would not hash (not IPv4 or IPv6, or too
// short for its IP header); QueueFrame sends those to queue 0. The rules:
//
//   - Up to two VLAN tags (0x8100, 0x88a8) are skipped.
//   - IPv4: the header length is taken from IHL, so options are skipped. A
//     fragment (MF set or a non-zero offset, the first fragment included)
//     is hashed on the 2-tuple, as the Microsoft specification requires, so
//     all fragments of a datagram land together.
//   - IPv6: hop-by-hop, routing and destination-options headers are
//     skipped (at most 8); a fragment header makes it a 2-tuple hash. The
//     addresses hashed are the ones of the IPv6 header (not a routing
//     header's final destination, as the specification's optional "IPv6
//     with extension headers" hashes do).
//   - TCP and UDP are hashed on the tuple c chooses for them, when the
//     frame holds the ports; any other protocol on the 2-tuple.
//
// HashFrame does not allocate.
func (c *Config) HashFrame(frame []byte) (hash uint32, ok bool) {
	if len(frame) < etherHeaderLen {
		return 0, false
	}
	etherType := binary.BigEndian.Uint16(frame[12:])
	l3 := frame[etherHeaderLen:]
	for i := 0; i < maxVLANTags && (etherType == etherTypeVLAN || etherType == etherTypeQinQ); i++ {
		if len(l3) < 4 {
			return 0, false
		}
		etherType = binary.BigEndian.Uint16(l3[2:])
		l3 = l3[4:]
	}
	switch etherType {
	case etherTypeIPv4:
		return c.hashIPv4Packet(l3)
	case etherTypeIPv6:
		return c.hashIPv6Packet(l3)
	}
	return 0, false
}

// QueueFrame is the queue a NIC configured with c steers frame to: the queue
// of HashFrame's hash, or 0 for a frame it does not hash.
func (c *Config) QueueFrame(frame []byte) int {
	h, ok := c.HashFrame(frame)
	if !ok {
		return 0
	}
	return c.Queue(h)
}

func (c *Config) hashIPv4Packet(p []byte) (uint32, bool) {
	if len(p) < ipv4MinHeader || p[0]>>4 != 4 {
		return 0, false
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < ipv4MinHeader || len(p) < ihl {
		return 0, false
	}
	src, dst := [4]byte(p[12:16]), [4]byte(p[16:20])
	const moreFragments, offsetMask = 0x2000, 0x1fff
	fragment := binary.BigEndian.Uint16(p[6:])&(moreFragments|offsetMask) != 0
	proto := Proto(p[9])
	if !fragment && c.Tuple(proto, false) == Tuple4 && len(p) >= ihl+4 {
		l4 := p[ihl:]
		return c.t.HashIPv4Ports(src, dst, binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])), true
	}
	return c.t.HashIPv4(src, dst), true
}

func (c *Config) hashIPv6Packet(p []byte) (uint32, bool) {
	if len(p) < ipv6HeaderLen || p[0]>>4 != 6 {
		return 0, false
	}
	src, dst := [16]byte(p[8:24]), [16]byte(p[24:40])
	next, off := p[6], ipv6HeaderLen
	for i := 0; i < maxIPv6ExtHdrs; i++ {
		if next != ipv6HopByHop && next != ipv6Routing && next != ipv6DestOptions {
			break
		}
		if len(p) < off+2 {
			return c.t.HashIPv6(src, dst), true
		}
		next, off = p[off], off+(int(p[off+1])+1)*8
	}
	proto := Proto(next)
	if next != ipv6Fragment && c.Tuple(proto, true) == Tuple4 && len(p) >= off+4 {
		l4 := p[off:]
		return c.t.HashIPv6Ports(src, dst, binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])), true
	}
	return c.t.HashIPv6(src, dst), true
}
