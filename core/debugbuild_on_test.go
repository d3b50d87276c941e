//go:build mkstackdebug

package core

// debugBuild: nicq's buffer checks are on, and they allocate.
const debugBuild = true
