//go:build !mkstackdebug

package mem_test

const debugBuild = false
