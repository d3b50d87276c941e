//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mkstack/mkstack/nicq/netlab"
)

// memcaslapAvailable reports whether libmemcached's load generator is
// installed.
func memcaslapAvailable() bool {
	_, err := exec.LookPath("memcaslap")
	return err == nil
}

// runMemcachedLoad drives the memcached workload on t from the peer
// namespace: memcaslap at peak (its defaults: 64-byte keys, 1024-byte
// values, 9:1 gets to sets), the goroutine flows of memcachedFlow at a
// fixed rate (memcaslap's --tps does not pace) or where memcaslap is
// missing.
func runMemcachedLoad(ctx context.Context, l *vethLab, t *ConnTarget, p Params) (Point, error) {
	if p.Rate > 0 || p.Transactions > 0 || !memcaslapAvailable() {
		pt, err := RunConn(ctx, t, p)
		pt.Client = "go"
		return pt, err
	}
	stop, port, err := t.serve(newMeter(p, 0))
	if err != nil {
		return Point{}, fmt.Errorf("serve: %w", err)
	}
	defer stop()
	args := []string{"netns", "exec", l.names.PeerNS(l.driver)}
	if cpus := cpuList(p.CPUs); cpus != "" {
		args = append(args, "taskset", "-c", cpus)
	}
	// memcaslap has no warm-up: it runs for both, and the machine's CPU
	// is scaled to the measured share below.
	secs := max(1, int((p.Duration+p.Warmup).Round(time.Second)/time.Second))
	server := t.Addr
	if familyOf(t.Addr) == FamilyIPv6 {
		// memcaslap takes no IPv6 literal (it splits host and port at
		// the first colon), but resolves a name to an IPv6 address: the
		// name comes from a hosts file bind-mounted over /etc/hosts in
		// the mount namespace ip netns exec makes for it alone.
		hosts, err := memcaslapHosts(t.Addr)
		if err != nil {
			return Point{}, err
		}
		defer os.RemoveAll(filepath.Dir(hosts))
		server = memcaslapHost6
		args = append(args, "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts)
	}
	args = append(args, "memcaslap", "-s", net.JoinHostPort(server, strconv.Itoa(port)),
		"-T", strconv.Itoa(p.Cores), "-c", strconv.Itoa(p.Cores*p.Flows), "-t", fmt.Sprintf("%ds", secs))
	pt, err := runClient(ctx, "memcaslap", args, p, func(out string) (Point, error) { return parseMemcaslap(out, p) })
	pt.Family = familyOf(t.Addr)
	return pt, err
}

// memcaslapHost6 is the name memcaslap dials an IPv6 server by.
const memcaslapHost6 = "mkstack-server6"

// memcaslapHosts writes a hosts file that names addr memcaslapHost6 into
// a directory of its own and returns its path.
func memcaslapHosts(addr string) (string, error) {
	dir, err := os.MkdirTemp("", "mkstack-memcaslap-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"+addr+" "+memcaslapHost6+"\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return path, nil
}

var memcaslapTotal = regexp.MustCompile(`(?m)^Run time: ([0-9.]+)s Ops: (\d+) TPS: (\d+)`)

// parseMemcaslap reads memcaslap's final line ("Run time: 10.0s Ops: N
// TPS: R Net_rate: ...") and its get misses, which the workload counts as
// errors (every key is set before it is read).
func parseMemcaslap(out string, p Params) (Point, error) {
	m := memcaslapTotal.FindStringSubmatch(out)
	if m == nil {
		return Point{}, fmt.Errorf("memcaslap printed no total: %s", out)
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	ops, _ := strconv.ParseUint(m[2], 10, 64)
	if secs <= 0 {
		return Point{}, fmt.Errorf("memcaslap ran for %v s", secs)
	}
	pt := Point{Workload: p.Workload, Cores: p.Cores, CPUs: p.CPUs, Flows: p.Flows, Unit: p.Workload.Unit(),
		Seconds: secs, Count: ops, Rate: float64(ops) / secs,
		Note: "driven by memcaslap from the peer namespace (64-byte keys, 1024-byte values, 9:1 get/set)"}
	pt.PerCore = pt.Rate / float64(max(p.Cores, 1))
	if g := regexp.MustCompile(`(?m)^get_misses: (\d+)`).FindStringSubmatch(out); g != nil {
		pt.Errors, _ = strconv.ParseUint(g[1], 10, 64)
	}
	return pt, nil
}

// runMemcachedVeth serves the memcached workload from stock memcached
// (-t cores) on the kernel, in the lab's stack namespace on the veth at
// its default offloads, confined to the point's CPUs.
func runMemcachedVeth(ctx context.Context, l *vethLab, p Params) (Point, error) {
	path, err := exec.LookPath("memcached")
	if err != nil {
		return Point{}, fmt.Errorf("%w: memcached is not installed (apt-get install memcached)", ErrNotAvailable)
	}
	if err := netlab.KernelAddr(l.stack, l.stackIf, l.serverCIDR(), false); err != nil {
		return Point{}, err
	}
	t := &ConnTarget{Addr: l.serverAddr(), Dial: l.dial}
	listen := l.serverAddr()
	if l.ipv6 {
		listen = "[" + listen + "]" // memcached -l takes an IPv6 address in brackets
	}
	t.serve = func(*meter) (func(), int, error) {
		args := []string{"netns", "exec", l.names.StackNS(l.driver)}
		if cpus := cpuList(p.CPUs); cpus != "" {
			args = append(args, "taskset", "-c", cpus)
		}
		// UDP off, as serve --app memcached has none.
		args = append(args, path, "-u", "root", "-U", "0", "-l", listen,
			"-p", strconv.Itoa(MemcachedPort), "-t", strconv.Itoa(p.Cores), "-m", strconv.Itoa(MemcachedMemoryMB))
		cmd := exec.Command("ip", args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return nil, 0, fmt.Errorf("memcached: %w", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if err := waitListening(ctx, l, t.Addr, MemcachedPort, exited); err != nil {
			stop()
			return nil, 0, fmt.Errorf("memcached: %w: %s", err, out.String())
		}
		return stop, MemcachedPort, nil
	}
	pt, err := runMemcachedLoad(ctx, l, t, p)
	pt.Driver, pt.API = "veth", "memcached"
	return pt, err
}

// waitListening waits until addr:port accepts a connection from the peer
// namespace, or the server exits.
func waitListening(ctx context.Context, l *vethLab, addr string, port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := l.dial(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before it listened")
		default:
		}
		if time.Now().After(deadline) {
			return errors.Join(errors.New("not listening after 5 s"), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
