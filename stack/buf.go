package stack

import "github.com/mkstack/mkstack/nicq"

// The stack's uses of the packet buffer, in one place.

func bufData(b *nicq.Buf) []byte          { return b.Bytes() }
func bufLen(b *nicq.Buf) int              { return b.Len() }
func bufPush(b *nicq.Buf, n int) []byte   { return b.Push(n) }
func bufPull(b *nicq.Buf, n int)          { b.Pull(n) }
func bufAppend(b *nicq.Buf, n int) []byte { return b.Append(n) }
func bufTruncate(b *nicq.Buf, n int)      { b.Truncate(n) }
func bufTailroom(b *nicq.Buf) int         { return b.Tailroom() }
func bufTrueSize(b *nicq.Buf) int         { return b.TrueSize() }
func bufFree(b *nicq.Buf)                 { b.Free() }
func bufGet(p *nicq.Pool) *nicq.Buf       { return p.Get() }

// bigFrameSize holds the largest IPv4 datagram, or a TSO segment of 64 KiB
// of IP packet, behind full headroom.
const bigFrameSize = 65536 + nicq.DefaultHeadroom

// getBufSize returns an empty buffer with room for n bytes of data: from
// the stack's pool when they fit, else from its few large reassembly
// buffers, created on first use.
func (s *Stack) getBufSize(n int) *nicq.Buf {
	if n <= s.pool.FrameSize()-s.pool.Headroom() {
		return s.getBuf()
	}
	if s.bigPool == nil {
		count := max(1, min(4, s.cfg.ReassemblyMemory/bigFrameSize))
		p, err := nicq.NewPool(nicq.PoolConfig{Name: "reassembly", Buffers: count, FrameSize: bigFrameSize})
		if err != nil {
			s.stats.Drops[DropNoBuffer]++
			return nil
		}
		s.bigPool = p
	}
	b := s.bigPool.Get()
	if b == nil {
		s.stats.Drops[DropNoBuffer]++
	}
	return b
}

// poolFrameRoom is the most bytes a buffer of the stack's pool holds.
func (s *Stack) poolFrameRoom() int { return s.pool.FrameSize() - s.pool.Headroom() }

// tsoBuffers is the number of buffers a stack keeps for TCP segments
// larger than one MSS (Config.TSO). The driver copies a frame out as it
// sends it (a TAP, a packet socket), so they come back within the Flush
// that took them: 32 hold 2 MiB of a core's bursts.
const tsoBuffers = 32

// getTSOBuf returns a buffer for a TSO segment, or for a segment larger
// than a buffer of the pool (Config.LargeFrames), or nil when none is
// free (the caller then sends a smaller segment). The pool is made on
// first use, by the core that owns the stack.
func (s *Stack) getTSOBuf() *nicq.Buf {
	if s.tsoPool == nil {
		p, err := nicq.NewPool(nicq.PoolConfig{Name: "tso", Buffers: tsoBuffers, FrameSize: bigFrameSize})
		if err != nil {
			s.cfg.TSO = false
			return nil
		}
		p.Claim()
		s.tsoPool = p
	}
	b := s.tsoPool.Get()
	if b == nil {
		s.tcp.stats.TSOBufferWaits++
	}
	return b
}
