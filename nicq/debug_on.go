//go:build mkstackdebug

package nicq

import (
	"bytes"
	"fmt"
	"runtime"
)

// debugChecks is true under the mkstackdebug build tag. Then:
//
//   - Free marks a buffer free and fills its whole frame with PoisonByte;
//     a second Free panics ("double free"), and so does any data method on
//     a freed buffer ("use after free"). The panic names where the buffer
//     was freed.
//   - Get checks that the frame still holds nothing but PoisonByte, which
//     catches a write through a slice kept from before the Free ("write
//     after free"). A read through such a slice sees the poison.
//   - Get, GetBatch, Put and Free on a pool that a goroutine has claimed
//     (Pool.Claim) panic when called from any other goroutine, which
//     catches a buffer freed by the wrong core.
const debugChecks = true

// PoisonByte fills the frames of free buffers in debug builds. It is the
// Linux slab allocator's POISON_FREE, so a hex dump of a stale frame looks
// familiar.
const PoisonByte = 0x6b

type bufDebug struct {
	freedAt uintptr // program counter of the last Free's caller
}

type poolDebug struct {
	owner     int64 // goroutine id of the claimer, 0 when unclaimed
	claimedAt uintptr
	poison    []byte // one frame of PoisonByte, compared and copied whole
}

func (b *Buf) debugCheckLive(op string) {
	if b.state != bufLive {
		panic(fmt.Sprintf("nicq: use after free: %s on %v, freed at %s", op, b, where(b.dbg.freedAt)))
	}
}

func (b *Buf) debugPoison() {
	p := b.pool
	if p.dbg.poison == nil {
		p.dbg.poison = bytes.Repeat([]byte{PoisonByte}, p.frameSize)
	}
	copy(b.frame[:p.frameSize], p.dbg.poison)
	// The metadata is poisoned too, so a stale read of it is recognisable.
	const poison32 = PoisonByte * 0x01010101
	b.Hash = poison32
	b.RxQueue = poison32 & 0xffff
	b.RxTime = poison32<<32 | poison32
	b.SegmentSize = poison32 & 0xffff
	b.Scratch = poison32
	b.Flags = 0
}

func (b *Buf) debugGet() {
	if b.state != bufFree {
		panic(fmt.Sprintf("nicq: pool %q handed out %v, which is not free: the pool's free list is corrupt", b.pool.name, b))
	}
	frame := b.frame[:b.pool.frameSize]
	if !bytes.Equal(frame, b.pool.dbg.poison) {
		i := 0
		for i < len(frame) && frame[i] == PoisonByte {
			i++
		}
		panic(fmt.Sprintf("nicq: write after free: byte %d of %v changed to %#02x after it was freed at %s (a slice from Bytes, Push, Pull or Append was kept and written)",
			i, b, frame[i], where(b.dbg.freedAt)))
	}
	b.state = bufLive
}

func (b *Buf) debugPut(op string) {
	if b.state != bufLive {
		panic(fmt.Sprintf("nicq: double free: %s of %v, already freed at %s", op, b, where(b.dbg.freedAt)))
	}
	// Callers: 0 runtime.Callers, 1 debugPut, 2 put, 3 Free or Put, 4 the
	// code that freed the buffer.
	var pc [1]uintptr
	if runtime.Callers(4, pc[:]) == 1 {
		b.dbg.freedAt = pc[0]
	}
	b.state = bufFree
	b.debugPoison()
}

func (p *Pool) debugClaim() {
	p.dbg.owner = goroutineID()
	var pc [1]uintptr
	if runtime.Callers(3, pc[:]) == 1 {
		p.dbg.claimedAt = pc[0]
	}
}

func (p *Pool) debugCheckOwner(op string) {
	if p.dbg.owner == 0 {
		return
	}
	if g := goroutineID(); g != p.dbg.owner {
		panic(fmt.Sprintf("nicq: %s on pool %q from goroutine %d, but goroutine %d claimed it at %s: only the core that owns a pool may get or free its buffers; send a buffer home in a message instead",
			op, p.name, g, p.dbg.owner, where(p.dbg.claimedAt)))
	}
}

// goroutineID returns the calling goroutine's id, read from the first line
// of its stack trace ("goroutine 18 [running]:"). Slow, and debug only.
func goroutineID() int64 {
	var buf [64]byte
	s := buf[:runtime.Stack(buf[:], false)]
	s, _ = bytes.CutPrefix(s, []byte("goroutine "))
	var id int64
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}

func where(pc uintptr) string {
	if pc == 0 {
		return "(unknown)"
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	return fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
}
