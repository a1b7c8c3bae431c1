#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compares weft's network servers with the same servers on tokio, Go and
# libuv, on two workloads:
#   W8 http_hello: keep-alive HTTP/1.1, every request answered with a fixed
#      13-byte "Hello, World!"; load: wrk -t1 -c64 -d${DURATION}s --latency.
#      Metrics: requests/s, p99 latency (wrk's).
#   W9 tcp_echo: the server echoes bytes; load: build/bench/weft-loadgen,
#      CONNS connections each sending MSGS messages of SIZE bytes, one in flight
#      per connection. Metrics: messages/s, p99 round trip.
#
# For each workload it runs ROUNDS rounds; each round runs every runtime once,
# interleaved in a fixed order (weft weft@1 tokio go libuv; with PIN=1
# weft@1 weft-uring@1 tokio go libuv), so drifting noise hits them alike.
# A run: start the server on a free port, wait for its
# "listening on PORT" line, check one exchange by hand (W8), run the load,
# stop the server (SIGTERM, then SIGKILL). It prints a table per workload and
# writes OUT (markdown) and the per-run results (.csv) beside it.
#
# Besides the load generator's throughput and latency, each run records the
# CPU time (user + system) that the server and the load generator spent per
# request or message: the server's from /proc/PID/stat before and after the
# load, the load generator's from its rusage. On a machine where the load
# generator shares the CPUs with the server, throughput mostly measures the
# sum of the two, and these say which side a difference comes from. Each
# side's CPU per operation times the throughput is its CPUs busy (the
# report's "server busy" and "load generator busy"): near 1.0 for a
# one-thread side means that side bounded the run. System calls per
# message: bench/syscalls_net.sh.
#
# Pinned mode (PIN=1), for a machine with only 2 CPUs: the load generator
# runs on CPU LOAD_CPU (0) and the server on CPU SERVER_CPU (1), each with
# `taskset -c`, so that neither takes the other's CPU and the throughput is
# bounded by the slower side alone rather than by the sum of both sides'
# costs. One CPU for the server means one thread is what it can use: the
# default runtimes become weft@1 weft-uring@1 tokio go libuv (weft with one
# worker on each backend, libuv's one loop; tokio's 2 workers and Go's
# GOMAXPROCS=2, which those peers set themselves, share the one CPU), and
# the targets judge weft@1 (JUDGE) instead of weft. The report then also
# shows whether the server's CPU was full (server busy, CPUs near 1.0: the
# server bounds the run, and the throughput ratio is the ratio of server
# costs) or the load generator's was.
#
# Environment:
#   ROUNDS=3                       rounds per workload
#   DURATION=10                    seconds of wrk per W8 run
#   CONNS=100 MSGS=10000 SIZE=64   W9's load
#   WORKLOADS="W8 W9"              workloads to run, in order
#   RUNTIMES="weft weft@1 tokio go libuv"  runtimes per round, in this order
#                                  (PIN=1: "weft@1 weft-uring@1 tokio go libuv")
#                                  (weft-uring: weft's servers on the io_uring
#                                  backend, WEFT_IO_BACKEND=uring; weft: epoll;
#                                  weft@N, weft-uring@N: with --workers N, so
#                                  that worker counts can be interleaved)
#   WEFT_WORKERS=2                 --workers for weft's servers (weft, weft-uring)
#   PIN=0                          1: pin the load generator and the server (above)
#   LOAD_CPU=0 SERVER_CPU=1        the CPUs PIN=1 uses (must differ)
#   JUDGE=weft                     the runtime the targets judge (PIN=1: weft@1)
#   OUT=docs/benchmarks-net.md     report; the .csv goes next to it
#                                  (PIN=1: docs/benchmarks-net-pinned.md)
#   WEFT_ECHO=build/examples/echo_server   WEFT_HTTP=build/examples/http_server
#   LOADGEN=build/bench/weft-loadgen
#   TOKIO_NET=bench/peers/tokio-net/target/release/weft-peer-tokio-net
#   GO_NET=bench/peers/go-net/weft-peer-go-net
#   LIBUV_NET=bench/peers/libuv/weft-peer-libuv-net
#   RUN_TIMEOUT=300                seconds one load may take before it counts as failed
#   START_TIMEOUT=10               seconds a server may take to print "listening"
#   SKIP_SETUP=1                   skip building the peers / loadgen, installing wrk
#
# A missing program (weft's servers, say) fails that runtime's runs; the
# others still run and are reported. Exit status: non-zero if any run failed
# or the report could not be written.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-100}
MSGS=${MSGS:-10000}
SIZE=${SIZE:-64}
WORKLOADS=${WORKLOADS:-"W8 W9"}
PIN=${PIN:-0}
LOAD_CPU=${LOAD_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
if [[ $PIN == 1 ]]; then
    RUNTIMES=${RUNTIMES:-"weft@1 weft-uring@1 tokio go libuv"}
    JUDGE=${JUDGE:-weft@1}
else
    RUNTIMES=${RUNTIMES:-"weft weft@1 tokio go libuv"}
    JUDGE=${JUDGE:-weft}
fi
WEFT_WORKERS=${WEFT_WORKERS:-2}
if [[ ${PIN:-0} == 1 ]]; then OUT=${OUT:-docs/benchmarks-net-pinned.md}; else OUT=${OUT:-docs/benchmarks-net.md}; fi
WEFT_ECHO=${WEFT_ECHO:-build/examples/echo_server}
WEFT_HTTP=${WEFT_HTTP:-build/examples/http_server}
LOADGEN=${LOADGEN:-build/bench/weft-loadgen}
TOKIO_NET=${TOKIO_NET:-bench/peers/tokio-net/target/release/weft-peer-tokio-net}
GO_NET=${GO_NET:-bench/peers/go-net/weft-peer-go-net}
LIBUV_NET=${LIBUV_NET:-bench/peers/libuv/weft-peer-libuv-net}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
START_TIMEOUT=${START_TIMEOUT:-10}

die() { echo "compare_net.sh: $*" >&2; exit 2; }

posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
posint ROUNDS "$ROUNDS"; posint DURATION "$DURATION"; posint CONNS "$CONNS"
posint MSGS "$MSGS"; posint SIZE "$SIZE"; posint WEFT_WORKERS "$WEFT_WORKERS"
posint RUN_TIMEOUT "$RUN_TIMEOUT"; posint START_TIMEOUT "$START_TIMEOUT"
for w in $WORKLOADS; do
    [[ $w =~ ^W[89]$ ]] || die "unknown workload '$w' (want W8, W9)"
done
for rt in $RUNTIMES; do
    [[ $rt =~ ^(weft|weft-uring)(@[1-9][0-9]?)?$|^(tokio|go|libuv)$ ]] ||
        die "unknown runtime '$rt' (want weft weft-uring weft@N weft-uring@N tokio go libuv)"
done
[[ $OUT == *.md ]] || die "OUT must end in .md, got '$OUT'"
[[ $PIN == 0 || $PIN == 1 ]] || die "PIN must be 0 or 1, got '$PIN'"
[[ " $RUNTIMES " == *" $JUDGE "* ]] || die "JUDGE=$JUDGE is not among RUNTIMES ($RUNTIMES)"
pin_srv=() pin_load=()
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
    [[ $LOAD_CPU =~ ^[0-9]+$ && $SERVER_CPU =~ ^[0-9]+$ && $LOAD_CPU != "$SERVER_CPU" ]] ||
        die "LOAD_CPU and SERVER_CPU must be two different CPU numbers"
    for c in $LOAD_CPU $SERVER_CPU; do
        taskset -c "$c" true 2>/dev/null || die "cannot run on CPU $c (taskset -c $c)"
    done
    pin_srv=(taskset -c "$SERVER_CPU") pin_load=(taskset -c "$LOAD_CPU")
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-compare-net.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- setup: peers, wrk, the load generator -------------------------------------
if [[ -z ${SKIP_SETUP:-} ]]; then
    # build_net.sh installs wrk, libuv1-dev, golang-go, cargo, librust-tokio-dev
    # (apt-get, needs root) when missing, and is a quick no-op otherwise.
    bench/peers/build_net.sh || die "bench/peers/build_net.sh failed"
    if [[ -f build/Makefile || -f build/build.ninja ]]; then
        # configure again first: a build tree from before loadgen.c has no such target
        { cmake -S . -B build && cmake --build build --target weft-loadgen; } >"$tmp/build.log" 2>&1 \
            || { cat "$tmp/build.log" >&2; echo "compare_net.sh: building weft-loadgen with CMake failed" >&2; }
        for t in echo_server http_server; do   # weft's servers, if they build yet
            cmake --build build --target "$t" >"$tmp/build.log" 2>&1 \
                || echo "compare_net.sh: could not build weft's $t (its runs will fail)" >&2
        done
    fi
fi
if [[ $WORKLOADS == *W9* && ! -x $LOADGEN ]]; then
    # Not built by CMake yet: it is one plain C file with no dependency on weft.
    echo "compare_net.sh: $LOADGEN is missing; compiling bench/loadgen.c into $tmp" >&2
    ${CC:-cc} -O2 -pthread -o "$tmp/weft-loadgen" bench/loadgen.c || die "cannot build the load generator"
    LOADGEN=$tmp/weft-loadgen
fi
if [[ $WORKLOADS == *W8* ]]; then
    command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk, or run without SKIP_SETUP)"
