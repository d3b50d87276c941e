//go:build race

package msgring_test

const raceEnabled = true
