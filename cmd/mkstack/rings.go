package main

import (
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mkstack/mkstack/affinity"
	"github.com/mkstack/mkstack/msgring"
)

func init() {
	register(command{name: "rings", summary: "the substrate alone: pinned cores exchanging messages over rings and doorbells", run: runRings})
}

// ringMsg is a fixed-size message, as every core-to-core message is.
type ringMsg struct {
	kind uint32
	from uint32
	seq  uint64
}

const (
	ringData    = iota // core-to-core traffic
	ringControl        // a control-plane message on the shared MPSC ring
	ringStop
)

// ringCore is one pinned core of the rings command. Its counters are written by the
// core only and read by the reporter, so they are atomics on their own cache
// lines (padded) rather than shared read-modify-write counters.
type ringCore struct {
	id, cpu int
	box     *msgring.Mailbox[ringMsg]
	bell    *msgring.Doorbell

	rx, tx, control atomic.Uint64
	_               [104]byte
}

func runRings(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rings", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cores := fs.Int("cores", 0, "number of cores to run (default: every CPU this process may use)")
	duration := fs.Duration("duration", 3*time.Second, "how long to run; the first half saturates the rings, the second half sends paced bursts so cores sleep and are woken")
	ringCap := fs.Int("ring", 1024, "capacity of each core-to-core ring")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *duration <= 0 || *ringCap < 2 {
		fmt.Fprintln(stderr, "mkstack rings: takes no arguments; --duration must be positive and --ring at least 2")
		return 2
	}
	allowed, err := affinity.AllowedCPUs()
	if err != nil {
		fmt.Fprintln(stderr, "mkstack rings:", err)
		return 1
	}
	n := *cores
	if n == 0 {
		n = allowed.Count()
	}
	// Plan puts cores on separate physical cores first and CPU 0 last; on a
	// machine with fewer CPUs than that it falls back to CPU 0 too.
	cpus, err := affinity.Plan(n, "")
	if err != nil {
		fmt.Fprintf(stderr, "mkstack rings: --cores %d: %v\n", n, err)
		return 2
	}
	if n == 1 {
		fmt.Fprintln(stdout, "note: one core has no peer to message; running the control plane only")
	}

	cs := make([]*ringCore, n)
	for i := range cs {
		bell, err := msgring.NewDoorbell()
		if err != nil {
			fmt.Fprintln(stderr, "mkstack rings:", err)
			return 1
		}
		defer bell.Close()
		cs[i] = &ringCore{id: i, cpu: cpus[i], bell: bell, box: msgring.NewMailbox[ringMsg](msgring.MailboxConfig{
			Owner: i, Cores: n, PeerRing: *ringCap, SharedCap: 64,
		}, bell)}
	}
	fmt.Fprintf(stdout, "mkstack rings: %d pinned cores on CPUs %v exchanging messages over msgring (rings of %d), %v\n",
		n, cpus, cs[0].box.From((1)%n).Cap(), *duration)
	fmt.Fprintf(stdout, "first half: each core floods the next in batches of 32; second half: a burst every 2ms, cores sleep in between\n")

	start := time.Now()
	pacedFrom := start.Add(*duration / 2)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := affinity.Pin(c.cpu); err != nil {
				errs <- err
				return
			}
			c.loop(cs[(c.id+1)%n], pacedFrom)
		}()
	}

	tick := time.NewTicker(time.Second / 2)
	defer tick.Stop()
	end := time.NewTimer(*duration)
	last := make([]uint64, n)
	lastAt := start
	report := func(now time.Time) {
		dt := now.Sub(lastAt).Seconds()
		lastAt = now
		for i, c := range cs {
			rx := c.rx.Load()
			fmt.Fprintf(stdout, "t=%4.1fs core %d (cpu %d): %11.0f msg/s received, %d sleeps, %d wake-ups, %d control msgs\n",
				now.Sub(start).Seconds(), i, c.cpu, float64(rx-last[i])/dt, c.bell.Sleeps(), c.bell.Wakeups(), c.control.Load())
			last[i] = rx
		}
	}
	seq := uint64(0)
loop:
	for {
		select {
		case err := <-errs:
			fmt.Fprintln(stderr, "mkstack rings:", err)
			return 1
		case now := <-tick.C:
			// The control plane reaches every core through its MPSC ring.
			for _, c := range cs {
				seq++
				c.box.Send(ringMsg{kind: ringControl, seq: seq})
			}
			report(now)
		case <-end.C:
			break loop
		}
	}
	for _, c := range cs {
		for !c.box.Send(ringMsg{kind: ringStop}) {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	// The cores have exited; this goroutine now consumes what is still in
	// flight so the totals can be checked.
	var sent, received uint64
	for _, c := range cs {
		c.box.Drain(1<<30, func(_ int, m ringMsg) {
			if m.kind == ringData {
				c.rx.Add(1)
			}
		})
		sent += c.tx.Load()
		received += c.rx.Load()
	}
	fmt.Fprintf(stdout, "done in %v: %d messages sent, %d received, %d lost\n",
		time.Since(start).Round(time.Millisecond), sent, received, sent-received)
	if sent != received {
		return 1
	}
	return 0
}

// loop is one core: drain the mailbox, send to the next core, and when there
// is nothing to do, sleep on the doorbell until a peer wakes it or the next
// paced burst is due.
func (c *ringCore) loop(next *ringCore, pacedFrom time.Time) {
	out := next.box.From(c.id)
	batch := make([]ringMsg, 32)
	var rx, tx, control uint64
	stop := false
	handle := func(_ int, m ringMsg) {
		switch m.kind {
		case ringData:
			rx++
		case ringControl:
			control++
		case ringStop:
			stop = true
		}
	}
	nextBurst := pacedFrom
	for iter := 0; !stop; iter++ {
		got := c.box.Drain(256, handle)
		sentNow := 0
		if next != c {
			now := time.Now()
			if now.Before(pacedFrom) || !now.Before(nextBurst) {
				for i := range batch {
					batch[i] = ringMsg{kind: ringData, from: uint32(c.id), seq: tx + uint64(i)}
				}
				sentNow = out.EnqueueBatch(batch)
				tx += uint64(sentNow)
				if sentNow > 0 {
					next.box.Notify()
				}
				if !now.Before(pacedFrom) {
					nextBurst = now.Add(2 * time.Millisecond)
				}
			}
		}
		// Publish once per iteration, not once per message.
		c.rx.Store(rx)
		c.tx.Store(tx)
		c.control.Store(control)
		if got > 0 || sentNow > 0 || time.Now().Before(pacedFrom) {
			continue
		}
		c.bell.PrepareSleep()
		if c.box.Pending() {
			c.bell.CancelSleep()
			continue
		}
		wait := time.Until(nextBurst)
		if next == c {
			wait = -1
		}
		if wait > 0 || wait < 0 {
			c.bell.Wait(wait)
		} else {
			c.bell.CancelSleep()
		}
	}
	c.rx.Store(rx)
	c.tx.Store(tx)
}
