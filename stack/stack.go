package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/header"
	"github.com/mkstack/mkstack/stack/timer"
)

// Clock is the only source of time a stack reads: nicq's clock, so the
// runtime passes nicq.SystemClock and tests a nicq.VirtualClock they step.
type Clock = nicq.Clock

// FlowOwnerFunc returns the core whose NIC queue receives packets with this
// tuple (as they arrive: source is the remote end). The runtime builds it
// from the RSS configuration.
type FlowOwnerFunc func(protocol uint8, src, dst [4]byte, srcPort, dstPort uint16) int

// FlowOwner6Func is FlowOwnerFunc for IPv6 flows.
type FlowOwner6Func func(protocol uint8, src, dst [16]byte, srcPort, dstPort uint16) int

// Config describes one stack instance. Zero durations and sizes take the
// defaults documented on each field.
type Config struct {
	// Core is the index of the core that owns this stack.
	Core int
	// MAC is the interface's Ethernet address.
	MAC header.MAC
	// Addr is the interface's IPv4 address with its subnet, e.g.
	// 10.0.0.1/24. The subnet is a connected route. Left zero with
	// Addrs6 set, the stack is IPv6-only: IPv4 and ARP frames are
	// dropped as not_supported.
	Addr netip.Prefix
	// Gateway, if valid, is the default route's next hop.
	Gateway netip.Addr
	// Addrs6 are the interface's IPv6 addresses with their prefixes, e.g.
	// 2001:db8::1/64. With any, IPv6 is on: the link-local address formed
	// from MAC (fe80::/64 and its modified EUI-64) is ours too, and the
	// stack answers echo requests and neighbour solicitations for them
	// (ipv6.go), and carries TCP and UDP over IPv6 from and to them; MTU
	// must then be at least 1280. Without, IPv6 frames are dropped as
	// not_supported. The prefixes are on-link.
	Addrs6 []netip.Prefix
	// Gateway6, if valid, is the IPv6 default route's next hop: a
	// neighbour (usually a router's link-local address). Without it, the
	// sender of a router advertisement with a lifetime is the default
	// router (ndp.go), unless IgnoreRouterAdvertisements.
	Gateway6                   netip.Addr
	IgnoreRouterAdvertisements bool
	// DisableDAD turns duplicate address detection of the IPv6 addresses
	// off (ndp.go; it runs on core 0's stack only).
	DisableDAD bool
	// OnDuplicateAddress6, if set, is told of our IPv6 address a found
	// duplicate and withdrawn, so the other cores withdraw it too
	// (WithdrawAddress6). OnRouter6 is told of a default router a router
	// advertisement gave, for life (0: no longer), so the other cores
	// learn it too (LearnRouter6).
	OnDuplicateAddress6 func(a [16]byte)
	OnRouter6           func(router [16]byte, life time.Duration)
	// MTU is the largest IPv4 datagram on the link (default 1500).
	MTU int
	// TSO: the NIC cuts TCP segments (nicq.FeatureTSO; the core runtime
	// sets it from the NIC's features). TCP then sends new data in
	// segments of up to 64 KiB, as many MSS as Linux's TSO autosizing
	// would put in one (about a millisecond of the connection's rate),
	// with Buf.SegmentSize set and the checksum left partial; what goes
	// again after a loss goes one MSS at a time.
	TSO bool
	// LargeFrames: the NIC sends frames up to the MTU that are larger
	// than a buffer of Pool, from buffers of other pools
	// (nicq.FeatureMultiBuffer; the core runtime sets it). TCP then
	// announces and sends an MSS of the MTU, in large buffers of the
	// stack's, and UDP sends datagrams up to the MTU unfragmented.
	// Without it nothing the stack builds is larger than a buffer of Pool.
	LargeFrames bool
	// TxChecksumOffload: the NIC completes TCP checksums
	// (nicq.FeatureTxChecksum; the core runtime sets it). TCP then leaves
	// each segment's checksum partial, the pseudo-header sum, and marks
	// the buffer nicq.FlagL4ChecksumOffload, as it does a TSO segment's.
	TxChecksumOffload bool
	// Clock is the stack's time source (required).
	Clock Clock
	// Pool supplies buffers for packets the stack originates (required).
	Pool *nicq.Pool

	// NeighbourTTL is how long an ARP entry is trusted before it is
	// refreshed (default 60s).
	NeighbourTTL time.Duration
	// ARPRetry is the interval between ARP requests (default 1s).
	ARPRetry time.Duration
	// ARPAttempts is how many requests go unanswered before resolution
	// fails (default 3).
	ARPAttempts int
	// MaxNeighbours bounds the neighbour table (default 1024).
	MaxNeighbours int
	// PendingPerNeighbour bounds the packets waiting for one resolution
	// (default 16).
	PendingPerNeighbour int

	// ReassemblyMemory bounds the bytes held by incomplete datagrams
	// (default 4 MiB).
	ReassemblyMemory int
	// ReassemblyTimeout drops a datagram whose fragments have not all
	// arrived (default 30s, as Linux).
	ReassemblyTimeout time.Duration
	// MaxFragments bounds the pieces of one datagram (default 64).
	MaxFragments int

	// TxQueue bounds the frames waiting for the NIC (default 2048): what
	// one turn of the core's loop may produce, such as a response on each
	// of thousands of busy connections (at 512, 2500 HTTP connections
	// dropped ACKs here and TCP resent what they acknowledged).
	TxQueue int
	// SocketQueue is the default receive queue length of a UDP socket
	// (default 256 datagrams).
	SocketQueue int
	// ICMPErrorsPerSecond rate-limits ICMP errors we send (default 1000).
	ICMPErrorsPerSecond int

	// AcceptVLAN accepts 802.1Q-tagged frames (the tag is ignored);
	// otherwise they are counted and dropped.
	AcceptVLAN bool

	// FlowOwner, if set, says which core owns a flow; a reassembled
	// datagram or an ICMP error for a flow owned elsewhere goes to Forward.
	FlowOwner FlowOwnerFunc
	// FlowOwner6 is FlowOwner for IPv6 flows.
	FlowOwner6 FlowOwner6Func
	// Forward hands b (starting at its IPv4 header) to core, which feeds it
	// to its stack's InputForwarded. It reports false if it could not, and
	// then the stack frees b. The runtime wires it to the mailboxes.
	Forward func(core int, b *nicq.Buf) bool
	// OnNeighbour is called when the stack learns or changes a neighbour
	// from the wire, so the runtime can replicate it to the other cores
	// (which call LearnNeighbour).
	OnNeighbour func(ip [4]byte, mac header.MAC)
	// OnNeighbour6 is OnNeighbour for the IPv6 neighbour cache: called
	// for each link-layer address learned or confirmed from the wire (a
	// neighbour solicitation to us, an advertisement that updates an
	// entry); the other cores call LearnNeighbour6.
	OnNeighbour6 func(ip [16]byte, mac header.MAC)
	// OnEchoReply is called for each ICMP echo reply addressed to us.
	OnEchoReply func(from [4]byte, id, seq uint16, payload []byte)
	// Warn, if set, receives the first few drops that point at a problem
	// of configuration rather than of the network (TCP segments and UDP
	// datagrams with a bad checksum, with the likely cause and the fix).
	// It is called from the stack's core, at most a handful of times per
	// stack; every drop is counted in Stats.Drops whether or not it is.
	Warn func(msg string)

	// TCP configures the stack's TCP (zero values take its defaults).
	TCP TCPConfig
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MTU, 1500)
	defDur(&c.NeighbourTTL, 60*time.Second)
	defDur(&c.ARPRetry, time.Second)
	def(&c.ARPAttempts, 3)
	def(&c.MaxNeighbours, 1024)
	def(&c.PendingPerNeighbour, 16)
	def(&c.ReassemblyMemory, 4<<20)
	defDur(&c.ReassemblyTimeout, 30*time.Second)
	def(&c.MaxFragments, 64)
	def(&c.TxQueue, 2048)
	def(&c.SocketQueue, 256)
	def(&c.ICMPErrorsPerSecond, 1000)
}

