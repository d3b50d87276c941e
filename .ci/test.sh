#!/usr/bin/env bash
# The project's test command (the README names it; .ci/run calls it).
# Runs formatting and vet checks, the whole test suite, the concurrency
# packages again under the race detector, and the buffer debug build.
# MKSTACK_LONG=1 lengthens soaks; fuzzing is run by hand (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test"
# cmd/mkstack's load tests on veth (SYN flood, overload) judge ratios of
# throughput and give the attacker and the server a CPU each: they run
# after the other packages, not beside them.
go test -count=1 -timeout 12m $(go list ./... | grep -v '/cmd/mkstack$')
go test -count=1 -timeout 12m ./cmd/mkstack

echo "== bench/gvisorpeer (a nested module: gVisor's netstack, kept out of mkstack's go.mod)"
(cd bench/gvisorpeer && go vet ./... && go test -count=1 ./...)

echo "== go test -race -short"
go test -count=1 -race -short -timeout 12m ./...

echo "== go test -tags mkstackdebug (buffer use-after-free and double-free checks)"
go test -count=1 -tags mkstackdebug ./nicq/... ./stack/... ./core/... ./sockets/...
