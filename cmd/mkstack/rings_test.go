package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestRingsExchangesMessagesBetweenPinnedCoresAndLosesNone(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"rings", "--duration", "1200ms"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("rings exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	done := regexp.MustCompile(`(\d+) messages sent, (\d+) received, 0 lost`).FindStringSubmatch(out.String())
	if done == nil {
		t.Fatalf("no loss-free summary line in:\n%s", out.String())
	}
	if sent, _ := strconv.Atoi(done[1]); sent < 1000 {
		t.Fatalf("only %d messages sent in 1.2s:\n%s", sent, out.String())
	}
	if !strings.Contains(out.String(), "core 0 (cpu ") {
		t.Fatalf("no per-core report:\n%s", out.String())
	}
	// The paced second half must make cores sleep and be woken.
	wake := regexp.MustCompile(`(\d+) wake-ups`).FindAllStringSubmatch(out.String(), -1)
	if len(wake) == 0 {
		t.Fatalf("no wake-up counts:\n%s", out.String())
	}
	if last, _ := strconv.Atoi(wake[len(wake)-1][1]); last == 0 {
		t.Fatalf("no wake-ups during the paced phase:\n%s", out.String())
	}
}

func TestRingsRejectsBadFlagsWithStatus2(t *testing.T) {
	for _, args := range [][]string{
		{"rings", "--duration", "-1s"},
		{"rings", "--cores", "999"},
		{"rings", "extra"},
		{"rings", "--no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut.String())
		}
		if errOut.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}

func TestUnknownCommandExits2(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "nope"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
