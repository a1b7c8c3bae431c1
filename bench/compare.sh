#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compares weft with its peers (tokio, Go) on the five scheduler workloads
# (W1-W5) and the three sync-layer workloads (C1, C4: channel throughput;
# M1: mutex contention).
# Run by `make bench-compare`, after `make` has built build/.
#
# For each workload it runs ROUNDS rounds; each round runs every runtime once,
# interleaved in a fixed order, so noise on the machine hits all of them alike:
#   weft-mt2, tokio-mt2, go2, weft-mt1, weft-ct, tokio-ct
# It prints a table per workload (median ns/op, min-max, ratios) and writes
# OUT (markdown), plus the raw results (.csv) and a bar chart (.png) beside it.
#
# Environment:
#   ROUNDS=5                      rounds per workload
#   SCALE=1                       passed to every program (scales task counts)
#   WORKLOADS="W1 W2 W3 W4 W5 C1 C4 M1"
#                                 workloads to run, in order
#   RUNTIMES="weft-mt2 tokio-mt2 go2 weft-mt1 weft-ct tokio-ct"
#                                 runtimes per round, in this order
#   OUT=docs/benchmarks.md        report; .csv and .png go next to it
#   WEFT_BENCH=build/bench/weft-bench
#   TOKIO_PEER=bench/peers/tokio/target/release/weft-peer-tokio
#   GO_PEER=bench/peers/go/weft-peer-go
#   RUN_TIMEOUT=600               seconds one run may take before it counts as failed
#   SKIP_SETUP=1                  skip building peers / installing gnuplot
#
# Exit status: non-zero if any run failed (non-zero exit, timeout, or no valid
# RESULT line) or the report could not be written; every other run still runs.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2

ROUNDS=${ROUNDS:-5}
SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-"W1 W2 W3 W4 W5 C1 C4 M1"}
RUNTIMES=${RUNTIMES:-"weft-mt2 tokio-mt2 go2 weft-mt1 weft-ct tokio-ct"}
OUT=${OUT:-docs/benchmarks.md}
WEFT_BENCH=${WEFT_BENCH:-build/bench/weft-bench}
TOKIO_PEER=${TOKIO_PEER:-bench/peers/tokio/target/release/weft-peer-tokio}
GO_PEER=${GO_PEER:-bench/peers/go/weft-peer-go}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}

die() { echo "compare.sh: $*" >&2; exit 2; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, got '$SCALE'"
for w in $WORKLOADS; do
    [[ $w =~ ^(W[1-5]|C1|C4|M1)$ ]] || die "unknown workload '$w' (want W1..W5, C1, C4, M1)"
done
[[ $OUT == *.md ]] || die "OUT must end in .md, got '$OUT'"

# ---- setup: peers and gnuplot ------------------------------------------------
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ -z ${SKIP_SETUP:-} ]]; then
    # build.sh installs librust-tokio-dev / golang-go itself (apt-get, needs
    # root) when missing, and is a quick no-op rebuild otherwise.
    bench/peers/build.sh || die "bench/peers/build.sh failed (as non-root, install librust-tokio-dev golang-go cargo first)"
    if ! command -v gnuplot >/dev/null; then
        echo "compare.sh: installing gnuplot-nox" >&2
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq && as_root apt-get install -y -qq gnuplot-nox \
            || echo "compare.sh: could not install gnuplot-nox; the chart will be missing" >&2
    fi
fi

# ---- the programs --------------------------------------------------------------
# cmd_for <runtime> <workload>: sets $cmd (array) for one run.
cmd_for() {
    local rt=$1 w=$2
    case $rt in
        weft-mt1)  cmd=("$WEFT_BENCH" "$w" mt1 "$SCALE") ;;
        weft-mt2)  cmd=("$WEFT_BENCH" "$w" mt2 "$SCALE") ;;
        weft-ct)   cmd=("$WEFT_BENCH" "$w" ct "$SCALE") ;;
        tokio-mt2) cmd=("$TOKIO_PEER" "$w" mt2 "$SCALE") ;;
        tokio-ct)  cmd=("$TOKIO_PEER" "$w" ct "$SCALE") ;;
        go2)       cmd=("$GO_PEER" "$w" "$SCALE") ;;
        *) die "unknown runtime '$rt'" ;;
    esac
}

missing=0
for rt in $RUNTIMES; do
    cmd_for "$rt" W1
    if [[ ! -x ${cmd[0]} ]]; then
        echo "compare.sh: $rt: ${cmd[0]} is missing or not executable" >&2
        missing=1
    fi
done
if ((missing)); then
    die "build first: 'make' builds $WEFT_BENCH, bench/peers/build.sh the peers"
fi

# ---- runs --------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
csv=$tmp/results.csv
failures=$tmp/failures.txt
echo "workload,runtime,round,ns_per_op" >"$csv"
: >"$failures"
failed=0

echo "compare.sh: rounds=$ROUNDS scale=$SCALE workloads=[$WORKLOADS] on $(nproc) CPUs" >&2
for w in $WORKLOADS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        for rt in $RUNTIMES; do
            cmd_for "$rt" "$w"
            printf 'compare.sh: %s round %d/%d %-9s ' "$w" "$r" "$ROUNDS" "$rt" >&2
            timeout -k 10 "$RUN_TIMEOUT" "${cmd[@]}" >"$tmp/out" 2>"$tmp/err"
            rc=$?
            # Exactly the expected RESULT line: workload, runtime name, number.
            ns=$(awk -v w="$w" -v rt="$rt" '
                $1 == "RESULT" && $2 == w && $3 == rt && NF == 4 &&
                $4 ~ /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ { print $4; n++ }
                END { if (n != 1) exit 1 }' "$tmp/out")
            parsed=$?
            if ((rc == 0 && parsed == 0)); then
                echo "$ns ns/op" >&2
                echo "$w,$rt,$r,$ns" >>"$csv"
            else
                failed=1
                if ((rc == 124 || rc == 137)); then why="timed out after ${RUN_TIMEOUT}s"
                elif ((rc != 0)); then why="exit status $rc"
                else why="no valid 'RESULT $w $rt <ns>' line"; fi
                echo "FAILED ($why)" >&2
                echo "$w,$rt,$r,$why" >>"$failures"
                echo "  command: ${cmd[*]}" >&2
                sed 's/^/  stdout: /' "$tmp/out" | tail -n 5 >&2
                sed 's/^/  stderr: /' "$tmp/err" | tail -n 10 >&2
            fi
        done
    done
    python3 bench/report.py table --csv "$csv" --failures "$failures" --workload "$w"
done

# ---- report ------------------------------------------------------------------
base=${OUT%.md}
mkdir -p "$(dirname "$OUT")"
cp "$csv" "$base.csv"
if ! python3 bench/report.py markdown --csv "$csv" --failures "$failures" \
        --out "$OUT" --png "$base.png" --rounds "$ROUNDS" --scale "$SCALE" \
        --runtimes "$RUNTIMES" --weft-bench "$WEFT_BENCH"; then
    echo "compare.sh: writing the report failed" >&2
    failed=1
fi

if ((failed)); then
    echo "compare.sh: some runs FAILED:" >&2
    sed 's/^/  /' "$failures" >&2
    exit 1
fi
