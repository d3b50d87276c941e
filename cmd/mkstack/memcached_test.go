package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mkstack/mkstack/core"
	"github.com/mkstack/mkstack/nicq/mem"
	"github.com/mkstack/mkstack/sockets"
	"github.com/mkstack/mkstack/stack"
	"github.com/mkstack/mkstack/stack/header"
)

var (
	mcServerAddr = netip.MustParseAddr("10.78.0.1")
	mcClientAddr = netip.MustParseAddr("10.78.0.2")
)

// mcLab is a memcached server of two cores and a client network, joined by
// the mem wire.
type mcLab struct {
	srv     *mcServer
	srvNet  *sockets.Network
	cli     *sockets.Network
	clock   atomic.Int64 // the server's Unix time, when the test sets it
	cfg     mcConfig
	coreCfg func(*core.Config)
}

func startMCLab(t *testing.T, tweak func(*mcLab)) *mcLab {
	t.Helper()
	l := &mcLab{cfg: mcConfig{MemoryBytes: 64 << 20}}
	l.clock.Store(time.Now().Unix())
	l.cfg.Now = func() int64 { return l.clock.Load() }
	if tweak != nil {
		tweak(l)
	}
	w, err := mem.NewWire(mem.WireConfig{NICs: []mem.NICConfig{
		{MAC: [6]byte{2, 0, 0, 0, 7, 1}, Queues: 2},
		{MAC: [6]byte{2, 0, 0, 0, 7, 2}, Queues: 2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	startNet := func(i int, addr netip.Addr, tweak func(*core.Config)) *sockets.Network {
		cfg := core.Config{NIC: w.NIC(i), Cores: 2, SpinWindow: -1, StackConfig: func(int) stack.Config {
			return stack.Config{Addr: netip.PrefixFrom(addr, 24)}
		}}
		if tweak != nil {
			tweak(&cfg)
		}
		rt, err := core.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n, err := sockets.New(rt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n.Shutdown(ctx)
		})
		return n
	}
	l.srvNet = startNet(0, mcServerAddr, l.coreCfg)
	l.cli = startNet(1, mcClientAddr, nil)
	l.srv, err = startMemcached(l.srvNet, 11211, l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// mcClient is a text-protocol client on one connection.
type mcClient struct {
	t    testing.TB
	c    net.Conn
	r    *bufio.Reader
	core int // the server core that owns the connection
}

func (l *mcLab) dial(t testing.TB) *mcClient {
	t.Helper()
	c, err := l.cli.Dial("tcp", netip.AddrPortFrom(mcServerAddr, 11211).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	owner := l.srvNet.Runtime().FlowOwner(header.ProtocolTCP, mcClientAddr.As4(), mcServerAddr.As4(), port, 11211)
	return &mcClient{t: t, c: c, r: bufio.NewReaderSize(c, 1<<16), core: owner}
}

// dialOnCore dials until the server owns the connection on core.
func (l *mcLab) dialOnCore(t testing.TB, core int) *mcClient {
	t.Helper()
	for range 64 {
		if c := l.dial(t); c.core == core {
			return c
		} else {
			c.c.Close()
		}
	}
	t.Fatalf("no connection landed on core %d", core)
	return nil
}

func (c *mcClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one reply line, without its \r\n.
func (c *mcClient) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read (after %q): %v", s, err)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("reply line %q does not end in \\r\\n", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// expect sends req and checks the reply lines.
func (c *mcClient) expect(req string, want ...string) {
	c.t.Helper()
	c.send(req)
	for _, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("%q: got %q, want %q", short(req), got, w)
		}
	}
}

func short(s string) string {
	if len(s) > 80 {
		return s[:60] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// get returns key's value, or ok false.
func (c *mcClient) get(key string) (string, bool) {
	c.t.Helper()
	c.send("get " + key + "\r\n")
	return c.readValue(key)
}

func (c *mcClient) readValue(key string) (string, bool) {
	c.t.Helper()
	l := c.line()
	if l == "END" {
		return "", false
	}
	f := strings.Fields(l)
	if len(f) < 4 || f[0] != "VALUE" || f[1] != key {
		c.t.Fatalf("get %s: %q", key, l)
	}
	n, _ := strconv.Atoi(f[3])
	v := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, v); err != nil {
		c.t.Fatal(err)
	}
	if end := c.line(); end != "END" {
		c.t.Fatalf("get %s: %q after the value", key, end)
	}
	return string(v[:n]), true
}

func TestMemcachedAnswersEveryCommand(t *testing.T) {
	l := startMCLab(t, nil)
	c := l.dial(t)
	c.expect("version\r\n", "VERSION "+mcVersion)
	c.expect("set a 5 0 3\r\nabc\r\n", "STORED")
	c.expect("get a\r\n", "VALUE a 5 3", "abc", "END")
	c.expect("get nope\r\n", "END")
	c.expect("add a 0 0 1\r\nx\r\n", "NOT_STORED")
	c.expect("add b 0 0 1\r\nx\r\n", "STORED")
	c.expect("replace c 0 0 1\r\nx\r\n", "NOT_STORED")
	c.expect("replace b 7 0 2\r\nyz\r\n", "STORED")
	c.expect("append b 0 0 2\r\n12\r\n", "STORED")
	c.expect("prepend b 0 0 2\r\n00\r\n", "STORED")
	c.expect("get b\r\n", "VALUE b 7 6", "00yz12", "END")
	c.expect("append zz 0 0 1\r\nx\r\n", "NOT_STORED")
	c.send("gets a\r\n")
	f := strings.Fields(c.line())
	if len(f) != 5 {
		t.Fatalf("gets: %v", f)
	}
	c.line()
	c.line()
	c.expect("cas a 0 0 1 "+f[4]+"\r\nQ\r\n", "STORED")
	c.expect("cas a 0 0 1 "+f[4]+"\r\nR\r\n", "EXISTS")
	c.expect("cas nope 0 0 1 1\r\nR\r\n", "NOT_FOUND")
	c.expect("get a b\r\n", "VALUE a 0 1", "Q", "VALUE b 7 6", "00yz12", "END")
	c.expect("set n 0 0 2\r\n10\r\n", "STORED")
	c.expect("incr n 5\r\n", "15")
	c.expect("decr n 100\r\n", "0")
	c.expect("incr n 18446744073709551615\r\n", "18446744073709551615")
	c.expect("incr n 1\r\n", "0") // wraps, as memcached's does
	c.expect("incr a 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value")
	c.expect("incr nope 1\r\n", "NOT_FOUND")
	c.expect("incr n x\r\n", "CLIENT_ERROR invalid numeric delta argument")
	c.expect("touch a 100\r\n", "TOUCHED")
	c.expect("touch nope 100\r\n", "NOT_FOUND")
	c.expect("gat 0 a\r\n", "VALUE a 0 1", "Q", "END")
	c.send("gats 0 a\r\n")
	if f := strings.Fields(c.line()); len(f) != 5 || f[0] != "VALUE" {
		t.Fatalf("gats: %v", f)
	}
	c.expect("", "Q", "END")
	c.expect("delete a\r\n", "DELETED")
	c.expect("delete a\r\n", "NOT_FOUND")
	c.expect("delete b 0\r\n", "DELETED")
	c.expect("delete b 5\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")
	c.expect("delete a b c d e\r\n", "ERROR")
	c.expect("verbosity 1\r\n", "OK")
	c.expect("verbosity\r\n", "ERROR")
	c.expect("verbosity noreply\r\nversion\r\n", "VERSION "+mcVersion)
	// noreply answers nothing; the version after it shows the order.
	c.expect("set q 0 0 1 noreply\r\nz\r\nget q\r\n", "VALUE q 0 1", "z", "END")
	c.expect("add q 0 0 1 noreply\r\nz\r\ndelete q noreply\r\nincr q 1 noreply\r\nversion\r\n", "VERSION "+mcVersion)
	c.expect("flush_all\r\n", "OK")
	c.expect("get n\r\n", "END")
	c.expect("set n 0 0 1\r\n1\r\nflush_all noreply\r\nget n\r\n", "STORED", "END")
	c.send("stats\r\n")
	seen := map[string]string{}
	for {
		s := c.line()
		if s == "END" {
			break
		}
		f := strings.Fields(s)
		if len(f) != 3 || f[0] != "STAT" {
			t.Fatalf("stats line %q", s)
		}
		seen[f[1]] = f[2]
	}
	for _, k := range []string{"curr_items", "get_hits", "get_misses", "evictions", "limit_maxbytes", "cmd_get", "threads", "protocol_errors"} {
		if _, ok := seen[k]; !ok {
			t.Errorf("stats lack %s", k)
		}
	}
	if seen["threads"] != "2" || seen["limit_maxbytes"] != strconv.Itoa(64<<20) {
		t.Errorf("stats: threads %s, limit_maxbytes %s", seen["threads"], seen["limit_maxbytes"])
	}
	c.expect("stats noreply\r\n", "ERROR")
	c.expect("stats reset\r\n", "RESET")
	c.expect("bogus\r\n", "ERROR")
	c.expect("\r\n", "ERROR")
	c.expect("get\r\n", "ERROR")
	c.expect("get "+strings.Repeat("k", 250)+"\r\n", "END")
	c.expect("get "+strings.Repeat("k", 251)+"\r\n", "CLIENT_ERROR bad command line format")
	c.expect("set "+strings.Repeat("k", 251)+" 0 0 1\r\n", "CLIENT_ERROR bad command line format")
	c.expect("set x 0 0 -1\r\n", "CLIENT_ERROR bad command line format")
	// The block is "abc" and "d\r" where "\r\n" should be; the "\n" left
	// is an empty command line.
	c.expect("set x 0 0 3\r\nabcd\r\n", "CLIENT_ERROR bad data chunk", "ERROR")
	// A value over the bound is refused and its bytes swallowed.
	big := strings.Repeat("v", 1<<20+1)
	c.expect("set big 0 0 "+strconv.Itoa(len(big))+"\r\n"+big+"\r\nversion\r\n", "SERVER_ERROR object too large for cache", "VERSION "+mcVersion)
	max := strings.Repeat("m", 1<<20)
	c.expect("set max 0 0 "+strconv.Itoa(len(max))+"\r\n"+max+"\r\n", "STORED")
	if v, ok := c.get("max"); !ok || v != max {
		t.Fatalf("1 MiB value: got %d bytes, ok %v", len(v), ok)
	}
	c.expect("quit\r\n")
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("after quit: %v, want EOF", err)
	}
}

// TestMemcachedKeysAreTheSameWhicheverCoreAsks sets keys through a
// connection on each core and reads them through the other: each key lives
// on one core, chosen by its hash, whatever connection asks.
func TestMemcachedKeysAreTheSameWhicheverCoreAsks(t *testing.T) {
	l := startMCLab(t, nil)
	c0, c1 := l.dialOnCore(t, 0), l.dialOnCore(t, 1)
	owners := [2]int{}
	for i := range 200 {
		w, r := c0, c1
		if i%2 == 1 {
			w, r = c1, c0
		}
		key, val := fmt.Sprintf("key-%d", i), fmt.Sprintf("value %d from core %d", i, w.core)
		owners[l.srv.owner([]byte(key))]++
		w.expect(fmt.Sprintf("set %s %d 0 %d\r\n%s\r\n", key, i, len(val), val), "STORED")
		r.send("get " + key + "\r\n")
		if got := r.line(); got != fmt.Sprintf("VALUE %s %d %d", key, i, len(val)) {
			t.Fatalf("core %d reads %s: %q", r.core, key, got)
		}
		r.expect("", val, "END")
	}
	if owners[0] == 0 || owners[1] == 0 {
		t.Fatalf("keys by owner %v: want both cores", owners)
	}
	cc := l.srvNet.Runtime().CallCounters(0)
	if cc.Sent[1] == 0 || cc.Sent[0] == 0 {
		t.Fatalf("core 0 made %d calls to core 1 and %d inline: want both", cc.Sent[1], cc.Sent[0])
	}
}

// TestMemcachedPipelinesAreAnsweredInOrder sends many requests in one
// write (sets, multi-key gets spread over both cores, misses, errors) and
// checks the replies come back complete and in order.
func TestMemcachedPipelinesAreAnsweredInOrder(t *testing.T) {
	l := startMCLab(t, nil)
	c := l.dial(t)
	var req, want bytes.Buffer
	for i := range 300 {
		k := fmt.Sprintf("p%d", i)
		fmt.Fprintf(&req, "set %s 0 0 %d\r\n%s\r\n", k, len(k), k)
		want.WriteString("STORED\r\n")
		if i%3 == 2 {
			fmt.Fprintf(&req, "get p%d missing p%d p%d\r\n", i, i-1, i-2)
			for _, j := range []int{i, i - 1, i - 2} {
				k := fmt.Sprintf("p%d", j)
				fmt.Fprintf(&want, "VALUE %s 0 %d\r\n%s\r\n", k, len(k), k)
			}
			want.WriteString("END\r\n")
		}
		if i%50 == 0 {
			req.WriteString("nonsense\r\n")
			want.WriteString("ERROR\r\n")
		}
	}
	go c.send(req.String())
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c.r, got); err != nil {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < len(got) && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("replies differ at byte %d: got %q, want %q", i, got[i:min(len(got), i+80)], want.Bytes()[i:min(want.Len(), i+80)])
	}
}

// TestMemcachedBackPressureNeverDropsARequest bounds the calls in flight
// between the cores to 2, pipelines thousands of multi-key gets and sets
// from several connections, and checks every request is answered, in
// order, while the connections stall and resume.
func TestMemcachedBackPressureNeverDropsARequest(t *testing.T) {
	l := startMCLab(t, func(l *mcLab) { l.coreCfg = func(c *core.Config) { c.MaxCallsInFlight = 2 } })
	const conns, rounds = 4, 400
	errs := make(chan error, conns)
	for ci := range conns {
		c := l.dial(t)
		go func() {
			var req, want bytes.Buffer
			for i := range rounds {
				k := fmt.Sprintf("c%d-%d", ci, i)
				fmt.Fprintf(&req, "set %s 0 0 %d\r\n%s\r\nget %s %s %s %s\r\n", k, len(k), k, k, k, k, k)
				fmt.Fprintf(&want, "STORED\r\n")
				for range 4 {
					fmt.Fprintf(&want, "VALUE %s 0 %d\r\n%s\r\n", k, len(k), k)
				}
				want.WriteString("END\r\n")
			}
			go c.c.Write(req.Bytes())
			got := make([]byte, want.Len())
			if _, err := io.ReadFull(c.r, got); err != nil {
				errs <- fmt.Errorf("conn %d: %v", ci, err)
				return
			}
			if !bytes.Equal(got, want.Bytes()) {
				errs <- fmt.Errorf("conn %d: replies out of order or wrong", ci)
				return
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	per, err := l.srv.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total mcStats
	for i := range per {
		total.add(&per[i])
	}
	rt := l.srvNet.Runtime()
	busy := rt.CallCounters(0).Busy[1] + rt.CallCounters(1).Busy[0]
	t.Logf("busy stalls %d, calls refused %d", total.busyStalls, busy)
	if total.busyStalls == 0 || busy == 0 {
		t.Fatal("no back-pressure: the test does not test it")
	}
	for c := range 2 {
		if hw := rt.CallCounters(c).HighWater[1-c]; hw > 2 {
			t.Fatalf("core %d had %d calls in flight, bound 2", c, hw)
		}
	}
}

// TestMemcachedEvictsUnderMemoryPressureKeepingRecentWrites writes far
// more than the memory bound and checks the bound holds, evictions are
// counted, and the most recent writes, each acknowledged, read back.
func TestMemcachedEvictsUnderMemoryPressureKeepingRecentWrites(t *testing.T) {
	const limit = 4 << 20
	l := startMCLab(t, func(l *mcLab) { l.cfg.MemoryBytes = limit; l.cfg.MaxValue = 64 << 10 })
	c := l.dial(t)
	val := strings.Repeat("x", 1000)
	const n = 20000
	for i := range n {
		c.send(fmt.Sprintf("set k%d 0 0 %d noreply\r\n%s\r\n", i, len(val), val))
	}
	c.expect("version\r\n", "VERSION "+mcVersion)
	// The last tenth of the writes must all be there.
	for i := n - n/10; i < n; i++ {
		if v, ok := c.get(fmt.Sprintf("k%d", i)); !ok || v != val {
			t.Fatalf("k%d lost after its write was acknowledged (ok %v)", i, ok)
		}
	}
	per, err := l.srv.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var evictions uint64
	for i, s := range per {
		if s.store.Bytes > s.store.MaxBytes {
			t.Errorf("core %d holds %d bytes, bound %d", i, s.store.Bytes, s.store.MaxBytes)
		}
		evictions += s.store.Evictions
	}
	if evictions == 0 {
		t.Fatal("no evictions counted")
	}
	t.Logf("%d evictions", evictions)
}

func TestMemcachedExpiresItems(t *testing.T) {
	l := startMCLab(t, nil)
	c := l.dial(t)
	now := l.clock.Load()
	c.expect("set short 0 10 1\r\na\r\n", "STORED")
	c.expect("set abs 0 "+strconv.FormatInt(now+20, 10)+" 1\r\nb\r\n", "STORED")
	c.expect("set past 0 -1 1\r\nc\r\n", "STORED")
	c.expect("set forever 0 0 1\r\nd\r\n", "STORED")
	c.expect("get past\r\n", "END")
	c.expect("get short abs forever\r\n", "VALUE short 0 1", "a", "VALUE abs 0 1", "b", "VALUE forever 0 1", "d", "END")
	l.clock.Store(now + 10)
	c.expect("get short abs\r\n", "VALUE abs 0 1", "b", "END")
	c.expect("touch abs 100\r\n", "TOUCHED")
	l.clock.Store(now + 50)
	c.expect("get abs forever\r\n", "VALUE abs 0 1", "b", "VALUE forever 0 1", "d", "END")
	c.expect("flush_all 5\r\n", "OK")
	c.expect("get forever\r\n", "VALUE forever 0 1", "d", "END")
	l.clock.Store(now + 56)
	c.expect("get forever abs\r\n", "END")
}

func TestMemcachedClosesAfterRepliesWhenThePeerCloses(t *testing.T) {
	l := startMCLab(t, nil)
	c := l.dial(t)
	c.send("set a 0 0 1\r\na\r\nget a\r\n")
	c.c.(interface{ CloseWrite() error }).CloseWrite()
	all, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatal(err)
	}
	if string(all) != "STORED\r\nVALUE a 0 1\r\na\r\nEND\r\n" {
		t.Fatalf("got %q", all)
	}
}

func TestServeMemcachedOverMem(t *testing.T) {
	cli, stop := serveOverMem(t, "--app", "memcached", "--cores", "2", "--memory", "8")
	conn, err := cli.Dial("tcp", "10.77.0.1:11211")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &mcClient{t: t, c: conn, r: bufio.NewReader(conn)}
	c.expect("set k 0 0 2\r\nhi\r\nget k\r\n", "STORED", "VALUE k 0 2", "hi", "END")
	c.send("stats\r\n")
	limit := false
	for s := c.line(); s != "END"; s = c.line() {
		limit = limit || s == "STAT limit_maxbytes "+strconv.Itoa(8<<20)
	}
	if !limit {
		t.Error("stats do not show --memory 8 as limit_maxbytes")
	}
	conn.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestMemcachedStopsReadingWhileTheClientDoesNotRead pipelines gets of a
// large value, far more reply bytes than the connection may hold, before
// reading any: the server stops reading until the client reads, then
// answers every request.
func TestMemcachedStopsReadingWhileTheClientDoesNotRead(t *testing.T) {
	l := startMCLab(t, nil)
	c := l.dial(t)
	val := strings.Repeat("b", 256<<10)
	c.expect("set big 0 0 "+strconv.Itoa(len(val))+"\r\n"+val+"\r\n", "STORED")
	const gets = 64 // 16 MiB of replies, four times the connection's bound
	c.send(strings.Repeat("get big\r\n", gets))
	time.Sleep(100 * time.Millisecond) // let the replies pile up
	for i := range gets {
		if v, ok := c.readValue("big"); !ok || v != val {
			t.Fatalf("reply %d: ok %v, %d bytes", i, ok, len(v))
		}
	}
	c.expect("version\r\n", "VERSION "+mcVersion)
}
