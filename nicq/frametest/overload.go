package frametest

import "fmt"

// OverloadSample is what one step of an overload test counted: frames
// offered, datagrams the server delivered, transactions the established
// TCP flow completed, over secs seconds.
type OverloadSample struct {
	Offered, Delivered, Transactions, Secs float64
}

// Add adds o's counts to s.
func (s *OverloadSample) Add(o OverloadSample) {
	s.Offered += o.Offered
	s.Delivered += o.Delivered
	s.Transactions += o.Transactions
	s.Secs += o.Secs
}

// OverloadRate is a sample's rates.
type OverloadRate struct {
	Offered   float64 `json:"offered_pps"`
	Delivered float64 `json:"delivered_pps"`
	TCPRate   float64 `json:"tcp_transactions_per_s"`
}

// Rate returns s's rates.
func (s OverloadSample) Rate() OverloadRate {
	if s.Secs == 0 {
		return OverloadRate{}
	}
	return OverloadRate{Offered: s.Offered / s.Secs, Delivered: s.Delivered / s.Secs, TCPRate: s.Transactions / s.Secs}
}

// OverloadVerdict is the side-by-side measurement an overload test judges,
// each part summed over short steps taken in turn so that all three see
// the same neighbours on a shared machine: the TCP flow alone (Base),
// the server offered its peak (One) and offered three times its peak
// (Three).
type OverloadVerdict struct {
	Base, One, Three OverloadSample

	// Set by Judge.
	Capacity float64 // what the server took: the more of One's and Three's delivered rates
	Overload float64 // Three's offered rate over Capacity
	TCPShare float64 // Three's TCP rate over Base's
	Err      string  // the first requirement failed, or ""
}

// Judge checks v: the generator offered at least three times what the
// server took in the same steps, the server delivered at three times at
// least 90% of what it delivered offered its peak, and the TCP flow kept
// at least minShare of its rate alone. The overload is measured against
// what the server took in these steps, not against the best step of an
// earlier sweep: a neighbour that slows the generator for a while often
// slows the server too.
func (v *OverloadVerdict) Judge(minShare float64) {
	base, one, three := v.Base.Rate(), v.One.Rate(), v.Three.Rate()
	v.TCPShare = 0
	if base.TCPRate > 0 {
		v.TCPShare = three.TCPRate / base.TCPRate
	}
	v.Capacity = max(one.Delivered, three.Delivered, 1)
	v.Overload = three.Offered / v.Capacity
	switch {
	case v.Overload < 3:
		v.Err = fmt.Sprintf("the generator reached %.0f pps, %.2fx the %.0f pps the server took; the test needs 3x, %.0f pps: it cannot overload the server on this machine, and a test that does not overload checks nothing", three.Offered, v.Overload, v.Capacity, 3*v.Capacity)
	case three.Delivered < 0.9*one.Delivered:
		v.Err = fmt.Sprintf("offered %.0f pps (%.1fx what it took), the server delivers %.0f pps, %.2f of the %.0f it delivers offered its peak: receive livelock", three.Offered, v.Overload, three.Delivered, three.Delivered/max(one.Delivered, 1), one.Delivered)
	case v.TCPShare < minShare:
		v.Err = fmt.Sprintf("offered %.1fx what the server took, the established TCP flow does %.0f transactions/s, %.3f of its %.0f alone; it must keep %.3f", v.Overload, three.TCPRate, v.TCPShare, base.TCPRate, minShare)
	default:
		v.Err = ""
	}
}

func (v OverloadVerdict) String() string {
	base, one, three := v.Base.Rate(), v.One.Rate(), v.Three.Rate()
	return fmt.Sprintf("TCP alone %.0f trans/s; offered %.0f pps delivers %.0f, TCP %.0f trans/s; offered %.0f pps (%.2fx what it took) delivers %.0f (%.2f of that), TCP %.0f trans/s (%.3f of alone)",
		base.TCPRate, one.Offered, one.Delivered, one.TCPRate, three.Offered, v.Overload, three.Delivered, three.Delivered/max(one.Delivered, 1), three.TCPRate, v.TCPShare)
}
