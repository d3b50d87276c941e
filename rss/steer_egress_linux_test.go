package rss

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// skbContext is struct __sk_buff as BPF_PROG_TEST_RUN takes it in and
// hands it back: only the fields the test uses are named. It is 256 bytes,
// more than the uapi struct's 192, because the kernel copies out its own
// size and fails (ENOSPC) when the buffer is smaller, so a kernel that
// grows __sk_buff still fits; the tail it is given must be zero and is.
type skbContext struct {
	Len, PktType, Mark, QueueMapping uint32
	_                                [256 - 16]byte
}

// egressMark tags the skb of a test run (the kernel takes mark from the
// context given to BPF_PROG_TEST_RUN) so the observer below picks that skb
// out of every skb the machine frees. The steering program ignores mark.
const egressMark = 0x6d6b7373

// queueObserver reads skb->queue_mapping from the skb BPF_PROG_TEST_RUN
// built for a run, when the kernel frees it after the run, with tp_btf
// programs on the skb:kfree_skb and skb:consume_skb tracepoints.
//
// It exists because BPF_PROG_TEST_RUN does not return queue_mapping:
// convert_skb_to___skb (net/bpf/test_run.c) copies back mark, priority,
// ingress_ifindex, ifindex, tstamp, cb, wire_len, gso_segs and hwtstamp
// only (on 6.18 ContextOut's queue_mapping stays 0 after the program set
// it), and convert___skb_to_skb refuses a non-zero queue_mapping coming
// in (EINVAL). The
// tracepoints see the very skb the unmodified egress program ran on,
// since between the run and kfree_skb the kernel does not touch
// queue_mapping.
type queueObserver struct {
	// state is one 16-byte value: the pid_tgid of the thread running the
	// test (set before each run), then the number of matching skbs freed
	// and the queue_mapping of the last one.
	state *ebpf.Map
	progs []*ebpf.Program
	links []link.Link
}

// newQueueObserver loads and attaches the observer, or skips t where the
// kernel cannot trace (no BTF, no tp_btf, not permitted).
func newQueueObserver(t *testing.T) *queueObserver {
	t.Helper()
	o := &queueObserver{}
	t.Cleanup(func() {
		for _, l := range o.links {
			l.Close()
		}
		for _, p := range o.progs {
			p.Close()
		}
		if o.state != nil {
			o.state.Close()
		}
	})
	skip := func(err error) bool {
		return errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, btf.ErrNotSupported) ||
			errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		if skip(err) || errors.Is(err, os.ErrNotExist) {
			t.Skipf("no kernel BTF to read skb->queue_mapping with: %v", err)
		}
		t.Fatal(err)
	}
	skbType, err := spec.AnyTypeByName("sk_buff")
	if err != nil {
		t.Fatalf("kernel BTF: %v", err)
	}
	qmOff := skbMemberOffset(t, skbType, "queue_mapping", 2)
	markOff := skbMemberOffset(t, skbType, "mark", 4)

	o.state, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "rss_egress_obs", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: 1,
	})
	if err != nil {
		if skip(err) {
			t.Skipf("cannot create the observer's map: %v", err)
		}
		t.Fatal(err)
	}
	done := "done"
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetCurrentPidTgid.Call(),
		mapValue(asm.R7, o.state),
		asm.LoadMem(asm.R1, asm.R7, 0, asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, done),
		// The tracepoints' first argument is the skb, a BTF pointer the
		// program may read fields of directly.
		asm.LoadMem(asm.R1, asm.R6, 0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R1, markOff, asm.Word),
		asm.JNE.Imm(asm.R2, egressMark, done),
		asm.LoadMem(asm.R2, asm.R1, qmOff, asm.Half),
		asm.StoreMem(asm.R7, 12, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 8, asm.Word),
		asm.Add.Imm(asm.R2, 1),
		asm.StoreMem(asm.R7, 8, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(done),
		asm.Return(),
	}
	// BPF_PROG_TEST_RUN frees its skb with kfree_skb; consume_skb is
	// watched too so that a kernel freeing it as consumed is still seen.
	for _, tp := range []string{"kfree_skb", "consume_skb"} {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "rss_obs_" + tp[:4],
			Type:         ebpf.Tracing,
			AttachType:   ebpf.AttachTraceRawTp,
			AttachTo:     tp,
			Instructions: insns,
			License:      "GPL", // the verifier lets only GPL-compatible programs read struct sk_buff
		})
		if err != nil {
			if skip(err) {
				t.Skipf("cannot load a tp_btf program on %s: %v", tp, err)
			}
			t.Fatalf("load the observer on %s: %v", tp, err)
		}
		o.progs = append(o.progs, p)
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			if skip(err) {
				t.Skipf("cannot attach to tracepoint %s: %v", tp, err)
			}
			t.Fatalf("attach the observer to %s: %v", tp, err)
		}
		o.links = append(o.links, l)
	}
	return o
}

