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
		corpus="$dir/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | wc -l)
		for attempt in 1 2; do
			if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
				echo "$out" | tail -2
				break
			fi
			echo "$out" | tail -20
			after=$(ls "$corpus" 2>/dev/null | wc -l)
			# Go's fuzzer sometimes ends a run with "context deadline
			# exceeded" and no crasher (a worker slow to stop): run it
			# again once rather than report a crash that is not there.
			if [ "$after" = "$before" ] && [ $attempt = 1 ] && echo "$out" | grep -q "context deadline exceeded"; then
				echo "(no crasher written: the fuzzer's own timeout; running $target again)"
				continue
			fi
			status=1
			echo "!! $target failed: the input is in $corpus/; fix the bug and commit the file as a regression seed"
			break
		done
	done
done
exit $status
