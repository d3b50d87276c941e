package main

import (
	"bytes"
	"strings"
	"testing"
)

// defaultKeyHex is the Microsoft specification's key as ethtool -x prints it.
const defaultKeyHex = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:" +
	"ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa"

func runRSSCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"rss"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// The expected lines are the Microsoft specification's verification hashes;
// the queue is entry (hash & (M-1)) of a table filled round-robin, so queue
// = (hash & (M-1)) % N.
func TestRSSCommandPrintsTheSpecificationHashesAndTheirQueues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		// 0x51ccc178: 0x78 = 120; 120 % 4 = 0.
		{[]string{"--queues", "4", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=0"},
		// 120 % 7 = 1; flags after the addresses work too.
		{[]string{"66.9.149.187:2794", "161.142.100.80:1766", "--queues", "7"}, "hash=0x51ccc178 queue=1"},
		// UDP hashes the same 4-tuple.
		{[]string{"--proto", "udp", "--queues", "7", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=1"},
		// 64 entries: 0x78 & 63 = 56; 56 % 3 = 2. 512 entries: 0x178 = 376; 376 % 3 = 1.
		{[]string{"--queues", "3", "--reta-size", "64", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=2"},
		{[]string{"--queues", "3", "--reta-size", "512", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=1"},
		// 100 entries (not a power of two): 0x51ccc178 % 100 = 68; 68 % 3 = 2.
		{[]string{"--queues", "3", "--reta-size", "100", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=2"},
		// The other IPv4 rows: 0x6a = 106, 0x4a = 74, 0x7f = 127, 0x22 = 34.
		{[]string{"--queues", "4", "199.92.111.2:14230", "65.69.140.83:4739"}, "hash=0xc626b0ea queue=2"},
		{[]string{"--queues", "4", "24.19.198.95:12898", "12.22.207.184:38024"}, "hash=0x5c2b394a queue=2"},
		{[]string{"--queues", "4", "38.27.205.30:48228", "209.142.163.6:2217"}, "hash=0xafc7327f queue=3"},
		{[]string{"--queues", "4", "153.39.163.191:44251", "202.188.127.2:1303"}, "hash=0x10e828a2 queue=2"},
		// Addresses only: 0x323e8fc2: 0x42 = 66; 66 % 4 = 2.
		{[]string{"--proto", "ip", "--queues", "4", "66.9.149.187", "161.142.100.80"}, "hash=0x323e8fc2 queue=2"},
		// IPv6 rows: 0x3d = 61, 0x3f = 63, 0x6f = 111; addresses only 0x55 = 85.
		{[]string{"--queues", "4", "[3ffe:2501:200:1fff::7]:2794", "[3ffe:2501:200:3::1]:1766"}, "hash=0x40207d3d queue=1"},
		{[]string{"--queues", "4", "[3ffe:501:8::260:97ff:fe40:efab]:14230", "[ff02::1]:4739"}, "hash=0xdde51bbf queue=3"},
		{[]string{"--queues", "4", "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251", "[fe80::200:f8ff:fe21:67cf]:38024"}, "hash=0x02d1feef queue=3"},
		{[]string{"--proto", "ip", "--queues", "4", "3ffe:2501:200:1fff::7", "[3ffe:2501:200:3::1]"}, "hash=0x2cc18cd5 queue=1"},
		// The key as ethtool prints it, colon- or comma-separated.
		{[]string{"--key", defaultKeyHex, "--queues", "4", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=0"},
		{[]string{"--key", strings.ReplaceAll(defaultKeyHex, ":", ","), "--queues", "4", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x51ccc178 queue=0"},
		// The symmetric key: both directions alike. 0x4c = 76; 76 % 4 = 0.
		{[]string{"--key", "symmetric", "--queues", "4", "66.9.149.187:2794", "161.142.100.80:1766"}, "hash=0x9fcc9fcc queue=0"},
		{[]string{"--key", "symmetric", "--queues", "4", "161.142.100.80:1766", "66.9.149.187:2794"}, "hash=0x9fcc9fcc queue=0"},
		// 0x7e = 126; 126 % 4 = 2.
		{[]string{"--key", "symmetric", "--proto", "ip", "--queues", "4", "3ffe:2501:200:3::1", "3ffe:2501:200:1fff::7"}, "hash=0x867e867e queue=2"},
	} {
		stdout, stderr, code := runRSSCommand(t, c.args...)
		if code != 0 || stdout != c.want+"\n" || stderr != "" {
			t.Errorf("mkstack rss %s:\n exit %d, stdout %q, stderr %q\n want %q", strings.Join(c.args, " "), code, stdout, stderr, c.want)
		}
	}
}

func TestRSSCommandRejectsBadInputWithOneLineAndStatus2(t *testing.T) {
	v4 := []string{"66.9.149.187:2794", "161.142.100.80:1766"}
	for _, c := range []struct {
		args []string
		want string // part of the one-line message
	}{
		{[]string{"66.9.149:2794", "161.142.100.80:1766"}, `address "66.9.149:2794": not an IP address`},
		{[]string{"66.9.149.187:99999", "161.142.100.80:1766"}, `port "99999"`},
		{[]string{"[3ffe::1:2794", "[3ffe::2]:1766"}, "missing ']'"},
		{append([]string{"--key", "6d:5a:56"}, v4...), "--key: key has 3 bytes, want 40 or 52"},
		{append([]string{"--key", "6d:5a:zz" + defaultKeyHex[8:]}, v4...), `--key: key byte 2 "zz"`},
		{append([]string{"--key", "bogus"}, v4...), `--key: key byte 0 "bo": not hex`},
		{[]string{"66.9.149.187", "161.142.100.80:1766"}, "SRC 66.9.149.187 has no port; tcp hashes ports"},
		{[]string{"--proto", "udp", "66.9.149.187:1", "161.142.100.80"}, "DST 161.142.100.80 has no port; udp hashes ports"},
		{append([]string{"--proto", "ip"}, v4...), "SRC 66.9.149.187:2794 has a port, but --proto ip hashes addresses only"},
		{append([]string{"--proto", "sctp"}, v4...), `--proto "sctp": want tcp, udp or ip`},
		{[]string{"66.9.149.187:2794", "[::1]:80"}, "must both be IPv4 or both IPv6"},
		{append([]string{"--queues", "-1"}, v4...), "-1 queues"},
		{append([]string{"--queues", "129"}, v4...), "129 queues for a 128-entry"},
		{append([]string{"--reta-size", "32", "--queues", "2"}, v4...), "32 entries, want 64 to 512"},
		{append([]string{"--queues", "four"}, v4...), `invalid value "four" for flag -queues`},
		{append([]string{"--nope"}, v4...), "flag provided but not defined: -nope"},
		{[]string{"66.9.149.187:2794"}, "got 1 arguments"},
		{append(v4, "1.2.3.4:5"), "got 3 arguments"},
		{nil, "got 0 arguments"},
	} {
		stdout, stderr, code := runRSSCommand(t, c.args...)
		if code != 2 {
			t.Errorf("mkstack rss %s: exit %d, want 2 (stderr %q)", strings.Join(c.args, " "), code, stderr)
		}
		if stdout != "" {
			t.Errorf("mkstack rss %s: stdout %q, want nothing", strings.Join(c.args, " "), stdout)
		}
		if !strings.HasPrefix(stderr, "mkstack rss: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("mkstack rss %s: stderr %q is not one line", strings.Join(c.args, " "), stderr)
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("mkstack rss %s: stderr %q, want it to say %q", strings.Join(c.args, " "), stderr, c.want)
		}
	}
}

func TestRSSCommandHelpExits0(t *testing.T) {
	stdout, _, code := runRSSCommand(t, "-h")
	if code != 0 || !strings.HasPrefix(stdout, "usage: mkstack rss [--key default|symmetric|HEX]") {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

func TestRSSCommandDefaultsToOneQueuePerCPU(t *testing.T) {
	// Whatever the CPU count, the queue is in range and the hash is the
	// spec's.
	stdout, stderr, code := runRSSCommand(t, "66.9.149.187:2794", "161.142.100.80:1766")
	if code != 0 || !strings.HasPrefix(stdout, "hash=0x51ccc178 queue=") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
