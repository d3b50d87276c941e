package stack

import (
	"testing"

	"github.com/mkstack/mkstack/stack/header"
)

// The scripted TCP tests over IPv6: each runs the IPv4 script unchanged
// on a harness over IPv6 (newTCPScript makes one for every test under
// TestTCPScriptOverIPv6): the peer at 2001:db8::9, the stack at
// 2001:db8::2, frames with an IPv6 header and the IPv6 pseudo-header
// checksum, the stack's output parsed as IPv6 (the harness fails on any
// other frame, on a Flow Label other than the connection's, and on a
// script that sent no IPv6 frame at all). The stack's MSS is 1440 there,
// 20 less than over IPv4: the harness reads an expected MSS option of
// 1460 as 1440, and the option negotiation tables say what the segments
// carry over IPv6.
func TestTCPScriptOverIPv6(t *testing.T) {
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		// Opening: passive and active, options, SYN-ACK retransmission,
		// SYN cookies.
		{"OptionNegotiationPassive", TestTCPScriptOptionNegotiationPassive},
		{"OptionNegotiationActive", TestTCPScriptOptionNegotiationActive},
		{"SimultaneousOpen", TestTCPScriptSimultaneousOpen},
		{"SYNACKRetransmitsWithBackoff", TestTCPScriptSYNACKRetransmitsWithBackoff},
		{"SYNFloodFallsBackToSYNCookies", TestTCPScriptSYNFloodFallsBackToSYNCookies},
		{"SYNCookieCarriesOptionsInTheTimestamp", TestTCPScriptSYNCookieCarriesOptionsInTheTimestamp},
		{"SYNCookieWithoutMSSUsesTheFamilysDefault", TestTCPScriptSYNCookieWithoutMSSUsesTheFamilysDefault},
		// Data: delayed ACKs, half close.
		{"DelayedACK", TestTCPScriptDelayedACK},
		{"HalfCloseThePeerKeepsSending", TestTCPScriptHalfCloseThePeerKeepsSending},
		// Loss: RTO, fast retransmit, SACK recovery, persist, keepalive.
		{"RTOBackoffTimelineAndGiveUp", TestTCPScriptRTOBackoffTimelineAndGiveUp},
		{"FastRetransmitAfterThreeDuplicateACKs", TestTCPScriptFastRetransmitAfterThreeDuplicateACKs},
		{"TwoDuplicateACKsDoNotRetransmit", TestTCPScriptTwoDuplicateACKsDoNotRetransmit},
		{"SACKRepairsSeveralLossesInOneRoundTrip", TestTCPScriptSACKRepairsSeveralLossesInOneRoundTrip},
		{"ZeroWindowPersistProbesThenDataFlows", TestTCPScriptZeroWindowPersistProbesThenDataFlows},
		{"KeepAliveProbesAndGiveUp", TestTCPScriptKeepAliveProbesAndGiveUp},
		// Resets and RFC 5961.
		{"ResetsToAClosedPort", TestTCPScriptResetsToAClosedPort},
		{"RSTAtRcvNxtResets", TestTCPScriptRSTAtRcvNxtResets},
		{"RSTInWindowGetsChallengeACKOutOfWindowIgnored", TestTCPScriptRSTInWindowGetsChallengeACKOutOfWindowIgnored},
		{"SYNInSynchronizedStateGetsChallengeACK", TestTCPScriptSYNInSynchronizedStateGetsChallengeACK},
		{"ACKOutsideTheAcceptableRangeIsDropped", TestTCPScriptACKOutsideTheAcceptableRangeIsDropped},
		// Closing: FIN, TIME-WAIT and its reuse.
		{"SimultaneousClose", TestTCPScriptSimultaneousClose},
		{"TimeWaitLasts2MSLAndIgnoresRST", TestTCPScriptTimeWaitLasts2MSLAndIgnoresRST},
		{"TimeWaitReusedByNewerSYN", TestTCPScriptTimeWaitReusedByNewerSYN},
		{"TimeWaitReusedBySYNWithNewerTimestamp", TestTCPScriptTimeWaitReusedBySYNWithNewerTimestamp},
		// And the rest of the scripts that need nothing of IPv4: hardening,
		// recovery and undo, TLP, quick ACKs, SYN retries, user timeout,
		// timestamps, PSH, orphans, the advertised edge, keepalive,
		// ping-pong.
		{"ChallengeACKsAreRateLimitedPerConnection", TestTCPScriptChallengeACKsAreRateLimitedPerConnection},
		{"OneConnectionCannotSpendAnothersChallengeACKs", TestTCPScriptOneConnectionCannotSpendAnothersChallengeACKs},
		{"CookieACKNeedsARecentOverflow", TestTCPScriptCookieACKNeedsARecentOverflow},
		{"SACKingACKsWithDataCountAsDuplicates", TestTCPScriptSACKingACKsWithDataCountAsDuplicates},
		{"ACKAfterAShrunkWindowCarriesTheWindowEnd", TestTCPScriptACKAfterAShrunkWindowCarriesTheWindowEnd},
		{"TailLossProbeRetransmissionGivesNoRTTSample", TestTCPScriptTailLossProbeRetransmissionGivesNoRTTSample},
		{"SlowStartCountsOnlyNewlyDeliveredData", TestTCPScriptSlowStartCountsOnlyNewlyDeliveredData},
		{"PRRSendsInProportionAboveSsthresh", TestTCPScriptPRRSendsInProportionAboveSsthresh},
		{"PRRSlowStartsBackToSsthresh", TestTCPScriptPRRSlowStartsBackToSsthresh},
		{"PRRCountsSACKsOfAnOldACK", TestTCPScriptPRRCountsSACKsOfAnOldACK},
		{"QuickACKsAtTheStartAndAfterASilence", TestTCPScriptQuickACKsAtTheStartAndAfterASilence},
		{"QuickACKsAreBoundByHalfTheWindow", TestTCPScriptQuickACKsAreBoundByHalfTheWindow},
		{"TailLossProbeResendsABareFINAlone", TestTCPScriptTailLossProbeResendsABareFINAlone},
		{"TailLossProbeRestartKeepsTheTimeout", TestTCPScriptTailLossProbeRestartKeepsTheTimeout},
		{"SYNGivesUpAfterSixRetransmissions", TestTCPScriptSYNGivesUpAfterSixRetransmissions},
		{"SYNACKGivesUpAfterFiveRetransmissions", TestTCPScriptSYNACKGivesUpAfterFiveRetransmissions},
		{"RTORestartsAtThreeSecondsAfterAHandshakeTimeout", TestTCPScriptRTORestartsAtThreeSecondsAfterAHandshakeTimeout},
		{"DSACKReportsDuplicates", TestTCPScriptDSACKReportsDuplicates},
		{"DSACKFitsWithTimestamps", TestTCPScriptDSACKFitsWithTimestamps},
		{"NoDSACKWithoutSACK", TestTCPScriptNoDSACKWithoutSACK},
		{"DSACKUndoesSpuriousFastRetransmit", TestTCPScriptDSACKUndoesSpuriousFastRetransmit},
		{"DSACKOfAnOriginalUndoesNothing", TestTCPScriptDSACKOfAnOriginalUndoesNothing},
		{"EifelUndoesSpuriousRTO", TestTCPScriptEifelUndoesSpuriousRTO},
		{"EifelUndoesSpuriousFastRetransmit", TestTCPScriptEifelUndoesSpuriousFastRetransmit},
		{"FRTO", TestTCPScriptFRTO},
		{"UserTimeoutEndsRetransmissions", TestTCPScriptUserTimeoutEndsRetransmissions},
		{"UserTimeoutOutlastsMaxRetries", TestTCPScriptUserTimeoutOutlastsMaxRetries},
		{"UserTimeoutRestartsOnProgress", TestTCPScriptUserTimeoutRestartsOnProgress},
		{"UserTimeoutEndsAnsweredZeroWindowProbes", TestTCPScriptUserTimeoutEndsAnsweredZeroWindowProbes},
		{"UserTimeoutZeroWindowRestartsWhenTheWindowOpens", TestTCPScriptUserTimeoutZeroWindowRestartsWhenTheWindowOpens},
		{"UserTimeoutOverridesKeepAliveProbes", TestTCPScriptUserTimeoutOverridesKeepAliveProbes},
		{"UserTimeoutEndsSYNRetransmissions", TestTCPScriptUserTimeoutEndsSYNRetransmissions},
		{"TSRecentOnlyFromAnAcceptableACK", TestTCPScriptTSRecentOnlyFromAnAcceptableACK},
		{"ResetCarriesTimestamps", TestTCPScriptResetCarriesTimestamps},
		{"BurstPushMarksEachGSOSizedPacket", TestTCPScriptBurstPushMarksEachGSOSizedPacket},
		{"BurstPushNotOnResentData", TestTCPScriptBurstPushNotOnResentData},
		{"FinWait2OfAClosedConnectionTimesOut", TestTCPScriptFinWait2OfAClosedConnectionTimesOut},
		{"DataAfterCloseIsAnsweredWithAReset", TestTCPScriptDataAfterCloseIsAnsweredWithAReset},
		{"ZeroWindowProbesAreBounded", TestTCPScriptZeroWindowProbesAreBounded},
		{"DataWithinThePreviouslyOfferedEdgeIsTaken", TestTCPScriptDataWithinThePreviouslyOfferedEdgeIsTaken},
		{"SetKeepAliveUsesTheConnectionsOwnTiming", TestTCPScriptSetKeepAliveUsesTheConnectionsOwnTiming},
		{"PingPongDelaysTheACKOfARequestForTheReply", TestTCPScriptPingPongDelaysTheACKOfARequestForTheReply},
	} {
		t.Run(tc.name, tc.test)
	}
}

