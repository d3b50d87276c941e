package rss

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// SteeringProgram is Config.QueueFrame as an eBPF socket-filter program:
// for the Ethernet frame of an skb it returns the receive queue a NIC with
// the same key, indirection table and tuples would pick. The kernel runs it
// to steer a multi-queue TAP device (TUNSETSTEERINGEBPF, see AttachTAP) and
// an AF_PACKET fanout group (PACKET_FANOUT_EBPF, by handing FD to
// setsockopt PACKET_FANOUT_DATA); both take the returned value modulo their
// queue count, so with a table whose entries are below that count the queue
// is exactly the table's.
//
// The key is expanded in Go into one 256-entry table per input byte (see
// steerTables) held in an array map, so the program hashes with one load
// and one XOR per input byte and no loop. The indirection table lives in a
// second array map that UpdateRETA rewrites while the program runs.
//
// The program reads the frame from the skb's MAC header with
// bpf_skb_load_bytes_relative, so it sees the same bytes on a TAP device's
// transmit path, on a packet socket's receive path (where skb->data has
// already moved past the Ethernet header) and under BPF_PROG_TEST_RUN. It
// follows Config.HashFrame rule for rule; in short: up to two VLAN tags
// skipped, IPv4 by IHL with fragments on the 2-tuple, IPv6 past up to 8
// hop-by-hop, routing and destination-options headers, TCP and UDP on the
// tuple cfg chooses, any other IP protocol on the 2-tuple. A frame that is
// not IPv4 or IPv6 (ARP, LLDP, MPLS, three VLAN tags), or too short for its
// IP header, steers to queue 0. Limits: headers must lie in the skb's linear
// part (true of frames the kernel builds and of drivers that pull headers);
// a tag the NIC stripped into skb metadata is not seen, so the inner packet
// is hashed, as NICs do; a TUN device (no Ethernet header) is not supported.
//
// A SteeringProgram must be closed; the kernel keeps the program (and its
// maps) alive while a TAP device or fanout group still uses it.
type SteeringProgram struct {
	prog   *ebpf.Program
	tables *ebpf.Map
	reta   *ebpf.Map
	insns  int
}

// Layout of the steering program's maps, each an array of one element so
// the program reaches it with a direct value load (no lookup call).
const (
	// steerInputLen is the longest hashed input, the IPv6 4-tuple.
	steerInputLen = 36
	// steerTablesSize is the key expansion: steerInputLen rows of 256
	// native-endian uint32.
	steerTablesSize = steerInputLen * 256 * 4
	// steerRETASize is the indirection table map value: the table length
	// (uint32) then MaxHardwareRETASize native-endian uint16 entries.
	steerRETASize = 4 + 2*MaxHardwareRETASize
)

// NewSteeringProgram builds and loads the steering program for cfg: its key,
// its indirection table and its choice of tuples for TCP and UDP over IPv4
// and IPv6 (see Config.HashFrame for the parsing rules the program
// follows). Loading needs CAP_BPF (or CAP_SYS_ADMIN).
func NewSteeringProgram(cfg *Config) (*SteeringProgram, error) {
	p, err := newSteeringProgram(cfg, false)
	if err != nil {
		return nil, fmt.Errorf("load RSS steering program: %w", err)
	}
	return p, nil
}

// newSteeringProgram builds the program; with returnHash it returns the
// Toeplitz hash (0 for a frame it does not hash) instead of the queue, which
// is how the tests compare hashes, not only queues.
func newSteeringProgram(cfg *Config, returnHash bool) (_ *SteeringProgram, err error) {
	return newProgram(cfg, returnHash, false)
}

// skbQueueMapping is the offset of queue_mapping in struct __sk_buff.
const skbQueueMapping = 12