fi

# ---- the servers and loads --------------------------------------------------------
# server_cmd <runtime> <workload> <port>: sets $cmd (array).
server_cmd() {
    local rt=$1 w=$2 port=$3 mode
    if [[ $w == W8 ]]; then mode='http'; else mode='echo'; fi
    local workers=$WEFT_WORKERS
    if [[ $rt == *@* ]]; then workers=${rt#*@}; rt=${rt%@*}; fi
    case $rt in
        weft|weft-uring)
            # weft: the epoll backend; weft-uring: io_uring (docs/io.md)
            # (exported: the server is started as "${cmd[@]}"; the peers ignore it)
            if [[ $rt == weft ]]; then export WEFT_IO_BACKEND=epoll; else export WEFT_IO_BACKEND=uring; fi
            if [[ $mode == http ]]; then cmd=("$WEFT_HTTP"); else cmd=("$WEFT_ECHO"); fi
            cmd+=(--port "$port" --workers "$workers") ;;
        tokio) cmd=("$TOKIO_NET" "$mode" --port "$port") ;;
        go)    cmd=("$GO_NET" "$mode" -port "$port") ;;
        libuv) cmd=("$LIBUV_NET" "$mode" --port "$port") ;;
    esac
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One exchange by hand before the load: two pipelined requests must get two
# 200 responses whose bodies are "Hello, World!" (wrk counts, it does not check).
http_probe() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" * 2)
data, got = b"", 0
while got < 2:
    head_end = data.find(b"\r\n\r\n")
    if head_end >= 0:
        head = data[:head_end].decode("latin-1").split("\r\n")
        fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                  for l in head[1:] if ":" in l}
        n = int(fields.get("content-length", "-1"))
        if n >= 0 and len(data) >= head_end + 4 + n:
            body = data[head_end + 4:head_end + 4 + n]
            if not head[0].startswith("HTTP/1.1 200") or body != b"Hello, World!":
                sys.exit(f"bad response: {head[0]!r}, body {body!r}")
            data, got = data[head_end + 4 + n:], got + 1
            continue
        if n < 0:
            sys.exit(f"response without Content-Length: {head!r}")
    d = s.recv(65536)
    if not d:
        sys.exit(f"connection closed after {got} of 2 responses")
    data += d
