package nicq_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
)

// TestPcapFileIsByteExact checks the file format against bytes written out by
// hand from the libpcap file format description (pcap-savefile(5)).
func TestPcapFileIsByteExact(t *testing.T) {
	for _, nano := range []bool{false, true} {
		t.Run(fmt.Sprintf("nanosecond=%v", nano), func(t *testing.T) {
			var out bytes.Buffer
			w, err := nicq.NewPcapWriter(&out, nicq.PcapConfig{SnapLen: 4, Nanosecond: nano})
			if err != nil {
				t.Fatal(err)
			}
			w.WriteFrame(1_700_000_000_123_456_789, []byte{1, 2, 3})
			w.WriteFrame(-1, []byte{9, 8, 7, 6, 5}) // cut to the snapshot length; a time before 1970
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			want := []byte{
				0xd4, 0xc3, 0xb2, 0xa1, // magic, little-endian
				2, 0, 4, 0, // version 2.4
				0, 0, 0, 0, // thiszone
				0, 0, 0, 0, // sigfigs
				4, 0, 0, 0, // snaplen
				1, 0, 0, 0, // LINKTYPE_ETHERNET
				// record 1: 1700000000 s = 0x6553f100
				0x00, 0xf1, 0x53, 0x65,
				0x40, 0xe2, 0x01, 0x00, // 123456 us = 0x1e240
				3, 0, 0, 0, 3, 0, 0, 0,
				1, 2, 3,
				// record 2: -1 ns = -1 s + 999999999 ns
				0xff, 0xff, 0xff, 0xff,
				0x3f, 0x42, 0x0f, 0x00, // 999999 us = 0xf423f
				4, 0, 0, 0, 5, 0, 0, 0,
				9, 8, 7, 6,
			}
			if nano {
				copy(want[0:], []byte{0x4d, 0x3c, 0xb2, 0xa1})
				copy(want[28:], []byte{0x15, 0xcd, 0x5b, 0x07})        // 123456789 = 0x75bcd15
				copy(want[24+16+3+4:], []byte{0xff, 0xc9, 0x9a, 0x3b}) // 999999999 = 0x3b9ac9ff
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("pcap bytes\n got % x\nwant % x", out.Bytes(), want)
			}
			if w.Frames() != 2 {
				t.Fatalf("Frames() = %d, want 2", w.Frames())
			}
		})
	}
}

type pcapRecord struct {
	ts       int64
	frame    []byte
	original int
}

// readPcap is an independent reader of the classic format, for the tests.
func readPcap(t *testing.T, data []byte) (nano bool, snapLen int, records []pcapRecord) {
	t.Helper()
	if len(data) < 24 {
		t.Fatalf("pcap file of %d bytes", len(data))
	}
	le := binary.LittleEndian
	switch le.Uint32(data) {
	case nicq.PcapMagicMicroseconds:
	case nicq.PcapMagicNanoseconds:
		nano = true
	default:
		t.Fatalf("bad magic % x", data[:4])
	}
	if le.Uint16(data[4:]) != 2 || le.Uint16(data[6:]) != 4 || le.Uint32(data[20:]) != 1 {
		t.Fatalf("bad header % x", data[:24])
	}
	snapLen = int(le.Uint32(data[16:]))
	data = data[24:]
	for len(data) > 0 {
		if len(data) < 16 {
			t.Fatalf("truncated record header")
		}
		sec, frac := int64(le.Uint32(data)), int64(le.Uint32(data[4:]))
		incl, orig := int(le.Uint32(data[8:])), int(le.Uint32(data[12:]))
		if len(data) < 16+incl || incl > snapLen || incl > orig {
			t.Fatalf("bad record: incl %d orig %d snaplen %d, %d bytes left", incl, orig, snapLen, len(data)-16)
		}
		if !nano {
			frac *= 1000
		}
		records = append(records, pcapRecord{sec*1e9 + frac, data[16 : 16+incl], orig})
		data = data[16+incl:]
	}
	return nano, snapLen, records
}

