package memcache

import (
	"errors"
	"strings"
	"testing"
)

func parseOne(t *testing.T, in string) (Command, int, error) {
	t.Helper()
	var cmd Command
	n, err := Parse([]byte(in), &cmd, 0)
	return cmd, n, err
}

func TestParseReadsEachCommand(t *testing.T) {
	for _, tc := range []struct {
		in    string
		op    Op
		keys  string
		check func(Command) bool
	}{
		{"get a\r\n", OpGet, "a", nil},
		{"get a b  c\r\n", OpGet, "a b c", nil},
		{"get a\n", OpGet, "a", nil},
		{"gets k1 k2\r\n", OpGets, "k1 k2", nil},
		{"gat 100 k\r\n", OpGat, "k", func(c Command) bool { return c.Exptime == 100 }},
		{"gats -1 k j\r\n", OpGats, "k j", func(c Command) bool { return c.Exptime == -1 }},
		{"gat 0\r\n", OpGat, "", nil},
		{"set k 7 60 3\r\nabc\r\n", OpSet, "k", func(c Command) bool {
			return c.Flags == 7 && c.Exptime == 60 && string(c.Data) == "abc" && !c.NoReply
		}},
		{"set k 4294967295 0 0 noreply\r\n\r\n", OpSet, "k", func(c Command) bool { return c.Flags == 1<<32-1 && c.NoReply && len(c.Data) == 0 }},
		{"add k 0 0 1\r\nx\r\n", OpAdd, "k", nil},
		{"replace k 0 0 1\r\nx\r\n", OpReplace, "k", nil},
		{"append k 0 0 1\r\nx\r\n", OpAppend, "k", nil},
		{"prepend k 0 0 1 noreply\r\nx\r\n", OpPrepend, "k", func(c Command) bool { return c.NoReply }},
		{"cas k 0 0 1 99\r\nx\r\n", OpCas, "k", func(c Command) bool { return c.Cas == 99 }},
		{"set k 0 0 2 bogus\r\nxy\r\n", OpSet, "k", func(c Command) bool { return !c.NoReply }},
		{"delete k\r\n", OpDelete, "k", nil},
		{"delete k 0\r\n", OpDelete, "k", nil},
		{"delete k noreply\r\n", OpDelete, "k", func(c Command) bool { return c.NoReply }},
		{"delete k 0 noreply\r\n", OpDelete, "k", func(c Command) bool { return c.NoReply }},
		{"incr k 5\r\n", OpIncr, "k", func(c Command) bool { return c.Delta == 5 }},
		{"decr k 18446744073709551615 noreply\r\n", OpDecr, "k", func(c Command) bool { return c.Delta == 1<<64-1 && c.NoReply }},
		{"touch k 10\r\n", OpTouch, "k", func(c Command) bool { return c.Exptime == 10 }},
		{"flush_all\r\n", OpFlushAll, "", nil},
		{"flush_all 10\r\n", OpFlushAll, "", func(c Command) bool { return c.Delay == 10 }},
		{"flush_all noreply\r\n", OpFlushAll, "", func(c Command) bool { return c.NoReply }},
		{"flush_all 0 noreply\r\n", OpFlushAll, "", func(c Command) bool { return c.NoReply }},
		{"stats\r\n", OpStats, "", nil},
		{"stats reset\r\n", OpStats, "", func(c Command) bool { return string(c.Stats) == "reset" }},
		{"version\r\n", OpVersion, "", nil},
		{"version foo bar\r\n", OpVersion, "", nil},
		{"verbosity 1\r\n", OpVerbosity, "", nil},
		{"verbosity noreply\r\n", OpVerbosity, "", func(c Command) bool { return c.NoReply }},
		{"quit\r\n", OpQuit, "", nil},
		{"get " + strings.Repeat("k", MaxKeyLen) + "\r\n", OpGet, strings.Repeat("k", MaxKeyLen), nil},
	} {
		cmd, n, err := parseOne(t, tc.in)
		if err != nil || n != len(tc.in) {
			t.Errorf("%q: n %d err %v, want %d, nil", tc.in, n, err, len(tc.in))
			continue
		}
		var keys []string
		for _, k := range cmd.Keys {
			keys = append(keys, string(k))
		}
		if cmd.Op != tc.op || strings.Join(keys, " ") != tc.keys {
			t.Errorf("%q: %v %q, want %v %q", tc.in, cmd.Op, keys, tc.op, tc.keys)
		}
		if tc.check != nil && !tc.check(cmd) {
			t.Errorf("%q: wrong fields: %+v", tc.in, cmd)
		}
	}
}

