package core

import (
	"runtime"
	"testing"
)

// TestStartReservesProcsForTheApplication: Start adds one P per core so
// that busy cores holding theirs leave GOMAXPROCS to other goroutines,
// and Stop gives them back; KeepGOMAXPROCS leaves it alone.
func TestStartReservesProcsForTheApplication(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	for _, keep := range []bool{false, true} {
		w := newWire(t, 2)
		rt := start(t, w.NIC(0), addrA, func(c *Config) { c.Cores, c.KeepGOMAXPROCS = 2, keep })
		want := before + 2
		if keep {
			want = before
		}
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Errorf("KeepGOMAXPROCS %v: GOMAXPROCS %d while running, want %d", keep, got, want)
		}
		stop(t, rt)
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("KeepGOMAXPROCS %v: GOMAXPROCS %d after Stop, want %d", keep, got, before)
		}
	}
}