// Stats are one stack's counters. The owning core reads them; other
// goroutines see them only through what the runtime publishes.
type Stats struct {
	RxFrames, RxBytes uint64
	TxFrames, TxBytes uint64

	ARPRequestsSent, ARPRepliesSent uint64
	EchoRepliesSent                 uint64
	ICMPErrorsSent                  uint64
	ICMPErrorsDelivered             uint64

	UDPDatagramsIn, UDPDatagramsOut uint64
	FragmentsIn, FragmentsOut       uint64
	Reassembled                     uint64
	Forwarded                       uint64
	// PartialChecksums counts TCP segments and UDP datagrams accepted
	// with a partial checksum (nicq.FlagL4ChecksumPartial, or
	// FlagL4ChecksumMaybePartial and a field equal to the pseudo-header
	// sum): frames from a peer on this host.
	PartialChecksums uint64

	// IPv6 (ipv6.go, icmpv6.go, ndp.go): echo replies and errors sent,
	// neighbour solicitations for our addresses (each answered by an
	// advertisement sent), neighbour and router advertisements received.
	ICMPv6EchoRepliesSent, ICMPv6ErrorsSent   uint64
	NeighbourSolicitsIn, NeighbourAdvertsSent uint64
	NeighbourAdvertsIn, RouterAdvertsIn       uint64
	// IPv6 packets TCP and UDP sent, and neighbour solicitations sent to
	// resolve a next hop (ipv6_output.go).
	IPv6PacketsOut, NeighbourSolicitsSent uint64
	// DuplicateAddresses6 counts our IPv6 addresses withdrawn as
	// duplicates.
	DuplicateAddresses6 uint64

	Drops [NumDropReasons]uint64
}