// skbMemberOffset is the byte offset of a size-byte field of struct
// sk_buff, looking into the anonymous structs and unions it is grouped in.
func skbMemberOffset(t *testing.T, typ btf.Type, name string, size int) int16 {
	t.Helper()
	var find func(typ btf.Type) (uint32, bool)
	find = func(typ btf.Type) (uint32, bool) {
		var members []btf.Member
		switch c := typ.(type) {
		case *btf.Struct:
			members = c.Members
		case *btf.Union:
			members = c.Members
		}
		for _, m := range members {
			if m.Name == name {
				if n, err := btf.Sizeof(m.Type); err != nil || n != size || m.BitfieldSize != 0 {
					t.Fatalf("sk_buff.%s is not a %d-byte field in this kernel's BTF", name, size)
				}
				return m.Offset.Bytes(), true
			}
			if m.Name == "" {
				if off, ok := find(m.Type); ok {
					return m.Offset.Bytes() + off, true
				}
			}
		}
		return 0, false
	}
	off, ok := find(typ)
	if !ok {
		t.Fatalf("no sk_buff.%s in this kernel's BTF", name)
	}
	return int16(off)
}

// run runs p on frame with BPF_PROG_TEST_RUN and returns its return code
// and the queue_mapping it left in the skb. ran is false when the kernel
// refuses the frame before the program runs (see tryRunSteering).
func (o *queueObserver) run(t *testing.T, p *SteeringProgram, frame []byte) (ret, queueMapping uint32, ran bool) {
	t.Helper()
	// The observer matches the running thread, so stay on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	state := make([]byte, 16)
	binary.NativeEndian.PutUint64(state, uint64(os.Getpid())<<32|uint64(unix.Gettid()))
	binary.NativeEndian.PutUint32(state[12:], 0xffffffff)
	if err := o.state.Update(uint32(0), state, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	var out skbContext
	ret, err := p.prog.Run(&ebpf.RunOptions{Data: frame, Context: skbContext{Mark: egressMark}, ContextOut: &out})
	if err != nil {
		if errors.Is(err, unix.EINVAL) && len(frame) >= etherHeaderLen {
			switch binary.BigEndian.Uint16(frame[12:]) {
			case etherTypeIPv4:
				if len(frame) < etherHeaderLen+ipv4MinHeader {
					return 0, 0, false
				}
			case etherTypeIPv6:
				if len(frame) < etherHeaderLen+ipv6HeaderLen {
					return 0, 0, false
				}
			}
		}
		t.Fatalf("run egress program on %d-byte frame %x: %v", len(frame), frame, err)
	}
	if err := o.state.Lookup(uint32(0), &state); err != nil {
		t.Fatal(err)
	}
	if n := binary.NativeEndian.Uint32(state[8:]); n != 1 {
		t.Fatalf("the observer saw the test run's skb freed %d times, want 1", n)
	}
	queueMapping = binary.NativeEndian.Uint32(state[12:])
	if out.Mark != egressMark {
		t.Fatalf("ContextOut mark 0x%x, want 0x%x: the context is not laid out as __sk_buff", out.Mark, egressMark)
	}
	// A kernel that one day returns queue_mapping must agree.
	if out.QueueMapping != 0 && out.QueueMapping != queueMapping {
		t.Fatalf("ContextOut queue_mapping %d, but the skb holds %d", out.QueueMapping, queueMapping)
	}
	return ret, queueMapping, true
}

// tcActOK is TC_ACT_OK, the verdict that lets an egress frame go on.
const tcActOK = 0

// TestEgressSteeringProgramRecordsRSSQueue runs the egress program with
// BPF_PROG_TEST_RUN on random IPv4 TCP and UDP frames, then on the edge
// cases of the socket-filter tests (IPv6, fragments, options, VLAN tags,
// truncated and non-IP frames), and checks that every frame passes
// (TC_ACT_OK) with skb->queue_mapping = 1 + the queue Go's RSS names, 1
// (queue 0) for a frame RSS does not hash. The second configuration's
// table holds queues across the 16-bit range, so a store of the wrong
// width or byte order would show.
func TestEgressSteeringProgramRecordsRSSQueue(t *testing.T) {
	steerRequireBPF(t)
	o := newQueueObserver(t)
	rng := rand.New(rand.NewPCG(9, 10))
	wide := make(RETA, 512)
	for i := range wide {
		// Not 0xfffe or 0xffff: queue_mapping 0xffff is the kernel's "no
		// queue" and its rewrite of the store skips values from it up,
		// so those queues cannot be recorded at all.
		wide[i] = uint16(rng.IntN(0xfffe))
	}
	wideKey := make([]byte, KeySize52)
	for i := range wideKey {
		wideKey[i] = byte(rng.Uint32())
	}
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"7 queues", Options{Queues: 7, RETASize: 128}},
		{"wide table", Options{Key: wideKey, RETA: wide, Queues: 0x10000, UDP4: Tuple2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := steerConfig(t, c.o)
			p, err := NewEgressSteeringProgram(cfg)
			if errors.Is(err, unix.EPERM) {
				t.Skipf("loading eBPF not permitted here: %v", err)
			}
			if err != nil {
				t.Fatalf("load egress steering program: %+v", err)
			}
			t.Cleanup(func() { p.Close() })
			check := func(frame []byte, queue int) bool {
				t.Helper()
				ret, qm, ran := o.run(t, p, frame)
				if !ran {
					return false
				}
				if ret != tcActOK {
					t.Fatalf("frame %x: return code %d, want TC_ACT_OK (%d)", frame, ret, tcActOK)
				}
				if want := uint32(queue) + 1; qm != want {
					t.Fatalf("frame %x: queue_mapping %d, want RSS queue %d + 1 = %d", frame, qm, queue, want)
				}
				return true
			}
			seen := map[int]bool{}
			for i := 0; i < steerIterations(); i++ {
				proto := []Proto{ProtoTCP, ProtoUDP}[rng.IntN(2)]
				var src, dst [4]byte
				binary.BigEndian.PutUint32(src[:], rng.Uint32())
				binary.BigEndian.PutUint32(dst[:], rng.Uint32())
				sport, dport := uint16(rng.Uint32()), uint16(rng.Uint32())
				q := cfg.QueueIPv4Flow(proto, src, dst, sport, dport)
				seen[q] = true
				if f := steerIPv4Frame(src, dst, uint8(proto), sport, dport); !check(f, q) {
					t.Fatalf("BPF_PROG_TEST_RUN refused the whole frame %x", f)
				}
			}
			if len(seen) < 7 {
				t.Fatalf("the random frames reached only %d queues: too few to tell queues apart", len(seen))
			}
			refused := 0
			// The socket-filter tests check QueueFrame on these against
			// hashes worked out by hand, for the default tuples; here
			// QueueFrame is the expectation so other tuples may be chosen.
			for _, e := range steerEdgeCases(t, cfg) {
				if !check(e.frame, cfg.QueueFrame(e.frame)) {
					refused++
				}
			}
			t.Logf("%d random IPv4 frames over %d queues, %d edge cases (%d refused by BPF_PROG_TEST_RUN as too short)",
				steerIterations(), len(seen), len(steerEdgeCases(t, cfg)), refused)
		})
	}
}
