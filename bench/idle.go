package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// idleDialers is how many goroutines open the idle-connection mode's
// connections: enough to keep the server's accept path busy, few enough
// that their stacks are not what the point measures (they end before the
// second reading).
const idleDialers = 16

// DefaultIdleSettle is how long MemAvailable must hold still (within
// 1 MiB) before each reading of the idle-connection mode
// (Spec.IdleSettle).
const DefaultIdleSettle = 2 * time.Second

// idleExchangeTimeout bounds one connection's dial and exchange.
const idleExchangeTimeout = 20 * time.Second

// IdleClientCommand, if set, makes the command that runs the
// idle-connection mode's load in a process of its own inside the named
// network namespace (mkstack sets it to run itself as RunIdleClient): the
// veth systems' load then leaves the server's process its whole
// open-file limit (a kernel server holds a descriptor per connection, as
// the load does), and each side's memory is its own process's. Without
// it, or on the systems that have no namespace, the load runs in-process.
var IdleClientCommand func(netns, addr string, w Workload, n int) *exec.Cmd

// openIdle is the idle-connection mode's point (Params.Idle): with the
// server up, it reads the machine's settled memory, opens p.Cores*p.Flows
// connections to addr, makes one exchange on each (tcp-rr: a request and
// its echo; http: a GET and its response), reads the memory again with
// all of them open and idle, and closes them. Its rate is connections
// opened per second; its figure IdleMemoryBytes.
func openIdle(ctx context.Context, t *ConnTarget, p Params, addr string) (Point, error) {
	n := p.Cores * p.Flows
	settle := p.IdleSettle
	if settle <= 0 {
		settle = DefaultIdleSettle
	}
	before, ok := settledMemAvailable(settle)
	if !ok {
		return Point{}, errors.New("idle connections: no MemAvailable in /proc/meminfo")
	}
	start := time.Now()
	var (
		opened  int
		release func()
		err     error
	)
	if t.idleNetns != "" && IdleClientCommand != nil {
		opened, release, err = idleClientProcess(ctx, IdleClientCommand(t.idleNetns, addr, p.Workload, n))
	} else {
		opened, release, err = openIdleConns(ctx, t.Dial, p.Workload, addr, n)
	}
	elapsed := time.Since(start)
	if err != nil {
		if release != nil {
			release()
		}
		// Memory held by fewer connections than asked would read low.
		return Point{Count: uint64(opened), Errors: uint64(n - opened)}, fmt.Errorf("idle connections: %w", err)
	}
	after, _ := settledMemAvailable(settle)
	release()
	rate := float64(opened) / elapsed.Seconds()
	return Point{Seconds: elapsed.Seconds(), Count: uint64(opened), Rate: rate, PerCore: rate / float64(p.Cores),
		IdleMemoryBytes: max(before-after, 0)}, nil
}

// openIdleConns opens n connections to addr with dial, one exchange each,
// and returns how to close them. It fails if any fails.
func openIdleConns(ctx context.Context, dial func(ctx context.Context, network, address string) (net.Conn, error), w Workload, addr string, n int) (int, func(), error) {
	conns := make([]net.Conn, n)
	var (
		errMu    sync.Mutex
		firstErr error
		failed   int
	)
	var wg sync.WaitGroup
	for d := range min(idleDialers, n) {
		wg.Go(func() {
			for i := d; i < n; i += idleDialers {
				c, err := idleExchange(ctx, dial, w, addr)
				if err != nil {
					errMu.Lock()
					failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					}
					errMu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	release := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	if failed > 0 {
		return n - failed, release, fmt.Errorf("%d of %d failed; the first: %w", failed, n, firstErr)
	}
	return n, release, nil
}

// RunIdleClient is the idle-connection mode's load in a process of its own
// (IdleClientCommand): it opens n connections to addr, one exchange each,
// writes "opened N" to ready (or the error), and holds them open until
// hold ends (its parent closes the pipe).
func RunIdleClient(ctx context.Context, addr string, w Workload, n int, ready io.Writer, hold io.Reader) error {
	var d net.Dialer
	opened, release, err := openIdleConns(ctx, d.DialContext, w, addr, n)
	if err != nil {
		if release != nil {
			release()
		}
		fmt.Fprintf(ready, "error: %v\n", err)
		return err
	}
	// What the exchanges left is garbage, not what the connections hold.
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Fprintf(ready, "opened %d\n", opened)
	io.Copy(io.Discard, hold)
	release()
	return nil
}

// idleClientProcess starts cmd (RunIdleClient in a process of its own)
// and waits for it to have opened its connections; release ends it,
// closing them.
func idleClientProcess(ctx context.Context, cmd *exec.Cmd) (int, func(), error) {
	hold, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start the load: %w", err)
	}
	release := func() {
		hold.Close()
		cmd.Wait()
	}
	line, rerr := bufio.NewReader(out).ReadString('\n')
	var opened int
	if _, serr := fmt.Sscanf(line, "opened %d", &opened); serr != nil {
		release()
		if rerr != nil && line == "" {
			return 0, nil, fmt.Errorf("the load ended: %v: %s", rerr, strings.TrimSpace(errb.String()))
		}
		return 0, nil, fmt.Errorf("the load: %s", strings.TrimSpace(strings.TrimPrefix(line, "error: ")))
	}
	return opened, release, nil
}

// idleExchange dials addr and makes the workload's one exchange.
func idleExchange(ctx context.Context, dial func(ctx context.Context, network, address string) (net.Conn, error), w Workload, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, idleExchangeTimeout)
	defer cancel()
	c, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(idleExchangeTimeout))
	if w == HTTP {
		if _, err = c.Write(httpRequest); err == nil {
			err = readHTTPResponse(bufio.NewReaderSize(c, 1024))
		}
	} else {
		var buf [MsgSize]byte
		if _, err = c.Write(buf[:]); err == nil {
			_, err = io.ReadFull(c, buf[:])
		}
	}
	// No deadline while idle: a timer per connection is not what an
	// idle connection of a real client holds.
	c.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// settledMemAvailable is MemAvailable once this process has collected its
// garbage and handed its free memory back, and the machine's figure has
// held still for settle (memoryStill).
func settledMemAvailable(settle time.Duration) (int64, bool) {
	runtime.GC()
	debug.FreeOSMemory()
	return memoryStill(settle)
}