// TestTCPScriptOverIPv6UsesIPv6 checks the switch: a test under
// TestTCPScriptOverIPv6 gets a harness over IPv6, any other one over IPv4,
// and the harness over IPv6 fails a script expecting the wrong segment as
// the one over IPv4 does.
func TestTCPScriptOverIPv6UsesIPv6(t *testing.T) {
	if h := newTCPScript(t, nil); h.v6 || h.ourMSS != 1460 {
		t.Fatalf("%s: v6 %v, MSS %d", t.Name(), h.v6, h.ourMSS)
	}
	ok := runIsolated(func(inner *testing.T) {
		h := newTCPScriptFamily(inner, true, nil)
		h.listen()
		h.run([]step{in(0, tseg{f: "S"}), out(0, tseg{f: "S.", ack: 2})})
	})
	if ok {
		t.Error("a bad script passed over IPv6")
	}
	h := newTCPScriptFamily(t, true, nil)
	h.listen()
	// The harness translates an expected MSS of 1460 to 1440; an explicit
	// 1440 is the same.
	h.run([]step{
		in(0, tseg{f: "S", opts: synOpts(1460)}),
		out(0, tseg{f: "S.", ack: 1, win: 65535, opts: synOpts(1440)}),
	})
	if h.frames[header.EtherTypeIPv6] != 1 || len(h.frames) != 1 {
		t.Fatalf("frames by EtherType %v, want one IPv6", h.frames)
	}
}