PY
}

# stop_server: SIGTERM, then SIGKILL after 5 s.
stop_server() {
    local i
    kill -TERM "$server_pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
}

num='[0-9]+(\.[0-9]+)?'
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
# proc_cpu <pid>: the process's user + system time so far, in clock ticks (all
# its threads; empty if it is gone)
proc_cpu() {
    # the name field (2) may hold spaces: count the fields after its ')'
    sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
# times_s <file>: the children's user + system seconds from bash's `times`
# output (its second line: "0m1.234s 0m0.567s")
times_s() {
    sed -n 2p "$1" 2>/dev/null | awk '{
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%.3f\n", t }'
}
# per_op_us <seconds or ticks> <divisor to seconds> <count>: µs per operation
per_op_us() {
    awk -v v="$1" -v d="$2" -v n="$3" 'BEGIN { if (n > 0 && v != "") printf "%.2f\n", v / d * 1e6 / n }'
}
# wrk's latency "1.23ms" / "850.00us" / "1.02s" in µs
wrk_us() {
    awk -v x="$1" 'BEGIN {
        if (match(x, /^[0-9.]+/)) { v = substr(x, 1, RLENGTH); u = substr(x, RLENGTH + 1) } else exit 1
        if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1e6;
        else if (u == "m") f = 6e7; else exit 1
        printf "%.1f\n", v * f }'
}

