//go:build race

package nicq

const raceEnabled = true
