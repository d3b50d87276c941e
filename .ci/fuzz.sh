#!/usr/bin/env bash
# Runs every fuzz target of the module for a while each.
#
#   bash .ci/fuzz.sh [DURATION]     (default 30s per target; e.g. 10m for a long run)
#
# The seed corpora (f.Add and testdata/fuzz/) run with the ordinary tests in
# CI. A crash found here is written by go test under the package's
# testdata/fuzz/FuzzName/ directory: commit that file, and it becomes a
# regression seed that every later test run replays.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
	for target in $targets; do
		echo "== $pkg $target ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			status=1
			echo "!! $target failed: the input is in $dir/testdata/fuzz/$target/; fix the bug and commit the file as a regression seed"
		fi
	done
done
exit $status
