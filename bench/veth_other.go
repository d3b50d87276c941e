//go:build !linux

package bench

// Veth is not available off Linux: the veth systems need network
// namespaces, veth, TAP and XDP.
func Veth(name string) System { return unavailable(name, "needs Linux") }
