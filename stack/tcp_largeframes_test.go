package stack

import "testing"

// TestTCPScriptLargeFramesSendAnMSSOfTheMTU: with a NIC that takes frames
// larger than its pool's buffers (Config.LargeFrames, AF_XDP
// multi-buffer), an MTU of 9000 gives an MSS of 8960 both announced and
// sent, in segments larger than a buffer of the pool (2 KiB here).
func TestTCPScriptLargeFramesSendAnMSSOfTheMTU(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.MTU, c.LargeFrames = 9000, true })
	if room := h.pool.FrameSize() - h.pool.Headroom(); room > 8960 {
		t.Fatalf("the pool's buffers hold %d bytes: the test needs them smaller than an MSS of 8960", room)
	}
	h.listen()
	h.run(steps(passiveOpen(synOpts(8960), synOpts(8960)), []step{
		do(ms(200), write(20000)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 8960}),
		out(ms(200), tseg{f: "P.", seq: 8961, ack: 1, n: 8960}), // the end of a GSO packet of 2 MSS
		in(ms(300), tseg{f: ".", seq: 1, ack: 17921}),
		out(ms(300), tseg{f: "P.", seq: 17921, ack: 1, n: 2080}), // Nagle held the short tail
		in(ms(400), tseg{f: ".", seq: 1, ack: 20001}),
		none(ms(5000)),
	}))
}

// TestTCPScriptWithoutLargeFramesTheBufferBoundsTheMSS: the same MTU on a
// NIC whose frames must fit one buffer of its pool: the MSS announced is
// what a buffer holds, and the peer's larger MSS does not raise what is
// sent.
func TestTCPScriptWithoutLargeFramesTheBufferBoundsTheMSS(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.MTU = 9000 })
	mss := h.pool.FrameSize() - h.pool.Headroom() - 14 - 20 - 20
	h.listen()
	h.run(steps(passiveOpen(synOpts(8960), synOpts(uint16(mss))), []step{
		do(ms(200), write(2*mss)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: mss}),
		out(ms(200), tseg{f: "P.", seq: 1 + int64(mss), ack: 1, n: mss}),
		in(ms(300), tseg{f: ".", seq: 1, ack: 1 + int64(2*mss)}),
		none(ms(5000)),
	}))
}

// TestUDPWithLargeFrames: at MTU 9000, a datagram of 8000 bytes goes
// whole where the NIC takes frames larger than a buffer (LargeFrames);
// one of 20000 bytes goes in fragments that each fit a buffer of the pool
// (2 KiB here), with LargeFrames or without (a stack whose MTU exceeds
// its buffers: before, it failed to build a fragment of the MTU). All
// arrive intact, echoed back.
func TestUDPWithLargeFrames(t *testing.T) {
	for _, tc := range []struct {
		large     bool
		size      int
		fragments uint64
	}{
		{true, 8000, 0},
		{true, 20000, 11}, // 20008 bytes of UDP in pieces of 1912
		{false, 20000, 11},
	} {
		n := newTestNet(t)
		cfg := func(c *Config) { c.MTU, c.LargeFrames = 9000, tc.large }
		a := n.add("10.0.0.1/24", cfg)
		b := n.add("10.0.0.2/24", cfg)
		ep := udpEchoThrough(t, n, a, b, tc.size)
		if got := a.Stats().FragmentsOut; got != tc.fragments {
			t.Errorf("large frames %v, %d bytes: %d fragments, want %d", tc.large, tc.size, got, tc.fragments)
		}
		ep.Close()
		n.checkNoLeaks()
	}
}

// TestTCPScriptTxChecksumOffloadLeavesChecksumsPartial: with a NIC that
// completes checksums (Config.TxChecksumOffload), every segment the
// stack sends, the SYN-ACK and the data, carries the pseudo-header sum and
// the buffer flag that asks the NIC to complete it (the harness checks
// both); without, every checksum is complete (every other script).
func TestTCPScriptTxChecksumOffloadLeavesChecksumsPartial(t *testing.T) {
	h := newTCPScript(t, func(c *Config) { c.TxChecksumOffload = true })
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(200), write(2000)),
		out(ms(200), tseg{f: ".", seq: 1, ack: 1, n: 1000}),
		out(ms(200), tseg{f: "P.", seq: 1001, ack: 1, n: 1000}),
		in(ms(300), tseg{f: ".", seq: 1, ack: 2001}),
		none(ms(5000)),
	}))
	if h.partials != 3 {
		t.Errorf("%d segments sent with the checksum left to the NIC, want 3 (the SYN-ACK and two of data)", h.partials)
	}
}
