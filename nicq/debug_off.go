//go:build !mkstackdebug

package nicq

// debugChecks is false in normal builds: every check guarded by it compiles
// away, and the debug fields below take no space. Build with
// -tags mkstackdebug to turn the checks on (see debug_on.go).
const debugChecks = false

//lint:ignore U1000 the mkstackdebug build gives it fields
type bufDebug struct{}

//lint:ignore U1000 the mkstackdebug build gives it fields
type poolDebug struct{}

func (b *Buf) debugCheckLive(string)   {}
func (b *Buf) debugPoison()            {}
func (b *Buf) debugGet()               {}
func (b *Buf) debugPut(string)         {}
func (p *Pool) debugCheckOwner(string) {}
func (p *Pool) debugClaim()            {}
