#!/usr/bin/env bash
# Instructions per transaction of mkstack (handler API) and gVisor's
# netstack on tcp-rr, one core, under valgrind --tool=callgrind.
#
# Each system runs the same workload twice in transactions mode (N1 and
# N2 transactions); the difference of the two instruction counts divided
# by N2-N1 is the cost of one transaction, with start-up and shut-down
# cancelled out. Both sides of the wire (client and server stacks) are
# counted, as they run in one process.
#
#   bash bench/callgrind.sh [WORKLOAD] [N1] [N2]     (apt-get install -y valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:-tcp-rr}
n1=${2:-20000}
n2=${3:-60000}
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install -y valgrind" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/mkstack" ./cmd/mkstack
(cd bench/gvisorpeer && go build -o "$tmp/gvisorpeer" ./cmd/gvisorpeer)

# instructions CMD...: the total Ir callgrind counted for CMD (all threads).
instructions() {
	local out="$tmp/cg.out"
	valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>"$tmp/cg.err" ||
		{ cat "$tmp/cg.err" >&2; return 1; }
	grep -m1 '^summary:\|^totals:' "$out" | awk '{print $2}'
}

per_txn() { # name cmd-for-N (N substituted for @N@)
	local name=$1; shift
	local a b
	a=$(instructions "${@//@N@/$n1}")
	b=$(instructions "${@//@N@/$n2}")
	echo "$name $workload: $(( (b - a) / (n2 - n1) )) instructions per transaction ($a for $n1, $b for $n2)"
}

per_txn mkstack "$tmp/mkstack" bench --workload "$workload" --cores 1 --systems mkstack --conns 1 --transactions @N@ --gvisor-peer /nonexistent
per_txn gvisor "$tmp/gvisorpeer" point -workload "$workload" -cores 1 -flows 1 -transactions @N@
