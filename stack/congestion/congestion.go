package congestion

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// InfiniteSsthresh is ssthresh before the first congestion event: larger
// than any window, so the connection starts in slow start (RFC 5681 section
// 3.1 says "arbitrarily high").
const InfiniteSsthresh = math.MaxInt32

// InitialWindow is the initial congestion window for a sender segment size
// of mss bytes, min(10*MSS, max(2*MSS, 14600)) bytes (RFC 6928).
func InitialWindow(mss int) int {
	return min(10*mss, max(2*mss, 14600))
}

// Controller is one connection's congestion control algorithm. It is
// implemented by *Cubic and *NewReno. Windows are bytes, times nanoseconds
// of the caller's monotonic clock; see the package documentation for the
// events and the rules each algorithm applies.
type Controller interface {
	// Init starts (or restarts) the algorithm for a sender segment size of
	// mss bytes (mss > 0): cwnd = InitialWindow(mss), ssthresh =
	// InfiniteSsthresh, all other state cleared. It panics if mss <= 0.
	Init(mss int)
	// SetMSS changes the segment size (path MTU discovery), keeping cwnd
	// and ssthresh the same number of segments.
	SetMSS(mss int)
	// OnAck reports an ACK that acknowledged acked > 0 new bytes outside
	// fast recovery. inFlight is the bytes outstanding as it arrived (before
	// it is applied), srtt the connection's smoothed RTT (0 if none yet)
	// and now the current time. cwnd grows only if inFlight+MSS >= cwnd.
	OnAck(acked, inFlight int, srtt, now int64)
	// OnCongestion reports loss detected by duplicate ACKs or SACK as the
	// connection enters fast recovery, with inFlight bytes outstanding. It
	// sets ssthresh and cwnd. Calls before OnRecoveryExit are ignored: one
	// reduction per recovery.
	OnCongestion(inFlight int)
	// OnRecoveryExit reports the ACK that ends fast recovery (RFC 6582
	// "full acknowledgment"): cwnd = ssthresh. It does nothing outside
	// recovery (after an RTO, or after an undo).
	OnRecoveryExit()
	// OnRTO reports a retransmission timeout with inFlight bytes
	// outstanding: ssthresh per algorithm (held if the previous event was
	// also an RTO), cwnd = 1 MSS. It ends any fast recovery.
	OnRTO(inFlight int)
	// OnSpuriousCongestion reports that the last OnCongestion or OnRTO was
	// spurious. If cwnd is still below its value before that reduction, the
	// state from before it is restored; either way recovery is over and a
	// second call does nothing.
	OnSpuriousCongestion()
	// Cwnd is the congestion window in bytes.
	Cwnd() int
	// Ssthresh is the slow start threshold in bytes.
	Ssthresh() int
	// InSlowStart reports whether cwnd < ssthresh.
	InSlowStart() bool
	// Name is the algorithm's configuration name, as ByName takes it.
	Name() string
}

var (
	_ Controller = (*Cubic)(nil)
	_ Controller = (*NewReno)(nil)
)

// Algorithm names a congestion control algorithm in configuration. The zero
// value is AlgorithmCubic, the default.
type Algorithm uint8

// The algorithms, named in configuration by String's result.
const (
	AlgorithmCubic   Algorithm = iota // "cubic", RFC 9438
	AlgorithmNewReno                  // "newreno", RFC 5681 and RFC 6582
	numAlgorithms
)

var algorithmNames = [numAlgorithms]string{
	AlgorithmCubic:   "cubic",
	AlgorithmNewReno: "newreno",
}

// ErrUnknownAlgorithm is matched (errors.Is) by the error of ByName and
// Algorithm.UnmarshalText for a name no algorithm has.
var ErrUnknownAlgorithm = errors.New("congestion: unknown algorithm")

