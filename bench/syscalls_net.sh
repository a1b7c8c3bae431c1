#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# System calls per message for weft's servers on each I/O backend, and for
# libuv's peer server beside them: runs each server under `strace -c -f`,
# drives load through it, and prints the server's system calls (total and by
# name) per message, then one table with every server side by side.
#   W9 (echo): echo_server, CONNS connections × MSGS messages of SIZE bytes
#      from weft-loadgen; per echoed message.
#   W8 (http): http_server, `wrk -t1 -c64 -d${DURATION}s`; per request.
# strace slows every call down, so only the counts mean anything here, not
# the time (and the slower server batches a little more per wait than it
# would untraced). Environment:
#   CONNS=10 MSGS=5000 SIZE=64 WORKERS=2 DURATION=3
#   SERVERS="weft-epoll weft-uring libuv"   (weft-epoll@N, weft-uring@N: with
#                                            --workers N instead of WORKERS)
#   WORKLOADS="W9"                           W9 and/or W8
#   BACKENDS="epoll uring"                   old spelling: SERVERS=weft-<each>
#   ECHO=build/examples/echo_server HTTP=build/examples/http_server
#   LOADGEN=build/bench/weft-loadgen
#   LIBUV_NET=bench/peers/libuv/weft-peer-libuv-net   (skipped if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10}
MSGS=${MSGS:-5000}
SIZE=${SIZE:-64}
WORKERS=${WORKERS:-2}
DURATION=${DURATION:-3}
WORKLOADS=${WORKLOADS:-W9}
if [[ -z ${SERVERS:-} && -n ${BACKENDS:-} ]]; then
    SERVERS=$(for b in $BACKENDS; do printf 'weft-%s ' "$b"; done)
fi
SERVERS=${SERVERS:-"weft-epoll weft-uring libuv"}
ECHO=${ECHO:-build/examples/echo_server}
HTTP=${HTTP:-build/examples/http_server}
LOADGEN=${LOADGEN:-build/bench/weft-loadgen}
LIBUV_NET=${LIBUV_NET:-bench/peers/libuv/weft-peer-libuv-net}
command -v strace >/dev/null || { echo "syscalls_net.sh: strace is missing" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-syscalls.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
summary=()

for w in $WORKLOADS; do
    case $w in
        W9) [[ -x $ECHO && -x $LOADGEN ]] ||
                { echo "syscalls_net.sh: build $ECHO and $LOADGEN first" >&2; exit 2; } ;;
        W8) [[ -x $HTTP ]] && command -v wrk >/dev/null ||
                { echo "syscalls_net.sh: W8 needs $HTTP and wrk" >&2; exit 2; } ;;
        *) echo "syscalls_net.sh: unknown workload '$w' (W8, W9)" >&2; exit 2 ;;
    esac
    for s in $SERVERS; do
        workers=$WORKERS
        name=$s
        if [[ $s == *@* ]]; then workers=${s#*@}; s=${s%@*}; fi
        case $s in
            weft-epoll|weft-uring)
                if [[ $w == W9 ]]; then cmd=("$ECHO"); else cmd=("$HTTP"); fi
                cmd+=(--port 0 --workers "$workers")
                export WEFT_IO_BACKEND=${s#weft-} ;;
            libuv)
                if [[ ! -x $LIBUV_NET ]]; then
                    echo "syscalls_net.sh: $LIBUV_NET is missing; libuv skipped" >&2
                    continue
                fi
                if [[ $w == W9 ]]; then cmd=("$LIBUV_NET" echo); else cmd=("$LIBUV_NET" http); fi
                cmd+=(--port 0) ;;
            *) echo "syscalls_net.sh: unknown server '$s'" >&2; exit 2 ;;
        esac
        out=$tmp/$w.$name
        strace -c -f -o "$out.strace" "${cmd[@]}" >"$out.out" 2>&1 &
        spid=$!
        port=
        for _ in $(seq 100); do
            port=$(sed -n 's/.*listening on \([0-9][0-9]*\).*/\1/p' "$out.out" | head -n1)
            [[ -n $port ]] && break
            sleep 0.1
        done
        [[ -n $port ]] || { echo "syscalls_net.sh: the $name server did not start" >&2; exit 1; }
        if [[ $w == W9 ]]; then
            "$LOADGEN" --port "$port" --conns "$CONNS" --msgs "$MSGS" --size "$SIZE" >"$out.load"
            total=$((CONNS * MSGS))
            what="$total messages of $SIZE bytes, $CONNS connections"
        else
            wrk -t1 -c64 -d"${DURATION}s" "http://127.0.0.1:$port/" >"$out.load"
            total=$(awk '$2 == "requests" && $3 == "in" { print $1; exit }' "$out.load")
            what="$total requests, wrk -t1 -c64 -d${DURATION}s"
        fi
        # $spid is strace's; stop the server under it, and strace writes the summary
        kill -TERM "$(pgrep -P "$spid")"
        wait "$spid" || true
        [[ $s == libuv ]] || what+=", $workers workers"
        echo "== $w $name: $what"
        line=$(awk -v n="$total" -v name="$name" -v w="$w" '
            /^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ {
                calls = $4; sc = $NF
                if (sc == "total") { tot = calls; next }
                if (calls / n >= 0.001)
                    printf "  %-18s %10d  %6.3f per message\n", sc, calls, calls / n > "/dev/stderr"
                if (sc ~ /^(recv|recvfrom|recvmsg|read)$/) rd += calls
                else if (sc ~ /^(send|sendto|sendmsg|write|writev)$/) wr += calls
                else if (sc ~ /^(epoll_wait|epoll_pwait|epoll_pwait2|io_uring_enter)$/) wt += calls
                else ot += calls
            }
            END {
                printf "  %-18s %10d  %6.3f per message\n", "total", tot, tot / n > "/dev/stderr"
                printf "| %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n", w, name,
                       rd / n, wr / n, wt / n, ot / n, tot / n
            }' "$out.strace" 2>&1 >"$out.row")
        echo "$line"
        summary+=("$(cat "$out.row")")
    done
done
echo
echo "Per message (W9) or request (W8); read and write include eventfd wake-ups:"
echo "| Workload | Server | recv/read | send/write | wait (epoll, io_uring_enter) | other | total |"
echo "|:---|:---|---:|---:|---:|---:|---:|"
printf '%s\n' "${summary[@]}"