func TestParseAnswersBadInputWithTheProtocolsErrors(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
	for _, tc := range []struct {
		in   string
		n    int // bytes taken; -1: the whole input
		want *Error
	}{
		{"\r\n", -1, ErrUnknownCommand},
		{"bogus\r\n", -1, ErrUnknownCommand},
		{"GET a\r\n", -1, ErrUnknownCommand},
		{"get\r\n", -1, ErrUnknownCommand},
		{"gets\r\n", -1, ErrUnknownCommand},
		{"get " + long + "\r\n", -1, ErrBadFormat},
		{"gat x k\r\n", -1, ErrBadExptime},
		{"set k 0 0\r\n", -1, ErrUnknownCommand},
		{"set k 0 0 1 2 3\r\n", -1, ErrUnknownCommand},
		{"set " + long + " 0 0 1\r\n", -1, ErrBadFormat},
		{"set k x 0 1\r\n", -1, ErrBadFormat},
		{"set k 4294967296 0 1\r\n", -1, ErrBadFormat},
		{"set k 0 x 1\r\n", -1, ErrBadFormat},
		{"set k 0 0 -1\r\n", -1, ErrBadFormat},
		{"set k 0 0 99999999999999999999\r\n", -1, ErrBadFormat},
		{"cas k 0 0 1\r\nx\r\n", len("cas k 0 0 1\r\n"), ErrUnknownCommand},
		{"cas k 0 0 1 x\r\nx\r\n", len("cas k 0 0 1 x\r\n"), ErrBadFormat},
		{"set k 0 0 3\r\nabcd\r\n", len("set k 0 0 3\r\nabcd\r"), ErrBadDataChunk},
		{"set k 0 0 2000000\r\n", -1, ErrTooLarge},
		{"delete\r\n", -1, ErrUnknownCommand},
		{"delete a b c d e\r\n", -1, ErrUnknownCommand},
		{"delete k 5\r\n", -1, ErrBadDelete},
		{"delete k 0 x\r\n", -1, ErrBadDelete},
		{"incr k\r\n", -1, ErrUnknownCommand},
		{"incr k -1\r\n", -1, ErrBadDelta},
		{"incr k 18446744073709551616\r\n", -1, ErrBadDelta},
		{"touch k\r\n", -1, ErrUnknownCommand},
		{"touch k soon\r\n", -1, ErrBadExptime},
		{"flush_all x\r\n", -1, ErrBadFormat},
		{"flush_all 1 2 3\r\n", -1, ErrUnknownCommand},
		{"stats a b\r\n", -1, ErrUnknownCommand},
		{"verbosity\r\n", -1, ErrUnknownCommand},
		{"verbosity foo bar my\r\n", -1, ErrUnknownCommand},
		{"set a b c d e f g h i j\r\n", -1, ErrUnknownCommand},
	} {
		cmd, n, err := parseOne(t, tc.in)
		want := tc.n
		if want < 0 {
			want = len(tc.in)
		}
		var perr *Error
		if !errors.As(err, &perr) || perr != tc.want || n != want {
			t.Errorf("%q: n %d err %v, want %d, %v", tc.in, n, err, want, tc.want)
		}
		if tc.want == ErrTooLarge && cmd.Swallow != 2000000+2 {
			t.Errorf("%q: swallow %d", tc.in, cmd.Swallow)
		}
	}
}

func TestParseWaitsForTheWholeRequest(t *testing.T) {
	full := "set k 0 0 5\r\nhello\r\nget k\r\n"
	for i := 0; i < len("set k 0 0 5\r\nhello\r\n"); i++ {
		cmd, n, err := parseOne(t, full[:i])
		if n != 0 || err != nil {
			t.Fatalf("%q: n %d err %v, want 0, nil", full[:i], n, err)
		}
		if i >= len("set k 0 0 5\r\n") && cmd.Need != len("set k 0 0 5\r\nhello\r\n") {
			t.Fatalf("%q: need %d", full[:i], cmd.Need)
		}
	}
	if _, n, err := parseOne(t, full); n != len("set k 0 0 5\r\nhello\r\n") || err != nil {
		t.Fatalf("whole: n %d err %v", n, err)
	}
	// A line that reaches MaxLine without a newline is refused.
	if _, n, err := parseOne(t, "get "+strings.Repeat("k ", MaxLine)); n != 0 || err != ErrLineTooLong {
		t.Fatalf("long line: n %d err %v", n, err)
	}
	if _, n, err := parseOne(t, "get "+strings.Repeat("k ", 100)); n != 0 || err != nil {
		t.Fatalf("incomplete get: n %d err %v", n, err)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	in := []byte("get alpha beta gamma\r\nset key 1 2 5 noreply\r\nvalue\r\nincr counter 10\r\n")
	var cmd Command
	parse := func() {
		for p := in; len(p) > 0; {
			n, err := Parse(p, &cmd, 0)
			if n == 0 || err != nil {
				panic(err)
			}
			p = p[n:]
		}
	}
	parse()
	if a := testing.AllocsPerRun(100, parse); a != 0 {
		t.Fatalf("%.1f allocations per run", a)
	}
}

func TestAppendValueFormatsTheRetrievalLine(t *testing.T) {
	got := string(AppendValue(nil, []byte("k"), 5, []byte("abc"), 0, false))
	if got != "VALUE k 5 3\r\nabc\r\n" {
		t.Fatalf("%q", got)
	}
	got = string(AppendValue(nil, []byte("k"), 0, nil, 18446744073709551615, true))
	if got != "VALUE k 0 0 18446744073709551615\r\n\r\n" {
		t.Fatalf("%q", got)
	}
}

func BenchmarkParseGet(b *testing.B) {
	in := []byte("get key:000000001234\r\n")
	var cmd Command
	b.ReportAllocs()
	for b.Loop() {
		Parse(in, &cmd, 0)
	}
}

func BenchmarkParseSet100(b *testing.B) {
	in := []byte("set key:000000001234 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\n")
	var cmd Command
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		Parse(in, &cmd, 0)
	}
}