# run_one <runtime> <workload> <round>: appends one csv line; returns 1 if failed.
run_one() {
    local rt=$1 w=$2 r=$3 port='' line='' got_port='' i rc='' why='' tput='' p50='' p99='' note=''
    local cpu0='' cpu1='' nops='' srv_us='' load_us=''
    rm -f "$tmp"/srv.* "$tmp"/load.* "$tmp/probe"
    port=$(free_port) || { why="no free port"; }
    server_cmd "$rt" "$w" "$port"
    if [[ -z $why && ! -x ${cmd[0]} ]]; then
        why="${cmd[0]} is missing"
    fi
    if [[ -z $why ]]; then
        : >"$tmp/srv.out"        # exists before the server opens it: grep below
        # taskset execs the server: $! is the server's own pid
        "${pin_srv[@]}" "${cmd[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" &
        server_pid=$!
        for ((i = 0; i < START_TIMEOUT * 20; i++)); do
            line=$(grep -m1 'listening on' "$tmp/srv.out" 2>/dev/null)
            [[ -n $line ]] && break
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.05
        done
        if [[ -z $line ]]; then
            if kill -0 "$server_pid" 2>/dev/null; then why="no 'listening on' line within ${START_TIMEOUT}s"
            else why="server exited before listening"; fi
        else
            got_port=$(sed -E 's/.*[^0-9]([0-9]+)[^0-9]*$/\1/' <<<"$line")
            [[ $got_port =~ ^[0-9]+$ ]] && port=$got_port
        fi
    fi
    if [[ -z $why && $w == W8 ]]; then
        http_probe "$port" >"$tmp/probe" 2>&1 || why="wrong HTTP answer: $(tail -n1 "$tmp/probe")"
    fi
    if [[ -z $why ]]; then
        cpu0=$(proc_cpu "$server_pid")
        if [[ $w == W8 ]]; then
            # in a subshell, whose `times` then reports the load's CPU alone
            (timeout -k 10 "$RUN_TIMEOUT" "${pin_load[@]}" wrk -t1 -c64 -d"${DURATION}s" --latency \
                "http://127.0.0.1:$port/" >"$tmp/load.out" 2>"$tmp/load.err"
             rc=$?; times >"$tmp/load.times"; exit $rc)
            rc=$?
            cpu1=$(proc_cpu "$server_pid")
            nops=$(awk '$2 == "requests" && $3 == "in" { print $1; exit }' "$tmp/load.out")
            tput=$(awk '$1 == "Requests/sec:" { print $2 }' "$tmp/load.out")
            p50=$(awk '$1 == "50%" { print $2; exit }' "$tmp/load.out")
            p99=$(awk '$1 == "99%" { print $2; exit }' "$tmp/load.out")
            p50=$(wrk_us "$p50" 2>/dev/null); p99=$(wrk_us "$p99" 2>/dev/null)
            local errs non2xx
            errs=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$tmp/load.out")
            non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$tmp/load.out")
            if ((rc != 0)); then why="wrk: exit status $rc"
            elif ! [[ $tput =~ ^$num$ && $p99 =~ ^$num$ ]]; then why="no Requests/sec or 99% line from wrk"
            elif [[ $tput == 0 || $tput == 0.00 ]]; then why="no requests answered"
            elif [[ -n $non2xx ]]; then why="$non2xx non-2xx responses"
            elif [[ -n $errs && $errs != 0 ]]; then
                why="wrk $(grep 'Socket errors' "$tmp/load.out" | sed 's/^ *//')"
                [[ $why == *"timeout 0"* ]] || why+=" (timeout: no answer within wrk's 2 s)"
            fi
        else
            (timeout -k 10 "$RUN_TIMEOUT" "${pin_load[@]}" "$LOADGEN" --port "$port" --conns "$CONNS" \
                --msgs "$MSGS" --size "$SIZE" >"$tmp/load.out" 2>"$tmp/load.err"
             rc=$?; times >"$tmp/load.times"; exit $rc)
            rc=$?
            cpu1=$(proc_cpu "$server_pid")
            nops=$((CONNS * MSGS))
            line=$(grep '^RESULT echo ' "$tmp/load.out")
            tput=$(grep -oE 'msgs_per_s=[0-9.]+' <<<"$line" | cut -d= -f2)
            p50=$(grep -oE 'p50_us=[0-9.]+' <<<"$line" | cut -d= -f2)
            p99=$(grep -oE 'p99_us=[0-9.]+' <<<"$line" | cut -d= -f2)
            if ((rc == 124 || rc == 137)); then why="load timed out after ${RUN_TIMEOUT}s"
            elif ((rc != 0)); then why="weft-loadgen: $(tail -n1 "$tmp/load.err")"
            elif ! [[ $tput =~ ^$num$ && $p99 =~ ^$num$ ]]; then why="no valid RESULT line"
            fi
        fi
        if [[ -z $why ]] && ! kill -0 "$server_pid" 2>/dev/null; then
            why="server exited during the load"
        fi
    fi
    if [[ -n $server_pid ]]; then stop_server; fi
    if [[ -z $why ]]; then
        if [[ $cpu0 =~ ^[0-9]+$ && $cpu1 =~ ^[0-9]+$ ]]; then
            srv_us=$(per_op_us "$((cpu1 - cpu0))" "$clk_tck" "$nops")
        fi
        load_us=$(per_op_us "$(times_s "$tmp/load.times")" 1 "$nops")
        printf '%s/s, p50 %s us, p99 %s us, CPU per op: server %s us, load %s us\n' \
            "$tput" "$p50" "$p99" "${srv_us:-?}" "${load_us:-?}" >&2
        echo "$w,$rt,$r,ok,$tput,$p50,$p99,$srv_us,$load_us," >>"$csv"
        return 0
    fi
    echo "FAILED ($why)" >&2
    echo "  command: ${cmd[*]}" >&2
    for f in srv.out srv.err load.out load.err; do
        [[ -s $tmp/$f ]] && sed "s/^/  $f: /" "$tmp/$f" | tail -n 5 >&2
    done
    note=${why//,/;}
    echo "$w,$rt,$r,failed,,,,,,\"${note//\"/\'}\"" >>"$csv"
    return 1
}

csv=$tmp/results.csv
echo "workload,runtime,round,status,throughput_per_s,p50_us,p99_us,server_cpu_us,load_cpu_us,note" >"$csv"
failed=0

load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
echo "compare_net.sh: rounds=$ROUNDS workloads=[$WORKLOADS] runtimes=[$RUNTIMES]" \
     "duration=${DURATION}s conns=$CONNS msgs=$MSGS size=$SIZE on $(nproc) CPUs" \
     "$([[ $PIN == 1 ]] && echo "pinned: load on CPU $LOAD_CPU, server on CPU $SERVER_CPU")" >&2
for w in $WORKLOADS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        for rt in $RUNTIMES; do
            printf 'compare_net.sh: %s round %d/%d %-6s ' "$w" "$r" "$ROUNDS" "$rt" >&2
            run_one "$rt" "$w" "$r" || failed=1
        done
    done
done

# ---- report ----------------------------------------------------------------------
base=${OUT%.md}
mkdir -p "$(dirname "$OUT")"
cp "$csv" "$base.csv"
cat >"$tmp/report.py" <<'PY'
"""Writes docs/benchmarks-net.md from compare_net.sh's csv; prints the tables."""
import csv, datetime, os, platform, re, statistics, subprocess, sys

(csv_path, out, rounds, duration, conns, msgs, size, runtimes, workers,
 loadgen, weft_http, weft_echo, load_start, pin, load_cpu, server_cpu, judged) = sys.argv[1:18]
pinned = pin == "1"
ROOT = os.getcwd()
TARGET = 1.1
WORKLOADS = {
    "W8": ("http_hello", "requests/s",
           f"keep-alive HTTP/1.1 `GET /`, each answered with a fixed 13-byte `Hello, World!` "
           f"(Content-Length and Content-Type headers); load: `wrk -t1 -c64 -d{duration}s "
           f"--latency` (1 thread, 64 connections); throughput is wrk's Requests/sec, latency "
           f"wrk's percentiles"),
    "W9": ("tcp_echo", "messages/s",
           f"the server writes back every byte it reads; load: `weft-loadgen` (bench/loadgen.c, "
           f"one epoll thread), {conns} connections each sending {msgs} messages of {size} bytes "
           f"and waiting for the whole echo of one before sending the next; throughput is all "
           f"round trips over the wall time, latency the round trip of one message"),
}
rts = runtimes.split()

rows = list(csv.DictReader(open(csv_path, newline="")))
ok = {}
fails = {}
for row in rows:
    key = (row["workload"], row["runtime"])
    if row["status"] == "ok":
        ok.setdefault(key, []).append((float(row["throughput_per_s"]),
                                       float(row["p50_us"] or "nan"), float(row["p99_us"]),
                                       float(row.get("server_cpu_us") or "nan"),
                                       float(row.get("load_cpu_us") or "nan")))
        t, su, lu = ok[key][-1][0], ok[key][-1][3], ok[key][-1][4]
        # the load generator's CPUs busy: its CPU per operation times the
        # rate (5); the server's likewise (6)
        ok[key][-1] += (t * lu / 1e6, t * su / 1e6)
    else:
        fails.setdefault(key, []).append((row["round"], row["note"]))
workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in rows)]

