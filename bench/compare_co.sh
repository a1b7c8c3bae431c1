#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Coroutine servers against their future versions (docs/coro.md): the echo
# server under weft-loadgen (W9's load) and the HTTP server under wrk (W8's),
# ROUNDS rounds, each running the future version then the coroutine one, so
# drifting noise hits both alike. Prints one line per run.
# Environment: ROUNDS=3 DURATION=10 (wrk seconds) CONNS=100 MSGS=10000
#              SIZE=64 WORKERS=2 BUILD=build
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-100}
MSGS=${MSGS:-10000}
SIZE=${SIZE:-64}
WORKERS=${WORKERS:-2}
BUILD=${BUILD:-build}

start() {                      # start "$@", wait for its port in $port
    out=$(mktemp)
    "$@" --port 0 --workers "$WORKERS" >"$out" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 200); do
        port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$out")
        [[ -n $port ]] && return 0
        sleep 0.05
    done
    echo "no port from $*" >&2
    return 1
}

stop() {
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$out"
}

for r in $(seq "$ROUNDS"); do
    for v in echo_server echo_server_co; do
        start "$BUILD/examples/$v" || exit 1
        res=$("$BUILD/bench/weft-loadgen" --port "$port" --conns "$CONNS" --msgs "$MSGS" \
              --size "$SIZE" | grep RESULT)
        echo "round $r W9 $v: $(echo "$res" | grep -o 'msgs_per_s=[0-9.]*\|p99_us=[0-9.]*' | tr '\n' ' ')"
        stop
    done
    for v in http_server http_server_co; do
        start "$BUILD/examples/$v" || exit 1
        res=$(wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
        echo "round $r W8 $v: $(echo "$res" | awk '/Requests\/sec/ {printf "req_per_s=%s ", $2} / 99%/ {printf "p99=%s ", $2}')"
        stop
    done
done
