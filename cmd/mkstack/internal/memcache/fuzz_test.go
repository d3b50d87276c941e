package memcache

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse as a connection would, request
// after request, and checks its contract: no panic; progress or a clear
// "need more"; bytes taken within the input; views inside the input; keys
// within the limit; an error only as one of the protocol's replies.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"get a\r\n",
		"get a b c\r\ngets d\r\n",
		"set k 0 0 5\r\nhello\r\n",
		"set k 0 0 5 noreply\r\nhello\r\nget k\r\n",
		"cas k 1 2 3 4\r\nabc\r\n",
		"append k 0 0 1\r\nx\r\nprepend k 0 0 1\r\ny\r\n",
		"incr k 1\r\ndecr k 18446744073709551615 noreply\r\n",
		"touch k 10\r\ngat 10 k\r\ngats -1 k j\r\n",
		"delete k 0 noreply\r\ndelete a b c d e\r\n",
		"flush_all 10 noreply\r\nstats\r\nstats reset\r\nversion\r\nverbosity 1\r\nquit\r\n",
		"set k 0 0 3\r\nabcd\r\n",
		"set k 0 0 -1\r\n",
		"set k 0 0 2000000\r\n",
		"\r\n\n\r\r\n",
		"get " + string(bytes.Repeat([]byte("k"), 251)) + "\r\n",
		"set k 99999999999 0 1\r\nx\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var cmd Command
		p := in
		for steps := 0; len(p) > 0; steps++ {
			if steps > len(in) {
				t.Fatal("no progress")
			}
			n, err := Parse(p, &cmd, 1<<16)
			if n < 0 || n > len(p) {
				t.Fatalf("took %d of %d bytes", n, len(p))
			}
			if err != nil {
				var perr *Error
				if !errors.As(err, &perr) || !bytes.HasSuffix(perr.Reply(), []byte("\r\n")) {
					t.Fatalf("error %v is not a protocol reply", err)
				}
				if n == 0 {
					if err != ErrLineTooLong {
						t.Fatalf("error %v took no bytes", err)
					}
					return
				}
				if err == ErrTooLarge {
					n += min(cmd.Swallow, len(p)-n)
				}
				p = p[n:]
				continue
			}
			if n == 0 {
				return // needs more
			}
			if cmd.Op == OpNone {
				t.Fatal("a request with no command")
			}
			for _, k := range cmd.Keys {
				if len(k) == 0 || len(k) > MaxKeyLen || bytes.ContainsAny(k, " \n") || !within(k, p[:n]) {
					t.Fatalf("bad key %q", k)
				}
			}
			if cmd.Op.IsStorage() && (len(cmd.Keys) != 1 || !within(cmd.Data, p[:n])) {
				t.Fatalf("storage command %v: keys %d", cmd.Op, len(cmd.Keys))
			}
			p = p[n:]
		}
	})
}

// within reports whether b is a sub-slice of p (or empty).
func within(b, p []byte) bool {
	if len(b) == 0 {
		return true
	}
	for i := 0; i+len(b) <= len(p); i++ {
		if &p[i] == &b[0] {
			return true
		}
	}
	return false
}
