#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# weft's own benchmarks, no peers: runs build/bench/weft-bench once per
# workload for each scheduler (mt1, mt2, ct) and prints the RESULT lines.
# Run by `make bench`, after `make` has built build/.
#
# Environment:
#   SCALE=1                     passed to weft-bench (scales task counts)
#   WORKLOADS="W1 W2 W3 W4 W5 C1 C4 M1"  workloads to run
#   MODES="mt1 mt2 ct"          schedulers to run
#   WEFT_BENCH=build/bench/weft-bench
#   RUN_TIMEOUT=600             seconds one run may take before it counts as failed
#
# Exit status: non-zero if any run failed (non-zero exit, timeout, or no valid
# RESULT line); the other runs still run.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2

SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-"W1 W2 W3 W4 W5 C1 C4 M1"}
MODES=${MODES:-"mt1 mt2 ct"}
WEFT_BENCH=${WEFT_BENCH:-build/bench/weft-bench}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}

if [[ ! -x $WEFT_BENCH ]]; then
    echo "run.sh: $WEFT_BENCH is missing or not executable; run 'make' first" >&2
    exit 2
fi

out=$(mktemp "${TMPDIR:-/tmp}/weft-run.XXXXXX")
trap 'rm -f "$out"' EXIT
failed=0
for w in $WORKLOADS; do
    for mode in $MODES; do
        timeout -k 10 "$RUN_TIMEOUT" "$WEFT_BENCH" "$w" "$mode" "$SCALE" >"$out"
        rc=$?
        line=$(awk -v w="$w" -v rt="weft-$mode" '
            $1 == "RESULT" && $2 == w && $3 == rt && NF == 4 &&
            $4 ~ /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ { print; n++ }
            END { if (n != 1) exit 1 }' "$out")
        parsed=$?
        if ((rc == 0 && parsed == 0)); then
            echo "$line"
        else
            failed=1
            echo "run.sh: FAILED: $WEFT_BENCH $w $mode $SCALE (exit status $rc$( ((parsed)) && echo ', no valid RESULT line'))" >&2
            sed 's/^/  stdout: /' "$out" | tail -n 5 >&2
        fi
    done
done
if ((failed)); then
    echo "run.sh: some runs FAILED" >&2
    exit 1
fi
