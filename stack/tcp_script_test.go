package stack

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// A scripted-packet harness in the spirit of packetdrill: one stack under
// test, a remote peer that exists only as a script, and a virtual clock.
// The script injects exact Ethernet/IPv4/TCP frames at exact times and
// asserts the exact segments the stack sends back (flags, sequence and
// acknowledgment numbers, window, options, payload length) and when it
// sends them. Between steps the clock moves from timer to timer (Advance
// at each deadline), so a retransmission scheduled for 1.2 s is seen at
// 1.2 s, not at the next step.
//
// Sequence numbers are relative, as in packetdrill: an injected segment's
// seq is relative to the peer's ISN (scriptPeerISN) and its ack to the
// stack's ISS; an expected segment's seq is relative to the stack's ISS
// (learned from the first SYN it sends) and its ack to the peer's ISN.
// Any segment the stack sends that the script does not expect fails the
// test, as does an expected one that does not come, or comes at another
// time.

var (
	scriptPeer    = [4]byte{10, 0, 0, 9}
	scriptPeerMAC = header.MAC{2, 0, 0, 0, 0, 9}
	// Over IPv6 (tcpScript.v6) the peer and the stack share 2001:db8::/64.
	scriptPeer6 = netip.MustParseAddr("2001:db8::9").As16()
	scriptOurs6 = netip.MustParseAddr("2001:db8::2").As16()
)

// Scripts are written for IPv4. The same script runs over IPv6 when the
// harness is made with v6 (newTCPScriptFamily), and newTCPScript makes it
// so for every test under TestTCPScriptOverIPv6 (tcp_script6_test.go),
// which re-runs a set of the scripted tests that way. Over IPv6 the
// stack's MSS at MTU 1500 is 1440, 20 less for the larger header: an
// expected MSS option of scriptMSS4 (what the stack announces over IPv4)
// is compared with h.ourMSS instead.
const (
	scriptMSS4       = 1460
	scriptIPv6Prefix = "TestTCPScriptOverIPv6/"
)

const (
	scriptPeerISN  = 0x5eed0000
	scriptPeerPort = 4000
	scriptPort     = 80   // the stack's listening port
	scriptDialPort = 8080 // the peer's port the stack dials
	// zeroWin in a tseg's win asks for a zero window (0 means "the
	// default" when injecting and "not checked" when expecting).
	zeroWin = -1
)

// tseg is one segment of a script.
type tseg struct {
	f    string // flags, packetdrill's letters: S F R P, and . for ACK
	seq  int64  // relative to the sender's ISN (unless abs)
	ack  int64  // relative to the receiver's ISN (unless abs)
	n    int    // payload bytes
	win  int    // window field: see zeroWin
	opts *header.TCPOptions
	// sack are SACK blocks, relative like ack (both ways).
	sack [][2]int64
	// port is the peer's port (0: the script's current one).
	port uint16
	abs  bool // seq and ack are absolute
	// noTS leaves the timestamp off an injected segment when the
	// script adds them (autoTS).
	noTS bool
}

// step is one line of a script; exactly one of in, out, none, do is set.
type step struct {
	at   time.Duration // since the start of run
	in   *tseg         // the peer sends this
	out  *tseg         // the stack has sent this, at exactly at
	none bool          // the stack has sent nothing up to at
	do   func(h *tcpScript)
}

// sentSeg is a segment the stack sent, and when.
type sentSeg struct {
	at      int64
	f       header.TCPFields
	opts    header.TCPOptions
	payload []byte
}

