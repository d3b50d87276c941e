package congestion_test

import (
	"fmt"

	"github.com/mkstack/mkstack/stack/congestion"
)

// conn stands for a TCP connection: it embeds every algorithm by value and
// points its Controller at the configured one.
type conn struct {
	ccs congestion.Algorithms
	cc  congestion.Controller
}

func Example() {
	alg, err := congestion.ByName("cubic") // from configuration
	if err != nil {
		panic(err)
	}
	var c conn
	c.cc = c.ccs.Select(alg)
	c.cc.Init(1460)
	fmt.Println(c.cc.Name(), c.cc.Cwnd(), c.cc.InSlowStart())

	// A round trip of one ACK per segment, the window full each time:
	// slow start doubles it.
	now := int64(0)
	for range 10 {
		now += 10_000_000 // 10 ms
		c.cc.OnAck(1460, c.cc.Cwnd(), 0, now)
	}
	fmt.Println("after one round trip:", c.cc.Cwnd())

	// Three duplicate ACKs: 0.7 of the flight remains.
	c.cc.OnCongestion(c.cc.Cwnd())
	c.cc.OnRecoveryExit()
	fmt.Println("after loss:", c.cc.Cwnd(), c.cc.Ssthresh(), c.cc.InSlowStart())

	// The retransmission timer: one segment.
	c.cc.OnRTO(c.cc.Cwnd())
	fmt.Println("after RTO:", c.cc.Cwnd(), c.cc.Ssthresh())

	_, err = congestion.ByName("bbr")
	fmt.Println(err)
	// Output:
	// cubic 14600 true
	// after one round trip: 29200
	// after loss: 20440 20440 false
	// after RTO: 1460 14308
	// congestion: unknown algorithm "bbr" (valid: cubic, newreno)
}
