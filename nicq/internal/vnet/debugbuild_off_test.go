//go:build !mkstackdebug

package vnet

const debugBuild = false
