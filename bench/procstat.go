package bench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture Go runs on (the kernel fixes it for user space whatever
// its own HZ).
const clockTicks = 100

// MachineBusy returns the time every CPU of the machine has spent busy
// since boot: user, nice, system, irq and softirq time from /proc/stat's
// first line (not idle, iowait, steal or guest time, which user and nice
// already hold). The difference of two readings is the whole machine's
// CPU time over the window between them: the load generator, the server,
// the kernel's receive and transmit work and any other process. ok is
// false where /proc/stat cannot be read.
func MachineBusy() (busy time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	return parseProcStat(b)
}

// parseProcStat reads the busy ticks of the aggregate "cpu" line.
func parseProcStat(b []byte) (time.Duration, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 8 || string(f[0]) != "cpu" {
			continue
		}
		// cpu user nice system idle iowait irq softirq ...
		var ticks uint64
		for _, col := range []int{1, 2, 3, 6, 7} {
			v, err := strconv.ParseUint(string(f[col]), 10, 64)
			if err != nil {
				return 0, false
			}
			ticks += v
		}
		return time.Duration(ticks) * time.Second / clockTicks, true
	}
	return 0, false
}
