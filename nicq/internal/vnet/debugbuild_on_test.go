//go:build mkstackdebug

package vnet

// debugBuild: nicq's buffer checks are on, and they allocate.
const debugBuild = true