func newProgram(cfg *Config, returnHash, egress bool) (_ *SteeringProgram, err error) {
	if cfg == nil {
		return nil, errors.New("nil Config")
	}
	p := &SteeringProgram{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.tables, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "rss_toeplitz", Type: ebpf.Array, KeySize: 4, ValueSize: steerTablesSize, MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create key table map: %w", mapErr(err))
	}
	if err := p.tables.Update(uint32(0), steerTables(cfg.Toeplitz()), ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("fill key table map: %w", err)
	}
	p.reta, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "rss_reta", Type: ebpf.Array, KeySize: 4, ValueSize: steerRETASize, MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create indirection table map: %w", mapErr(err))
	}
	if err := p.UpdateRETA(cfg.RETA()); err != nil {
		return nil, err
	}
	insns, err := steerInstructions(cfg, p.tables, p.reta, returnHash)
	if err != nil {
		return nil, err
	}
	spec := &ebpf.ProgramSpec{
		Name:         "rss_steer",
		Type:         ebpf.SocketFilter,
		Instructions: insns,
		// No GPL-only helper is called, so no license is claimed.
	}
	if egress {
		// Every exit becomes a jump to: queue_mapping = R0+1; TC_ACT_OK.
		out := make(asm.Instructions, 0, len(insns)+4)
		for _, ins := range insns {
			if ins.OpCode.JumpOp() == asm.Exit {
				j := asm.Ja.Label("egress_done")
				if sym := ins.Symbol(); sym != "" {
					j = j.WithSymbol(sym)
				}
				ins = j
			}
			out = append(out, ins)
		}
		out = append(out,
			asm.Add.Imm(asm.R0, 1).WithSymbol("egress_done"),
			asm.StoreMem(regSkb, skbQueueMapping, asm.R0, asm.Word),
			asm.Mov.Imm(asm.R0, 0), // TC_ACT_OK
			asm.Return(),
		)
		spec.Name, spec.Type, spec.Instructions = "rss_egress", ebpf.SchedCLS, out
	}
	p.insns = len(spec.Instructions)
	p.prog, err = ebpf.NewProgram(spec)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w (loading eBPF needs CAP_BPF or CAP_SYS_ADMIN)", err)
		}
		return nil, err
	}
	return p, nil
}

func mapErr(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w (eBPF maps need CAP_BPF or CAP_SYS_ADMIN)", err)
	}
	return err
}

// NewEgressSteeringProgram builds the steering program as a traffic-control
// (sched_cls) program for a device's egress: it computes the queue as
// SteeringProgram does and records it in the skb (queue_mapping = queue+1,
// the kernel's mark of a recorded receive queue, which its transmit queue
// choice then follows), and passes the frame on. On a veth, whose
// receiving end takes the receive queue from the sender's transmit queue,
// attaching it to the sending end's egress makes the pair steer as a NIC
// with cfg's RSS would: the lab's kernel peer uses it so that the stack's
// queues receive exactly the flows RSS gives them. The kernel ignores a
// write of 0xffff or more to queue_mapping (0xffff means no queue), so
// frames for queues 65534 and 65535 leave it unset; no veth has that many.
// Loading needs CAP_BPF (or CAP_SYS_ADMIN); attaching (a clsact qdisc's
// egress filter) is the caller's.
func NewEgressSteeringProgram(cfg *Config) (_ *SteeringProgram, err error) {
	return newProgram(cfg, false, true)
}

// FD is the program's file descriptor, for TUNSETSTEERINGEBPF or
// PACKET_FANOUT_DATA. It stays valid until Close.
func (p *SteeringProgram) FD() int { return p.prog.FD() }

// Program is the loaded program, for callers that attach it with
// cilium/ebpf or run it with Program.Run.
func (p *SteeringProgram) Program() *ebpf.Program { return p.prog }

// Instructions is the number of eBPF instructions in the program.
func (p *SteeringProgram) Instructions() int { return p.insns }

// UpdateRETA replaces the indirection table the program steers with. The
// new table takes effect for the next frames; a frame steered during the
// write may see a mix of the old and the new table, as with a NIC that is
// reprogrammed under traffic. reta has 1 to MaxHardwareRETASize entries.
func (p *SteeringProgram) UpdateRETA(reta RETA) error {
	if len(reta) == 0 || len(reta) > MaxHardwareRETASize {
		return fmt.Errorf("update steering indirection table: %d entries, want 1 to %d", len(reta), MaxHardwareRETASize)
	}
	buf := make([]byte, steerRETASize)
	binary.NativeEndian.PutUint32(buf, uint32(len(reta)))
	for i, q := range reta {
		binary.NativeEndian.PutUint16(buf[4+2*i:], q)
	}
	if err := p.reta.Update(uint32(0), buf, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update steering indirection table: %w", err)
	}
	return nil
}

// AttachTAP makes the program steer the multi-queue TAP device that tapFD
// (a /dev/net/tun file attached to it with TUNSETIFF) is a queue of: the
// kernel then hands each frame it transmits through the device to the
// queue the program returns, modulo the number of queues.
func (p *SteeringProgram) AttachTAP(tapFD int) error {
	if err := unix.IoctlSetPointerInt(tapFD, unix.TUNSETSTEERINGEBPF, p.prog.FD()); err != nil {
		return fmt.Errorf("attach RSS steering program to TAP: %w", err)
	}
	return nil
}