def st(key, i):
    vals = [s[i] for s in ok.get(key, []) if s[i] == s[i]]   # NaN: not measured
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)

def fnum(x, unit=""):
    if x is None:
        return "—"
    return (f"{x:,.0f}" if x >= 100 else f"{x:.1f}") + unit

def cell(s, unit=""):
    return "failed" if s is None else f"{fnum(s[0], unit)} ({fnum(s[1])}–{fnum(s[2])})"

def cellf(s):
    """A CPU time per operation: two decimals (µs)."""
    return "—" if s is None else f"{s[0]:.2f} ({s[1]:.2f}–{s[2]:.2f})"

def sh(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0].strip() if text else None

def judge(w):
    """(ratio, tput_ok, p99_ok) of the judged weft row against tokio and libuv."""
    weft = st((w, judged), 0)
    peers = {rt: st((w, rt), 0) for rt in ("tokio", "libuv")}
    best = [s[0] for s in peers.values() if s is not None]
    ratio = None if weft is None or not best else weft[0] / max(best)
    wp = st((w, judged), 2)
    pp = [st((w, rt), 2) for rt in ("tokio", "libuv")]
    pp = [s[0] for s in pp if s is not None]
    p99_ok = None if wp is None or not pp else wp[0] <= min(pp)
    return ratio, (None if ratio is None else ratio >= TARGET), p99_ok

