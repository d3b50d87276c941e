package timer_test

import (
	"fmt"
	"time"

	"github.com/mkstack/mkstack/stack/timer"
)

// conn stands for a connection that embeds its retransmission timer.
type conn struct {
	name string
	rto  timer.Timer
}

func (c *conn) onRTO(*timer.Timer) { fmt.Println(c.name, "retransmits") }

func Example() {
	w := timer.New(0, time.Millisecond) // the stack's clock starts at 0
	c := &conn{name: "c1"}
	c.rto.Init(c.onRTO) // once, when the connection is made

	w.Schedule(&c.rto, int64(200*time.Millisecond))
	w.Advance(int64(150 * time.Millisecond)) // nothing due yet
	w.Schedule(&c.rto, int64(350*time.Millisecond))
	w.Advance(int64(300 * time.Millisecond)) // an ACK moved it: still nothing
	n := w.Advance(int64(400 * time.Millisecond))
	fmt.Println(n, "fired; pending:", c.rto.Pending())
	// Output:
	// c1 retransmits
	// 1 fired; pending: false
}
