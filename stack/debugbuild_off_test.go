//go:build !mkstackdebug

package stack

const debugBuild = false