def yn(b):
    return "n/a" if b is None else ("yes" if b else "**no**")

# terminal tables
for w in workloads:
    name, unit, _ = WORKLOADS[w]
    print(f"\n{w} {name}")
    print(f"  {'runtime':<14} {'median ' + unit:>18} {'min':>10} {'max':>10} {'p99 µs':>9}  runs")
    for rt in rts:
        s, p = st((w, rt), 0), st((w, rt), 2)
        n, nf = len(ok.get((w, rt), [])), len(fails.get((w, rt), []))
        runs = f"{n}" + (f" ({nf} FAILED)" if nf else "")
        if s is None:
            print(f"  {rt:<14} {'—':>18} {'—':>10} {'—':>10} {'—':>9}  {runs}")
        else:
            print(f"  {rt:<14} {fnum(s[0]):>18} {fnum(s[1]):>10} {fnum(s[2]):>10} "
                  f"{fnum(p[0]):>9}  {runs}")
    ratio, _, _ = judge(w)
    print(f"  {judged} / max(tokio, libuv) throughput: {'—' if ratio is None else f'{ratio:.2f}'}"
          f" (target ≥ {TARGET})")

# markdown
def tool_versions():
    v = []
    lock = os.path.join(ROOT, "bench/peers/tokio-net/Cargo.lock")
    tokio = "unknown"
    try:
        m = re.search(r'name = "tokio"\s*version = "([^"]+)"', open(lock).read())
        tokio = m.group(1) if m else tokio
    except OSError:
        pass
    on1 = f" (pinned: both on CPU {server_cpu})" if pinned else ""
    v.append(f"tokio {tokio} (Cargo.lock), {sh(['rustc', '--version']) or 'rustc unknown'}, "
             f"release profile, `multi_thread` with 2 workers{on1}")
    g = sh(["go", "version"]) or "go unknown"
    v.append(f"{g}, GOMAXPROCS=2{on1}, package net (one goroutine per connection)")
    v.append(f"libuv {sh(['pkg-config', '--modversion', 'libuv']) or 'unknown'} "
             "(Debian libuv1-dev), one loop on one thread, cc -O2")
    wrk = sh(["wrk", "-v"]) or "wrk unknown"
    v.append(wrk.split(" [")[0] + " (Debian)")
    return v

def git_rev():
    rev = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + (" with uncommitted changes" if dirty else "")

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

ncpu = len(os.sched_getaffinity(0))
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
csv_rel = os.path.splitext(os.path.basename(out))[0] + ".csv"
L = ["# weft network benchmarks: weft vs tokio vs Go vs libuv", "",
     "Generated by `bench/compare_net.sh`; do not edit by hand.", "",
     f"- Date: {now}",
     f"- Machine: {ncpu} CPUs (nproc), {cpu_model()}, {platform.system()} {platform.release()}",
     f"- weft: commit {git_rev()}, `{weft_http}` and `{weft_echo}` with `--workers {workers}`"
     + (" (`weft@N`: `--workers N`)" if any("@" in rt for rt in rts) else "")]
if pinned:
    L.append(f"- **Pinned** (`PIN=1`): the load generator on CPU {load_cpu}, every server on CPU "
             f"{server_cpu} (`taskset -c`); the targets judge `{judged}`")
L += [f"- {v}" for v in tool_versions()]
L += [f"- Rounds: {rounds}; W8 duration {duration} s; W9 {conns} connections × {msgs} "
      f"messages × {size} bytes", "", "## Method", "",
      "Each run starts one server on a free port of 127.0.0.1, waits for its `listening on PORT` "
      "line, runs the load against it, and stops it. For each workload, "
      f"{rounds} rounds run one after the other, and each round runs every runtime once, "
      "interleaved in the order " + ", ".join(f"`{r}`" for r in rts) + ", so drifting machine "
      "noise hits all runtimes alike. The tables show the median over the rounds and the "
      "min–max range; latencies are the runs' own percentiles (wrk's for W8, weft-loadgen's over "
      f"every round trip for W9). Raw per-run results: [{csv_rel}]({csv_rel}).", ""]