// Stack is one TCP/IP stack instance. Every method must be called from the
// goroutine of the core that owns it.
type Stack struct {
	cfg   Config
	mac   header.MAC
	ip4   bool // an IPv4 address is configured (else IPv6-only)
	addr  [4]byte
	bcast [4]byte // subnet broadcast
	clock Clock
	pool  *nicq.Pool
	// bigPool holds reassembled datagrams too large for pool's buffers.
	bigPool *nicq.Pool
	// tsoPool holds TCP segments larger than one MSS (Config.TSO).
	tsoPool *nicq.Pool
	now     int64

	wheel  timer.Wheel
	routes routeTable
	neigh  neighbourTable
	reasm  reassembler
	udp    udpTable
	tcp    tcpTable
	icmp   icmpLimiter
	pmtu   pmtuCache[[4]byte]
	pmtu6  pmtuCache[[16]byte] // learned from Packet Too Big (RFC 8201)
	ip6    ipv6State

	tx    []*nicq.Buf
	ipID  uint16
	stats Stats
	// badChecksumWarned counts the bad checksums reported to Config.Warn.
	badChecksumWarned int
}

// ErrInvalidConfig is returned (wrapped) by New for a config it cannot run.
var ErrInvalidConfig = errors.New("stack: invalid config")

// New builds a stack from cfg.
func New(cfg Config) (*Stack, error) {
	cfg.setDefaults()
	if cfg.Clock == nil || cfg.Pool == nil {
		return nil, fmt.Errorf("%w: Clock and Pool are required", ErrInvalidConfig)
	}
	v4 := cfg.Addr.IsValid()
	if v4 && !cfg.Addr.Addr().Is4() || !v4 && len(cfg.Addrs6) == 0 {
		return nil, fmt.Errorf("%w: Addr %v is not an IPv4 prefix (and no Addrs6 makes an IPv6-only stack)", ErrInvalidConfig, cfg.Addr)
	}
	if !v4 && cfg.Gateway.IsValid() {
		return nil, fmt.Errorf("%w: Gateway %v without an IPv4 Addr", ErrInvalidConfig, cfg.Gateway)
	}
	if cfg.MTU < 68 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("%w: MTU %d outside 68..65535", ErrInvalidConfig, cfg.MTU)
	}
	if cfg.MAC.IsMulticast() || cfg.MAC == (header.MAC{}) {
		return nil, fmt.Errorf("%w: MAC %v is not a unicast address", ErrInvalidConfig, cfg.MAC)
	}
	s := &Stack{cfg: cfg, mac: cfg.MAC, clock: cfg.Clock, pool: cfg.Pool, ip4: v4}
	s.now = s.clock.Now()
	s.wheel.Init(s.now, time.Millisecond)
	if v4 {
		s.addr = cfg.Addr.Addr().As4()
		s.bcast = broadcastOf(cfg.Addr)
		if err := s.routes.add(cfg.Addr, netip.Addr{}); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if cfg.Gateway.IsValid() {
		if !cfg.Addr.Contains(cfg.Gateway) {
			return nil, fmt.Errorf("%w: gateway %v is outside %v", ErrInvalidConfig, cfg.Gateway, cfg.Addr)
		}
		if err := s.routes.add(netip.MustParsePrefix("0.0.0.0/0"), cfg.Gateway); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	if err := s.initIPv6(); err != nil {
		return nil, err
	}
	s.tx = make([]*nicq.Buf, 0, cfg.TxQueue)
	s.neigh.init(s)
	s.reasm.init(s)
	s.udp.init(s)
	if err := s.tcp.init(s, cfg.TCP); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	s.cfg.TCP = s.tcp.cfg // with its defaults too, for Config
	s.icmp.init(cfg.ICMPErrorsPerSecond, s.now)
	s.ipID = uint16(s.now) ^ uint16(cfg.Core)<<12
	return s, nil
}

func broadcastOf(p netip.Prefix) [4]byte {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	if p.Bits() == 32 {
		host = 0
	}
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// Config returns the stack's configuration with defaults filled in.
func (s *Stack) Config() Config { return s.cfg }

// Addr returns the stack's IPv4 address: the zero Addr for an IPv6-only
// stack.
func (s *Stack) Addr() netip.Addr {
	if !s.ip4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4(s.addr)
}

// Stats returns the stack's counters.
func (s *Stack) Stats() *Stats { return &s.stats }

// Start announces the stack on the link with a gratuitous ARP request, so
// neighbours that cached an old address for our IP update it.
func (s *Stack) Start() {
	s.now = s.clock.Now()
	if s.ip4 {
		s.sendARP(header.ARPRequest, header.BroadcastMAC, s.addr, header.MAC{}, s.addr)
	}
	if s.ip6.enabled && !s.cfg.DisableDAD {
		// Every core watches for a duplicate (RSS may steer the answer to
		// any of them); one solicits.
		s.ip6.tentativeUntil = s.now + int64(s.cfg.ARPRetry)
		if s.cfg.Core == 0 {
			s.startDAD()
		}
	}
}

// Advance runs the timers that are due by the clock's current time.
func (s *Stack) Advance() {
	s.now = s.clock.Now()
	s.wheel.Advance(s.now)
}

// NextTimer returns when the earliest pending timer is due, so an idle core
// knows how long it may sleep.
func (s *Stack) NextTimer() (at int64, ok bool) { return s.wheel.NextEvent() }

// Input processes a burst of received frames. The stack takes ownership of
// every buffer: it frees it, keeps it (a queued datagram or fragment) or
// reuses it for a reply.
func (s *Stack) Input(bufs []*nicq.Buf) {
	s.now = s.clock.Now()
	for _, b := range bufs {
		s.inputFrame(b)
	}
	if len(s.tcp.pending) > 0 {
		s.tcp.flushPending()
	}
}

// PendingOutput returns how many frames wait for the NIC.
func (s *Stack) PendingOutput() int { return len(s.tx) }

// flushBurst is the most frames Flush offers to send in one call.
const flushBurst = 64

// Flush offers the waiting frames to send (a NIC queue's Send) in bursts and
// keeps those it did not take, in order, for the next call. It returns how
// many were taken.
func (s *Stack) Flush(send func([]*nicq.Buf) int) int {
	taken := s.flushQueue(send)
	// TCP connections that held data back for room in the queue
	// (tcpTable.txFull) send it now; while the NIC takes everything, it
	// leaves in this flush.
	for len(s.tcp.txWait) > 0 && !s.tcp.txFull() {
		before := len(s.tx)
		s.tcp.resumeTx()
		if len(s.tx) == before {
			break
		}
		taken += s.flushQueue(send)
		if len(s.tx) > 0 {
			break // the NIC is full: the next Flush goes on
		}
	}
	return taken
}

func (s *Stack) flushQueue(send func([]*nicq.Buf) int) int {
	taken := 0
	for taken < len(s.tx) {
		burst := s.tx[taken:min(taken+flushBurst, len(s.tx))]
		// Measure before sending: the buffers send takes belong to the
		// driver at once and may be freed before it returns.
		var lens [flushBurst]int
		for i, b := range burst {
			lens[i] = bufLen(b)
		}
		n := send(burst)
		for _, l := range lens[:n] {
			s.stats.TxBytes += uint64(l)
		}
		s.stats.TxFrames += uint64(n)
		taken += n
		if n < len(burst) {
			break
		}
	}
	rest := copy(s.tx, s.tx[taken:])
	clear(s.tx[rest:])
	s.tx = s.tx[:rest]
	return taken
}

func (s *Stack) drop(b *nicq.Buf, r DropReason) {
	s.stats.Drops[r]++
	if b != nil {
		bufFree(b)
	}
}

// getBuf returns an empty buffer with full headroom, or nil (counted).
func (s *Stack) getBuf() *nicq.Buf {
	b := bufGet(s.pool)
	if b == nil {
		s.stats.Drops[DropNoBuffer]++
	}
	return b
}

// transmit queues a finished frame for the NIC.
func (s *Stack) transmit(b *nicq.Buf) {
	if len(s.tx) == cap(s.tx) {
		s.drop(b, DropTxQueueFull)
		return
	}
	s.tx = append(s.tx, b)
}

func (s *Stack) inputFrame(b *nicq.Buf) {
	s.stats.RxFrames++
	s.stats.RxBytes += uint64(bufLen(b))
	eth, r := header.ParseEthernet(bufData(b))
	if r != header.DropNone {
		s.drop(b, DropReason(r))
		return
	}
	dst := eth.Destination()
	if dst != s.mac && !dst.IsBroadcast() && !(s.ip6.enabled && s.ip6.acceptsMAC(dst)) {
		s.drop(b, DropNotForUs)
		return
	}
	if eth.Tagged() && !s.cfg.AcceptVLAN {
		s.drop(b, DropVLANTagged)
		return
	}
	typ := eth.PayloadType()
	srcMAC := eth.Source()
	bufPull(b, eth.HeaderLength())
	switch typ {
	case header.EtherTypeARP, header.EtherTypeIPv4:
		if !s.ip4 {
			s.drop(b, DropNotSupported) // an IPv6-only stack
		} else if typ == header.EtherTypeARP {
			s.inputARP(b)
		} else {
			s.inputIPv4(b, srcMAC, dst.IsBroadcast())
		}
	case header.EtherTypeIPv6:
		s.inputIPv6(b, srcMAC, dst.IsMulticast())
	default:
		s.drop(b, DropUnknownEtherType)
	}
}
