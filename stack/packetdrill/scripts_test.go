//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	scriptsFlag = flag.String("packetdrill.scripts", "../../../shared/third_party/packetdrill/gtests/net/tcp",
		"directory of packetdrill scripts (searched recursively for *.pkt)")
	sourceFlag = flag.String("packetdrill.src", "../../../shared/third_party/packetdrill/gtests/net/packetdrill",
		"packetdrill's source (gtests/net/packetdrill), copied to a temporary directory to build")
	runFlag     = flag.String("packetdrill.run", "", "run only the scripts whose path matches this regular expression")
	allFlag     = flag.Bool("packetdrill.all", false, "run the scripts applicability.txt rules out too")
	timeoutFlag = flag.Duration("packetdrill.timeout", 30*time.Second, "time limit of one script")
	updateFlag  = flag.Bool("packetdrill.update", false, "rewrite expected_pass.txt with the scripts that passed (full run only)")
	verboseFlag = flag.Bool("packetdrill.verbose", false, "print each failing script's whole output")
)

// shortScripts are the scripts -short runs: a few seconds' worth covering
// passive and active opens, blocking calls, data and close.
var shortScripts = []string{
	"blocking/blocking-accept.pkt",
	"blocking/blocking-connect.pkt",
	"close/close-remote-fin-then-close.pkt",
	"shutdown/shutdown-rdwr-close.pkt",
	"fast_retransmit/fr-4pkt-sack.pkt",
}

// patchVersion names the patch applied to packetdrill's copy (part of the
// build cache key).
const patchVersion = "skip-sched-rr-mlockall-in-so-mode/1"

func TestScripts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: packetdrill scripts need root (each runs in its own network namespace and runs sysctl)")
	}
	if out, err := exec.Command("go", "env", "CGO_ENABLED").Output(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Skip("skipped: the plugin is a cgo c-shared library and cgo is disabled (CGO_ENABLED=0 or no C compiler)")
	}
	for _, tool := range []string{"cc", "make", "bison", "flex", "ip", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: building and running packetdrill needs %s (apt-get install -y bison flex iproute2)", tool)
		}
	}
	scripts, err := filepath.Abs(*scriptsFlag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(scripts); err != nil {
		t.Skipf("skipped: no packetdrill scripts at %s (-packetdrill.scripts): %v", scripts, err)
	}
	src, err := filepath.Abs(*sourceFlag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "packetdrill.h")); err != nil {
		t.Skipf("skipped: no packetdrill source at %s (-packetdrill.src): %v", src, err)
	}

	rules, err := loadRules("applicability.txt")
	if err != nil {
		t.Fatal(err)
	}
	expected, err := loadList("expected_pass.txt")
	if err != nil {
		t.Fatal(err)
	}

	bin := buildPacketdrill(t, src)
	plugin := buildPlugin(t)
	stage := stageScripts(t, scripts)

	var names []string
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pkt") {
			rel, _ := filepath.Rel(stage, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if testing.Short() {
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(shortScripts, n) })
	}
	var filter *regexp.Regexp
	if *runFlag != "" {
		filter = regexp.MustCompile(*runFlag)
	}

	var passed, failed, skipped int
	var passes []string
	full := !testing.Short() && filter == nil
	for _, name := range names {
		if filter != nil && !filter.MatchString(name) {
			continue
		}
		script := filepath.Join(stage, name)
		if reason := rules.reason(name, script); reason != "" && !*allFlag {
			skipped++
			fmt.Printf("SKIP %s: %s\n", name, reason)
			continue
		}
		start := time.Now()
		out, err := runScript(bin, plugin, script, *timeoutFlag)
		d := time.Since(start).Round(time.Millisecond)
		if err == nil {
			passed++
			passes = append(passes, name)
			note := ""
			if !expected[name] {
				note = " (new: not in expected_pass.txt)"
			}
			fmt.Printf("PASS %s (%v)%s\n", name, d, note)
			continue
		}
		failed++
		fmt.Printf("FAIL %s (%v): %s\n", name, d, failure(out, err))
		if *verboseFlag {
			fmt.Printf("%s\n", indent(out))
		}
		if expected[name] {
			t.Errorf("%s passed before (expected_pass.txt) and fails now: %s", name, failure(out, err))
		}
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if *updateFlag {
		if !full || *allFlag {
			t.Fatal("-packetdrill.update needs a full run (no -short, -packetdrill.run or -packetdrill.all)")
		}
		writeList(t, "expected_pass.txt", passes)
	}
}

// failure returns the line of packetdrill's output that says why a script
// failed.
func failure(out []byte, err error) string {
	var ee *exec.ExitError
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("time limit (%v) exceeded", *timeoutFlag)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if strings.Contains(l, ".pkt:") {
			return strings.TrimSpace(l)
		}
	}
	if len(lines) > 0 && lines[len(lines)-1] != "" {
		return strings.TrimSpace(lines[len(lines)-1])
	}
	if errors.As(err, &ee) {
		return ee.String()
	}
	return err.Error()
}

func indent(b []byte) string {
	return "\t" + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n\t")
}

