//go:build linux

package bench

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestVethSystemsRunTCPRROverIPv6 runs a short tcp-rr point over IPv6 on
// mkstack over AF_XDP (handlers and net.Conn) and on the kernel on the
// same veth (Go's net and the epoll server), the load from the kernel in the peer namespace dialling
// [fd77::1]: each counts transactions and records its family as IPv6,
// and every lab is removed.
func TestVethSystemsRunTCPRROverIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth, XDP")
	}
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	before := benchNamespaces(t)
	for _, sys := range []string{SysMkstackAFXDP, SysLinuxVeth, SysMkstackConnAFXDP, SysLinuxEpollVeth} {
		t.Run(sys, func(t *testing.T) {
			spec := Spec{Workload: TCPRR, Cores: []int{1}, Systems: []string{sys}, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Conns: 4, IPv6: true}
			r, err := Run(context.Background(), spec, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			CheckResult(t, r, sys, 1)
			p := r.Points[0]
			if p.Family != FamilyIPv6 || !p.IsIPv6() || !r.HasIPv6() {
				t.Errorf("%s: family %q, want %q", sys, p.Family, FamilyIPv6)
			}
			t.Logf("%s over IPv6: %d transactions, %.0f/s", sys, p.Count, p.Rate)
		})
	}
	if after := benchNamespaces(t); len(after) != len(before) {
		t.Errorf("network namespaces left behind: %v (before: %v)", after, before)
	}
}

// TestMemcachedVethOverIPv6: stock memcached listens on [fd77::1] and
// memcaslap, which takes no IPv6 literal, reaches it by a name its own
// hosts file gives (memcaslapHosts).
func TestMemcachedVethOverIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth")
	}
	if testing.Short() {
		t.Skip("makes network namespaces; -short leaves it out")
	}
	if _, err := exec.LookPath("memcached"); err != nil || !memcaslapAvailable() {
		t.Skip("needs memcached and memcaslap (.ci/run installs them)")
	}
	before := benchNamespaces(t)
	spec := Spec{Workload: Memcached, Cores: []int{1}, Systems: []string{SysMemcachedVeth}, Duration: time.Second, Conns: 4, IPv6: true}
	r, err := Run(context.Background(), spec, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Points[0]
	if p.Err != "" || p.Count == 0 || p.Client != "memcaslap" || p.Family != FamilyIPv6 {
		t.Errorf("point %+v", p)
	}
	if after := benchNamespaces(t); len(after) != len(before) {
		t.Errorf("network namespaces left behind: %v (before: %v)", after, before)
	}
}
