//go:build mkstackdebug

package stack

// debugBuild: nicq's buffer checks are on, and they allocate.
const debugBuild = true
