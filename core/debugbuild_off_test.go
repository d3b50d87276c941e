//go:build !mkstackdebug

package core

const debugBuild = false
