package header

import (
	"bytes"
	"testing"
)

func TestTCPOptionsParseEdgeCases(t *testing.T) {
	cases := []struct {
		name string
		opts []byte
		want TCPOptions
		err  DropReason
	}{
		{"none", nil, TCPOptions{}, DropNone},
		{"NOPs only", []byte{1, 1, 1, 1}, TCPOptions{}, DropNone},
		{"EOL ends the list; what follows is ignored", []byte{2, 4, 0x05, 0xb4, 0, 0xff, 0x00, 0x13}, TCPOptions{HasMSS: true, MSS: 1460}, DropNone},
		{"unknown option skipped", []byte{0xfd, 4, 0xaa, 0xbb, 3, 3, 7, 0}, TCPOptions{HasWindowScale: true, WindowScale: 7}, DropNone},
		{"unknown option of length 2", []byte{30, 2, 4, 2}, TCPOptions{SACKPermitted: true}, DropNone},
		{"window scale 15 used as 14", []byte{3, 3, 15, 1}, TCPOptions{HasWindowScale: true, WindowScale: 14}, DropNone},
		{"later MSS wins", []byte{2, 4, 0, 100, 2, 4, 0, 200}, TCPOptions{HasMSS: true, MSS: 200}, DropNone},
		{"SACK one block", []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9}, TCPOptions{NumSACKBlocks: 1, SACKBlocks: [4]SACKBlock{{1, 9}}}, DropNone},
		{"second SACK option replaces the first", []byte{5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 5, 10, 0, 0, 0, 7, 0, 0, 0, 8}, TCPOptions{NumSACKBlocks: 1, SACKBlocks: [4]SACKBlock{{7, 8}}}, DropNone},
		{"zero-length option", []byte{2, 0, 0, 0}, TCPOptions{}, DropBadTCPOption},
		{"length-1 option", []byte{0x99, 1, 0, 0}, TCPOptions{}, DropBadTCPOption},
		{"kind without length at the end", []byte{1, 1, 1, 2}, TCPOptions{}, DropBadTCPOption},
		{"length past the end", []byte{8, 10, 0, 0, 0, 0}, TCPOptions{}, DropBadTCPOption},
		{"unknown length past the end", []byte{0x99, 5, 0, 0}, TCPOptions{}, DropBadTCPOption},
		{"MSS of length 3", []byte{2, 3, 0, 1}, TCPOptions{}, DropBadTCPOption},
		{"window scale of length 4", []byte{3, 4, 0, 1}, TCPOptions{}, DropBadTCPOption},
		{"SACK-permitted of length 3", []byte{4, 3, 0, 1}, TCPOptions{}, DropBadTCPOption},
		{"timestamps of length 8", []byte{8, 8, 0, 0, 0, 0, 0, 0}, TCPOptions{}, DropBadTCPOption},
		{"SACK with no block", []byte{1, 1, 5, 2}, TCPOptions{}, DropBadTCPOption},
		{"SACK with a partial block", []byte{5, 6, 0, 0, 0, 0}, TCPOptions{}, DropBadTCPOption},
		{"good options before a bad one are kept", []byte{2, 4, 0x05, 0xb4, 4, 2, 3, 0}, TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true}, DropBadTCPOption},
	}
	for _, c := range cases {
		var got TCPOptions
		got.MSS = 0xdead // ParseTCPOptions must clear it
		err := ParseTCPOptions(c.opts, &got)
		if err != c.err || got != c.want {
			t.Errorf("%s: got %+v, %v\nwant %+v, %v", c.name, got, err, c.want, c.err)
		}
	}
}

func TestTCPOptionIteratorYieldsKindsInOrder(t *testing.T) {
	// The captured SYN's options: MSS, SACK-permitted, Timestamps, NOP,
	// Window Scale.
	s := mustTCP(t, mustIPv4(t, mustEthernet(t, capturedSYN).Payload()))
	it := IterateTCPOptions(s.Options())
	var kinds []uint8
	for opt, ok := it.Next(); ok; opt, ok = it.Next() {
		kinds = append(kinds, opt.Kind)
		switch opt.Kind {
		case TCPOptionMSS:
			check(t, "MSS", opt.MSS(), 1460)
		case TCPOptionWindowScale:
			check(t, "WindowScale", opt.WindowScale(), 10)
		case TCPOptionTimestamps:
			v, e := opt.Timestamps()
			check(t, "TSval", v, 0xe0f1cffc)
			check(t, "TSecr", e, 0)
		}
	}
	check(t, "Err", it.Err(), DropNone)
	if !bytes.Equal(kinds, []byte{2, 4, 8, 3}) {
		t.Fatalf("kinds %v, want [2 4 8 3]", kinds)
	}
	// After the end, Next stays at the end.
	if _, ok := it.Next(); ok {
		t.Fatal("Next after the end returned an option")
	}
}

func TestTCPOptionsEncodeSACKBlocksThatFit(t *testing.T) {
	blocks := [4]SACKBlock{{100, 200}, {300, 400}, {500, 600}, {700, 800}}
	cases := []struct {
		name       string
		o          TCPOptions
		wantLen    int
		wantBlocks int
	}{
		{"four blocks alone", TCPOptions{NumSACKBlocks: 4, SACKBlocks: blocks}, 36, 4},
		{"timestamps leave room for three", TCPOptions{HasTimestamps: true, TSVal: 1, TSEcr: 2, NumSACKBlocks: 4, SACKBlocks: blocks}, 40, 3},
		{"two with timestamps", TCPOptions{HasTimestamps: true, NumSACKBlocks: 2, SACKBlocks: blocks}, 32, 2},
		{"SYN: MSS, SACK-permitted, TS, WS", TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamps: true, HasWindowScale: true, WindowScale: 7}, 20, 0},
		{"SACK-permitted without timestamps", TCPOptions{SACKPermitted: true}, 4, 0},
		{"everything: two blocks fit", TCPOptions{HasMSS: true, SACKPermitted: true, HasTimestamps: true, HasWindowScale: true, NumSACKBlocks: 4, SACKBlocks: blocks}, 40, 2},
	}
	for _, c := range cases {
		var b [TCPMaximumOptionsSize]byte
		n := EncodeTCPOptions(b[:], &c.o)
		if n != c.wantLen || n != c.o.EncodedLength() || n%4 != 0 {
			t.Errorf("%s: wrote %d bytes, EncodedLength %d, want %d", c.name, n, c.o.EncodedLength(), c.wantLen)
			continue
		}
		var back TCPOptions
		if r := ParseTCPOptions(b[:n], &back); r != DropNone {
			t.Errorf("%s: parse back: %v", c.name, r)
			continue
		}
		want := c.o
		want.NumSACKBlocks = c.wantBlocks
		want.SACKBlocks = [4]SACKBlock{}
		copy(want.SACKBlocks[:], blocks[:c.wantBlocks])
		if back != want {
			t.Errorf("%s: parsed back %+v, want %+v", c.name, back, want)
		}
	}
	// Exact bytes of SACK-permitted alone and window scale: NOP-aligned.
	var b [8]byte
	n := EncodeTCPOptions(b[:], &TCPOptions{SACKPermitted: true, HasWindowScale: true, WindowScale: 9})
	if got := b[:n]; !bytes.Equal(got, []byte{1, 1, 4, 2, 1, 3, 3, 9}) {
		t.Fatalf("encoded % x", got)
	}
}
