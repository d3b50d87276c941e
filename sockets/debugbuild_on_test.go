//go:build mkstackdebug

package sockets

// debugBuild: nicq's debug checks are on; they record where each buffer
// was freed, which allocates.
const debugBuild = true
