// Package msgring owns the channels between cores.
//
// It must not know about packets.
package msgring
