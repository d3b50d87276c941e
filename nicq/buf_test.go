package nicq_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/nicq"
)

func newPool(t testing.TB, buffers int) *nicq.Pool {
	t.Helper()
	p, err := nicq.NewPool(nicq.PoolConfig{Name: t.Name(), Buffers: buffers})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mustPanic runs f and fails unless it panics with a message containing
// want.
func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic; want one containing %q", want)
		}
		if msg, ok := r.(string); !ok || !strings.Contains(msg, want) {
			t.Fatalf("panic %v; want one containing %q", r, want)
		}
	}()
	f()
}

func TestGetReturnsEmptyBufferWithFullHeadroom(t *testing.T) {
	p := newPool(t, 4)
	b := p.Get()
	if b.Len() != 0 || len(b.Bytes()) != 0 {
		t.Fatalf("new buffer has %d bytes", b.Len())
	}
	if b.Headroom() != nicq.DefaultHeadroom || b.Headroom() < nicq.MinHeadroom || nicq.MinHeadroom < 128 {
		t.Fatalf("headroom %d, want %d (at least 128)", b.Headroom(), nicq.DefaultHeadroom)
	}
	if got, want := b.Tailroom(), nicq.DefaultFrameSize-nicq.DefaultHeadroom; got != want {
		t.Fatalf("tailroom %d, want %d", got, want)
	}
	if b.TrueSize() != nicq.DefaultFrameSize {
		t.Fatalf("TrueSize %d, want %d", b.TrueSize(), nicq.DefaultFrameSize)
	}
	if b.Pool() != p {
		t.Fatal("buffer does not know its pool")
	}
	b.Free()
}

func TestPushPrependsHeadersInPlaceWithoutCopying(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	defer b.Free()
	payload := b.Append(5)
	copy(payload, "hello")
	udp := b.Push(8)
	copy(udp, "UUUUUUUU")
	ip := b.Push(20)
	copy(ip, bytes.Repeat([]byte{'I'}, 20))
	eth := b.Push(14)
	copy(eth, bytes.Repeat([]byte{'E'}, 14))

	want := strings.Repeat("E", 14) + strings.Repeat("I", 20) + "UUUUUUUU" + "hello"
	if got := string(b.Bytes()); got != want {
		t.Fatalf("Bytes = %q, want %q", got, want)
	}
	if &b.Bytes()[14+20+8] != &payload[0] {
		t.Fatal("payload moved: Push copied the data instead of using headroom")
	}
	if &b.Bytes()[0] != &eth[0] {
		t.Fatal("Push did not return the new front of the data")
	}
	if b.Headroom() != nicq.DefaultHeadroom-42 {
		t.Fatalf("headroom %d after pushing 42 bytes, want %d", b.Headroom(), nicq.DefaultHeadroom-42)
	}
}

func TestPullReturnsTheStrippedHeader(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	defer b.Free()
	copy(b.Append(10), "ETHERpayld")
	hdr := b.Pull(5)
	if string(hdr) != "ETHER" || string(b.Bytes()) != "payld" {
		t.Fatalf("Pull returned %q leaving %q", hdr, b.Bytes())
	}
	if cap(hdr) != 5 {
		t.Fatalf("pulled header has capacity %d, want 5 (it must not reach into the data)", cap(hdr))
	}
	if b.Headroom() != nicq.DefaultHeadroom+5 {
		t.Fatalf("headroom %d, want %d", b.Headroom(), nicq.DefaultHeadroom+5)
	}
	// Pushing back the same length restores the header bytes.
	if string(b.Push(5)) != "ETHER" {
		t.Fatal("Push after Pull did not expose the old header bytes")
	}
}

func TestTrimRemovesFromTheEndAndTruncateKeepsAPrefix(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	defer b.Free()
	copy(b.Append(10), "0123456789")
	b.Trim(3)
	if string(b.Bytes()) != "0123456" {
		t.Fatalf("after Trim(3): %q", b.Bytes())
	}
	b.Truncate(4)
	if string(b.Bytes()) != "0123" {
		t.Fatalf("after Truncate(4): %q", b.Bytes())
	}
	b.Truncate(4) // no-op
	b.Trim(0)
	if b.Len() != 4 {
		t.Fatalf("Len %d after no-op Trim/Truncate", b.Len())
	}
}

