package sockets

import (
	"io"
	"testing"
)

// TestTCPReadAndWriteAllocateNothing: in steady state a request and its
// response through net.Conn (Write staged for the core, Read from the
// read queue, and the core's work on both sides) allocate nothing, as the
// package doc says.
func TestTCPReadAndWriteAllocateNothing(t *testing.T) {
	if raceEnabled || debugBuild {
		t.Skip("the race detector and the mkstackdebug build allocate")
	}
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "18")
	req, resp := make([]byte, 64), make([]byte, 64)
	exchange := func() {
		if _, err := client.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, resp); err != nil {
			t.Fatal(err)
		}
		if _, err := server.Write(resp); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, req); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 {
		exchange()
	}
	if n := testing.AllocsPerRun(500, exchange); n != 0 {
		t.Errorf("%.2f allocations per request and response, want 0", n)
	}
}