// Segments to a port nobody listens on (RFC 9293 3.10.7.1): a SYN or data
// without ACK gets an RST|ACK acknowledging it (SEQ 0, ACK SEG.SEQ +
// SEG.LEN, SYN and FIN counted); an ACK gets an RST at SEG.ACK; an RST
// gets nothing.
func TestTCPScriptResetsToAClosedPort(t *testing.T) {
	h := newTCPScript(t, nil) // no listener on scriptPort
	h.run([]step{
		in(0, tseg{f: "S", seq: 0, opts: synOpts(1000)}),
		out(0, tseg{f: "R.", seq: 0, ack: 1, win: zeroWin, opts: noOpts}),
		in(ms(10), tseg{f: "F", seq: 0, n: 3}),
		out(ms(10), tseg{f: "R.", seq: 0, ack: 4}),
		in(ms(20), tseg{f: ".", seq: 1, ack: 77777}),
		out(ms(20), tseg{f: "R", seq: 77777}),
		in(ms(30), tseg{f: "P.", seq: 1, ack: 12345, n: 100}),
		out(ms(30), tseg{f: "R", seq: 12345}),
		in(ms(40), tseg{f: "R", seq: 1}),
		in(ms(50), tseg{f: "R.", seq: 1, ack: 5}),
		none(ms(5000)),
		do(ms(5000), func(h *tcpScript) {
			if n := h.s.TCPConnCount(); n != 0 {
				h.t.Fatalf("%d connections", n)
			}
		}),
	})
}

// A SYN cookie for a SYN without an MSS option encodes the default send
// MSS of the family (RFC 9293 3.7.1): 536 over IPv4; over IPv6 1220,
// which the cookie's table holds as 1200, the largest entry not above it.
func TestTCPScriptSYNCookieWithoutMSSUsesTheFamilysDefault(t *testing.T) {
	h := newTCPScript(t, nil)
	want := 536
	if h.v6 {
		want = 1200
	}
	h.lopts.SYNQueue = 1
	h.listen()
	h.run([]step{
		do(0, as(5000)),
		in(0, tseg{f: "S", seq: 0}),
		out(0, tseg{f: "S.", seq: 0, ack: 1, opts: synOpts(1460)}),
		do(ms(100), as(5001)),
		in(ms(100), tseg{f: "S", seq: 0}),
		out(ms(100), tseg{f: "S.", seq: 0, ack: 1, win: 65535, opts: synOpts(1460)}),
		do(ms(100), wantStat("cookies sent", func(s *TCPStats) uint64 { return s.SYNCookiesSent }, 1)),
		in(ms(200), tseg{f: ".", seq: 1, ack: 1}),
		do(ms(200), wantState("ESTABLISHED")),
		do(ms(200), func(h *tcpScript) {
			if h.conn.sndMSS != want {
				h.t.Fatalf("cookie connection's MSS %d, want %d", h.conn.sndMSS, want)
			}
		}),
	})
}
