package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadGenEnv, when set to "ADDR CONNS", makes the test binary a keep-alive
// HTTP load generator (see runLoadGen) instead of running tests.
const loadGenEnv = "MKSTACK_TEST_LOADGEN"

// runLoadGen opens conns keep-alive connections to addr, prints "ready"
// once all are up, then runs one request at a time on each and prints the
// running count of responses and the time every 20 ms ("N UNIXNANO"), until
// it is killed. A connection error ends it with the error printed: the
// connections it measures are the ones it opened, never new ones.
func runLoadGen(spec string, out io.Writer) int {
	addr, n, _ := strings.Cut(spec, " ")
	conns, err := strconv.Atoi(n)
	if err != nil || conns < 1 {
		fmt.Fprintf(out, "error: bad spec %q\n", spec)
		return 2
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	fail := make(chan error, conns)
	cs := make([]net.Conn, conns)
	for i := range cs {
		if cs[i], err = net.DialTimeout("tcp4", addr, 5*time.Second); err != nil {
			fmt.Fprintf(out, "error: dial %s: %v\n", addr, err)
			return 1
		}
	}
	fmt.Fprintln(out, "ready")
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(c)
			req := []byte("GET / HTTP/1.1\r\nHost: mkstack\r\n\r\n")
			for {
				if _, err := c.Write(req); err != nil {
					fail <- err
					return
				}
				resp, err := http.ReadResponse(r, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					fail <- err
					return
				}
				done.Add(1)
			}
		}()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	for {
		select {
		case err := <-fail:
			fmt.Fprintf(out, "error: %v\n", err)
			return 1
		case now := <-tick.C:
			fmt.Fprintf(out, "%d %d\n", done.Load(), now.UnixNano())
		}
	}
}
