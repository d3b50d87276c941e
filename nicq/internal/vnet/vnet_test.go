package vnet

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/mkstack/mkstack/nicq"
	"github.com/mkstack/mkstack/nicq/frametest"
)

var (
	srcIP = [4]byte{10, 77, 0, 2}
	dstIP = [4]byte{10, 77, 0, 1}
)

// tcpFrame is a large IPv4 TCP frame as a local sender hands it to a
// device with TSO: one header (with 12 bytes of options), payload bytes,
// a total length for the whole, and the checksum field partial.
func tcpFrame(payload int, flags byte) []byte {
	u := frametest.UDP4{DstMAC: frametest.MACB, SrcMAC: frametest.MACA, Src: srcIP, Dst: dstIP, SrcPort: 1, DstPort: 2}
	f := u.Frame()[:34] // Ethernet and IPv4 headers
	f[14+9] = protoTCP
	binary.BigEndian.PutUint16(f[14+4:], 0x1234) // IP ID
	tcp := make([]byte, 32)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps during the frame
	tcp[12] = 8 << 4
	tcp[13] = flags
	f = append(f, tcp...)
	for i := 0; i < payload; i++ {
		f = append(f, byte(i*7))
	}
	binary.BigEndian.PutUint16(f[14+2:], uint16(len(f)-14))
	return f
}

func segmentAll(t *testing.T, frame []byte, h Hdr) [][]byte {
	t.Helper()
	var s Segmenter
	if !s.Init(frame, h) {
		t.Fatal("Init refused a frame it should segment")
	}
	var out [][]byte
	dst := make([]byte, 2048)
	for s.Active() {
		n := s.Next(dst)
		if n == 0 {
			t.Fatal("Next wrote nothing while active")
		}
		out = append(out, append([]byte(nil), dst[:n]...))
	}
	return out
}

func ipChecksumOK(ip []byte) bool { return fold(sum16(ip[:int(ip[0]&0xf)*4], 0)) == 0xffff }

func TestSegmentTCPLikeLinuxGSO(t *testing.T) {
	const mss = 1448
	payload := 3*mss + 100
	frame := tcpFrame(payload, 0x80|0x10|0x08|0x01) // CWR ACK PSH FIN
	segs := segmentAll(t, frame, Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: mss, HdrLen: 66, CsumStart: 34, CsumOffset: 16})
	if len(segs) != 4 {
		t.Fatalf("%d segments, want 4", len(segs))
	}
	var data []byte
	for i, s := range segs {
		ip, tcp := s[14:34], s[34:]
		want := mss
		if i == 3 {
			want = 100
		}
		if got := len(s) - 66; got != want {
			t.Errorf("segment %d: %d payload bytes, want %d", i, got, want)
		}
		if int(binary.BigEndian.Uint16(ip[2:])) != len(s)-14 || !ipChecksumOK(ip) {
			t.Errorf("segment %d: IPv4 total length %d for %d bytes, checksum ok %v", i, binary.BigEndian.Uint16(ip[2:]), len(s)-14, ipChecksumOK(ip))
		}
		if id := binary.BigEndian.Uint16(ip[4:]); id != 0x1234+uint16(i) {
			t.Errorf("segment %d: IP ID %#x", i, id)
		}
		if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0xfffff000+uint32(i*mss) {
			t.Errorf("segment %d: seq %#x", i, seq)
		}
		wantFlags := byte(0x10)
		if i == 0 {
			wantFlags |= 0x80
		}
		if i == 3 {
			wantFlags |= 0x08 | 0x01
		}
		if tcp[13] != wantFlags {
			t.Errorf("segment %d: flags %#x, want %#x", i, tcp[13], wantFlags)
		}
		pseudo := fold(sum16(append(srcIP[:], dstIP[:]...), protoTCP+uint32(len(tcp))))
		if f := binary.BigEndian.Uint16(tcp[16:]); f != pseudo {
			t.Errorf("segment %d: checksum field %#x, want the partial %#x", i, f, pseudo)
		}
		if !bytes.Equal(tcp[20:32], frame[34+20:34+32]) {
			t.Errorf("segment %d: options changed", i)
		}
		data = append(data, s[66:]...)
	}
	if !bytes.Equal(data, frame[66:]) {
		t.Error("the segments' payloads are not the frame's")
	}
}