if pinned:
    L += [f"Pinned (`PIN=1`): the load generator runs on CPU {load_cpu} and the server on CPU "
          f"{server_cpu}, each alone on its CPU (`taskset -c`; other work on the machine is not "
          "kept off them). Neither side can then take CPU time from the other, so a run is "
          "bounded by the slower of the two: when the server's CPU is full (*server busy* near "
          "1.0) the throughput ratio between two servers is the ratio of their CPU costs per "
          "operation; when the load generator's is full, by the load generator. With one CPU "
          "for the server, the like-for-like comparison is one thread against one thread: "
          "weft with one worker (`weft@1` on epoll, `weft-uring@1` on io_uring) against "
          "libuv's one loop; tokio and Go keep the 2 workers / GOMAXPROCS=2 their peers set, "
          "sharing the one CPU.", ""]
L += [
      "weft's servers are `examples/echo_server.c` and `examples/http_server.c`. The peer "
      "servers (`bench/peers/tokio-net`, `bench/peers/go-net`, `bench/peers/libuv/net.c`) all do "
      "the same work: one task / goroutine / libuv handle per connection, TCP_NODELAY, a 16 KiB "
      "read buffer. The peers' HTTP servers parse only enough to find each "
      "request's end (`\\r\\n\\r\\n`) and a `Connection: close` header, answer every complete "
      "request of one read with one write (pipelining-safe), and keep the connection open "
      "otherwise. Before each W8 load the driver checks by hand that two pipelined requests get "
      "two `200` answers with the body `Hello, World!` (wrk counts answers, it does not read "
      "them); W9's load generator checks every echoed byte.", "",
      "Workloads:", ""]
for w in workloads:
    name, unit, what = WORKLOADS[w]
    L.append(f"- **{w} {name}**: {what}.")
L.append("")

