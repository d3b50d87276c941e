package nicq

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// The classic libpcap file format: a 24-byte file header, then per frame a
// 16-byte record header and the captured bytes. The magic number, written in
// the writer's byte order, tells readers the byte order and whether the
// second timestamp field is microseconds or nanoseconds.
const (
	PcapMagicMicroseconds = 0xa1b2c3d4
	PcapMagicNanoseconds  = 0xa1b23c4d
	PcapVersionMajor      = 2
	PcapVersionMinor      = 4
	// PcapLinkTypeEthernet is LINKTYPE_ETHERNET: frames from the
	// destination address on, without preamble or FCS.
	PcapLinkTypeEthernet = 1
	// DefaultPcapSnapLen is tcpdump's default snapshot length.
	DefaultPcapSnapLen = 262144

	pcapFileHeaderLen   = 24
	pcapRecordHeaderLen = 16
)

// PcapConfig describes a PcapWriter's file.
type PcapConfig struct {
	// SnapLen is the most bytes of a frame recorded; longer frames are cut
	// and their record keeps the original length. 0 means
	// DefaultPcapSnapLen.
	SnapLen int
	// Nanosecond selects nanosecond timestamps (the magic 0xa1b23c4d);
	// otherwise they are microseconds.
	Nanosecond bool
}

// PcapWriter writes Ethernet frames to a classic libpcap file, which
// tcpdump, tshark and Wireshark read.
//
// It is a diagnostic: queues capture into it while their tap is switched on
// (Queue.SetTap), and queues may share one writer, so its methods take a
// mutex (once per burst). Writing allocates nothing: record headers are
// built in the writer, and frames are copied into its buffer. A write error
// is kept, further writes are skipped, and Err, Flush and Close report it,
// so the data path never handles I/O errors.
type PcapWriter struct {
	mu      sync.Mutex
	w       *bufio.Writer
	file    io.Closer // the file CreatePcap opened, closed by Close
	snapLen int
	nano    bool
	record  [pcapRecordHeaderLen]byte
	frames  uint64
	err     error
}

// NewPcapWriter writes a pcap file header to w and returns a writer of
// records to it. w is buffered; call Flush or Close to push the last
// records out.
func NewPcapWriter(w io.Writer, c PcapConfig) (*PcapWriter, error) {
	if c.SnapLen == 0 {
		c.SnapLen = DefaultPcapSnapLen
	}
	if c.SnapLen < 0 || c.SnapLen > DefaultPcapSnapLen {
		return nil, fmt.Errorf("%w: pcap snapshot length %d outside 1..%d", ErrInvalidConfig, c.SnapLen, DefaultPcapSnapLen)
	}
	p := &PcapWriter{w: bufio.NewWriterSize(w, 64<<10), snapLen: c.SnapLen, nano: c.Nanosecond}
	var h [pcapFileHeaderLen]byte
	magic := uint32(PcapMagicMicroseconds)
	if c.Nanosecond {
		magic = PcapMagicNanoseconds
	}
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], PcapVersionMajor)
	binary.LittleEndian.PutUint16(h[6:], PcapVersionMinor)
	// h[8:16]: thiszone and sigfigs, 0 as every writer sets them.
	binary.LittleEndian.PutUint32(h[16:], uint32(c.SnapLen))
	binary.LittleEndian.PutUint32(h[20:], PcapLinkTypeEthernet)
	if _, err := p.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("nicq: write pcap file header: %w", err)
	}
	return p, nil
}

// CreatePcap creates (or truncates) the file path and returns a writer to
// it; Close closes the file.
func CreatePcap(path string, c PcapConfig) (*PcapWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("nicq: create pcap file: %w", err)
	}
	p, err := NewPcapWriter(f, c)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("nicq: pcap file %s: %w", path, err)
	}
	p.file = f
	return p, nil
}

// WriteFrame records frame as captured at ts (nanoseconds since the Unix
// epoch).
func (p *PcapWriter) WriteFrame(ts int64, frame []byte) {
	p.mu.Lock()
	p.writeLocked(ts, frame)
	p.mu.Unlock()
}

// WriteBufs records the data of each buffer, all as captured at ts: the
// transmit side, where a burst leaves at one time.
func (p *PcapWriter) WriteBufs(ts int64, bufs []*Buf) {
	p.mu.Lock()
	for _, b := range bufs {
		p.writeLocked(ts, b.Bytes())
	}
	p.mu.Unlock()
}

// WriteReceived records the data of each buffer as captured at its RxTime:
// the receive side.
func (p *PcapWriter) WriteReceived(bufs []*Buf) {
	p.mu.Lock()
	for _, b := range bufs {
		p.writeLocked(b.RxTime, b.Bytes())
	}
	p.mu.Unlock()
}

func (p *PcapWriter) writeLocked(ts int64, frame []byte) {
	if p.err != nil {
		return
	}
	const second = 1_000_000_000
	sec, frac := ts/second, ts%second
	if frac < 0 { // times before 1970 (a virtual clock may start anywhere)
		sec, frac = sec-1, frac+second
	}
	if !p.nano {
		frac /= 1000
	}
	captured := min(len(frame), p.snapLen)
	binary.LittleEndian.PutUint32(p.record[0:], uint32(sec))
	binary.LittleEndian.PutUint32(p.record[4:], uint32(frac))
	binary.LittleEndian.PutUint32(p.record[8:], uint32(captured))
	binary.LittleEndian.PutUint32(p.record[12:], uint32(len(frame)))
	if _, err := p.w.Write(p.record[:]); err != nil {
		p.err = fmt.Errorf("nicq: write pcap record %d: %w", p.frames, err)
		return
	}
	if _, err := p.w.Write(frame[:captured]); err != nil {
		p.err = fmt.Errorf("nicq: write pcap record %d: %w", p.frames, err)
		return
	}
	p.frames++
}

// Frames returns the number of records written.
func (p *PcapWriter) Frames() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames
}

// Err returns the first write error, if any.
func (p *PcapWriter) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush writes buffered records out and returns the first error met.
func (p *PcapWriter) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *PcapWriter) flushLocked() error {
	if p.err == nil {
		if err := p.w.Flush(); err != nil {
			p.err = fmt.Errorf("nicq: flush pcap records: %w", err)
		}
	}
	return p.err
}

// Close flushes, closes the file if CreatePcap opened it, and returns the
// first error met. Queues must have stopped capturing into p.
func (p *PcapWriter) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.flushLocked()
	if p.file != nil {
		if cerr := p.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("nicq: close pcap file: %w", cerr)
		}
		p.file = nil
	}
	return err
}
