//go:build race

package vnet

// raceEnabled: the race detector allocates, so allocation counts are not checked.
const raceEnabled = true
