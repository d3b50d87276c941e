package stack

import "testing"

// TestTCPConnMSSIsThePayloadOfAFullSegment: MSS reports the peer's MSS
// less the options each segment carries (Linux's TCP_MAXSEG).
func TestTCPConnMSSIsThePayloadOfAFullSegment(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   bool
		want int
	}{
		{"no options", false, 1100},
		{"timestamps", true, 1088},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTCPScript(t, nil)
			h.autoTS = tc.ts
			h.listen()
			h.run([]step{
				in(0, tseg{f: "S", seq: 0, opts: synOpts(1100)}),
				out(0, tseg{f: "S.", seq: 0, ack: 1}),
				in(ms(100), tseg{f: ".", seq: 1, ack: 1}),
				do(ms(100), func(h *tcpScript) {
					if got := h.conn.MSS(); got != tc.want {
						h.t.Fatalf("MSS %d, want %d", got, tc.want)
					}
				}),
			})
		})
	}
}
