#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# examples/http_server against examples/https_server (the same server over
# weft/tls.h), measured with wrk: 1 thread, 64 keep-alive connections,
# ROUNDS rounds of SECONDS each, plain and HTTPS rounds interleaved so that
# drift in the machine's load hits both alike; prints each round's
# requests/s and the medians (docs/tls.md).
#   bench/compare_tls.sh [BUILD_DIR]      (default: build; needs wrk, openssl)
set -euo pipefail
build=${1:-build}
rounds=${ROUNDS:-3}
secs=${SECONDS_PER_ROUND:-5}
dir=$(mktemp -d)
pids=()
trap 'kill ${pids[*]} 2>/dev/null || true; rm -rf "$dir"' EXIT
command -v wrk >/dev/null || { echo "wrk not found"; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1

start() {   # $1: name, then the server's command line; sets $port
    local out=$dir/$1.out
    shift
    "$@" --port 0 --workers 2 >"$out" 2>&1 &
    pids+=($!)
    port=
    for _ in $(seq 200); do
        port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$out")
        [[ -n $port ]] && return
        sleep 0.05
    done
    echo "no 'listening on' from $1"; exit 1
}
start http "$build/examples/http_server"
http_port=$port
start https "$build/examples/https_server" --cert "$dir/cert.pem" --key "$dir/key.pem"
https_port=$port

rps() { wrk -t1 -c64 -d"${secs}s" "$1" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
: >"$dir/http" ; : >"$dir/https"
for r in $(seq "$rounds"); do
    a=$(rps "http://127.0.0.1:$http_port/")
    b=$(rps "https://127.0.0.1:$https_port/")
    echo "round $r: http $a req/s, https $b req/s"
    echo "$a" >>"$dir/http"
    echo "$b" >>"$dir/https"
done
mh=$(median <"$dir/http")
ms=$(median <"$dir/https")
echo "median: http $mh req/s, https $ms req/s ($(awk -v a="$ms" -v b="$mh" 'BEGIN { printf "%.0f", 100 * a / b }')% of plain)"