type tcpScript struct {
	t    *testing.T
	v6   bool     // the script runs over IPv6
	peer [16]byte // the peer's address (IPv4 mapped unless v6)
	ours [16]byte // the stack's address
	// ourMSS is the MSS the stack announces: scriptMSS4, 20 less over
	// IPv6.
	ourMSS uint16
	// frames counts the frames the stack sent to the peer, by
	// EtherType: all of them of the script's family.
	frames map[uint16]int
	n      *testNet
	s      *Stack
	pool   *nicq.Pool
	base   int64
	sent   []sentSeg
	l      *TCPListener
	lopts  TCPListenOptions

	// iss is the stack's ISS, learned from its first SYN (issKnown).
	iss      uint32
	issKnown bool
	peerISN  uint32
	peerPort uint16
	local    uint16 // the stack's port
	peerWin  uint16

	// autoTS adds Timestamps to every injected segment without its own:
	// TSval peerTS (the script moves it), TSecr the last TSval the stack
	// sent.
	autoTS bool
	peerTS uint32
	lastTS uint32
	conn   *TCPConn
	large  *nicq.Pool // for segments larger than pool's frames
	// segSize is the SegmentSize of the buffer being taken; tsoSizes
	// those of the TSO segments the stack sent.
	segSize  int
	tsoSizes []int
	// offload: the buffer being taken is marked for the NIC to complete
	// its checksum; partials counts such segments (not TSO ones).
	offload  bool
	partials int
	ipIDs    []uint16 // of every IPv4 packet the stack sent
	events   []TCPEvent
	onEvent  TCPHandler // an extra handler, if a test needs one
}

// newTCPScript makes the harness for t: over IPv4, or over IPv6 for the
// tests TestTCPScriptOverIPv6 runs.
func newTCPScript(t *testing.T, tweak func(*Config)) *tcpScript {
	t.Helper()
	return newTCPScriptFamily(t, strings.HasPrefix(t.Name(), scriptIPv6Prefix), tweak)
}

// newTCPScriptFamily makes the harness over IPv6 if v6, else over IPv4.
// The stack is at 10.0.0.2/24, and over IPv6 at 2001:db8::2/64 too; the
// peer's neighbour entry is installed for the script's family, so no ARP
// request or neighbour solicitation goes.
func newTCPScriptFamily(t *testing.T, v6 bool, tweak func(*Config)) *tcpScript {
	t.Helper()
	n := newTestNet(t)
	s := n.add("10.0.0.2/24", func(c *Config) {
		c.NeighbourTTL = 1000 * time.Hour // no ARP refresh in a script
		if v6 {
			c.Addrs6 = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom16(scriptOurs6), 64)}
		}
		if tweak != nil {
			tweak(c)
		}
	})
	h := &tcpScript{t: t, n: n, s: s, pool: n.pools[0], peerISN: scriptPeerISN, v6: v6,
		peerPort: scriptPeerPort, local: scriptPort, peerWin: 65535, peerTS: 1000, frames: map[uint16]int{}}
	if v6 {
		s.LearnNeighbour6(scriptPeer6, scriptPeerMAC)
		h.peer, h.ours, h.ourMSS = scriptPeer6, scriptOurs6, scriptMSS4-20
		t.Cleanup(func() {
			// A script that ran without failing sent IPv6 and only IPv6.
			if !t.Failed() && !t.Skipped() && (h.frames[header.EtherTypeIPv6] == 0 || len(h.frames) != 1) {
				t.Errorf("over IPv6 the stack sent frames by EtherType %v; want IPv6 only", h.frames)
			}
		})
	} else {
		s.LearnNeighbour(scriptPeer, scriptPeerMAC)
		h.peer, h.ours, h.ourMSS = mapped4(scriptPeer), mapped4(s.addr), scriptMSS4
	}
	h.base = n.clock.Now()
	return h
}

// tuple is the stack's tuple for the connection from the peer's port.
func (h *tcpScript) tuple(peerPort uint16) tcpTuple {
	return tcpTuple{h.ours, h.peer, scriptPort, peerPort}
}

// peerAddr is the peer's address for the API.
func (h *tcpScript) peerAddr() netip.Addr { return tupleAddr(h.peer) }

// handler records the events of the script's connection.
func (h *tcpScript) handler(c *TCPConn, ev TCPEvent) {
	if h.conn == nil && ev == TCPEventEstablished && c.RemotePort() == h.peerPort {
		h.conn = c
	}
	if c == h.conn {
		h.events = append(h.events, ev)
	}
	if h.onEvent != nil {
		h.onEvent(c, ev)
	}
}

