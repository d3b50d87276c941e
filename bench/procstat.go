package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture Go runs on (the kernel fixes it for user space whatever
// its own HZ).
const clockTicks = 100

// MachineBusy returns a reading of the time every CPU of the machine has
// spent busy, from the boot-time clock and /proc/stat; the difference of
// two readings is the whole machine's CPU time over the window between
// them: the load generator, the server, the kernel's receive and transmit
// work and any other process. ok is false where /proc/stat cannot be read.
//
// Busy time is the time that was not idle: the CPUs' elapsed time less
// their idle, iowait and steal time. /proc/stat's user and system
// columns would be the direct reading, but the kernel counts them by
// sampling its tick, and with the tick stopped on idle CPUs a server that
// wakes for tens of microseconds per request between idle periods is
// rarely caught busy: here they read a third to a fifteenth of the
// process's own CPU time (getrusage) at a few thousand requests per
// second. Idle time is measured exactly (the tickless idle clock).
func MachineBusy() (busy time.Duration, ok bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0, false
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	cpus, notBusy, ok := parseProcStat(b)
	if !ok {
		return 0, false
	}
	return time.Duration(cpus)*time.Duration(ts.Nano()) - notBusy, true
}

// parseProcStat reads the number of CPUs (its cpuN lines) and the idle,
// iowait and steal time of the aggregate "cpu" line.
func parseProcStat(b []byte) (cpus int, notBusy time.Duration, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			continue
		}
		if len(f[0]) > 3 {
			cpus++
			continue
		}
		// cpu user nice system idle iowait irq softirq steal ...
		if len(f) < 9 {
			return 0, 0, false
		}
		var ticks uint64
		for _, col := range []int{4, 5, 8} {
			v, err := strconv.ParseUint(string(f[col]), 10, 64)
			if err != nil {
				return 0, 0, false
			}
			ticks += v
		}
		notBusy = time.Duration(ticks) * time.Second / clockTicks
		ok = true
	}
	return cpus, notBusy, ok && cpus > 0
}

// MemAvailable returns the kernel's estimate of the memory available for
// new work (/proc/meminfo MemAvailable), in bytes.
func MemAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	return parseMemAvailable(b)
}

func parseMemAvailable(b []byte) (int64, bool) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("MemAvailable:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}

// memWatch follows the machine's memory in use: the most it grew while the
// watch ran (MemAvailable's largest drop from an earlier sample to a
// later one, sampled every memSampleEvery), so memory an earlier point
// gives back while this one starts (a lab's devices torn down, say) does
// not hide what this one takes.
type memWatch struct {
	stop chan struct{}
	done chan int64
}

const memSampleEvery = 50 * time.Millisecond

func watchMemory() *memWatch {
	high, ok := MemAvailable()
	w := &memWatch{stop: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		var most int64
		t := time.NewTicker(memSampleEvery)
		defer t.Stop()
		for {
			if v, vok := MemAvailable(); ok && vok {
				high = max(high, v)
				most = max(most, high-v)
			}
			select {
			case <-w.stop:
				w.done <- most
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// end stops the watch and returns the largest growth seen, in bytes.
func (w *memWatch) end() int64 {
	close(w.stop)
	return <-w.done
}
