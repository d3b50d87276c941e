package bench

import (
	"testing"
	"time"
)

func TestParseMemAvailable(t *testing.T) {
	in := "MemTotal:       24684544 kB\nMemFree:        22863400 kB\nMemAvailable:   24236544 kB\nBuffers:           1234 kB\n"
	if v, ok := parseMemAvailable([]byte(in)); !ok || v != 24236544<<10 {
		t.Errorf("parseMemAvailable = %d, %v", v, ok)
	}
	for _, bad := range []string{"MemTotal: 1 kB\n", "MemAvailable: x kB\n", "MemAvailable: 12 MB\n"} {
		if _, ok := parseMemAvailable([]byte(bad)); ok {
			t.Errorf("parseMemAvailable(%q) ok", bad)
		}
	}
}

// TestMemoryWatchSeesGrowth: memory touched while the watch runs shows
// in its figure.
func TestMemoryWatchSeesGrowth(t *testing.T) {
	if _, ok := MemAvailable(); !ok {
		t.Skip("no /proc/meminfo")
	}
	const size = 128 << 20
	w := watchMemory()
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	time.Sleep(3 * memSampleEvery)
	got := w.end()
	b[len(b)/2]++ // keep b alive until the watch has ended
	// Other work on a shared machine moves MemAvailable too: ask for half.
	if got < size/2 {
		t.Errorf("the watch saw %d bytes of growth after %d were touched", got, size)
	}
}
