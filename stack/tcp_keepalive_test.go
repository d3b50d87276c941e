package stack

import (
	"testing"
	"time"
)

// TestTCPScriptSetKeepAliveUsesTheConnectionsOwnTiming: SetKeepAlive on an
// established connection (as net.TCPConn.SetKeepAliveConfig) probes after
// its own idle time, its own interval apart, and gives up after its own
// count, whatever the stack's defaults; turning it off stops the probes.
func TestTCPScriptSetKeepAliveUsesTheConnectionsOwnTiming(t *testing.T) {
	h := newTCPScript(t, nil) // the stack's defaults: 2 h idle, 75 s apart, 9 probes
	h.listen()
	probe := tseg{f: ".", seq: 0, ack: 1}
	h.run(steps(scriptMSS1000(), []step{
		do(ms(100), func(h *tcpScript) {
			h.conn.SetKeepAlive(KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: 500 * time.Millisecond, Count: 2})
		}),
		none(ms(2099)),
		out(ms(2100), probe), // 2 s after the last segment (the ACK at 100 ms)
		out(ms(2600), probe),
		do(ms(3099), wantState("ESTABLISHED")),
		do(ms(3100), wantClosed(ErrConnectionTimeout)),
	}))

	h = newTCPScript(t, nil)
	h.listen()
	h.run(steps(scriptMSS1000(), []step{
		do(ms(100), func(h *tcpScript) { h.conn.SetKeepAlive(KeepAliveConfig{Enable: true, Idle: time.Second}) }),
		out(ms(1100), probe),
		do(ms(1200), func(h *tcpScript) { h.conn.SetKeepAlive(KeepAliveConfig{}) }),
		none(ms(600000)),
		do(ms(600000), wantState("ESTABLISHED")),
	}))
}
