//go:build !mkstackdebug

package nicq

import (
	"testing"
	"unsafe"
)

// TestBufIsOneCacheLine: in the normal build the debug fields take no space
// and the metadata fits one 64-byte cache line, so touching a buffer's
// metadata costs one line.
func TestBufIsOneCacheLine(t *testing.T) {
	if size := unsafe.Sizeof(Buf{}); size != 64 {
		t.Fatalf("Buf is %d bytes, want 64", size)
	}
	if debugChecks {
		t.Fatal("debug checks are on in a build without the mkstackdebug tag")
	}
}
