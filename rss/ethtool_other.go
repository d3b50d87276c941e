//go:build !linux

package rss

import "fmt"

// ReadNICRSS needs Linux's ethtool ioctl; elsewhere it wraps ErrNotSupported.
func ReadNICRSS(ifname string) (NICRSS, error) {
	return NICRSS{}, fmt.Errorf("read RSS key of %s: ethtool %w on this platform", ifname, ErrNotSupported)
}

// WriteNICRSS needs Linux's ethtool ioctl; elsewhere it wraps ErrNotSupported.
func WriteNICRSS(ifname string, c NICRSS) error {
	return fmt.Errorf("write RSS key of %s: ethtool %w on this platform", ifname, ErrNotSupported)
}

// ReadNICChannels needs Linux's ethtool ioctl; elsewhere it wraps ErrNotSupported.
func ReadNICChannels(ifname string) (Channels, error) {
	return Channels{}, fmt.Errorf("read channel counts of %s: ethtool %w on this platform", ifname, ErrNotSupported)
}

// ReadNICRXRings needs Linux's ethtool ioctl; elsewhere it wraps ErrNotSupported.
func ReadNICRXRings(ifname string) (int, error) {
	return 0, fmt.Errorf("read receive ring count of %s: ethtool %w on this platform", ifname, ErrNotSupported)
}