L += ["## Results", "", "Each cell: median (min–max) over the successful rounds.", ""]
for w in workloads:
    name, unit, _ = WORKLOADS[w]
    per = "request" if w == "W8" else "message"
    L += [f"### {w} {name}", "",
          f"| Runtime | {unit} | p99 latency µs | p50 latency µs | server CPU µs per {per} | "
          f"load generator CPU µs per {per} | server busy, CPUs | load generator busy, CPUs | runs |",
          "|:---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rt in rts:
        n, nf = len(ok.get((w, rt), [])), len(fails.get((w, rt), []))
        runs = f"{n} of {n + nf}"
        L.append(f"| `{rt}` | {cell(st((w, rt), 0))} | {cell(st((w, rt), 2))} | "
                 f"{cell(st((w, rt), 1))} | {cellf(st((w, rt), 3))} | {cellf(st((w, rt), 4))} | "
                 f"{cellf(st((w, rt), 6))} | {cellf(st((w, rt), 5))} | {runs} |")
    L.append("")

L += ["## Targets", "",
      f"weft's throughput (the `{judged}` row) at least {TARGET}× the faster of tokio and libuv "
      f"(`{judged} / max(tokio, libuv)`, of medians), and its median p99 latency no worse than "
      "either's. Go is shown for information; it has no target.", "",
      f"| Workload | {judged} / max(tokio, libuv) | ≥ 1.1? | {judged} / go (info) | "
      f"{judged} p99 ≤ tokio's and libuv's? | Met |",
      "|:---|---:|:---:|---:|:---:|:---:|"]
for w in workloads:
    ratio, t_ok, p_ok = judge(w)
    weft, go = st((w, judged), 0), st((w, "go"), 0)
    rg = None if weft is None or go is None else weft[0] / go[0]
    met = "n/a" if t_ok is None or p_ok is None else ("yes" if t_ok and p_ok else "**no**")
    L.append(f"| {w} {WORKLOADS[w][0]} | {'—' if ratio is None else f'{ratio:.2f}'} | {yn(t_ok)} | "
             f"{'—' if rg is None else f'{rg:.2f}'} | {yn(p_ok)} | {met} |")
L.append("")

notes = []
if pinned:
    notes.append(f"Pinned (`PIN=1`): load generator on CPU {load_cpu}, server on CPU {server_cpu}. "
                 "*Server busy* and *load generator busy* (CPU per operation times the "
                 "throughput, in CPUs) say which side bounded each run: the one near 1.0. "
                 "Over loopback each side's send also runs the other side's TCP input "
                 "(softirq, in the sender's context), so each CPU carries part of the "
                 "other's receive work; it does so for every runtime alike.")
elif ncpu < 4:
    notes.append(f"This machine has only {ncpu} CPUs, and the load generator (wrk, weft-loadgen) "
                 "runs on them beside the server, unpinned: each number is the server and its "
                 "load sharing the same cores, so a server that uses less CPU per request leaves "
                 "more to the load generator and looks faster, and the 2-worker servers (weft, "
                 "tokio, Go) cannot use 2 whole cores. libuv's one thread leaves a core to the "
                 "load. Latencies include waiting for a CPU. `PIN=1` runs the load "
                 "generator and the server on a CPU each (see the script's header).")
# a run that neither side's one thread bounded was bounded by something else
# (other work on the machine): say so, for the workloads where that held for
# every runtime's median
unbound = [w for w in workloads
           if all((st((w, rt), 5) or (0,))[0] < 0.8 and (st((w, rt), 6) or (0,))[0] < 0.8
                  for rt in rts if st((w, rt), 0) is not None)]
if unbound:
    notes.append(f"**{' and '.join(unbound)}: neither side's CPU was full** (every runtime's "
                 "median server busy and load generator busy below 0.8 CPUs, where a side that "
                 "bounds a run is near 1.0): the runs were bounded by other work on the "
                 "machine, not by the servers or the load generator, so the throughput ratios "
                 "above say nothing about the servers. The CPU per request or message still "
                 "does (it is inflated by the contention, for every runtime alike).")
if load_start:
    notes.append(f"Load average when the runs began: {load_start} (1, 5, 15 min). Other work on "
                 "the machine competes for the same CPUs: compare the min–max ranges before "
                 "reading much into a difference of medians.")
notes.append("CPU per request or message: the user + system time the server process (all its "
             "threads) and the load generator spent during the load, divided by the requests or "
             "messages served (the server's from /proc/PID/stat, in clock ticks of "
             "1/CLK_TCK s; the load generator's from its rusage). When the load generator "
             "shares the CPUs with the server, throughput is bounded by the CPUs over the sum "
             "of the two, so a server's CPU per message says more about its own cost than its "
             "throughput does. Most of it is the kernel's TCP path, which every runtime pays "
             "alike (over loopback a send also runs the receiving side's TCP input): see "
             "docs/io.md, \"Where a message's CPU goes\". *Load generator busy*: its CPU per "
             "operation times the throughput, in CPUs; wrk -t1 and weft-loadgen are one thread "
             "each, so near 1.0 the run is bounded by the load generator, not by the server, "
             "and a throughput ratio between servers then says little (it can move only as far "
             "as a server changes the load generator's own CPU per operation).")
notes.append("Over loopback (127.0.0.1), not a network: no NIC, no interrupts, no packet loss; "
             "the costs measured are the runtimes' and the kernel's TCP path.")
notes.append("Go's net sets TCP_NODELAY by default; the tokio and libuv peers set it "
             "themselves. With one message in flight per connection Nagle's algorithm would not "
             "delay anything anyway.")
if any("@" in rt for rt in rts):
    notes.append("`weft@N`, `weft-uring@N`: weft's servers with `--workers N` instead of "
                 f"{workers} (the rest as `weft`, `weft-uring`). `weft@1` is among the default "
                 "runtimes since 2026-12-05: libuv serves on one thread, and where the load "
                 "generator shares 2 CPUs with the server a second worker has no CPU of its own "
                 "and costs cross-thread hand-offs (docs/io.md, \"Workers: 1 or 2\"); "
                 f"the targets judge `{judged}`"
                 + (", weft's default multi-thread configuration." if judged == "weft" else "."))
fl = [(w, rt, r, why) for (w, rt), lst in fails.items() for r, why in lst]
if fl:
    notes.append("Failed runs (left out of the medians): "
                 + "; ".join(f"{w} {rt} round {r}: {why}" for w, rt, r, why in sorted(fl)) + ".")
L += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
L += ["## Reproduce", "", "```sh",
      "make && bench/compare_net.sh     # ROUNDS=3 DURATION=10 bench/compare_net.sh; "
      "SKIP_SETUP=1 to skip builds",
      "PIN=1 bench/compare_net.sh        # load generator on CPU 0, servers on CPU 1",
      "bench/syscalls_net.sh             # system calls per message (strace -c)", "```", ""]
open(out, "w").write("\n".join(L))
print(f"report: wrote {out} and {os.path.splitext(out)[0]}.csv", file=sys.stderr)
PY
if ! python3 "$tmp/report.py" "$csv" "$OUT" "$ROUNDS" "$DURATION" "$CONNS" "$MSGS" "$SIZE" \
        "$RUNTIMES" "$WEFT_WORKERS" "$LOADGEN" "$WEFT_HTTP" "$WEFT_ECHO" "$load_start" \
        "$PIN" "$LOAD_CPU" "$SERVER_CPU" "$JUDGE"; then
    echo "compare_net.sh: writing the report failed" >&2
    failed=1
fi

if ((failed)); then
    echo "compare_net.sh: some runs FAILED (see the report's notes)" >&2
    exit 1
fi
