//go:build mkstackdebug

package nicq_test

import (
	"strings"
	"testing"

	"github.com/mkstack/mkstack/nicq"
)

// These tests run only in debug builds:
//
//	go test -tags mkstackdebug ./nicq/...
//
// Each one commits a buffer-ownership bug on purpose and checks that the
// debug build stops it with a message that says what happened and where.

func TestDebugCatchesDoubleFree(t *testing.T) {
	p := newPool(t, 8) // not full after the first Free, so only the debug check can catch it
	b := p.Get()
	b.Free()
	mustPanic(t, "double free: Free of nicq.Buf(pool", func() { b.Free() })
	mustPanic(t, "already freed at github.com/mkstack/mkstack/nicq_test.TestDebugCatchesDoubleFree", func() { p.Put(b) })
	if p.Available() != 8 {
		t.Fatalf("pool holds %d buffers after refused double frees, want 8", p.Available())
	}
}

func TestDebugCatchesUseAfterFree(t *testing.T) {
	p := newPool(t, 2)
	b := p.Get()
	b.Append(10)
	b.Free()
	uses := map[string]func(){
		"Len":      func() { b.Len() },
		"Bytes":    func() { b.Bytes() },
		"Headroom": func() { b.Headroom() },
		"Tailroom": func() { b.Tailroom() },
		"Push":     func() { b.Push(1) },
		"Pull":     func() { b.Pull(1) },
		"Append":   func() { b.Append(1) },
		"Trim":     func() { b.Trim(1) },
		"Truncate": func() { b.Truncate(1) },
		"Reset":    func() { b.Reset() },
	}
	for op, use := range uses {
		t.Run(op, func(t *testing.T) {
			mustPanic(t, "use after free: "+op+" on nicq.Buf(pool", use)
			mustPanic(t, "freed at github.com/mkstack/mkstack/nicq_test.TestDebugCatchesUseAfterFree", use)
		})
	}
}

// TestDebugCatchesWriteThroughAKeptSlice: a slice taken from a buffer
// outlives the Free; writing through it would corrupt whichever packet
// the frame carries next. The poison check at the next Get finds it.
func TestDebugCatchesWriteThroughAKeptSlice(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	kept := b.Append(20)
	b.Free()
	kept[5] = 0x42
	mustPanic(t, "write after free: byte 133 of nicq.Buf(pool", func() { p.Get() })
}

func TestDebugPoisonsFreedBuffers(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	kept := b.Append(16)
	copy(kept, "secret payload!!")
	b.Hash, b.RxTime = 1, 2
	b.Free()
	for i, c := range kept {
		if c != nicq.PoisonByte {
			t.Fatalf("byte %d of a freed buffer reads %#x, want the poison %#x", i, c, nicq.PoisonByte)
		}
	}
	if b.Hash != 0x6b6b6b6b || b.RxTime != 0x6b6b6b6b6b6b6b6b {
		t.Fatalf("metadata of a freed buffer reads hash %#x time %#x, want poison", b.Hash, b.RxTime)
	}
	b = p.Get() // poison intact: no panic, and a clean buffer
	if b.Hash != 0 || b.RxTime != 0 {
		t.Fatalf("Get returned poisoned metadata: hash %#x time %#x", b.Hash, b.RxTime)
	}
	b.Free()
}

// TestDebugCatchesAFreeByTheWrongCore: a buffer must go home through a
// message, never by a Free on a core that does not own its pool.
func TestDebugCatchesAFreeByTheWrongCore(t *testing.T) {
	p := newPool(t, 4)
	p.Claim()
	b := p.Get()
	msg := onOtherGoroutine(func() { b.Free() })
	for _, want := range []string{"Free on pool", "only the core that owns a pool may get or free its buffers", "claimed it at github.com/mkstack/mkstack/nicq_test.TestDebugCatchesAFreeByTheWrongCore"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("Free from another goroutine: panic %q, want it to contain %q", msg, want)
		}
	}
	if msg := onOtherGoroutine(func() { p.Get() }); !strings.Contains(msg, "Get on pool") {
		t.Fatalf("Get from another goroutine: panic %q", msg)
	}
	if msg := onOtherGoroutine(func() { p.GetBatch(make([]*nicq.Buf, 1)) }); !strings.Contains(msg, "GetBatch on pool") {
		t.Fatalf("GetBatch from another goroutine: panic %q", msg)
	}
	b.Free() // the owner may

	// Handing the pool to another core: that core claims it.
	if msg := onOtherGoroutine(func() { p.Claim(); p.Get().Free() }); msg != "" {
		t.Fatalf("the new owner could not use the pool it claimed: %s", msg)
	}
	mustPanic(t, "Get on pool", func() { p.Get() })
}

// onOtherGoroutine runs f on a new goroutine and returns what it panicked
// with ("" if nothing).
func onOtherGoroutine(f func()) (msg string) {
	done := make(chan string)
	go func() {
		defer func() {
			r := recover()
			s, _ := r.(string)
			if r != nil && s == "" {
				s = "non-string panic"
			}
			done <- s
		}()
		f()
	}()
	return <-done
}
