//go:build !linux

package frametest

import "runtime"

// yieldCPU gives the processor to another goroutine, if any.
func yieldCPU() { runtime.Gosched() }