func TestBytesCannotGrowIntoTailroom(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	defer b.Free()
	copy(b.Append(3), "abc")
	s := b.Bytes()
	if cap(s) != 3 {
		t.Fatalf("cap(Bytes()) = %d, want 3", cap(s))
	}
	_ = append(s, 'X') // must reallocate, not write the frame
	if tail := b.Append(1); tail[0] == 'X' {
		t.Fatal("append to Bytes() wrote into the buffer's tailroom")
	}
}

func TestDataMethodsPanicOutsideTheFrame(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	defer b.Free()
	b.Append(10)
	cases := []struct {
		name, want string
		f          func()
	}{
		{"push past headroom", "Push(129) with 128 bytes of headroom", func() { b.Push(nicq.DefaultHeadroom + 1) }},
		{"push negative", "Push(-1)", func() { b.Push(-1) }},
		{"pull past data", "Pull(11) with 10 bytes of data", func() { b.Pull(11) }},
		{"append past tailroom", "Append(1911)", func() { b.Append(b.Tailroom() + 1) }},
		{"trim past data", "Trim(11)", func() { b.Trim(11) }},
		{"truncate past data", "Truncate(11)", func() { b.Truncate(11) }},
		{"truncate negative", "Truncate(-1)", func() { b.Truncate(-1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mustPanic(t, c.want, c.f) })
	}
	if b.Len() != 10 || b.Headroom() != nicq.DefaultHeadroom {
		t.Fatalf("a refused call changed the buffer: len %d headroom %d", b.Len(), b.Headroom())
	}
}

func TestResetAndGetClearMetadata(t *testing.T) {
	p := newPool(t, 1)
	b := p.Get()
	b.Append(100)
	b.Push(20)
	b.Hash, b.RxQueue, b.Flags, b.RxTime, b.SegmentSize, b.Scratch = 7, 3, nicq.FlagHashValid|nicq.FlagL4ChecksumVerified, 99, 1448, 2
	b.Reset()
	if b.Len() != 0 || b.Headroom() != nicq.DefaultHeadroom || b.Hash != 0 || b.RxQueue != 0 || b.Flags != 0 || b.RxTime != 0 || b.SegmentSize != 0 || b.Scratch != 0 {
		t.Fatalf("Reset left %v hash %d queue %d flags %b time %d segment size %d scratch %v", b, b.Hash, b.RxQueue, b.Flags, b.RxTime, b.SegmentSize, b.Scratch)
	}
	b.Append(5)
	b.Hash, b.RxTime, b.SegmentSize, b.Scratch = 1, 2, 3, 4
	b.Free()
	b = p.Get() // the same frame: the pool holds one
	if b.Len() != 0 || b.Headroom() != nicq.DefaultHeadroom || b.Hash != 0 || b.RxTime != 0 || b.SegmentSize != 0 || b.Scratch != 0 {
		t.Fatalf("Get returned a reused buffer with old state: %v hash %d time %d segment size %d scratch %v", b, b.Hash, b.RxTime, b.SegmentSize, b.Scratch)
	}
	b.Free()
}

func TestBufStringNamesPoolAndFrame(t *testing.T) {
	p, err := nicq.NewPool(nicq.PoolConfig{Name: "eth9/q2", Buffers: 3})
	if err != nil {
		t.Fatal(err)
	}
	b := p.Get()
	defer b.Free()
	b.Append(4)
	if got, want := b.String(), `nicq.Buf(pool "eth9/q2" frame 0, data [128:132])`; got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
	var nilBuf *nicq.Buf
	if nilBuf.String() != "nicq.Buf(nil)" {
		t.Fatalf("nil String() = %s", nilBuf.String())
	}
}

func TestBufDataPathAllocatesNothing(t *testing.T) {
	p := newPool(t, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		b := p.Get()
		copy(b.Append(64), "payload")
		b.Push(14)
		b.Pull(14)
		b.Trim(4)
		b.Truncate(50)
		_ = b.Bytes()
		b.Free()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Get/Append/Push/Pull/Trim/Free, want 0", allocs)
	}
}

func BenchmarkBufPushPull(b *testing.B) {
	p := newPool(b, 1)
	buf := p.Get()
	buf.Append(64)
	b.ReportAllocs()
	for b.Loop() {
		buf.Push(14)[0] = 1
		buf.Push(20)[0] = 2
		buf.Pull(34)
	}
}
