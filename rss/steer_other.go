//go:build !linux

package rss

import "fmt"

// SteeringProgram needs Linux's eBPF; elsewhere NewSteeringProgram wraps
// ErrNotSupported.
type SteeringProgram struct{}

// NewSteeringProgram needs Linux's eBPF; elsewhere it wraps ErrNotSupported.
func NewSteeringProgram(cfg *Config) (*SteeringProgram, error) {
	return nil, fmt.Errorf("load RSS steering program: eBPF %w on this platform", ErrNotSupported)
}

// FD is -1: there is no program.
func (p *SteeringProgram) FD() int { return -1 }

// Instructions is 0: there is no program.
func (p *SteeringProgram) Instructions() int { return 0 }

// UpdateRETA wraps ErrNotSupported.
func (p *SteeringProgram) UpdateRETA(reta RETA) error {
	return fmt.Errorf("update steering indirection table: eBPF %w on this platform", ErrNotSupported)
}

// AttachTAP wraps ErrNotSupported.
func (p *SteeringProgram) AttachTAP(tapFD int) error {
	return fmt.Errorf("attach RSS steering program to TAP: %w on this platform", ErrNotSupported)
}

// Close does nothing.
func (p *SteeringProgram) Close() error { return nil }
