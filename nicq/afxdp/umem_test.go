//go:build linux

package afxdp

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestUMEMInHugePages checks that a UMEM is backed by transparent huge
// pages where the kernel offers them on request (the "madvise" and
// "always" modes), so that the core's look at each new frame is not a
// TLB miss per 4 KiB page.
func TestUMEMInHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages are off here (%q, %v)", mode, err)
	}
	const size = 16 << 20
	mem, err := mapUMEM(size)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if mem[size-1] != 0 || mem[0] != 0 {
		t.Fatal("a new UMEM is not zeroed")
	}
	huge := anonHugeKiB(t, uintptr(unsafe.Pointer(&mem[0])))
	t.Logf("UMEM of %d MiB: %d KiB in huge pages", size>>20, huge)
	// How many the kernel finds depends on how fragmented memory is;
	// without the advice it gives none.
	if huge == 0 {
		t.Errorf("none of a %d KiB UMEM is in huge pages", size>>10)
	}
}

// anonHugeKiB reads the AnonHugePages of the mapping at addr from
// /proc/self/smaps.
func anonHugeKiB(t *testing.T, addr uintptr) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("smaps: %v", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			in = lo <= addr && addr < hi
			continue
		}
		var kib int
		if in {
			if n, _ := fmt.Sscanf(line, "AnonHugePages: %d kB", &kib); n == 1 {
				return kib
			}
		}
	}
	t.Fatalf("no mapping at %#x in smaps", addr)
	return 0
}