// listen opens the stack's listener on scriptPort with h.lopts; the
// handler records the events.
func (h *tcpScript) listen() {
	h.t.Helper()
	o := h.lopts
	o.OnEvent = h.handler
	l, err := h.s.ListenTCP(scriptPort, o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.l = l
}

// dial starts an active open to the peer's scriptDialPort.
func (h *tcpScript) dial(opts TCPConnOptions) {
	h.t.Helper()
	opts.OnEvent = h.handler
	c, err := h.s.DialTCPAddr(h.peerAddr(), scriptDialPort, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.conn, h.local, h.peerPort = c, c.LocalPort(), scriptDialPort
	h.capture()
}

// newIncarnation forgets the ISS so the next SYN from the stack teaches it
// again, and starts the peer over with isn.
func (h *tcpScript) newIncarnation(isn uint32) {
	h.issKnown = false
	h.peerISN = isn
	h.conn = nil
	h.events = nil
}

func (h *tcpScript) now() int64 { return h.n.clock.Now() }

// rel formats a time as seconds since the script's base.
func (h *tcpScript) rel(at int64) string {
	return fmt.Sprintf("%.3f", float64(at-h.base)/1e9)
}

// advanceTo moves the clock to at, stopping at every timer deadline on the
// way so each fires at its time, and takes what the stack sends.
func (h *tcpScript) advanceTo(at int64) {
	h.t.Helper()
	for i := 0; ; i++ {
		if i > 1_000_000 {
			h.t.Fatal("timers never settle")
		}
		next, ok := h.s.NextTimer()
		if !ok || next > at {
			break
		}
		if next <= h.now() {
			next = h.now() + int64(time.Millisecond)
			if next > at {
				break
			}
		}
		h.n.clock.Set(next)
		h.s.Advance()
		h.capture()
	}
	h.n.clock.Set(at)
	h.s.Advance()
	h.capture()
}

// capture takes the frames the stack sent, checking each is a well-formed
// TCP segment to the peer.
func (h *tcpScript) capture() {
	h.t.Helper()
	h.s.Flush(func(bufs []*nicq.Buf) int {
		for _, b := range bufs {
			h.segSize = int(b.SegmentSize)
			h.offload = b.Flags&nicq.FlagL4ChecksumOffload != 0
			h.take(b.Bytes())
			b.Free()
		}
		return len(bufs)
	})
}

// checksumOK checks a sent segment's checksum: complete, or, on a buffer
// marked for the NIC to complete it (offload: a TSO segment, segSize from
// its buffer, which the script records in tsoSizes, or any segment with
// Config.TxChecksumOffload, counted in partials), the pseudo-header sum.
func (h *tcpScript) checksumOK(seg header.TCP, pseudo uint16) bool {
	if h.segSize > 0 {
		h.tsoSizes = append(h.tsoSizes, h.segSize)
		return h.offload && seg.Checksum() == pseudo
	}
	if h.offload {
		h.partials++
		return seg.Checksum() == pseudo
	}
	return seg.IsChecksumValid(pseudo)
}

func (h *tcpScript) take(frame []byte) {
	h.t.Helper()
	eth, r := header.ParseEthernet(frame)
	if r == header.DropNone {
		h.frames[eth.PayloadType()]++
	}
	var seg header.TCP
	if h.v6 {
		if r != header.DropNone || eth.Destination() != scriptPeerMAC || eth.PayloadType() != header.EtherTypeIPv6 {
			h.t.Fatalf("%s: the stack sent a frame that is not IPv6 to the peer: % x", h.rel(h.now()), frame)
		}
		ip, r := header.ParseIPv6(eth.Payload())
		if r != header.DropNone || len(ip) != len(eth.Payload()) || ip.NextHeader() != header.ProtocolTCP ||
			ip.Source() != h.ours || ip.Destination() != h.peer || ip.HopLimit() != defaultHopLimit {
			h.t.Fatalf("%s: the stack sent a bad or non-TCP IPv6 packet: % x", h.rel(h.now()), eth.Payload())
		}
		seg, r = header.ParseTCP(ip.Payload())
		if r != header.DropNone {
			h.t.Fatalf("%s: the stack sent a malformed TCP header (%v)", h.rel(h.now()), r)
		}
		if !h.checksumOK(seg, checksum.PseudoHeaderIPv6(ip.Source(), ip.Destination(), header.ProtocolTCP, uint32(len(seg)))) {
			h.t.Fatalf("%s: the stack sent a TCP segment with a bad checksum", h.rel(h.now()))
		}
		// One Flow Label for every packet of a connection (RFC 6437 3),
		// never 0: the tuple's hash.
		id := tcpTuple{h.ours, h.peer, seg.SourcePort(), seg.DestinationPort()}
		if fl := ip.FlowLabel(); fl == 0 || fl != h.s.tcp.flowLabel(&id) {
			h.t.Fatalf("%s: the stack sent flow label %#x, want the connection's %#x", h.rel(h.now()), fl, h.s.tcp.flowLabel(&id))
		}
	} else {
		if r != header.DropNone || eth.Destination() != scriptPeerMAC || eth.PayloadType() != header.EtherTypeIPv4 {
			h.t.Fatalf("%s: the stack sent a frame that is not IPv4 to the peer: % x", h.rel(h.now()), frame)
		}
		ip, r := header.ParseIPv4(eth.Payload())
		if r != header.DropNone || !ip.IsChecksumValid() || ip.Protocol() != header.ProtocolTCP ||
			ip.Source() != h.s.addr || ip.Destination() != scriptPeer {
			h.t.Fatalf("%s: the stack sent a bad or non-TCP datagram: % x", h.rel(h.now()), eth.Payload())
		}
		seg, r = header.ParseTCP(ip.Payload())
		if r != header.DropNone {
			h.t.Fatalf("%s: the stack sent a malformed TCP header (%v)", h.rel(h.now()), r)
		}
		if !h.checksumOK(seg, checksum.PseudoHeaderIPv4(ip.Source(), ip.Destination(), header.ProtocolTCP, uint16(len(seg)))) {
			h.t.Fatalf("%s: the stack sent a TCP segment with a bad checksum", h.rel(h.now()))
		}
		if h.segSize > 0 && ip.Flags()&header.IPv4FlagDontFragment == 0 {
			h.t.Fatalf("%s: a TSO segment without Don't Fragment", h.rel(h.now()))
		}
		h.ipIDs = append(h.ipIDs, ip.ID())
	}
	g := sentSeg{at: h.now(), f: seg.Fields(), payload: append([]byte(nil), seg.Payload()...)}
	if r := header.ParseTCPOptions(seg.Options(), &g.opts); r != header.DropNone {
		h.t.Fatalf("%s: the stack sent malformed options % x", h.rel(h.now()), seg.Options())
	}
	if g.f.Flags&header.TCPFlagSYN != 0 && !h.issKnown && g.f.DestinationPort == h.peerPort {
		h.iss, h.issKnown = g.f.SequenceNumber, true
	}
	if g.opts.HasTimestamps {
		h.lastTS = g.opts.TSVal
	}
	h.sent = append(h.sent, g)
}

// parseFlags reads packetdrill's flag letters.
func parseFlags(s string) header.TCPFlags {
	var f header.TCPFlags
	for _, ch := range s {
		switch ch {
		case 'S':
			f |= header.TCPFlagSYN
		case 'F':
			f |= header.TCPFlagFIN
		case 'R':
			f |= header.TCPFlagRST
		case 'P':
			f |= header.TCPFlagPSH
		case '.':
			f |= header.TCPFlagACK
		case 'U':
			f |= header.TCPFlagURG
		case 'E':
			f |= header.TCPFlagECE
		case 'W':
			f |= header.TCPFlagCWR
		default:
			panic("tcp script: flag letter " + string(ch))
		}
	}
	return f
}

func flagLetters(f header.TCPFlags) string {
	var b strings.Builder
	for _, x := range []struct {
		f header.TCPFlags
		c byte
	}{{header.TCPFlagSYN, 'S'}, {header.TCPFlagFIN, 'F'}, {header.TCPFlagRST, 'R'}, {header.TCPFlagPSH, 'P'},
		{header.TCPFlagURG, 'U'}, {header.TCPFlagECE, 'E'}, {header.TCPFlagCWR, 'W'}, {header.TCPFlagACK, '.'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// format writes a segment the stack sent the way packetdrill would.
func (h *tcpScript) format(g sentSeg) string {
	seq := int64(g.f.SequenceNumber)
	if h.issKnown {
		seq = int64(int32(g.f.SequenceNumber - h.iss))
	}
	ack := int64(int32(g.f.AckNumber - h.peerISN))
	s := fmt.Sprintf("%s > %s %d:%d(%d)", h.rel(g.at), flagLetters(g.f.Flags), seq, seq+int64(len(g.payload)), len(g.payload))
	if g.f.Flags&header.TCPFlagACK != 0 {
		s += fmt.Sprintf(" ack %d", ack)
	}
	s += fmt.Sprintf(" win %d", g.f.Window)
	o := g.opts
	var opts []string
	if o.HasMSS {
		opts = append(opts, fmt.Sprintf("mss %d", o.MSS))
	}
	if o.SACKPermitted {
		opts = append(opts, "sackOK")
	}
	if o.HasTimestamps {
		opts = append(opts, fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr))
	}
	if o.HasWindowScale {
		opts = append(opts, fmt.Sprintf("wscale %d", o.WindowScale))
	}
	for _, b := range o.SACKBlocks[:o.NumSACKBlocks] {
		opts = append(opts, fmt.Sprintf("sack %d:%d", int32(b.Left-h.peerISN), int32(b.Right-h.peerISN)))
	}
	if len(opts) > 0 {
		s += " <" + strings.Join(opts, ",") + ">"
	}
	return s
}

// inject sends g from the peer now.
func (h *tcpScript) inject(g *tseg) {
	h.t.Helper()
	port := h.peerPort
	if g.port != 0 {
		port = g.port
	}
	flags := parseFlags(g.f)
	seq, ack := uint32(g.seq), uint32(g.ack)
	if !g.abs {
		seq = h.peerISN + uint32(g.seq)
		if flags&header.TCPFlagACK != 0 {
			ack = h.iss + uint32(g.ack)
		}
	}
	var o header.TCPOptions
	if g.opts != nil {
		o = *g.opts
	}
	if h.autoTS && !o.HasTimestamps && !g.noTS {
		o.HasTimestamps, o.TSVal, o.TSEcr = true, h.peerTS, h.lastTS
		if flags&header.TCPFlagACK == 0 {
			o.TSEcr = 0
		}
	}
	for i, b := range g.sack {
		o.SACKBlocks[i] = header.SACKBlock{Left: h.iss + uint32(b[0]), Right: h.iss + uint32(b[1])}
		o.NumSACKBlocks = i + 1
	}
	win := h.peerWin
	switch {
	case g.win == zeroWin:
		win = 0
	case g.win != 0:
		win = uint16(g.win)
	}
	var ob [header.TCPMaximumOptionsSize]byte
	ol := header.EncodeTCPOptions(ob[:], &o)
	h.injectRaw(port, seq, ack, flags, win, ob[:ol], pattern(g.n))
}

// injectRaw delivers one TCP segment from the peer through the stack's
// Input, wrapped in valid Ethernet and IPv4 (or IPv6) headers with correct
// checksums. opts must be a multiple of 4 bytes long, at most 40.
func (h *tcpScript) injectRaw(port uint16, seq, ack uint32, flags header.TCPFlags, win uint16, opts, payload []byte) {
	h.t.Helper()
	b := h.pool.Get()
	if b == nil {
		h.t.Fatal("pool empty")
	}
	hl := header.TCPMinimumSize + len(opts)
	if header.EthernetMinimumSize+header.IPv6FixedHeaderSize+hl+len(payload) > b.Tailroom() {
		// A segment larger than the link's frames: a driver's large
		// frame taken whole (a peer's TSO).
		b.Free()
		if h.large == nil {
			h.large, _ = nicq.NewPool(nicq.PoolConfig{Name: "script/large", Buffers: 4, FrameSize: 128 << 10})
		}
		b = h.large.Get()
	}
	var seg header.TCP
	if h.v6 {
		f := b.Append(header.EthernetMinimumSize + header.IPv6FixedHeaderSize + hl + len(payload))
		header.Ethernet(f).Encode(&header.EthernetFields{Destination: h.s.mac, Source: scriptPeerMAC, Type: header.EtherTypeIPv6})
		encodeIPv6(f[header.EthernetMinimumSize:], header.ProtocolTCP, 64, hl+len(payload), h.peer, h.ours)
		seg = header.TCP(f[header.EthernetMinimumSize+header.IPv6FixedHeaderSize:])
	} else {
		total := header.IPv4MinimumSize + hl + len(payload)
		f := b.Append(header.EthernetMinimumSize + total)
		header.Ethernet(f).Encode(&header.EthernetFields{Destination: h.s.mac, Source: scriptPeerMAC, Type: header.EtherTypeIPv4})
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(total), TTL: 64, Protocol: header.ProtocolTCP, Source: scriptPeer, Destination: h.s.addr})
		ip.SetChecksum(ip.ComputeChecksum())
		seg = header.TCP(ip[header.IPv4MinimumSize:])
	}
	seg.Encode(&header.TCPFields{SourcePort: port, DestinationPort: h.local, SequenceNumber: seq, AckNumber: ack,
		DataOffset: hl, Flags: flags, Window: win})
	copy(seg[header.TCPMinimumSize:], opts)
	copy(seg[hl:], payload)
	if h.v6 {
		seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv6(h.peer, h.ours, header.ProtocolTCP, uint32(len(seg)))))
	} else {
		seg.SetChecksum(seg.ComputeChecksum(checksum.PseudoHeaderIPv4(scriptPeer, h.s.addr, header.ProtocolTCP, uint16(len(seg)))))
	}
	h.s.Input([]*nicq.Buf{b})
	h.capture()
}