// Close releases the program and its maps. A TAP device or fanout group
// it is attached to keeps its own reference.
func (p *SteeringProgram) Close() error {
	var errs []error
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	if p.tables != nil {
		errs = append(errs, p.tables.Close())
	}
	if p.reta != nil {
		errs = append(errs, p.reta.Close())
	}
	return errors.Join(errs...)
}

// steerTables expands t for the program: row i, entry b is the hash of an
// input that is zero but for byte b at position i. The hash of any input is
// the XOR over its bytes of row[position][byte], since the Toeplitz hash is
// linear over XOR.
func steerTables(t *Toeplitz) []byte {
	buf := make([]byte, steerTablesSize)
	var in [steerInputLen]byte
	for pos := 0; pos < steerInputLen; pos++ {
		for b := 0; b < 256; b++ {
			in[pos] = byte(b)
			binary.NativeEndian.PutUint32(buf[(pos*256+b)*4:], t.Hash(in[:pos+1]))
		}
		in[pos] = 0
	}
	return buf
}

// Stack of the program, offsets from R10 (the frame pointer).
const (
	stkScratch = -8  // ether type, length probe, ports (4 bytes)
	stkExt     = -16 // an IPv6 extension header's first two bytes
	stkNext    = -24 // the IPv6 next header being walked (uint64)
	stkHdr     = -64 // the IPv4 (20 bytes) or IPv6 (40 bytes) header
)

// Registers kept across helper calls (R6-R9 are callee-saved).
const (
	regSkb  = asm.R6 // the context, for bpf_skb_load_bytes_relative
	regTab  = asm.R7 // the key tables map value
	regHash = asm.R8 // the hash; before hashing, IHL or the IPv6 offset
	regL3   = asm.R9 // offset of the IP header from the MAC header
)

// bpfHdrStartMac is BPF_HDR_START_MAC: offsets count from the MAC header,
// which is where the Ethernet frame starts on a TAP device's transmit path,
// on a packet socket's receive and transmit path, and in BPF_PROG_TEST_RUN.
const bpfHdrStartMac = 0