func TestSegmentUDPL4MakesDatagrams(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 290) // 2900 = 1400+1400+100
	frame := frametest.UDP4{DstMAC: frametest.MACB, SrcMAC: frametest.MACA, Src: srcIP, Dst: dstIP, SrcPort: 5, DstPort: 9, Payload: payload}.Frame()
	segs := segmentAll(t, frame, Hdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1400})
	if len(segs) != 3 {
		t.Fatalf("%d datagrams, want 3", len(segs))
	}
	for i, s := range segs {
		u := s[34:]
		if l := int(binary.BigEndian.Uint16(u[4:])); l != len(u) || !ipChecksumOK(s[14:]) {
			t.Errorf("datagram %d: UDP length %d for %d bytes, IP checksum ok %v", i, l, len(u), ipChecksumOK(s[14:]))
		}
		if !bytes.Equal(u[8:], payload[i*1400:min(len(payload), (i+1)*1400)]) {
			t.Errorf("datagram %d: payload differs", i)
		}
	}
}

func TestInitRefusesWhatItCannotSegment(t *testing.T) {
	tcp := tcpFrame(3000, 0x10)
	udp := frametest.UDP4{DstMAC: frametest.MACB, SrcMAC: frametest.MACA, Src: srcIP, Dst: dstIP, Payload: make([]byte, 3000)}.Frame()
	vlan := append(append(append([]byte{}, tcp[:12]...), 0x81, 0, 0, 5), tcp[12:]...)
	for name, c := range map[string]struct {
		frame []byte
		h     Hdr
	}{
		"TCPv6 type, IPv4 frame": {tcp, Hdr{GSOType: GSOTCPv6, GSOSize: 1448}},
		"TCPv4 type, IPv6 frame": {tcp6Frame(3000), Hdr{GSOType: GSOTCPv4, GSOSize: 1448}},
		"UFO":                    {udp, Hdr{GSOType: GSOUDP, GSOSize: 1448}},
		"no segment size":        {tcp, Hdr{GSOType: GSOTCPv4}},
		"TCP type, UDP frame":    {udp, Hdr{GSOType: GSOTCPv4, GSOSize: 1448}},
		"VLAN tag":               {vlan, Hdr{GSOType: GSOTCPv4, GSOSize: 1448}},
		"headers only":           {tcp[:66], Hdr{GSOType: GSOTCPv4, GSOSize: 1448}},
		"cut in the TCP header":  {tcp[:40], Hdr{GSOType: GSOTCPv4, GSOSize: 1448}},
	} {
		var s Segmenter
		if s.Init(c.frame, c.h) || s.Active() {
			t.Errorf("%s: Init accepted it", name)
		}
	}
}

func TestParseAndFlags(t *testing.T) {
	b := make([]byte, HdrLen)
	b[0], b[1] = FlagNeedsCsum, GSOTCPv4|GSOECN
	binary.NativeEndian.PutUint16(b[4:], 1448)
	h, ok := Parse(b)
	if !ok || h.GSOSize != 1448 || !h.GSO() || h.BufFlags() != nicq.FlagL4ChecksumPartial {
		t.Fatalf("Parse: %+v %v, flags %v", h, ok, h.BufFlags())
	}
	if h, _ := Parse(Zero[:]); h.GSO() || h.BufFlags() != 0 {
		t.Fatalf("the zero header: %+v", h)
	}
	if h, _ := Parse([]byte{FlagDataValid, 0, 0, 0, 0, 0, 0, 0, 0, 0}); h.BufFlags() != nicq.FlagL4ChecksumVerified {
		t.Fatalf("DATA_VALID: %v", h.BufFlags())
	}
	if _, ok := Parse(b[:HdrLen-1]); ok {
		t.Fatal("Parse took a short header")
	}
}

