//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// selfCommand is the mkstack command as a child process: this test binary
// in mainEnv mode, run inside namespace ns by ip netns exec, behind the
// given wrapper (setpriv, prlimit) if any.
func selfCommand(t *testing.T, ctx context.Context, ns string, wrapper []string, args ...string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"netns", "exec", ns}, wrapper...)
	argv = append(argv, self)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.Env = append(os.Environ(), mainEnv+"="+strings.Join(args, "\x1f"))
	return cmd
}

func xdpAttached(t *testing.T, l *lab) bool {
	nl, err := netlink.NewHandleAt(l.ns(t, l.stackNS))
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(l.iface)
	if err != nil {
		t.Fatal(err)
	}
	x := link.Attrs().Xdp
	return x != nil && x.Attached
}

// TestXDPDetachedWhenServeEnds: the XDP program goes when serve stops on
// SIGTERM and when the process is killed outright (the bpf_link dies with
// it), so a crashed stack never leaves an interface black-holed.
func TestXDPDetachedWhenServeEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command as a child process in namespaces; the full run has it")
	}
	need(t, "ip")
	l := newLab(t, "afxdp")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := selfCommand(t, ctx, l.stackNS, nil, "serve", "--driver", "afxdp", "--iface", l.iface, "--addr", labStackAddr+"/24", "--cores", "1", "--app", "discard")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		up := false
		for i := 0; i < 500 && !up; i++ {
			time.Sleep(10 * time.Millisecond)
			up = strings.Contains(out.String(), "serving discard")
		}
		if !up || !xdpAttached(t, l) {
			cmd.Process.Kill()
			cmd.Wait()
			cancel()
			t.Fatalf("serve did not come up with XDP attached (attached %v):\n%s", xdpAttached(t, l), out.String())
		}
		// ip netns exec runs the binary as its own child after setns: signal
		// the whole process group's serve, which is the only other process.
		pgrepOut, _ := exec.Command("pgrep", "-f", "-P", strconv.Itoa(cmd.Process.Pid)).Output()
		target := cmd.Process.Pid
		if f := strings.Fields(string(pgrepOut)); len(f) == 1 {
			target, _ = strconv.Atoi(f[0])
		}
		syscall.Kill(target, sig)
		err := cmd.Wait()
		cancel()
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, out.String())
		}
		t.Logf("%v: serve exited: %v; %s", sig, err, lastLine(out.String()))
		detached := false
		for i := 0; i < 200 && !detached; i++ {
			detached = !xdpAttached(t, l)
			time.Sleep(10 * time.Millisecond)
		}
		if !detached {
			t.Errorf("after %v the XDP program is still attached to %s", sig, l.iface)
		}
	}
}

// TestAFXDPErrorsNameTheFix: a user without the privileges, or without the
// locked-memory allowance for the UMEM, is told what is missing and what to
// run.
func TestAFXDPErrorsNameTheFix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command as a child process in namespaces; the full run has it")
	}
	need(t, "ip", "setpriv", "prlimit")
	l := newLab(t, "afxdp")
	serveArgs := []string{"serve", "--driver", "afxdp", "--iface", l.iface, "--addr", labStackAddr + "/24", "--cores", "1", "--pin=false"}
	for _, tc := range []struct {
		name    string
		wrapper []string
		want    string
	}{
		{"not root", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, "run with sudo"},
		{"memlock", []string{"setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "prlimit", "--memlock=65536"}, "CAP_IPC_LOCK"},
		{"no interface", nil, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := serveArgs
			if tc.name == "no interface" {
				args = append(append([]string{}, serveArgs...), "--iface", "mknosuch0")
			}
			out, err := selfCommand(t, ctx, l.stackNS, tc.wrapper, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("serve succeeded:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("serve's error does not say %q:\n%s", tc.want, out)
			}
			t.Logf("%s: %s", tc.name, lastLine(string(out)))
			if xdpAttached(t, l) {
				t.Error("a failed start left the XDP program attached")
			}
		})
	}
}
