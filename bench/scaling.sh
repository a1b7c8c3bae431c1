#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# How each workload's cost grows with the number of workers: W1-W5 on weft
# and tokio (multi_thread) with 1, 2, 4, 8, 16 workers, interleaved rounds.
# Run it on a machine with at least as many cores as the largest count.
#
#   bench/scaling.sh [out.csv]        env: ROUNDS (3), WORKERS ("1 2 4 8 16"),
#                                          SCALE (1), WORKLOADS ("W1 W2 W3 W4 W5")
#
# Prints one line per run and writes workload,runtime,workers,round,ns_per_op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
WEFT_BENCH=${WEFT_BENCH:-$here/../build/bench/weft-bench}
TOKIO_PEER=${TOKIO_PEER:-$here/peers/tokio/target/release/weft-peer-tokio}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-"1 2 4 8 16"}
SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-"W1 W2 W3 W4 W5"}
out=${1:-scaling.csv}

for exe in "$WEFT_BENCH" "$TOKIO_PEER"; do
  [ -x "$exe" ] || { echo "scaling.sh: $exe missing: build first" >&2; exit 2; }
done
echo "workload,runtime,workers,round,ns_per_op" > "$out"
fail=0
for w in $WORKLOADS; do
  for n in $WORKERS; do
    for r in $(seq 1 "$ROUNDS"); do
      for exe in "$WEFT_BENCH" "$TOKIO_PEER"; do
        if line=$(timeout 300 "$exe" "$w" "mt$n" "$SCALE" 2>&1 | grep '^RESULT'); then
          echo "$line"
          set -- $line
          echo "$2,${3%-mt*},$n,$r,$4" >> "$out"
        else
          echo "scaling.sh: $exe $w mt$n failed" >&2
          fail=1
        fi
      done
    done
  done
done
exit $fail