func TestNextAllocatesNothing(t *testing.T) {
	frame := tcpFrame(20000, 0x10)
	dst := make([]byte, 2048)
	var s Segmenter
	allocs := testing.AllocsPerRun(100, func() {
		s.Init(frame, Hdr{GSOType: GSOTCPv4, GSOSize: 1448})
		for s.Next(dst) > 0 {
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per frame", allocs)
	}
}

// FuzzSegment feeds arbitrary bytes as a virtio-net header (the first
// HdrLen) and a frame, as a TAP or packet socket would hand them over, and
// checks that the segmenter never panics, never writes a segment longer
// than it announced, and hands out every payload byte once, in order.
func FuzzSegment(f *testing.F) {
	le := func(h Hdr) []byte {
		b := make([]byte, HdrLen)
		b[0], b[1] = h.Flags, h.GSOType
		binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
		binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
		binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
		binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
		return b
	}
	udp := frametest.UDP4{DstMAC: frametest.MACB, SrcMAC: frametest.MACA, Src: srcIP, Dst: dstIP, Payload: make([]byte, 3000)}.Frame()
	for _, seed := range [][]byte{
		append(le(Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1448}), tcpFrame(5000, 0x19)...),
		append(le(Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1}), tcpFrame(10, 0x10)...),
		append(le(Hdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1400}), udp...),
		append(le(Hdr{GSOType: GSOTCPv4 | GSOECN, GSOSize: 536}), tcpFrame(1000, 0x90)...),
		append(le(Hdr{}), tcpFrame(100, 0x10)...),
		le(Hdr{GSOType: GSOTCPv4, GSOSize: 100}),
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, ok := Parse(data)
		if !ok {
			return
		}
		frame := data[HdrLen:]
		orig := append([]byte(nil), frame...)
		var s Segmenter
		if !s.Init(frame, h) {
			if s.Active() {
				t.Fatal("refused but active")
			}
			return
		}
		hdr, max := s.hdrLen, s.MaxSegment()
		if s.Next(make([]byte, max-1)) != 0 {
			t.Fatal("Next wrote into a buffer shorter than MaxSegment")
		}
		dst := make([]byte, max+64)
		var payload []byte
		for i := 0; s.Active(); i++ {
			n := s.Next(dst)
			if n <= hdr || n > max {
				t.Fatalf("segment %d: %d bytes; headers %d, max %d", i, n, hdr, max)
			}
			payload = append(payload, dst[hdr:n]...)
		}
		if !bytes.Equal(payload, orig[hdr:]) {
			t.Fatal("the payload came out changed")
		}
		if !bytes.Equal(frame, orig) {
			t.Fatal("the frame was written to")
		}
	})
}

var (
	src6 = [16]byte{0: 0xfd, 1: 0x77, 15: 2}
	dst6 = [16]byte{0: 0xfd, 1: 0x77, 15: 1}
)

// tcp6Frame is tcpFrame over IPv6: a 40-byte header with no extension
// headers, its payload length for the whole.
func tcp6Frame(payload int) []byte {
	v4 := tcpFrame(payload, 0x10|0x08)
	f := append([]byte(nil), v4[:14]...)
	binary.BigEndian.PutUint16(f[12:], etherTypeIP6)
	ip := make([]byte, 40)
	ip[0] = 6 << 4
	ip[6], ip[7] = protoTCP, 64
	copy(ip[8:], src6[:])
	copy(ip[24:], dst6[:])
	f = append(append(f, ip...), v4[34:]...)
	binary.BigEndian.PutUint16(f[14+4:], uint16(len(f)-54))
	return f
}

func TestSegmentTCPv6(t *testing.T) {
	const mss = 1428
	frame := tcp6Frame(2*mss + 7)
	segs := segmentAll(t, frame, Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv6, GSOSize: mss, HdrLen: 86, CsumStart: 54, CsumOffset: 16})
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	var data []byte
	for i, s := range segs {
		ip, tcp := s[14:54], s[54:]
		if pl := int(binary.BigEndian.Uint16(ip[4:])); pl != len(tcp) {
			t.Errorf("segment %d: payload length %d for %d bytes", i, pl, len(tcp))
		}
		if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0xfffff000+uint32(i*mss) {
			t.Errorf("segment %d: seq %#x", i, seq)
		}
		if psh := tcp[13]&0x08 != 0; psh != (i == 2) {
			t.Errorf("segment %d: PSH %v", i, psh)
		}
		pseudo := fold(sum16(append(src6[:], dst6[:]...), protoTCP+uint32(len(tcp))))
		if f := binary.BigEndian.Uint16(tcp[16:]); f != pseudo {
			t.Errorf("segment %d: checksum field %#x, want the partial %#x", i, f, pseudo)
		}
		data = append(data, s[86:]...)
	}
	if !bytes.Equal(data, frame[86:]) {
		t.Error("the segments' payloads are not the frame's")
	}
}

