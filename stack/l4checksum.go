package stack

import (
	"fmt"
	"net/netip"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/stack/checksum"
	"github.com/mkstack/mkstack/stack/header"
)

// badChecksumWarnings is how many bad TCP/UDP checksums a stack reports
// through Config.Warn: enough to show the pattern, few enough that a
// corrupting link cannot flood the log (the counter keeps counting).
const badChecksumWarnings = 3

// l4ChecksumOK decides whether a TCP segment's or UDP datagram's checksum
// (seg is all of it, field its checksum field, pseudo the pseudo-header
// sum) is acceptable, given what the driver said about the frame:
//
//   - FlagL4ChecksumPartial: the device vouches that a sender on this host
//     left the checksum to it; the field holds only the pseudo-header sum
//     and there is nothing to check, as in Linux's CHECKSUM_PARTIAL.
//   - otherwise the full checksum must verify, except that with
//     FlagL4ChecksumMaybePartial (a local virtual device that cannot say
//     which frames are partial) a field equal to the pseudo-header sum is
//     taken as partial: see docs/ARCHITECTURE.md, "Checksums from local
//     peers", for why and for the false-accept rate.
//
// The pseudo-header comparison comes first: from a local peer nearly
// every frame is partial, and summing it first cost a pass over every
// byte received (4.6% of a core's CPU in an AF_XDP bulk receive). A full
// checksum that happens to equal the pseudo-header sum (one in 65536)
// is then counted as partial; the frames accepted are the same.
func (s *Stack) l4ChecksumOK(b *nicq.Buf, seg []byte, field, pseudo uint16) bool {
	switch {
	case b.Flags&nicq.FlagL4ChecksumPartial != 0:
		s.stats.PartialChecksums++
		return true
	case b.Flags&nicq.FlagL4ChecksumMaybePartial != 0 && onesComplementEqual(field, pseudo):
		s.stats.PartialChecksums++
		return true
	}
	return checksum.Sum(seg, pseudo) == 0xffff
}

// onesComplementEqual compares two 16-bit one's complement values, in
// which 0x0000 and 0xffff are both zero.
func onesComplementEqual(a, b uint16) bool {
	return a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

// dropBadL4Checksum drops and counts a TCP segment or UDP datagram whose
// checksum failed, and tells Config.Warn about the first few with the
// likely cause: a checksum field equal to the pseudo-header sum is a
// partial checksum from a sender on this host that the driver could not
// report, not corruption.
func (s *Stack) dropBadL4Checksum(b *nicq.Buf, ip header.IPv4, proto uint8, dstPort uint16) {
	if s.cfg.Warn != nil && s.badChecksumWarned < badChecksumWarnings {
		s.badChecksumWarned++
		s.cfg.Warn(badChecksumMessage(ip, proto, dstPort, s.badChecksumWarned == badChecksumWarnings))
	}
	s.drop(b, DropReason(header.DropBadChecksum))
}

func badChecksumMessage(ip header.IPv4, proto uint8, dstPort uint16, last bool) string {
	// The callers parsed the header (ParseTCP, ParseUDP): the field is
	// there. Each protocol's field is read from its own header, as a
	// datagram may be shorter than a TCP header.
	var what string
	var field, length uint16
	if proto == header.ProtocolUDP {
		u := header.UDP(ip.Payload())
		what, field, length = "UDP datagram", u.Checksum(), u.Length()
	} else {
		what, field, length = "TCP segment", header.TCP(ip.Payload()).Checksum(), uint16(len(ip.Payload()))
	}
	src := ip.Source()
	pseudo := checksum.PseudoHeaderIPv4(src, ip.Destination(), proto, length)
	msg := fmt.Sprintf("mkstack: dropped a %s from %d.%d.%d.%d to port %d with a bad checksum (field %#04x); ", what, src[0], src[1], src[2], src[3], dstPort, field)
	if onesComplementEqual(field, pseudo) {
		msg += "the field holds only the pseudo-header sum: a partial checksum from a sender on this host " +
			"(a veth or TAP peer with transmit checksum offload on, its default) that this driver did not report as partial. " +
			"The tap and afpacket drivers read it from the kernel, and afxdp accepts it on a veth; on another device, " +
			"switch the peer's offload off (ethtool -K PEER tx off)"
	} else {
		msg += "the frame was corrupted on the way, or the sender computes checksums wrongly"
	}
	if last {
		msg += fmt.Sprintf(" (further ones are only counted: %s drops)", DropReason(header.DropBadChecksum))
	}
	return msg
}

// dropBadL4Checksum6 is dropBadL4Checksum for IPv6: field is the segment's
// or datagram's checksum field, src its source.
func (s *Stack) dropBadL4Checksum6(b *nicq.Buf, src [16]byte, proto uint8, dstPort, field uint16) {
	if s.cfg.Warn != nil && s.badChecksumWarned < badChecksumWarnings {
		s.badChecksumWarned++
		what := "TCP segment"
		if proto == header.ProtocolUDP {
			what = "UDP datagram"
		}
		msg := fmt.Sprintf("mkstack: dropped an IPv6 %s from %v to port %d with a bad checksum (field %#04x); "+
			"a veth or TAP peer with transmit checksum offload on sends partial checksums this driver may not report", what, netip.AddrFrom16(src), dstPort, field)
		if s.badChecksumWarned == badChecksumWarnings {
			msg += fmt.Sprintf(" (further ones are only counted: %s drops)", DropReason(header.DropBadChecksum))
		}
		s.cfg.Warn(msg)
	}
	s.drop(b, DropReason(header.DropBadChecksum))
}
