package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/mkstack/mkstack/sockets"
)

// The memcached workload's operations, as memcaslap's defaults make them:
// 64-byte keys, 1024-byte values, nine gets to one set.
const (
	MemcachedKeySize   = 64
	MemcachedValueSize = 1024
	// MemcachedGetsPerSet is the get/set mix (memcaslap's 9:1).
	MemcachedGetsPerSet = 9
	// MemcachedPort is the port both memcached systems serve.
	MemcachedPort = 11211
	// MemcachedMemoryMB is both servers' memory for items (memcached's
	// -m): enough for memcaslap's working set at 16 connections per core
	// on 2 cores (a window of 10 000 keys per connection, about 1.2 KB
	// per item), so neither evicts and every get of a set key hits.
	MemcachedMemoryMB = 1024
	// memcachedKeysPerFlow is how many keys a goroutine flow cycles
	// through: each is set before it is read, so every get hits.
	memcachedKeysPerFlow = 16
)

// MemcachedServer starts mkstack's memcached-protocol application on n,
// serving port with items sharded across the runtime's cores: the
// handler systems (SysMkstackAFXDP, SysMkstackTap) serve the memcached
// workload with it. The application lives in cmd/mkstack (serve --app
// memcached), which sets this; without it those systems report the
// workload as not available.
var MemcachedServer func(n *sockets.Network, port uint16, memoryMB int) (io.Closer, error)

// memcachedSystems serve the memcached workload: stock memcached on the
// kernel and mkstack's sharded application over a device, both loaded
// from the lab's peer namespace (memcaslap is a kernel client).
var memcachedSystems = []string{SysMkstackAFXDP, SysMkstackTap, SysMemcachedVeth}

// Supports reports whether system can serve workload w, and why not.
func Supports(system string, w Workload) error {
	if w == Memcached {
		if !slices.Contains(memcachedSystems, system) {
			return fmt.Errorf("%s: %w: the memcached workload runs on %v only (stock memcached against mkstack's sharded application, both on the lab's veth)",
				system, ErrNotAvailable, memcachedSystems)
		}
		return nil
	}
	if system == SysMemcachedVeth {
		return fmt.Errorf("%s: %w: it serves the memcached workload only", system, ErrNotAvailable)
	}
	return nil
}

// memcachedFlow is one goroutine flow of the memcached workload (the
// fixed-rate load, and the peak load where memcaslap is not installed):
// it sets each of its keys once, then cycles through them with
// MemcachedGetsPerSet gets to a set, one operation in flight, each reply
// checked.
func memcachedFlow(ctx context.Context, t *ConnTarget, m *meter, i int, addr string) {
	c, err := t.Dial(ctx, "tcp", addr)
	if err != nil {
		m.fail(i)
		return
	}
	defer c.Close()
	mc := newMemcachedOps(i)
	br := bufio.NewReaderSize(c, 4096)
	for op := 0; ; op++ {
		start := m.wait(i)
		if err := mc.do(c, br, op); err != nil {
			m.fail(i)
			return
		}
		if !m.done(i, start) {
			return
		}
	}
}

// memcachedOps builds one flow's requests and checks their replies.
type memcachedOps struct {
	keys  [][]byte
	value []byte
	req   []byte
	// hit is the reply to a get of key k but for the key: "VALUE " key
	// " 0 1024\r\n" value "\r\nEND\r\n".
	hitTail []byte
}

func newMemcachedOps(flow int) *memcachedOps {
	o := &memcachedOps{value: bytes.Repeat([]byte{'v'}, MemcachedValueSize)}
	for k := range memcachedKeysPerFlow {
		key := fmt.Appendf(nil, "key-%d-%d-", flow, k)
		for len(key) < MemcachedKeySize {
			key = append(key, 'k')
		}
		o.keys = append(o.keys, key)
	}
	o.hitTail = fmt.Appendf(nil, " 0 %d\r\n%s\r\nEND\r\n", MemcachedValueSize, o.value)
	return o
}

var errMemcachedReply = errors.New("memcached: unexpected reply")

// do runs operation op: the first memcachedKeysPerFlow set every key,
// then one set in each MemcachedGetsPerSet+1.
func (o *memcachedOps) do(w io.Writer, br *bufio.Reader, op int) error {
	key := o.keys[op%len(o.keys)]
	set := op < len(o.keys) || op%(MemcachedGetsPerSet+1) == MemcachedGetsPerSet
	o.req = o.req[:0]
	if set {
		o.req = append(o.req, "set "...)
		o.req = append(o.req, key...)
		o.req = append(o.req, " 0 0 "...)
		o.req = strconv.AppendInt(o.req, MemcachedValueSize, 10)
		o.req = append(o.req, "\r\n"...)
		o.req = append(o.req, o.value...)
		o.req = append(o.req, "\r\n"...)
	} else {
		o.req = append(o.req, "get "...)
		o.req = append(o.req, key...)
		o.req = append(o.req, "\r\n"...)
	}
	if _, err := w.Write(o.req); err != nil {
		return err
	}
	if set {
		return expectBytes(br, storedReply)
	}
	if err := expectBytes(br, valueReply); err != nil {
		return err
	}
	if err := expectBytes(br, key); err != nil {
		return err
	}
	return expectBytes(br, o.hitTail)
}

var storedReply, valueReply = []byte("STORED\r\n"), []byte("VALUE ")

// expectBytes reads want from br, failing at the first byte that
// differs: it waits for no more than the bytes already buffered, or one,
// so a shorter reply than want (END, ERROR) fails rather than waits.
func expectBytes(br *bufio.Reader, want []byte) error {
	for len(want) > 0 {
		n := min(len(want), max(1, br.Buffered()))
		got, err := br.Peek(n)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want[:n]) {
			return fmt.Errorf("%w: %q, want %q", errMemcachedReply, got, want[:n])
		}
		br.Discard(n)
		want = want[n:]
	}
	return nil
}

// serveMemcachedHandlers serves the memcached workload from rt's cores
// with MemcachedServer.
func serveMemcachedHandlers(n *sockets.Network) (func(), int, error) {
	if MemcachedServer == nil {
		return nil, 0, fmt.Errorf("%w: mkstack's memcached application is not linked in (run the workload through mkstack bench)", ErrNotAvailable)
	}
	srv, err := MemcachedServer(n, MemcachedPort, MemcachedMemoryMB)
	if err != nil {
		return nil, 0, err
	}
	return func() { srv.Close() }, MemcachedPort, nil
}