// expect checks the oldest segment not yet matched against want, sent at
// at.
func (h *tcpScript) expect(at int64, want *tseg) {
	h.t.Helper()
	if len(h.sent) == 0 {
		h.t.Fatalf("%s: expected %s, nothing was sent", h.rel(at), h.describe(want))
	}
	g := h.sent[0]
	h.sent = h.sent[1:]
	var errs []string
	if g.at != at {
		errs = append(errs, fmt.Sprintf("sent at %s", h.rel(g.at)))
	}
	flags := parseFlags(want.f)
	if g.f.Flags != flags {
		errs = append(errs, "flags "+flagLetters(g.f.Flags))
	}
	seq, ack := uint32(want.seq), uint32(want.ack)
	if !want.abs {
		seq, ack = h.iss+uint32(want.seq), h.peerISN+uint32(want.ack)
	}
	if g.f.SequenceNumber != seq {
		errs = append(errs, "seq")
	}
	if flags&header.TCPFlagACK != 0 && g.f.AckNumber != ack {
		errs = append(errs, "ack")
	}
	if len(g.payload) != want.n {
		errs = append(errs, "length")
	}
	if want.win == zeroWin && g.f.Window != 0 || want.win > 0 && int(g.f.Window) != want.win {
		errs = append(errs, "window")
	}
	if p := g.f.SourcePort; p != h.local || g.f.DestinationPort != h.peerPort && want.port == 0 || want.port != 0 && g.f.DestinationPort != want.port {
		errs = append(errs, "ports")
	}
	if w := want.opts; w != nil {
		o := g.opts
		mss := w.MSS
		if w.HasMSS && mss == scriptMSS4 {
			mss = h.ourMSS // the announcement at MTU 1500, in the script's family
		}
		if o.HasMSS != w.HasMSS || o.MSS != mss || o.HasWindowScale != w.HasWindowScale || o.WindowScale != w.WindowScale ||
			o.SACKPermitted != w.SACKPermitted || o.HasTimestamps != w.HasTimestamps || w.HasTimestamps && o.TSEcr != w.TSEcr {
			errs = append(errs, "options")
		}
	}
	if want.opts != nil || want.sack != nil {
		o := g.opts
		if o.NumSACKBlocks != len(want.sack) {
			errs = append(errs, "SACK blocks")
		} else {
			for i, b := range want.sack {
				if o.SACKBlocks[i] != (header.SACKBlock{Left: h.peerISN + uint32(b[0]), Right: h.peerISN + uint32(b[1])}) {
					errs = append(errs, "SACK blocks")
					break
				}
			}
		}
	}
	if len(errs) > 0 {
		h.t.Fatalf("%s: expected %s\n          got %s\n          (wrong: %s)", h.rel(at), h.describe(want), h.format(g), strings.Join(errs, ", "))
	}
}