// steerInstructions generates the program. In outline (labels as in the
// code):
//
//	ether type at 12, skipping up to two VLAN tags
//	ipv4: 20-byte header; version 4; IHL >= 5 and the frame holds IHL*4
//	      bytes; fragment -> v4_2tuple; TCP/UDP with Tuple4 and the ports
//	      present -> hash ports at input 8..11; v4_addr: hash 0..7
//	ipv6: 40-byte header; version 6; walk up to 8 hop-by-hop, routing and
//	      destination-options headers (a truncated one -> v6_2tuple);
//	      TCP/UDP with Tuple4 and the ports present -> hash ports at 32..35;
//	      v6_addr: hash 0..31
//	finish: queue = reta[hash % size]; anything not hashed returns 0
func steerInstructions(cfg *Config, tables, reta *ebpf.Map, returnHash bool) (asm.Instructions, error) {
	var b steerBuilder
	emit := b.emit

	// Load bytes [off, off+n) of the frame to the stack at stk; the
	// offset is in R2 already. Jump to fail if the frame is shorter.
	load := func(stk int16, n int32, fail string) {
		emit(
			asm.Mov.Reg(asm.R1, regSkb),
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, int32(stk)),
			asm.Mov.Imm(asm.R4, n),
			asm.Mov.Imm(asm.R5, bpfHdrStartMac),
			asm.FnSkbLoadBytesRelative.Call(),
			asm.JNE.Imm(asm.R0, 0, fail),
		)
	}
	// XOR the table entry for the byte at stack offset stk, hashed as
	// input position pos, into the hash.
	hashByte := func(stk int16, pos int) {
		emit(
			asm.LoadMem(asm.R1, asm.RFP, stk, asm.Byte),
			asm.LSh.Imm(asm.R1, 2),
			asm.Add.Reg(asm.R1, regTab),
		)
		row := pos * 256 * 4
		if row > math.MaxInt16 { // rows 32..35 lie beyond a load's 16-bit offset
			emit(asm.Add.Imm(asm.R1, int32(row)))
			row = 0
		}
		emit(
			asm.LoadMem(asm.R1, asm.R1, int16(row), asm.Word),
			asm.Xor.Reg(regHash, asm.R1),
		)
	}
	// Jump to ports if proto (in R1) is TCP or UDP hashed on the 4-tuple.
	portsIf := func(ipv6 bool, ports string) {
		for _, proto := range []Proto{ProtoTCP, ProtoUDP} {
			if cfg.Tuple(proto, ipv6) == Tuple4 {
				emit(asm.JEq.Imm(asm.R1, int32(proto), ports))
			}
		}
	}

	emit(
		asm.Mov.Reg(regSkb, asm.R1),
		mapValue(regTab, tables),
		// Ether type.
		asm.Mov.Imm(asm.R2, 12),
	)
	load(stkScratch, 2, "ret0")
	emit(
		asm.Mov.Imm(regL3, etherHeaderLen),
		asm.LoadMem(asm.R1, asm.RFP, stkScratch, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
	)
	for i := 0; i < maxVLANTags; i++ {
		tag, next := "vlan"+strconv.Itoa(i), "novlan"+strconv.Itoa(i)
		emit(
			asm.JEq.Imm(asm.R1, etherTypeVLAN, tag),
			asm.JEq.Imm(asm.R1, etherTypeQinQ, tag),
			asm.Ja.Label(next),
			// The inner ether type is the last two of the tag's four bytes.
			asm.Mov.Reg(asm.R2, regL3).WithSymbol(tag),
			asm.Add.Imm(asm.R2, 2),
		)
		load(stkScratch, 2, "ret0")
		emit(
			asm.Add.Imm(regL3, 4),
			asm.LoadMem(asm.R1, asm.RFP, stkScratch, asm.Half),
			asm.HostTo(asm.BE, asm.R1, asm.Half),
		)
		b.label(next)
	}
	emit(
		asm.JEq.Imm(asm.R1, etherTypeIPv4, "ipv4"),
		asm.JEq.Imm(asm.R1, etherTypeIPv6, "ipv6"),
		asm.Ja.Label("ret0"),
	)

	// IPv4.
	b.label("ipv4")
	emit(asm.Mov.Reg(asm.R2, regL3))
	load(stkHdr, ipv4MinHeader, "ret0")
	emit(
		asm.LoadMem(asm.R1, asm.RFP, stkHdr, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.RSh.Imm(asm.R2, 4),
		asm.JNE.Imm(asm.R2, 4, "ret0"),
		asm.And.Imm(asm.R1, 0x0f),
		asm.LSh.Imm(asm.R1, 2),
		asm.JLT.Imm(asm.R1, ipv4MinHeader, "ret0"),
		asm.Mov.Reg(regHash, asm.R1), // IHL in bytes until hashing starts
		// The frame must hold the whole header: probe its last byte.
		asm.Mov.Reg(asm.R2, regL3),
		asm.Add.Reg(asm.R2, regHash),
		asm.Add.Imm(asm.R2, -1),
	)
	load(stkScratch, 1, "ret0")
	emit(
		// More-fragments or a fragment offset: hash the 2-tuple.
		asm.LoadMem(asm.R1, asm.RFP, stkHdr+6, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.And.Imm(asm.R1, 0x3fff),
		asm.JNE.Imm(asm.R1, 0, "v4_2tuple"),
		asm.LoadMem(asm.R1, asm.RFP, stkHdr+9, asm.Byte),
	)
	portsIf(false, "v4_ports")
	emit(asm.Ja.Label("v4_2tuple"))
	b.label("v4_ports")
	emit(
		asm.Mov.Reg(asm.R2, regL3),
		asm.Add.Reg(asm.R2, regHash),
	)
	load(stkScratch, 4, "v4_2tuple")
	emit(asm.Mov.Imm(regHash, 0))
	for i := 0; i < 4; i++ {
		hashByte(stkScratch+int16(i), 8+i)
	}
	emit(asm.Ja.Label("v4_addr"))
	b.label("v4_2tuple")
	emit(asm.Mov.Imm(regHash, 0))
	b.label("v4_addr")
	for i := 0; i < 8; i++ { // source and destination at header offset 12
		hashByte(stkHdr+12+int16(i), i)
	}
	emit(asm.Ja.Label("finish"))

	// IPv6.
	b.label("ipv6")
	emit(asm.Mov.Reg(asm.R2, regL3))
	load(stkHdr, ipv6HeaderLen, "ret0")
	emit(
		asm.LoadMem(asm.R1, asm.RFP, stkHdr, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, 6, "ret0"),
		asm.LoadMem(asm.R1, asm.RFP, stkHdr+6, asm.Byte),
		asm.StoreMem(asm.RFP, stkNext, asm.R1, asm.DWord),
		asm.Mov.Imm(regHash, ipv6HeaderLen), // offset of the next header from the IPv6 header
	)
	for i := 0; i < maxIPv6ExtHdrs; i++ {
		ext := "ext" + strconv.Itoa(i)
		emit(
			asm.LoadMem(asm.R1, asm.RFP, stkNext, asm.DWord),
			asm.JEq.Imm(asm.R1, ipv6HopByHop, ext),
			asm.JEq.Imm(asm.R1, ipv6Routing, ext),
			asm.JEq.Imm(asm.R1, ipv6DestOptions, ext),
			asm.Ja.Label("ext_done"),
			asm.Mov.Reg(asm.R2, regL3).WithSymbol(ext),
			asm.Add.Reg(asm.R2, regHash),
		)
		load(stkExt, 2, "v6_2tuple")
		emit(
			asm.LoadMem(asm.R1, asm.RFP, stkExt, asm.Byte),
			asm.StoreMem(asm.RFP, stkNext, asm.R1, asm.DWord),
			asm.LoadMem(asm.R1, asm.RFP, stkExt+1, asm.Byte),
			asm.Add.Imm(asm.R1, 1),
			asm.LSh.Imm(asm.R1, 3),
			asm.Add.Reg(regHash, asm.R1),
		)
	}
	b.label("ext_done")
	// A fragment header (44) is neither TCP nor UDP: 2-tuple.
	emit(asm.LoadMem(asm.R1, asm.RFP, stkNext, asm.DWord))
	portsIf(true, "v6_ports")
	emit(asm.Ja.Label("v6_2tuple"))
	b.label("v6_ports")
	emit(
		asm.Mov.Reg(asm.R2, regL3),
		asm.Add.Reg(asm.R2, regHash),
	)
	load(stkScratch, 4, "v6_2tuple")
	emit(asm.Mov.Imm(regHash, 0))
	for i := 0; i < 4; i++ {
		hashByte(stkScratch+int16(i), 32+i)
	}
	emit(asm.Ja.Label("v6_addr"))
	b.label("v6_2tuple")
	emit(asm.Mov.Imm(regHash, 0))
	b.label("v6_addr")
	for i := 0; i < 32; i++ { // source and destination at header offset 8
		hashByte(stkHdr+8+int16(i), i)
	}

	// The hash is in regHash, zero-extended.
	b.label("finish")
	if returnHash {
		emit(
			asm.Mov.Reg(asm.R0, regHash),
			asm.Return(),
		)
	} else {
		emit(
			mapValue(asm.R1, reta),
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // table length
			asm.JEq.Imm(asm.R2, 0, "ret0"),
			asm.Mov.Reg(asm.R3, regHash),
			asm.Mod.Reg(asm.R3, asm.R2),
			// A no-op for a length within bounds; it tells the verifier so.
			asm.And.Imm(asm.R3, MaxHardwareRETASize-1),
			asm.LSh.Imm(asm.R3, 1),
			asm.Add.Reg(asm.R1, asm.R3),
			asm.LoadMem(asm.R0, asm.R1, 4, asm.Half),
			asm.Return(),
		)
	}
	b.label("ret0")
	emit(
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	if b.err != nil {
		return nil, b.err
	}
	return b.insns, nil
}

// mapValue loads a pointer to the single value of array map m into dst.
func mapValue(dst asm.Register, m *ebpf.Map) asm.Instruction {
	ins := asm.LoadMapValue(dst, 0, 0)
	ins.AssociateMap(m) // cannot fail: ins loads from a map
	return ins
}

// steerBuilder collects instructions and attaches each label to the
// instruction that follows it.
type steerBuilder struct {
	insns   asm.Instructions
	pending string
	err     error
}

func (b *steerBuilder) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		if b.pending != "" {
			if ins.Symbol() != "" {
				b.err = fmt.Errorf("steering program: two labels %q and %q on one instruction", b.pending, ins.Symbol())
			}
			ins = ins.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, ins)
	}
}

// label names the next instruction emitted. Two labels in a row are joined
// by a no-op jump so each has its instruction.
func (b *steerBuilder) label(name string) {
	if b.pending != "" {
		b.emit(asm.Ja.Label(name))
	}
	b.pending = name
}
