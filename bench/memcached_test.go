package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestMemcachedRunsOnItsSystemsOnly: the memcached workload is refused as
// not available by the systems that do not serve it, memcached-veth
// serves nothing else, and the pairs keep the memcached comparison apart.
func TestMemcachedRunsOnItsSystemsOnly(t *testing.T) {
	for _, sys := range []string{SysMkstack, SysMkstackConn, SysLinux, SysLinuxEpoll, SysLinuxVeth, SysMkstackConnAFXDP} {
		r, err := Run(context.Background(), Spec{Workload: Memcached, Cores: []int{1}, Systems: []string{sys}, Duration: time.Second}, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Points) != 1 || !strings.Contains(r.Points[0].Err, "not available") || r.Points[0].Count != 0 {
			t.Errorf("%s: %+v", sys, r.Points)
		}
	}
	r, err := Run(context.Background(), Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{SysMemcachedVeth}, Duration: time.Second}, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Points[0].Err, "serves the memcached workload only") {
		t.Errorf("memcached-veth on tcp-rr: %+v", r.Points)
	}
	mc := PairsFor(Memcached)
	if len(mc) != 1 || mc[0].System != SysMkstackAFXDP || mc[0].Peer != SysMemcachedVeth {
		t.Errorf("memcached pairs %+v", mc)
	}
	for _, pr := range PairsFor(TCPRR) {
		if pr.Peer == SysMemcachedVeth {
			t.Errorf("tcp-rr pairs include %+v", pr)
		}
	}
}

// TestMemcachedOpsSpeakTheProtocol runs a flow's operations against a
// scripted server: the first ones set every key, then nine gets to a set,
// each reply checked, and a miss or a wrong value is an error.
func TestMemcachedOpsSpeakTheProtocol(t *testing.T) {
	o := newMemcachedOps(3)
	store := map[string][]byte{}
	var sets, gets int
	serve := func(req []byte) []byte {
		line, rest, _ := bytes.Cut(req, []byte("\r\n"))
		f := strings.Fields(string(line))
		switch f[0] {
		case "set":
			if len(f) != 5 || f[4] != "1024" || len(rest) != MemcachedValueSize+2 || len(f[1]) != MemcachedKeySize {
				t.Fatalf("set request %q", req)
			}
			store[f[1]] = bytes.Clone(rest[:MemcachedValueSize])
			sets++
			return []byte("STORED\r\n")
		case "get":
			gets++
			v, ok := store[f[1]]
			if !ok {
				return []byte("END\r\n")
			}
			return []byte("VALUE " + f[1] + " 0 1024\r\n" + string(v) + "\r\nEND\r\n")
		}
		t.Fatalf("request %q", req)
		return nil
	}
	run := func(op int) error {
		var w bytes.Buffer
		// The reply depends on the request, so the request goes first.
		if err := o.do(&w, bufio.NewReader(strings.NewReader("")), op); err == nil {
			t.Fatalf("op %d: no reply was read", op)
		}
		return o.do(&bytes.Buffer{}, bufio.NewReaderSize(bytes.NewReader(serve(w.Bytes())), 256), op)
	}
	for op := range 16 + 40 {
		if err := run(op); err != nil {
			t.Fatalf("op %d: %v", op, err)
		}
	}
	// Each of the 16 keys set once, then one set in ten.
	if sets != 16+4 || gets != 36 {
		t.Errorf("%d sets, %d gets; want 20 and 36", sets, gets)
	}
	clear(store)
	if err := run(20); !errors.Is(err, errMemcachedReply) {
		t.Errorf("a miss: %v, want errMemcachedReply", err)
	}
	store[string(o.keys[1])] = bytes.Repeat([]byte{'x'}, MemcachedValueSize)
	if err := run(21); !errors.Is(err, errMemcachedReply) {
		t.Errorf("a wrong value: %v, want errMemcachedReply", err)
	}
}

// TestMemcachedFlowAgainstAGoServer drives memcachedFlow through the
// meter against a small in-process memcached on loopback.
func TestMemcachedFlowAgainstAGoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go tinyMemcached(c)
		}
	}()
	p := Params{Workload: Memcached, Cores: 1, Flows: 2, Duration: 200 * time.Millisecond, Warmup: 20 * time.Millisecond}
	t2 := &ConnTarget{Addr: "127.0.0.1", Dial: (&net.Dialer{}).DialContext,
		serve: func(*meter) (func(), int, error) { return func() {}, l.Addr().(*net.TCPAddr).Port, nil }}
	pt, err := RunConn(context.Background(), t2, p)
	if err != nil {
		t.Fatal(err)
	}
	if pt.Count == 0 || pt.Errors != 0 || pt.Latency == nil {
		t.Fatalf("%+v", pt)
	}
}

// tinyMemcached answers set and get, enough for memcachedFlow.
func tinyMemcached(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	store := map[string][]byte{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 5 && f[0] == "set":
			v := make([]byte, MemcachedValueSize+2)
			if _, err := io.ReadFull(br, v); err != nil {
				return
			}
			store[f[1]] = v[:MemcachedValueSize]
			c.Write([]byte("STORED\r\n"))
		case len(f) == 2 && f[0] == "get":
			v, ok := store[f[1]]
			if !ok {
				c.Write([]byte("END\r\n"))
				continue
			}
			c.Write([]byte("VALUE " + f[1] + " 0 1024\r\n" + string(v) + "\r\nEND\r\n"))
		default:
			return
		}
	}
}

func TestParseMemcaslap(t *testing.T) {
	out := `servers: 10.77.0.1:11211
threads count: 2
concurrency: 64
run time: 10s
windows size: 10k
set proportion: set_prop=0.10
get proportion: get_prop=0.90
cmd_get: 104919
cmd_set: 11660
get_misses: 7
written_bytes: 20228350
read_bytes: 116548930
object_bytes: 12686080

Run time: 10.0s Ops: 116579 TPS: 11657 Net_rate: 13.0M/s
`
	pt, err := parseMemcaslap(out, Params{Workload: Memcached, Cores: 2})
	if err != nil {
		t.Fatal(err)
	}
	if pt.Count != 116579 || pt.Seconds != 10 || pt.Errors != 7 || pt.PerCore != pt.Rate/2 {
		t.Fatalf("%+v", pt)
	}
	if _, err := parseMemcaslap("servers: x\nconnect failed", Params{}); err == nil {
		t.Error("a memcaslap failure parsed")
	}
}