func testFrames() [][]byte {
	var frames [][]byte
	for i := range 3 {
		frames = append(frames, frametest.UDP4{
			DstMAC: frametest.MACB, SrcMAC: frametest.MACA,
			Src: [4]byte{192, 0, 2, 1}, Dst: [4]byte{192, 0, 2, 2},
			SrcPort: 1234 + uint16(i), DstPort: 5678,
			Payload: []byte(fmt.Sprintf("frame %d payload", i)),
		}.Frame())
	}
	frames = append(frames, frametest.ARPRequest(frametest.MACA, [4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}))
	return frames
}

// writeTestPcap writes testFrames from buffers, one second and some
// microseconds apart, and returns the path and the timestamps.
func writeTestPcap(t *testing.T, nano bool) (string, []int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tap.pcap")
	w, err := nicq.CreatePcap(path, nicq.PcapConfig{Nanosecond: nano})
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, 8)
	var times []int64
	for i, f := range testFrames() {
		b := p.Get()
		copy(b.Append(len(f)), f)
		ts := int64(1_700_000_000+i)*1e9 + int64(i+1)*1001_001 // ...001 us, 001 ns
		if i%2 == 0 {
			b.RxTime = ts
			w.WriteReceived([]*nicq.Buf{b})
		} else {
			w.WriteBufs(ts, []*nicq.Buf{b})
		}
		times = append(times, ts)
		b.Free()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path, times
}

func TestPcapReadBackByAPureGoReader(t *testing.T) {
	for _, nano := range []bool{false, true} {
		path, times := writeTestPcap(t, nano)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		gotNano, snap, recs := readPcap(t, data)
		frames := testFrames()
		if gotNano != nano || snap != nicq.DefaultPcapSnapLen || len(recs) != len(frames) {
			t.Fatalf("nano %v snaplen %d records %d; want %v %d %d", gotNano, snap, len(recs), nano, nicq.DefaultPcapSnapLen, len(frames))
		}
		for i, r := range recs {
			want := times[i]
			if !nano {
				want -= want % 1000
			}
			if r.ts != want || !bytes.Equal(r.frame, frames[i]) || r.original != len(frames[i]) {
				t.Fatalf("record %d: ts %d len %d/%d, want ts %d and frame % x", i, r.ts, len(r.frame), r.original, want, frames[i])
			}
		}
	}
}

// requireTool skips the test when the binary is not installed.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s; .ci/run installs it): %v", name, name, err)
	}
	return path
}

func TestPcapReadBackByTcpdump(t *testing.T) {
	tcpdump := requireTool(t, "tcpdump")
	for _, nano := range []bool{false, true} {
		path, times := writeTestPcap(t, nano)
		precision := "micro"
		if nano {
			precision = "nano"
		}
		out, err := exec.Command(tcpdump, "-nn", "-e", "-tt", "--time-stamp-precision="+precision, "-r", path).CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump -r: %v\n%s", err, out)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(l, "reading from file") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 4 {
			t.Fatalf("tcpdump printed %d packets, want 4:\n%s", len(lines), out)
		}
		for i, l := range lines[:3] {
			ts := fmt.Sprintf("%d.%06d", times[i]/1e9, times[i]%1e9/1000)
			if nano {
				ts = fmt.Sprintf("%d.%09d", times[i]/1e9, times[i]%1e9)
			}
			want := []string{ts, "02:00:00:00:00:0a > 02:00:00:00:00:0b", fmt.Sprintf("192.0.2.1.%d > 192.0.2.2.5678: UDP, length 15", 1234+i)}
			for _, w := range want {
				if !strings.Contains(l, w) {
					t.Fatalf("tcpdump line %d %q lacks %q", i, l, w)
				}
			}
			if strings.Contains(l, "bad") {
				t.Fatalf("tcpdump found a bad checksum: %q", l)
			}
		}
		if !strings.Contains(lines[3], "ethertype ARP (0x0806), length 60: Request who-has 192.0.2.2 tell 192.0.2.1") {
			t.Fatalf("tcpdump ARP line: %q", lines[3])
		}
	}
}