// describe writes an expected segment, packetdrill style.
func (h *tcpScript) describe(w *tseg) string {
	s := fmt.Sprintf("%s %d:%d(%d)", w.f, w.seq, w.seq+int64(w.n), w.n)
	if strings.Contains(w.f, ".") {
		s += fmt.Sprintf(" ack %d", w.ack)
	}
	switch {
	case w.win == zeroWin:
		s += " win 0"
	case w.win > 0:
		s += fmt.Sprintf(" win %d", w.win)
	}
	if w.opts != nil {
		s += fmt.Sprintf(" %+v", *w.opts)
	}
	if w.sack != nil {
		s += fmt.Sprintf(" sack %v", w.sack)
	}
	return s
}

// run plays a script from now.
func (h *tcpScript) run(steps []step) {
	h.t.Helper()
	h.base = h.now()
	for i := range steps {
		st := &steps[i]
		at := h.base + int64(st.at)
		if at < h.now() {
			h.t.Fatalf("step %d at %v goes back in time", i, st.at)
		}
		h.advanceTo(at)
		switch {
		case st.in != nil:
			h.noneSent(at)
			h.inject(st.in)
		case st.out != nil:
			h.expect(at, st.out)
		case st.none:
			h.noneSent(at)
		case st.do != nil:
			st.do(h)
			h.capture()
		}
	}
	h.noneSent(h.now())
}

