package main

import (
	"os"
	"strings"
	"testing"
)

// mainEnv, when set, makes the test binary act as the mkstack command with
// the arguments it holds (separated by the ASCII unit separator, 0x1f): tests run the command as
// a separate process (killed, signalled, with fewer privileges, inside a
// namespace) without building it first.
const mainEnv = "MKSTACK_TEST_MAIN"

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(loadGenEnv); ok {
		os.Exit(runLoadGen(spec, os.Stdout))
	}
	// bench --idle runs its points and loads as children of the binary
	// it is in: here, this test binary.
	if len(os.Args) > 1 && (os.Args[1] == "bench-point" || os.Args[1] == "bench-idle-client") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if args, ok := os.LookupEnv(mainEnv); ok {
		os.Exit(run(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
