//go:build !mkstackdebug

package sockets

// debugBuild: nicq's debug checks are off (see debugbuild_on_test.go).
const debugBuild = false