// String is the algorithm's configuration name.
func (a Algorithm) String() string {
	if a < numAlgorithms {
		return algorithmNames[a]
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// ByName returns the algorithm called name, ignoring case. For an unknown
// name the error wraps ErrUnknownAlgorithm and lists the valid names.
func ByName(name string) (Algorithm, error) {
	for a, n := range algorithmNames {
		if strings.EqualFold(name, n) {
			return Algorithm(a), nil
		}
	}
	return 0, fmt.Errorf("%w %q (valid: %s)", ErrUnknownAlgorithm, name,
		strings.Join(algorithmNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (a Algorithm) MarshalText() ([]byte, error) {
	if a >= numAlgorithms {
		return nil, fmt.Errorf("congestion: marshal %v: no such algorithm", a)
	}
	return []byte(algorithmNames[a]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (configuration files,
// flag.TextVar) with ByName.
func (a *Algorithm) UnmarshalText(text []byte) error {
	v, err := ByName(string(text))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Algorithms holds every algorithm by value, for a connection to embed and
// choose from at run time without allocating.
type Algorithms struct {
	Cubic   Cubic
	NewReno NewReno
}

// Select returns the Controller for a, pointing into s (no allocation). It
// does not call Init. A value outside the defined algorithms selects CUBIC,
// the default.
func (s *Algorithms) Select(a Algorithm) Controller {
	if a == AlgorithmNewReno {
		return &s.NewReno
	}
	return &s.Cubic
}

// window is the state both algorithms share: the window itself, slow start,
// and the bookkeeping of reductions and their undoing.
type window struct {
	mss      int // sender segment size, bytes
	cwnd     int // congestion window, bytes
	ssthresh int // slow start threshold, bytes

	// inRecovery is set by a reduction on loss until OnRecoveryExit, an
	// RTO or an undo.
	inRecovery bool
	// afterRTO marks the slow start that follows an RTO, where ABC allows
	// 1 MSS per ACK instead of 2.
	afterRTO bool
	// backoff is set by an RTO until the next ACK of new data: another
	// RTO then holds ssthresh.
	backoff bool

	// The state before the last reduction, for OnSpuriousCongestion.
	undoValid    bool
	undoAfterRTO bool
	undoCwnd     int
	undoSsthresh int
}

func (w *window) init(mss int) {
	if mss <= 0 {
		panic("congestion: Init with mss " + strconv.Itoa(mss) + " <= 0")
	}
	*w = window{mss: mss, cwnd: InitialWindow(mss), ssthresh: InfiniteSsthresh}
}

// cwndLimited reports whether a sender with inFlight bytes outstanding was
// using its window: less than one full segment of it was left.
func (w *window) cwndLimited(inFlight int) bool {
	return inFlight+w.mss >= w.cwnd
}

// slowStart grows cwnd for an ACK of acked bytes in slow start, by at most
// the ABC limit and not beyond ssthresh. It returns the acked bytes left
// over for congestion avoidance when cwnd reached ssthresh.
func (w *window) slowStart(acked int) int {
	limit := 2 * w.mss
	if w.afterRTO {
		limit = w.mss
	}
	inc := min(acked, limit)
	room := w.ssthresh - w.cwnd // > 0 in slow start
	if inc < room {
		w.cwnd += inc
		return 0
	}
	w.cwnd = w.ssthresh
	w.afterRTO = false
	return acked - room
}

// saveUndo records the state before a reduction.
func (w *window) saveUndo() {
	w.undoValid = true
	w.undoCwnd = w.cwnd
	w.undoSsthresh = w.ssthresh
	w.undoAfterRTO = w.afterRTO
}

// reduce enters fast recovery with ssthresh = max(ssthresh, 2*MSS) and
// cwnd = ssthresh.
func (w *window) reduce(ssthresh int) {
	w.ssthresh = max(ssthresh, 2*w.mss)
	w.cwnd = w.ssthresh
	w.inRecovery = true
	w.afterRTO = false
}

// timeout applies an RTO after ssthresh has been set: cwnd is the loss
// window, 1 MSS (RFC 5681 section 3.1).
func (w *window) timeout() {
	w.cwnd = w.mss
	w.inRecovery = false
	w.afterRTO = true
	w.backoff = true
}

// undo ends the reduction being undone and reports whether the state saved
// before it should be restored (RFC 9438 section 4.9: only while cwnd is
// still below its value then). If so it restores the shared part.
func (w *window) undo() bool {
	if !w.undoValid {
		return false
	}
	w.undoValid = false
	w.inRecovery = false
	w.backoff = false
	if w.cwnd >= w.undoCwnd {
		return false
	}
	w.cwnd = w.undoCwnd
	w.ssthresh = w.undoSsthresh
	w.afterRTO = w.undoAfterRTO
	return true
}

// setMSS rescales the windows to a new segment size, keeping the number of
// segments.
func (w *window) setMSS(mss int) {
	old := w.mss
	w.mss = mss
	w.cwnd = max(rescale(w.cwnd, mss, old), mss)
	if w.ssthresh < InfiniteSsthresh {
		w.ssthresh = min(max(rescale(w.ssthresh, mss, old), 2*mss), InfiniteSsthresh)
	}
	w.undoCwnd = rescale(w.undoCwnd, mss, old)
	if w.undoSsthresh < InfiniteSsthresh {
		w.undoSsthresh = min(rescale(w.undoSsthresh, mss, old), InfiniteSsthresh)
	}
}

// rescale is v*to/from without overflow for windows below 2^31.
func rescale(v, to, from int) int {
	return int(int64(v) * int64(to) / int64(from))
}

// validMSS reports whether SetMSS(mss) has anything to do.
func (w *window) validMSS(mss int) bool {
	return mss > 0 && mss != w.mss && w.mss > 0
}
