package bench

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
// in its figure. The memory is mapped apart from Go's heap, which would
// reuse what an earlier run freed, and the watch runs over a second and
// more: the kernel folds its per-CPU page counts into MemAvailable about
// once a second.
func TestMemoryWatchSeesGrowth(t *testing.T) {
	if _, ok := MemAvailable(); !ok {
		t.Skip("no /proc/meminfo")
	}
	const size = 128 << 20
	time.Sleep(1200 * time.Millisecond) // what was freed before shows first
	w := watchMemory()
	time.Sleep(200 * time.Millisecond)
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	time.Sleep(2 * time.Second)
	got := w.end()
	// Other work on a shared machine moves MemAvailable too, and the
	// kernel's per-CPU counts can lag further: ask for a quarter.
	if got < size/4 {
		t.Errorf("the watch saw %d bytes of growth after %d were touched", got, size)
	}
}