// TestStartAndFillCutIntoPoolBuffers: a large frame behind its
// virtio-net header is cut into a pool's buffers, marked partial and
// counted; when the pool runs dry the rest of the frame is dropped and
// counted, and the segmenter goes idle.
func TestStartAndFillCutIntoPoolBuffers(t *testing.T) {
	const mss = 1448
	frame := tcpFrame(2*mss+10, 0x10)
	hdr := make([]byte, HdrLen)
	hdr[0], hdr[1] = FlagNeedsCsum, GSOTCPv4
	binary.NativeEndian.PutUint16(hdr[4:], mss)
	big := append(hdr, frame...)
	for _, c := range []struct {
		buffers, want int
		drops         uint64
	}{{8, 3, 0}, {1, 1, 1}} {
		pool, err := nicq.NewPool(nicq.PoolConfig{Name: "fill", Buffers: c.buffers})
		if err != nil {
			t.Fatal(err)
		}
		var s Segmenter
		if !s.Start(big, 1514) {
			t.Fatal("Start refused a TSO frame")
		}
		var cnt nicq.Counters
		bufs := make([]*nicq.Buf, 4)
		got := s.Fill(bufs, 0, pool, 3, &cnt)
		if got != c.want || cnt.RxPackets != uint64(c.want) || cnt.Drops[nicq.DropNoBuffer] != c.drops || s.Active() {
			t.Fatalf("%d buffers: got %d, counted %d, no-buffer drops %d, active %v; want %d, %d, %d, idle", c.buffers, got, cnt.RxPackets, cnt.Drops[nicq.DropNoBuffer], s.Active(), c.want, c.want, c.drops)
		}
		for _, b := range bufs[:got] {
			if b.RxQueue != 3 || b.Flags != nicq.FlagL4ChecksumPartial {
				t.Fatalf("segment queue %d flags %v", b.RxQueue, b.Flags)
			}
			b.Free()
		}
	}
	var s Segmenter
	if s.Start(big[:HdrLen+60], 1514) || s.Active() {
		t.Fatal("Start took a frame cut in its headers")
	}
	if s.Start(big, 1000) || s.Active() {
		t.Fatal("Start took a frame whose segments exceed maxFrame")
	}
}

// TSO's header for a frame the stack built (IPv4 and IPv6 TCP) names the
// GSO type, the headers' length and the checksum's place; Parse reads
// back what Put wrote; anything else gets no header.
func TestTSOHeader(t *testing.T) {
	v4 := make([]byte, 14+20+32+5000)
	v4[12], v4[13] = 0x08, 0x00
	v4[14], v4[14+9] = 0x45, protoTCP
	v4[14+20+12] = 8 << 4 // 32-byte TCP header
	v6 := make([]byte, 14+40+20+3000)
	v6[12], v6[13] = 0x86, 0xdd
	v6[14], v6[14+6] = 0x60, protoTCP
	v6[14+40+12] = 5 << 4
	for _, c := range []struct {
		frame []byte
		want  Hdr
	}{
		{v4, Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}},
		{v6, Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv6, HdrLen: 74, GSOSize: 1448, CsumStart: 54, CsumOffset: 16}},
	} {
		h, ok := TSO(c.frame, 1448)
		if !ok || h != c.want {
			t.Errorf("TSO: %+v %v, want %+v", h, ok, c.want)
		}
		var b [HdrLen]byte
		h.Put(b[:])
		if back, ok := Parse(b[:]); !ok || back != h {
			t.Errorf("Parse(Put(%+v)) = %+v", h, back)
		}
	}
	udp := append([]byte(nil), v4...)
	udp[14+9] = protoUDP
	for _, f := range [][]byte{udp, v4[:40], nil} {
		if h, ok := TSO(f, 1448); ok {
			t.Errorf("TSO of a %d-byte frame that is not a TCP segment: %+v", len(f), h)
		}
	}
	if _, ok := TSO(v4, 0); ok {
		t.Error("TSO with a segment size of 0")
	}
}
