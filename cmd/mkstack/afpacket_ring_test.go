//go:build linux

package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var afpacketRingRounds = flag.Int("afpacket-ring-rounds", 0, "TestAFPacketRingsSideBySide: rounds of serve with --afpacket-ring v2 and v3 in turn (0 leaves the measurement out)")

// TestAFPacketRingsSideBySide is the measurement behind afpacket's default
// ring: serve's echo app on the afpacket driver over the lab's veth, with
// a V2 and a V3 ring in turn (the order swapped every round, so a machine
// busy with other work weighs on both alike), driven by kernel clients in
// the lab's other namespace: the round trip of 64-byte messages on one
// connection, the exchanges per second of 16 and of 128 such connections
// at once, and the rate of a 32 MiB echo. It only reports; run it with
//
//	go test -run TestAFPacketRingsSideBySide -afpacket-ring-rounds 5 -v ./cmd/mkstack
func TestAFPacketRingsSideBySide(t *testing.T) {
	if *afpacketRingRounds <= 0 {
		t.Skip("a measurement: -afpacket-ring-rounds N runs it")
	}
	l := newLab(t, "afpacket")
	type result struct {
		rtt             time.Duration
		perSec, perSec8 float64
		echoMBs         float64
	}
	got := map[string][]result{}
	for r := 0; r < *afpacketRingRounds; r++ {
		order := []string{"v2", "v3"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, ring := range order {
			stop := l.serve(t, "echo", "--afpacket-ring", ring)
			if !strings.Contains(l.logs.String(), "ring="+ring) {
				t.Fatalf("serve did not open a %s ring:\n%s", ring, l.logs.String())
			}
			var res result
			res.rtt = medianRoundTrip(t, l, 1000)
			res.perSec = exchangesPerSecond(t, l, 16, 2*time.Second)
			res.perSec8 = exchangesPerSecond(t, l, 128, 2*time.Second)
			res.echoMBs = echoRate(t, l, 32<<20)
			stop()
			got[ring] = append(got[ring], res)
			t.Logf("round %d %s: round trip median %v; exchanges/s over 16 connections %.0f, over 128 %.0f; echo %.0f MB/s", r, ring, res.rtt, res.perSec, res.perSec8, res.echoMBs)
		}
	}
	var rtt, rate, rate8, echo []string
	for i := range got["v2"] {
		v2, v3 := got["v2"][i], got["v3"][i]
		rtt = append(rtt, fmt.Sprintf("%.2f", float64(v2.rtt)/float64(v3.rtt)))
		rate = append(rate, fmt.Sprintf("%.2f", v2.perSec/v3.perSec))
		rate8 = append(rate8, fmt.Sprintf("%.2f", v2.perSec8/v3.perSec8))
		echo = append(echo, fmt.Sprintf("%.2f", v2.echoMBs/v3.echoMBs))
	}
	t.Logf("V2÷V3 by round: round trip %s; exchanges/s over 16 connections %s, over 128 %s; echo rate %s", strings.Join(rtt, " "), strings.Join(rate, " "), strings.Join(rate8, " "), strings.Join(echo, " "))
}

// medianRoundTrip sends n 64-byte messages on one connection to the echo
// app, each after the last came back, and returns the median round trip.
func medianRoundTrip(t *testing.T, l *lab, n int) time.Duration {
	c := l.dial(t, labStackAddr+":7")
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg, back := bytes.Repeat([]byte("m"), 64), make([]byte, 64)
	rtts := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	return rtts[n/2]
}

// exchangesPerSecond runs conns connections, each sending a 64-byte
// message after the last came back, for d, and returns the exchanges per
// second of all of them.
func exchangesPerSecond(t *testing.T, l *lab, conns int, d time.Duration) float64 {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	start := time.Now()
	for i := 0; i < conns; i++ {
		c := l.dial(t, labStackAddr+":7")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetDeadline(start.Add(d + 10*time.Second))
			msg, back := bytes.Repeat([]byte("x"), 64), make([]byte, 64)
			k := 0
			for time.Since(start) < d {
				if _, err := c.Write(msg); err != nil {
					t.Errorf("exchange: %v", err)
					return
				}
				if _, err := io.ReadFull(c, back); err != nil {
					t.Errorf("exchange: %v", err)
					return
				}
				k++
			}
			mu.Lock()
			total += k
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds()
}

// echoRate sends size bytes through the echo app while reading them back
// and returns the rate in MB/s (each way).
func echoRate(t *testing.T, l *lab, size int) float64 {
	c := l.dial(t, labStackAddr+":7")
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	go func() {
		buf := make([]byte, 64<<10)
		for left := size; left > 0; left -= len(buf) {
			if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != int64(size) {
		t.Fatalf("echo: %d of %d bytes, %v", n, size, err)
	}
	return float64(size) / 1e6 / time.Since(start).Seconds()
}