// noneSent fails if the stack sent a segment the script did not expect.
func (h *tcpScript) noneSent(at int64) {
	h.t.Helper()
	if len(h.sent) > 0 {
		var lines []string
		for _, g := range h.sent {
			lines = append(lines, h.format(g))
		}
		h.t.Fatalf("%s: unexpected segments:\n  %s", h.rel(at), strings.Join(lines, "\n  "))
	}
}

// Script helpers.

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func in(at time.Duration, g tseg) step  { return step{at: at, in: &g} }
func out(at time.Duration, g tseg) step { return step{at: at, out: &g} }
func none(at time.Duration) step        { return step{at: at, none: true} }
func do(at time.Duration, f func(h *tcpScript)) step {
	return step{at: at, do: f}
}

// wantState asserts the connection's state.
func wantState(state string) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.t.Helper()
		if h.conn == nil {
			h.t.Fatalf("%s: no connection (want %s)", h.rel(h.now()), state)
		}
		if got := h.conn.State(); got != state {
			h.t.Fatalf("%s: state %s, want %s", h.rel(h.now()), got, state)
		}
	}
}

func write(n int) func(h *tcpScript) {
	return func(h *tcpScript) {
		h.t.Helper()
		if k, err := h.conn.Write(pattern(n)); k != n || err != nil {
			h.t.Fatalf("write %d: %d, %v", n, k, err)
		}
	}
}

