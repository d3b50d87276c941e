// Package rss owns receive-side scaling: the Toeplitz hash, RSS keys
// (default and symmetric), the indirection table (RETA) that maps a hash to
// a queue, RSS-aware local port choice for active opens, and reading or
// programming a real NIC's key and table through ethtool.
//
// It must not allocate per packet.
package rss