func TestPcapReadBackByTshark(t *testing.T) {
	tshark := requireTool(t, "tshark")
	path, times := writeTestPcap(t, true)
	cmd := exec.Command(tshark, "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "frame.time_epoch", "-e", "eth.src", "-e", "eth.dst", "-e", "frame.protocols", "-e", "udp.srcport", "-e", "udp.checksum.status",
		"-o", "udp.check_checksum:TRUE")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // tshark wants a writable profile directory
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark -r: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("tshark -r: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		t.Fatalf("tshark printed %d packets, want 4:\n%s", len(lines), out)
	}
	for i, l := range lines {
		f := strings.Split(l, "|")
		if len(f) != 6 {
			t.Fatalf("tshark line %q", l)
		}
		ts := fmt.Sprintf("%d.%09d", times[i]/1e9, times[i]%1e9)
		if f[0] != ts || f[1] != "02:00:00:00:00:0a" {
			t.Fatalf("tshark packet %d: time %s src %s, want %s 02:00:00:00:00:0a", i, f[0], f[1], ts)
		}
		if i < 3 {
			if f[3] != "eth:ethertype:ip:udp:data" || f[4] != fmt.Sprint(1234+i) || f[5] != "1" {
				t.Fatalf("tshark packet %d: protocols %s port %s checksum status %s; want eth:ethertype:ip:udp:data %d 1 (good)", i, f[3], f[4], f[5], 1234+i)
			}
		} else if f[2] != "ff:ff:ff:ff:ff:ff" || f[3] != "eth:ethertype:arp" {
			t.Fatalf("tshark packet %d: dst %s protocols %s, want a broadcast ARP", i, f[2], f[3])
		}
	}
}

func TestPcapWriteAllocatesNothing(t *testing.T) {
	w, err := nicq.NewPcapWriter(discard{}, nicq.PcapConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, 32)
	bufs := make([]*nicq.Buf, 32)
	p.GetBatch(bufs)
	frame := testFrames()[0]
	for _, b := range bufs {
		copy(b.Append(len(frame)), frame)
	}
	allocs := testing.AllocsPerRun(100, func() {
		w.WriteBufs(1, bufs)
		w.WriteReceived(bufs)
		w.WriteFrame(2, frame)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per burst written, want 0", allocs)
	}
	nicq.FreeAll(bufs)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errors.New("disk full")
	}
	f.after -= len(p)
	return len(p), nil
}

func TestPcapKeepsTheFirstWriteError(t *testing.T) {
	fw := &failingWriter{after: 24 + 100}
	w, err := nicq.NewPcapWriter(fw, nicq.PcapConfig{})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 40_000)
	w.WriteFrame(0, big) // fills the 64 KiB buffer partly
	w.WriteFrame(0, big) // forces a write, which fails
	w.WriteFrame(0, big) // skipped
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close() = %v, want the disk full error", err)
	}
	if w.Frames() != 1 {
		t.Fatalf("Frames() = %d, want 1 written before the error", w.Frames())
	}
	if _, err := nicq.NewPcapWriter(discard{}, nicq.PcapConfig{SnapLen: -1}); !errors.Is(err, nicq.ErrInvalidConfig) {
		t.Fatalf("negative snaplen: %v", err)
	}
	if _, err := nicq.CreatePcap(filepath.Join(t.TempDir(), "no", "such", "dir.pcap"), nicq.PcapConfig{}); err == nil || !strings.Contains(err.Error(), "create pcap file") {
		t.Fatalf("CreatePcap in a missing directory: %v", err)
	}
}
