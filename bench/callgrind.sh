#!/usr/bin/env bash
# Instructions per transaction under valgrind --tool=callgrind, one core,
# labelled by API model so that only like is compared with like:
#   handler   mkstack's run-to-completion handlers (system mkstack);
#   net.Conn  mkstack's net.Conn face (mkstack-conn) and gVisor's netstack
#             through its gonet adapter (gvisor), both driven by the same
#             goroutine load generator over an in-process link.
# (The kernel cannot be counted this way: its work is not user space.)
#
# Each system runs N transactions (--transactions, one flow); the meter
# calls bench.callgrindZero at transaction N/5 and bench.callgrindDump at
# transaction N, and callgrind dumps its counters at both: the second dump
# holds the instructions of the last 4N/5 transactions alone, with
# start-up, warm-up and shut-down left out. Every
# thread of the process is counted: both sides of the wire (client and
# server stacks run in one process), the load generator, the Go runtime
# and its scheduler; not the kernel (system calls count as the user-space
# instructions around them).
#
#   bash bench/callgrind.sh [WORKLOAD] [N]     (apt-get install -y valgrind)
#
# CALLGRIND_KEEP=1 keeps callgrind's files (callgrind_annotate them);
# CALLGRIND_ONLY_MKSTACK=1 leaves gVisor out. mkstack's counts agree
# within a few percent from run to run when nothing else heavy runs;
# gVisor's vary more: take the lowest of a few runs.
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:-tcp-rr}
n=${2:-20000}
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install -y valgrind" >&2; exit 1; }
tmp=$(mktemp -d)
if [ -n "${CALLGRIND_KEEP:-}" ]; then
	echo "callgrind's files stay in $tmp" >&2
else
	trap 'rm -rf "$tmp"' EXIT
fi
# Callgrind (3.19) fails an assertion (vgCallgrind_post_signal) when the Go
# program takes a signal: Go's asynchronous preemption (SIGURG) and the
# SIGCHLD of the git the result's environment runs. So: no cgo, no
# asynchronous preemption, and no git on the PATH under valgrind.
export CGO_ENABLED=0 GODEBUG=asyncpreemptoff=1
valgrind=$(command -v valgrind)
go build -o "$tmp/mkstack" ./cmd/mkstack
(cd bench/gvisorpeer && go build -o "$tmp/gvisorpeer" ./cmd/gvisorpeer)

counted=$((n - (n / 5 > 0 ? n / 5 : 1)))

per_txn() { # name cmd...
	local name=$1; shift
	local out="$tmp/cg.${name// /-}"
	PATH=/nonexistent "$valgrind" --tool=callgrind --callgrind-out-file="$out" \
		--dump-before='*bench.callgrindZero' --dump-before='*bench.callgrindDump' \
		"$@" >/dev/null 2>"$tmp/cg.err" || { cat "$tmp/cg.err" >&2; return 1; }
	local dump ir
	# The dump callgrindDump triggers holds what ran since the one
	# callgrindZero triggered: the counted transactions. (A dump, not
	# --zero-before: here zeroing left the start-up in the count.)
	dump=$(grep -l 'Trigger: --dump-before=.*callgrindDump' "$out".* 2>/dev/null | head -1)
	[ -n "$dump" ] || { echo "$name: callgrind wrote no dump at callgrindDump (the markers were not reached)" >&2; return 1; }
	grep -q 'Trigger: --dump-before=.*callgrindZero' "$out".* || { echo "$name: callgrindZero was not reached" >&2; return 1; }
	ir=$(grep -m1 '^summary:\|^totals:' "$dump" | awk '{print $2}')
	echo "$name $workload: $((ir / counted)) instructions per transaction ($ir for $counted transactions)"
}

per_txn "handler mkstack" "$tmp/mkstack" bench --workload "$workload" --cores 1 --systems mkstack --conns 1 --transactions "$n" --gvisor-peer /nonexistent
per_txn "net.Conn mkstack-conn" "$tmp/mkstack" bench --workload "$workload" --cores 1 --systems mkstack-conn --conns 1 --transactions "$n" --gvisor-peer /nonexistent
[ -n "${CALLGRIND_ONLY_MKSTACK:-}" ] || per_txn "net.Conn gvisor" "$tmp/gvisorpeer" point -workload "$workload" -cores 1 -flows 1 -transactions "$n"
