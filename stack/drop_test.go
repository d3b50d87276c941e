package stack

import (
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

func TestEveryDropReasonHasAUniqueName(t *testing.T) {
	if len(stackDropNames) != int(NumDropReasons)-int(header.NumDropReasons) {
		t.Fatalf("%d names for %d stack reasons", len(stackDropNames), int(NumDropReasons)-int(header.NumDropReasons))
	}
	seen := map[string]DropReason{}
	for r := DropReason(1); r < NumDropReasons; r++ {
		n := r.String()
		if n == "" || n == "unknown" || n == "none" {
			t.Errorf("reason %d has name %q", r, n)
		}
		if prev, dup := seen[n]; dup {
			t.Errorf("reasons %d and %d share the name %q", prev, r, n)
		}
		seen[n] = r
	}
	if DropReason(header.DropBadChecksum).String() != "bad_checksum" {
		t.Error("header reasons are not carried one for one")
	}
}