// runScript runs one script in a new network namespace holding a tun0 (the
// scripts' shell lines configure it) and returns packetdrill's output.
func runScript(bin, plugin, script string, limit time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	setup := "ip tuntap add dev tun0 mode tun && ip link set tun0 up && ip link set lo up && exec \"$0\" \"$@\""
	cmd := exec.CommandContext(ctx, "sh", "-c", setup, bin,
		"--so_filename="+plugin,
		"--so_flags=local=192.168.0.2/16,gateway=192.168.0.1",
		"--local_ip=192.168.0.2", "--gateway_ip=192.168.0.1",
		filepath.Base(script))
	cmd.Dir = filepath.Dir(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	return out, err
}

// buildPacketdrill builds packetdrill from src, patched, once per source:
// the binary is cached in the temporary directory under a hash of the
// source and the patch.
func buildPacketdrill(t *testing.T, src string) string {
	h := sha256.New()
	fmt.Fprintln(h, patchVersion)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(os.TempDir(), "mkstack-packetdrill-"+hex.EncodeToString(h.Sum(nil))[:16])
	bin := filepath.Join(cache, "packetdrill")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	work := t.TempDir()
	dir := filepath.Join(work, "packetdrill")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := patchPacketdrill(dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"sh", "./configure"}, {"make", "-j2", "packetdrill"}} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building packetdrill: %v: %v\n%s", c, err, out)
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".tmp"
	b, err := os.ReadFile(filepath.Join(dir, "packetdrill"))
	if err == nil {
		err = os.WriteFile(tmp, b, 0o755)
	}
	if err == nil {
		err = os.Rename(tmp, bin)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// patchPacketdrill makes packetdrill skip SCHED_RR and mlockall when it
// loads a plugin: every thread of the Go runtime would inherit them.
func patchPacketdrill(dir string) error {
	p := filepath.Join(dir, "run.c")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	old := "\tset_scheduling_priority();\n\tlock_memory();\n"
	if bytes.Count(b, []byte(old)) != 1 {
		return fmt.Errorf("patching %s: the calls of set_scheduling_priority and lock_memory in run_script moved", p)
	}
	b = bytes.Replace(b, []byte(old), []byte("\tif (!config->so_filename) {\n\t\tset_scheduling_priority();\n\t\tlock_memory();\n\t}\n"), 1)
	return os.WriteFile(p, b, 0o644)
}

// buildPlugin builds this package as a c-shared library.
func buildPlugin(t *testing.T) string {
	so := filepath.Join(t.TempDir(), "mkstack.so")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", so, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	return so
}

// stageScripts copies the scripts (and the common directory beside them,
// which their shell lines use) to a temporary directory: the shared copy is
// read-only, its symbolic links became files holding their target, and its
// shell scripts lost their execute bits.
func stageScripts(t *testing.T, scripts string) string {
	root := t.TempDir()
	stage := filepath.Join(root, filepath.Base(scripts))
	if err := os.CopyFS(stage, os.DirFS(scripts)); err != nil {
		t.Fatal(err)
	}
	if common := filepath.Join(filepath.Dir(scripts), "common"); dirExists(common) {
		if err := os.CopyFS(filepath.Join(root, "common"), os.DirFS(common)); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := os.Chmod(p, 0o644); err != nil {
			return err
		}
		if strings.HasSuffix(p, ".pkt") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if target := strings.TrimSpace(string(b)); len(b) < 256 && !strings.ContainsAny(target, " \n\t") && strings.Contains(target, "/") {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), target)); err == nil {
				os.Remove(p)
				return os.Symlink(target, p)
			}
		}
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, ".py") {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stage
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// rule is one line of applicability.txt.
type rule struct {
	kind    string // "path" (a glob on the script's path, or a directory ending in /) or "text" (a regular expression on its text)
	pattern string
	re      *regexp.Regexp
	reason  string
}

type rules []rule

// loadRules reads applicability.txt: lines "path GLOB reason..." or
// "text REGEXP reason...", # comments.
func loadRules(file string) (rules, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rs rules
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want KIND PATTERN REASON", file, n)
		}
		r := rule{kind: f[0], pattern: f[1], reason: strings.Join(f[2:], " ")}
		switch r.kind {
		case "path":
			if _, err := path.Match(r.pattern, ""); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", file, n, err)
			}
		case "text":
			if r.re, err = regexp.Compile(r.pattern); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", file, n, err)
			}
		default:
			return nil, fmt.Errorf("%s:%d: kind %q: want path or text", file, n, r.kind)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// reason returns why the script does not apply, "" if it does.
func (rs rules) reason(name, file string) string {
	var text []byte
	for _, r := range rs {
		switch r.kind {
		case "path":
			if strings.HasSuffix(r.pattern, "/") && strings.HasPrefix(name, r.pattern) {
				return r.reason
			}
			if ok, _ := path.Match(r.pattern, name); ok {
				return r.reason
			}
		case "text":
			if text == nil {
				text, _ = os.ReadFile(file)
			}
			if r.re.Match(text) {
				return r.reason
			}
		}
	}
	return ""
}

// loadList reads a list of script names, one a line, # comments.
func loadList(file string) (map[string]bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool)
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[l] = true
		}
	}
	return m, nil
}

func writeList(t *testing.T, file string, names []string) {
	var b strings.Builder
	b.WriteString("# Scripts of gtests/net/tcp that pass against mkstack: TestScripts fails if one\n")
	b.WriteString("# of them stops passing. Regenerate after a full run with -packetdrill.update.\n")
	for _, n := range names {
		b.WriteString(n + "\n")
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