func closeConn(h *tcpScript) { h.conn.Close() }

// synOpts are a SYN's options: mss, then any of "ws<n>", "sack", "ts".
func synOpts(mss uint16, more ...string) *header.TCPOptions {
	o := &header.TCPOptions{HasMSS: mss != 0, MSS: mss}
	for _, m := range more {
		switch {
		case m == "sack":
			o.SACKPermitted = true
		case m == "ts":
			o.HasTimestamps = true
		case strings.HasPrefix(m, "ws"):
			var ws uint8
			fmt.Sscanf(m, "ws%d", &ws)
			o.HasWindowScale, o.WindowScale = true, ws
		default:
			panic("synOpts " + m)
		}
	}
	return o
}

// noOpts expects a segment without options.
var noOpts = &header.TCPOptions{}

// passiveOpen is the start of many scripts: the peer's SYN (with opts) at
// 0, the SYN-ACK, the peer's ACK at 100 ms. The stack's buffers are the
// default 128 KiB, up to 4 MiB (ReceiveBufferMax): its SYN-ACK offers
// window 65535 and, if the SYN had Window Scale, scale 7.
func passiveOpen(opts *header.TCPOptions, synack *header.TCPOptions) []step {
	return []step{
		in(0, tseg{f: "S", seq: 0, opts: opts}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synack}),
		in(ms(100), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(100), wantState("ESTABLISHED")),
	}
}

