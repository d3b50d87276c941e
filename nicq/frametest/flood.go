package frametest

import (
	"time"

	"github.com/mkstack/mkstack/nicq"
)

// Flood is a load generator for overload tests: it sends copies of one
// frame, built once, on a queue, in bursts, at a paced rate or as fast as it
// can. Per frame it costs a buffer from the queue's pool (taken a burst at a
// time), a copy of the frame and the driver's Send; it allocates nothing
// after the first burst. It is for the one goroutine that owns the queue,
// pinned to a CPU of its own or sharing it with the test's other work (see
// Yield).
type Flood struct {
	Queue nicq.Queue
	Frame []byte
	// Burst is the frames per Send (0: 64).
	Burst int
	// Yield, if set, gives the CPU away after every burst (sched_yield):
	// another thread that shares the generator's CPU, such as the test's
	// TCP client, then runs as soon as it is woken instead of waiting for
	// the scheduler to preempt a spinning generator. It costs a system call
	// per burst, under a microsecond, when nothing else wants the CPU.
	Yield bool

	bufs []*nicq.Buf
}

// Run sends for d at rate frames per second (0: unpaced, as fast as the
// queue takes them) and returns the frames it offered: handed to Send,
// whether the wire took them or refused them (a refused frame is freed, and
// counts as offered and dropped, as on a wire without flow control), and
// the seconds it ran. A paced run that falls behind (descheduled) does not
// catch up with one burst larger than Burst: that would measure the rings'
// sizes rather than the receiver.
func (f *Flood) Run(rate float64, d time.Duration) (offered int, secs float64) {
	burst := f.Burst
	if burst <= 0 {
		burst = 64
	}
	if cap(f.bufs) < burst {
		f.bufs = make([]*nicq.Buf, burst)
	}
	bufs := f.bufs[:burst]
	pool := f.Queue.Pool()
	sent := 0.0
	start := time.Now()
	for {
		el := time.Since(start)
		if el >= d {
			break
		}
		owed := burst
		if rate > 0 {
			owed = int(rate*el.Seconds() - sent)
			if owed <= 0 {
				if f.Yield {
					yieldCPU()
				}
				continue // spin: the pace is finer than a sleep
			}
			if owed > burst {
				sent += float64(owed - burst)
				owed = burst
			}
		}
		k := pool.GetBatch(bufs[:owed])
		for _, b := range bufs[:k] {
			copy(b.Append(len(f.Frame)), f.Frame)
		}
		took := f.Queue.Send(bufs[:k])
		nicq.FreeAll(bufs[took:k])
		clear(bufs[:k])
		offered += k
		sent += float64(k)
		if f.Yield {
			yieldCPU()
		}
	}
	return offered, time.Since(start).Seconds()
}
