package sockets

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mkstack/mkstack/stack"
)

// acceptedPair is a connection from cli to srv, both ends as net.Conn.
func acceptedPair(t *testing.T, srv, cli *Network, port string) (server, client net.Conn) {
	t.Helper()
	l, err := srv.Listen("tcp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = cli.Dial("tcp", "10.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// waitStaged waits until the core has staged received bytes for sc's
// reader.
func waitStaged(t *testing.T, sc *conn) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !sc.unread(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the bytes were never staged for the reader")
		}
	}
}

// TestReadTakesStagedBytesWithoutTheCore: bytes that have arrived are
// staged for the reader by the core as they come, so a Read returns them
// while the owning core is busy with something else (a Read that had to
// ask the core would wait for it).
func TestReadTakesStagedBytesWithoutTheCore(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "9")
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Wait until the bytes are staged, then hold the server's core.
	waitStaged(t, connOf(server))
	release := make(chan struct{})
	held := make(chan struct{})
	if err := srv.Runtime().Do(0, func(*stack.Stack) { close(held); <-release }); err != nil {
		t.Fatal(err)
	}
	<-held
	defer close(release)
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, err := server.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read with the core held = %q, %v", buf[:n], err)
	}
}

// TestSlowReaderGetsEveryByteInOrder: far more than the read queue and
// the receive ring hold, read in small pieces with pauses, so the core
// fills the queue, leaves bytes in the ring with the window shut, and
// refills as the reader makes room; every byte arrives once, in order,
// then the EOF.
func TestSlowReaderGetsEveryByteInOrder(t *testing.T) {
	srv, cli := pair(t, 2)
	server, client := acceptedPair(t, srv, cli, "10")
	src := make([]byte, 1<<20)
	for i := range src {
		src[i] = byte(i*131 + i>>9)
	}
	go func() {
		client.Write(src)
		connOf(client).CloseWrite()
	}()
	var got bytes.Buffer
	buf := make([]byte, 1000)
	server.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; ; i++ {
		if i < 200 && i%20 == 0 {
			time.Sleep(5 * time.Millisecond) // let the queue and the ring fill
		}
		n, err := server.Read(buf[:1+i%len(buf)])
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got.Len(), err)
		}
	}
	if !bytes.Equal(got.Bytes(), src) {
		t.Fatalf("%d bytes read, want %d, or changed", got.Len(), len(src))
	}
}

// TestReadReturnsStagedBytesBeforeTheReset: bytes that arrived before a
// reset are read first, then the reset is reported (as Linux's recv).
func TestReadReturnsStagedBytesBeforeTheReset(t *testing.T) {
	srv, cli := pair(t, 1)
	server, client := acceptedPair(t, srv, cli, "11")
	if _, err := client.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	waitStaged(t, connOf(server))
	// Abort the client: its stack sends a reset.
	if err := connOf(client).ctl(opAbort); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := server.Read(buf)
	if err != nil || string(buf[:n]) != "last words" {
		t.Fatalf("first Read = %q, %v", buf[:n], err)
	}
	_, err = server.Read(buf)
	var op *net.OpError
	if err == nil || err == io.EOF || !errors.As(err, &op) {
		t.Fatalf("Read after the reset = %v, want the reset as a *net.OpError", err)
	}

}