// scriptMSS1000 is a passive open with a peer offering MSS 1000 and
// nothing else: round numbers, no options on later segments.
func scriptMSS1000() []step {
	return passiveOpen(synOpts(1000), synOpts(1460))
}

func steps(parts ...[]step) []step {
	var all []step
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// TestTCPScriptHarnessCatchesWrongAndMissingSegments checks the harness
// itself can fail: a script expecting the wrong segment fails.
func TestTCPScriptHarnessCatchesWrongAndMissingSegments(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []step
	}{
		{"wrong ack", []step{in(0, tseg{f: "S"}), out(0, tseg{f: "S.", ack: 2})}},
		{"wrong time", []step{in(0, tseg{f: "S"}), out(ms(1), tseg{f: "S.", ack: 1})}},
		{"missing", []step{in(0, tseg{f: "S"}), out(0, tseg{f: "S.", ack: 1}), out(0, tseg{f: ".", ack: 1})}},
		{"unexpected", []step{in(0, tseg{f: "S"}), none(ms(1))}},
		{"unexpected retransmission", []step{in(0, tseg{f: "S"}), out(0, tseg{f: "S.", ack: 1}), none(ms(3000))}},
	} {
		ok := runIsolated(func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.listen()
			h.run(tc.bad)
		})
		if ok {
			t.Errorf("%s: the bad script passed", tc.name)
		}
	}
	// And the good one passes.
	if !runIsolated(func(t *testing.T) {
		h := newTCPScript(t, nil)
		h.listen()
		h.run([]step{in(0, tseg{f: "S"}), out(0, tseg{f: "S.", ack: 1, win: 65535, opts: synOpts(1460)}), none(ms(999)),
			out(ms(1000), tseg{f: "S.", ack: 1, win: 65535, opts: synOpts(1460)})})
	}) {
		t.Error("the good script failed")
	}
}

// runIsolated runs f as a test of its own whose failure does not fail
// the caller, and reports whether it passed.
func runIsolated(f func(t *testing.T)) bool {
	var inner testing.T
	done := make(chan bool)
	go func() {
		defer func() { done <- !inner.Failed() }()
		defer func() { recover() }()
		f(&inner)
	}()
	return <-done
}

// burstFlags are the flags of the i-th full segment of a burst at the
// low rates of most scripts: PSH ends each GSO-sized packet of two
// segments (TCPConfig.DisableBurstPush).
func burstFlags(i int) string {
	if i%2 == 1 {
		return "P."
	}
	return "."
}
