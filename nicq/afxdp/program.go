//go:build linux

package afxdp

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// XDP verdicts (enum xdp_action).
const (
	xdpPass = 2
)

// Offsets into struct xdp_md.
const (
	xdpMDData         = 0
	xdpMDDataEnd      = 4
	xdpMDRxQueueIndex = 16
)

// program is the XDP program and its maps: addrs holds the stack's IPv4
// addresses (key: the 4 address bytes as they are on the wire), addrs6 its
// IPv6 ones and their solicited-node groups (16 bytes), sockets the AF_XDP
// socket of each queue.
type program struct {
	prog    *ebpf.Program
	addrs   *ebpf.Map
	addrs6  *ebpf.Map
	sockets *ebpf.Map
}

// newProgram loads the program that redirects to the queue's AF_XDP socket
// the frames the stack owns, and passes every other frame to the kernel:
//
//	IPv4 whose destination is one of addrs, ARP whose target protocol
//	address is one of addrs, IPv6 whose destination is one of the stack's
//	addresses in addrs6, and neighbour solicitations to one of their
//	solicited-node groups whose target is one of them, go to
//	sockets[rx_queue_index]; a queue with no socket passes
//	(bpf_redirect_map's fallback action).
//
// Everything else (other addresses, IPv6 link-local and all-nodes traffic,
// VLAN-tagged frames, runts) is the kernel's, so a host whose only NIC the
// stack shares stays reachable.
//
// With frags, the program is loaded frags-aware (BPF_F_XDP_HAS_FRAGS, the
// xdp.frags section of C programs), for frames larger than one buffer: it
// reads only the headers, which are in the first.
func newProgram(queues int, addrs [][4]byte, addrs6 [][16]byte, frags bool) (_ *program, err error) {
	p := &program{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	p.addrs, err = ebpf.NewMap(&ebpf.MapSpec{Name: "mkstack_addrs", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 64})
	if err != nil {
		return nil, fmt.Errorf("address map: %w", err)
	}
	for _, a := range addrs {
		if err := p.addrs.Put(a, uint8(1)); err != nil {
			return nil, fmt.Errorf("address map: %w", err)
		}
	}
	p.addrs6, err = ebpf.NewMap(&ebpf.MapSpec{Name: "mkstack_addrs6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: 64})
	if err != nil {
		return nil, fmt.Errorf("IPv6 address map: %w", err)
	}
	for _, a := range addrs6 {
		// 1: an address of the stack's; 2: a solicited-node group, which
		// the kernel's link-local address may share (a SLAAC address has
		// the same low 24 bits), so only solicitations for the stack's
		// addresses go to it.
		kind := uint8(1)
		if a[0] == 0xff && a[1] == 0x02 && a[11] == 0x01 && a[12] == 0xff {
			kind = 2
		}
		if err := p.addrs6.Put(a, kind); err != nil {
			return nil, fmt.Errorf("IPv6 address map: %w", err)
		}
	}
	p.sockets, err = ebpf.NewMap(&ebpf.MapSpec{Name: "mkstack_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
	if err != nil {
		return nil, fmt.Errorf("socket map: %w", err)
	}
	var flags uint32
	if frags {
		flags = unix.BPF_F_XDP_HAS_FRAGS
	}
	p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "mkstack_xdp",
		Flags:        flags,
		Type:         ebpf.XDP,
		Instructions: instructions(p.addrs, p.addrs6, p.sockets),
		License:      "GPL", // bpf_redirect_map is GPL-only
	})
	if err != nil {
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	return p, nil
}

// stkKey6 is where on the program's stack an IPv6 map key is built: 16
// bytes, 8-aligned.
const stkKey6 = -24

func instructions(addrs, addrs6, sockets *ebpf.Map) asm.Instructions {
	const (
		regCtx = asm.R6
		stkKey = -4
	)
	ins := asm.Instructions{
		asm.Mov.Reg(regCtx, asm.R1),
		asm.LoadMem(asm.R2, asm.R1, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		// The ether type as loaded little-endian: 0x0800 reads 0x0008.
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JEq.Imm(asm.R5, 0x0008, "ipv4"),
		asm.JEq.Imm(asm.R5, 0x0608, "arp"),
		asm.JEq.Imm(asm.R5, 0xdd86, "ipv6"),
		asm.Ja.Label("pass"),

		// IPv4: the destination address, bytes 16-19 of the header.
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R4, 14+20),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+16, asm.Word),
		asm.Ja.Label("lookup"),

		// ARP for IPv4 over Ethernet: the target protocol address, bytes
		// 24-27 of the ARP message.
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("arp"),
		asm.Add.Imm(asm.R4, 14+28),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+24, asm.Word),

		asm.StoreMem(asm.RFP, stkKey, asm.R5, asm.Word).WithSymbol("lookup"),
		asm.LoadMapPtr(asm.R1, addrs.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),

		asm.LoadMem(asm.R2, regCtx, xdpMDRxQueueIndex, asm.Word).WithSymbol("redirect"),
		asm.LoadMapPtr(asm.R1, sockets.FD()),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),

		// IPv6: the destination address, 16 bytes at 14+24, copied to
		// the stack as the map's key.
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R4, 14+40),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
	}
	ins = append(ins, lookupAddr6(addrs6, 14+24)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R5, 1, "redirect"),

		// A solicited-node group: a neighbour solicitation (next header
		// 58, ICMPv6 type 135, no extension header) goes to the stack
		// only if its target, 16 bytes at 14+40+8, is one of the stack's
		// addresses; everything else sent to the group is the kernel's.
		asm.LoadMem(asm.R2, regCtx, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, regCtx, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+40+8+16),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+6, asm.Byte),
		asm.JNE.Imm(asm.R5, 58, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+40, asm.Byte),
		asm.JNE.Imm(asm.R5, 135, "pass"),
	)
	ins = append(ins, lookupAddr6(addrs6, 14+48)...)
	return append(ins,
		asm.JEq.Imm(asm.R5, 1, "redirect"),
		asm.Ja.Label("pass"),

		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
}

// lookupAddr6 looks up in addrs6 the 16 bytes at off in the frame (R2, its
// bounds checked by the caller), copied to the stack as the key: on to
// "pass" if they are not there, else R5 holds the entry's kind (1 an
// address of the stack's, 2 a solicited-node group).
func lookupAddr6(addrs6 *ebpf.Map, off int16) asm.Instructions {
	var ins asm.Instructions
	for i := int16(0); i < 16; i += 4 {
		ins = append(ins,
			asm.LoadMem(asm.R5, asm.R2, off+i, asm.Word),
			asm.StoreMem(asm.RFP, stkKey6+i, asm.R5, asm.Word))
	}
	return append(ins,
		asm.LoadMapPtr(asm.R1, addrs6.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stkKey6),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R5, asm.R0, 0, asm.Byte),
	)
}

func (p *program) close() {
	if p.prog != nil {
		p.prog.Close()
	}
	if p.addrs != nil {
		p.addrs.Close()
	}
	if p.addrs6 != nil {
		p.addrs6.Close()
	}
	if p.sockets != nil {
		p.sockets.Close()
	}
}
