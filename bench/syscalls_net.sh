#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# System calls per echoed message (W9's shape) for each I/O backend: runs
# weft's echo server under `strace -c -f` with WEFT_IO_BACKEND=epoll, then
# =uring, drives a fixed number of messages through it with weft-loadgen,
# and prints the server's system calls (total and by name) per message.
# strace slows every call down, so only the counts mean anything here, not
# the time. Environment: CONNS=10 MSGS=5000 SIZE=64 WORKERS=2
#   BACKENDS="epoll uring" ECHO=build/examples/echo_server
#   LOADGEN=build/bench/weft-loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10}
MSGS=${MSGS:-5000}
SIZE=${SIZE:-64}
WORKERS=${WORKERS:-2}
BACKENDS=${BACKENDS:-"epoll uring"}
ECHO=${ECHO:-build/examples/echo_server}
LOADGEN=${LOADGEN:-build/bench/weft-loadgen}
command -v strace >/dev/null || { echo "syscalls_net.sh: strace is missing" >&2; exit 2; }
[[ -x $ECHO && -x $LOADGEN ]] || { echo "syscalls_net.sh: build $ECHO and $LOADGEN first" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-syscalls.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
total=$((CONNS * MSGS))
for b in $BACKENDS; do
    WEFT_IO_BACKEND=$b strace -c -f -o "$tmp/$b.strace" \
        "$ECHO" --port 0 --workers "$WORKERS" >"$tmp/$b.out" 2>&1 &
    spid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on \([0-9][0-9]*\).*/\1/p' "$tmp/$b.out" | head -n1)
        [[ -n $port ]] && break
        sleep 0.1
    done
    [[ -n $port ]] || { echo "syscalls_net.sh: the $b server did not start" >&2; exit 1; }
    "$LOADGEN" --port "$port" --conns "$CONNS" --msgs "$MSGS" --size "$SIZE" >"$tmp/$b.load"
    # $spid is strace's; stop the server under it, and strace writes the summary
    kill -TERM "$(pgrep -P "$spid")"
    wait "$spid" || true
    echo "== $b: $total messages of $SIZE bytes, $CONNS connections, $WORKERS workers"
    awk -v n="$total" '
        /^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ {
            calls = $4; name = $NF
            if (name != "total") printf "  %-18s %10d  %6.3f per message\n", name, calls, calls / n
            else tot = calls
        }
        END { printf "  %-18s %10d  %6.3f per message\n", "total", tot, tot / n }' "$tmp/$b.strace"
done
