//go:build mkstackdebug

package mem_test

// debugBuild: nicq's debug checks are on (poisoning every freed frame and
// finding the calling goroutine on every Get and Free of a claimed pool),
// which makes each frame tens of times dearer.
const debugBuild = true
