#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compares weft's timers with its peers (tokio, Go, libuv) on two workloads:
#   W6 timers       100,000 tasks each sleep a pseudo-random 1..1000 ms (the
#                   same fixed-seed LCG sequence everywhere); wall time, worst /
#                   p99 / mean lateness, CPU time, peak RSS
#   W7 idle memory  1,000,000 tasks each sleep 5 s; RSS per sleeping task
#                   (peak - baseline before spawning) / tasks, wall time
# bench/weft_time.c defines them; every program prints one line
#   RESULT <workload> <runtime> key=value ...
# Modelled on compare.sh: ROUNDS rounds per workload, each round runs every
# runtime once, interleaved in a fixed order so that noise on the machine hits
# all of them alike. Prints a table per workload and writes OUT (markdown:
# median and min-max of each metric, ratios, targets) and the raw results
# (.csv, one row per metric) beside it.
#
# Environment:
#   ROUNDS=3                      rounds per workload
#   SCALE=1                       multiplies the task counts (SCALE=0.1: 10,000 / 100,000)
#   WORKLOADS="W6 W7"
#   RUNTIMES="weft-mt2 tokio-mt2 go2 libuv weft-ct tokio-ct"
#   OUT=docs/benchmarks-time.md   report; the .csv goes next to it
#   WEFT_BENCH_TIME=build/bench/weft-bench-time
#   TOKIO_PEER=bench/peers/tokio/target/release/weft-peer-tokio
#   GO_PEER=bench/peers/go/weft-peer-go
#   LIBUV_PEER=bench/peers/libuv/weft-peer-libuv-time
#   RUN_TIMEOUT=300               seconds one run may take before it counts as failed
#   WEFT_SOURCE="..."             how the report describes the weft that was built
#                                 (default: this checkout's commit, and whether it is dirty)
#   SKIP_SETUP=1                  skip building the peers (bench/peers/build.sh)
#
# Exit status: non-zero if any run failed (non-zero exit, timeout, or no valid
# RESULT line) or the report could not be written; every other run still runs.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2

ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-1}
WORKLOADS=${WORKLOADS:-"W6 W7"}
RUNTIMES=${RUNTIMES:-"weft-mt2 tokio-mt2 go2 libuv weft-ct tokio-ct"}
OUT=${OUT:-docs/benchmarks-time.md}
WEFT_BENCH_TIME=${WEFT_BENCH_TIME:-build/bench/weft-bench-time}
TOKIO_PEER=${TOKIO_PEER:-bench/peers/tokio/target/release/weft-peer-tokio}
GO_PEER=${GO_PEER:-bench/peers/go/weft-peer-go}
LIBUV_PEER=${LIBUV_PEER:-bench/peers/libuv/weft-peer-libuv-time}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}

die() { echo "compare_time.sh: $*" >&2; exit 2; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, got '$SCALE'"
for w in $WORKLOADS; do
    [[ $w =~ ^W[67]$ ]] || die "unknown workload '$w' (want W6, W7)"
done
[[ $OUT == *.md ]] || die "OUT must end in .md, got '$OUT'"

if [[ -z ${SKIP_SETUP:-} ]]; then
    # installs librust-tokio-dev / golang-go / libuv1-dev itself when missing
    bench/peers/build.sh || die "bench/peers/build.sh failed"
fi

# cmd_for <runtime> <workload>: sets $cmd (array) for one run.
cmd_for() {
    local rt=$1 w=$2
    case $rt in
        weft-mt*)  cmd=("$WEFT_BENCH_TIME" "$w" "${rt#weft-}" "$SCALE") ;;
        weft-ct)   cmd=("$WEFT_BENCH_TIME" "$w" ct "$SCALE") ;;
        tokio-mt*) cmd=("$TOKIO_PEER" "$w" "${rt#tokio-}" "$SCALE") ;;
        tokio-ct)  cmd=("$TOKIO_PEER" "$w" ct "$SCALE") ;;
        go2)       cmd=("$GO_PEER" "$w" "$SCALE") ;;
        libuv)     cmd=("$LIBUV_PEER" "$w" "$SCALE") ;;
        *) die "unknown runtime '$rt'" ;;
    esac
}

missing=0
for rt in $RUNTIMES; do
    cmd_for "$rt" W6
    if [[ ! -x ${cmd[0]} ]]; then
        echo "compare_time.sh: $rt: ${cmd[0]} is missing or not executable" >&2
        missing=1
    fi
done
((missing)) && die "build first: 'make' (or cmake) builds $WEFT_BENCH_TIME, bench/peers/build.sh the peers"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-compare-time.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
csv=$tmp/results.csv
failures=$tmp/failures.txt
echo "workload,runtime,round,metric,value" >"$csv"
: >"$failures"
failed=0

# What one sleeping weft task costs (allocation request and heap chunk).
cell_info=$tmp/cell.txt
if [[ " $RUNTIMES " == *" weft-"* ]]; then
    "$WEFT_BENCH_TIME" cell >"$cell_info" 2>&1 || echo "(weft-bench-time cell failed)" >"$cell_info"
else
    : >"$cell_info"
fi

echo "compare_time.sh: rounds=$ROUNDS scale=$SCALE workloads=[$WORKLOADS] on $(nproc) CPUs" >&2
for w in $WORKLOADS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        for rt in $RUNTIMES; do
            cmd_for "$rt" "$w"
            printf 'compare_time.sh: %s round %d/%d %-9s ' "$w" "$r" "$ROUNDS" "$rt" >&2
            read -r load1 _ </proc/loadavg    # how busy the machine was going in
            timeout -k 10 "$RUN_TIMEOUT" "${cmd[@]}" >"$tmp/out" 2>"$tmp/err"
            rc=$?
            # Exactly one RESULT line for this workload and runtime, whose
            # fields after the name are all key=number.
            awk -v w="$w" -v rt="$rt" -v round="$r" '
                $1 == "RESULT" && $2 == w && $3 == rt && NF > 3 {
                    n++
                    for (i = 4; i <= NF; i++) {
                        if ($i !~ /^[a-z0-9_]+=-?[0-9]+(\.[0-9]+)?$/) bad = 1
                        split($i, kv, "=")
                        rows = rows w "," rt "," round "," kv[1] "," kv[2] "\n"
                    }
                }
                END { if (n != 1 || bad) exit 1; printf "%s", rows }' "$tmp/out" >"$tmp/rows"
            parsed=$?
            if ((rc == 0 && parsed == 0)); then
                cat "$tmp/rows" >>"$csv"
                echo "$w,$rt,$r,load1,$load1" >>"$csv"
                # a short summary for the terminal
                awk -F, '$4 ~ /^(wall_ms|late_max_ms|cpu_ms|rss_per_task_b)$/ { printf "%s=%s ", $4, $5 }
                         END { print "" }' "$tmp/rows" >&2
            else
                failed=1
                if ((rc == 124 || rc == 137)); then why="timed out after ${RUN_TIMEOUT}s"
                elif ((rc != 0)); then why="exit status $rc"
                else why="no valid 'RESULT $w $rt key=value...' line"; fi
                echo "FAILED ($why)" >&2
                echo "$w,$rt,$r,$why" >>"$failures"
                echo "  command: ${cmd[*]}" >&2
                sed 's/^/  stdout: /' "$tmp/out" | tail -n 5 >&2
                sed 's/^/  stderr: /' "$tmp/err" | tail -n 10 >&2
            fi
        done
    done
done

# ---- report ------------------------------------------------------------------
base=${OUT%.md}
mkdir -p "$(dirname "$OUT")"
cp "$csv" "$base.csv"
if ! python3 - "$csv" "$failures" "$OUT" "$ROUNDS" "$SCALE" "$RUNTIMES" "$WEFT_BENCH_TIME" \
        "$cell_info" "${WEFT_SOURCE:-}" <<'PY'
import csv, datetime, os, platform, re, statistics, subprocess, sys

csv_path, fail_path, out, rounds, scale, runtimes, weft_bin, cell_path, weft_src = sys.argv[1:10]
requested = runtimes.split()

samples = {}          # (w, rt, metric) -> [values]
for row in csv.DictReader(open(csv_path)):
    samples.setdefault((row["workload"], row["runtime"], row["metric"]), []).append(float(row["value"]))
failures = [l.rstrip("\n").split(",", 3) for l in open(fail_path) if l.strip()]
cell_info = open(cell_path).read().strip()

WORKLOADS = {
    "W6": ("timers",
           "100,000 tasks each sleep a pseudo-random 1–1000 ms (64-bit LCG, seed 42, "
           "`1 + (state >> 33) % 1000`, drawn in spawn order) and record their lateness"),
    "W7": ("idle memory", "1,000,000 tasks each sleep 5 s; RSS per sleeping task"),
}
METRICS = {
    "W6": [("wall_ms", "wall ms", 1), ("spawn_ms", "spawn loop ms", 1), ("late_max_ms", "worst late ms", 3),
           ("late_p99_ms", "p99 late ms", 3), ("late_mean_ms", "mean late ms", 3),
           ("cpu_ms", "CPU ms", 1), ("rss_peak_kb", "peak RSS KiB", 0)],
    "W7": [("rss_per_task_b", "RSS B/task", 1), ("wall_ms", "wall ms", 1), ("spawn_ms", "spawn loop ms", 1),
           ("cpu_ms", "CPU ms", 1), ("rss_peak_kb", "peak RSS KiB", 0)],
}
RATIO_METRICS = {"W6": [("cpu_ms", "CPU"), ("rss_peak_kb", "peak RSS")],
                 "W7": [("cpu_ms", "CPU"), ("rss_per_task_b", "RSS/task")]}
TARGET_LATE_MS, TARGET_CPU, TARGET_RSS_B = 2.0, 0.5, 200.0

def st(w, rt, m):
    v = samples.get((w, rt, m))
    return (statistics.median(v), min(v), max(v)) if v else None

def med(w, rt, m):
    s = st(w, rt, m)
    return None if s is None else s[0]

def ratio(w, m, a, b):
    x, y = med(w, a, m), med(w, b, m)
    return None if x is None or not y else x / y

def f(x, d):
    return "—" if x is None else f"{x:,.{d}f}"

def sh(cmd, cwd=None):
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
        t = (r.stdout or r.stderr).strip()
        return t.splitlines()[0] if r.returncode == 0 and t else None
    except (OSError, subprocess.SubprocessError):
        return None

seen_w = [w for w in WORKLOADS if any(k[0] == w for k in samples) or any(x[0] == w for x in failures)]
rts = [rt for rt in requested if any(k[1] == rt for k in samples) or any(x[1] == rt for x in failures)]

# terminal tables
for w in seen_w:
    print(f"\n{w} {WORKLOADS[w][0]} (medians of {rounds} rounds)")
    cols = METRICS[w]
    print("  " + f"{'runtime':<10}" + "".join(f"{lab:>15}" for _, lab, _ in cols))
    for rt in rts:
        print("  " + f"{rt:<10}" + "".join(f"{f(med(w, rt, m), d):>15}" for m, _, d in cols))
    print("  weft-mt2/tokio-mt2: " + "   ".join(
        f"{lab} {f(ratio(w, m, 'weft-mt2', 'tokio-mt2'), 2)}" for m, lab in RATIO_METRICS[w]))

L = []
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
try:
    ncpu = len(os.sched_getaffinity(0))
except AttributeError:
    ncpu = os.cpu_count() or 0
cpu_model = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu_model = line.split(":", 1)[1].strip()
        break
rev = sh(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                       capture_output=True, text=True).stdout.strip()
cc = sh(["cc", "--version"]) or "unknown"
tokio = "unknown"
try:
    m = re.search(r'name = "tokio"\s*version = "([^"]+)"', open("bench/peers/tokio/Cargo.lock").read())
    tokio = m.group(1) if m else tokio
except OSError:
    pass
gov = sh(["go", "version"]) or "unknown"
uv = "unknown"
try:
    h = open("/usr/include/uv/version.h").read()
    uv = ".".join(re.search(rf"#define UV_VERSION_{k}\s+(\d+)", h).group(1) for k in ("MAJOR", "MINOR", "PATCH"))
except (OSError, AttributeError):
    pass

L += ["# weft timer benchmarks: weft vs tokio vs Go vs libuv", "",
      "Generated by `bench/compare_time.sh`; do not edit by hand.", "",
      f"- Date: {now}",
      f"- Machine: {ncpu} CPUs (nproc), {cpu_model}, {platform.system()} {platform.release()}",
      f"- weft: {weft_src or ('commit ' + rev + (' with uncommitted changes' if dirty else ''))}, "
      f"`{weft_bin}`; {cc}",
      f"- tokio {tokio}, {sh(['rustc', '--version']) or 'rustc unknown'}, release profile",
      f"- Go: {gov}; libuv {uv} (Debian libuv1-dev), `cc -O2`",
      f"- Rounds: {rounds}; scale: {scale}" + ("" if float(scale) == 1.0 else " (**not the standard scale 1**)"),
      ""]

L += ["## Method", "",
      "Each run is its own process. A program builds its runtime, then measures only the workload: "
      "from just before the first spawn until the last task has woken. Each round runs every "
      "runtime once, interleaved in the order " + ", ".join(f"`{r}`" for r in requested) +
      ". Cells show the median over the rounds and the min–max range; ratios are of medians. "
      f"Raw per-round values: [{os.path.basename(out)[:-3]}.csv]({os.path.basename(out)[:-3]}.csv).", "",
      "- **Deadline and lateness**: for each task the spawner draws the duration, takes the "
      "monotonic clock (CLOCK_MONOTONIC in every program) and fixes deadline = that instant + "
      "duration; the task sleeps *until* the deadline (weft `weft_sleep_until_init`, tokio "
      "`sleep_until`, Go `time.Sleep(time.Until(deadline))`, libuv a timeout computed from a fresh "
      "`uv_update_time`) and records lateness = wake instant − deadline, in ns. Sleeping until a "
      "deadline fixed at spawn (rather than sleeping a duration from the first poll) keeps the "
      "measure the same whether a task is first polled at once or only after the spawn loop; on the "
      "current-thread runtimes it is only after the loop, so their worst lateness includes it.",
      "- **Resolution**: weft, tokio and libuv timers have 1 ms resolution and round the deadline "
      "up, so a mean lateness near 1 ms is the rounding (0.5 ms on average) plus the wheel's tick; "
      "Go's timers have ns resolution.",
      "- **CPU**: user + sys of the whole process (`getrusage(RUSAGE_SELF)`, every thread), taken "
      "before the first spawn and after the last wake; the difference is shown.",
      "- **Peak RSS**: `VmHWM` from /proc/self/status at the end. W7's RSS per task is (VmHWM − "
      "VmRSS just before the first spawn) / tasks: the task, its timer and whatever the runtime "
      "keeps per task, plus the allocator's overhead. W6's peak RSS includes an array of one 8-byte "
      "lateness slot per task (800 KB), in every program alike.",
      "- **Spawn loop**: the time to draw the durations and spawn every task (or start every "
      "libuv timer). On the single-threaded runtimes (`weft-ct`, `tokio-ct`, `libuv`) no task "
      "runs, and no timer fires, until the loop ends, so their worst lateness in W6 is at least "
      "the spawn loop minus the shortest sleep (1 ms): the first tasks' deadlines pass while "
      "the loop is still spawning.",
      "- `check` (in the csv) is the sum of the drawn durations: identical across programs, so "
      "all ran the same schedule.", ""]
L.append("Runtimes: `weft-mt2`: weft multi-thread, 2 workers; `weft-ct`: weft current-thread; "
         "`tokio-mt2`: tokio `multi_thread`, 2 workers; `tokio-ct`: tokio `current_thread`; "
         "`go2`: goroutines, GOMAXPROCS=2; `libuv`: one `uv_loop_t` on one thread. **libuv has no "
         "tasks**: a task there is one malloc'd `uv_timer_t` (W6: plus its deadline and slot index) "
         "whose callback records the lateness, closes and frees it, so its numbers are the floor "
         "for a bare timer, not a task runtime.")
L.append("")
L.append("Workloads (scale multiplies the task counts):")
L.append("")
for w in seen_w:
    L.append(f"- **{w} {WORKLOADS[w][0]}**: {WORKLOADS[w][1]}.")
L.append("")

for w in seen_w:
    L += [f"## {w} {WORKLOADS[w][0]}", "", "Each cell: median (min–max).", ""]
    cols = METRICS[w]
    L.append("| Runtime | " + " | ".join(lab for _, lab, _ in cols) + " |")
    L.append("|:---|" + "---:|" * len(cols))
    for rt in rts:
        cells = []
        for m, _, d in cols:
            s = st(w, rt, m)
            cells.append("failed" if s is None and any(x[0] == w and x[1] == rt for x in failures)
                         else "—" if s is None else f"{f(s[0], d)} ({f(s[1], d)}–{f(s[2], d)})")
        nf = sum(1 for x in failures if x[0] == w and x[1] == rt)
        woke = samples.get((w, rt, "woke_during_spawn"), [])
        flag = " †" if any(v > 0 for v in woke) else ""
        L.append(f"| `{rt}`{flag}{f' [{nf} failed]' if nf else ''} | " + " | ".join(cells) + " |")
    L.append("")
    flagged = [rt for rt in rts if any(v > 0 for v in samples.get((w, rt, "woke_during_spawn"), []))]
    if flagged:
        L.append("† In some rounds the spawn loop outlasted the 5 s sleep, so tasks spawned first "
                 "had already woken (and been freed) before the last were spawned: not every task "
                 "was asleep at the peak, and the RSS per task is **understated** for "
                 + ", ".join(f"`{rt}`" for rt in flagged) + " (woken during the spawn loop, per round: "
                 + "; ".join(f"{rt} " + ", ".join(f"{v:,.0f}" for v in samples[(w, rt, 'woke_during_spawn')])
                             for rt in flagged) + ").")
        L.append("")
    parts = []
    for m, lab in RATIO_METRICS[w]:
        parts.append(f"{lab} **{f(ratio(w, m, 'weft-mt2', 'tokio-mt2'), 2)}**")
    L.append("Ratios of medians, `weft-mt2/tokio-mt2`: " + ", ".join(parts) +
             "; `weft-ct/tokio-ct`: " + ", ".join(
                 f"{lab} {f(ratio(w, m, 'weft-ct', 'tokio-ct'), 2)}" for m, lab in RATIO_METRICS[w]) + ".")
    L.append("")

L += ["## Targets", "", "| Target | Measured (`weft-mt2`, median) | Met? |", "|:---|:---|:---:|"]
def verdict(ok, miss):
    return "n/a" if ok is None else ("yes" if ok else f"**no** ({miss})")
if "W6" in seen_w:
    lm = st("W6", "weft-mt2", "late_max_ms")
    ok = None if lm is None else lm[0] <= TARGET_LATE_MS
    L.append(f"| W6 worst lateness ≤ {TARGET_LATE_MS:g} ms | "
             + ("—" if lm is None else f"{lm[0]:.3f} ms (rounds {lm[1]:.3f}–{lm[2]:.3f}; "
                f"weft-ct {f(med('W6', 'weft-ct', 'late_max_ms'), 3)} ms)")
             + " | " + verdict(ok, None if lm is None else f"over by {lm[0] - TARGET_LATE_MS:.3f} ms") + " |")
    r = ratio("W6", "cpu_ms", "weft-mt2", "tokio-mt2")
    ok = None if r is None else r <= TARGET_CPU
    L.append(f"| W6 CPU time ≤ {TARGET_CPU}× tokio-mt2's | "
             + ("—" if r is None else f"{r:.2f}× ({f(med('W6', 'weft-mt2', 'cpu_ms'), 1)} vs "
                f"{f(med('W6', 'tokio-mt2', 'cpu_ms'), 1)} ms)")
             + " | " + verdict(ok, None if r is None else f"{r / TARGET_CPU:.2f}× the allowed CPU") + " |")
if "W7" in seen_w:
    b = st("W7", "weft-mt2", "rss_per_task_b")
    ok = None if b is None else b[0] <= TARGET_RSS_B
    L.append(f"| W7 ≤ {TARGET_RSS_B:g} B RSS per sleeping task, timer included | "
             + ("—" if b is None else f"{b[0]:.1f} B (rounds {b[1]:.1f}–{b[2]:.1f}; "
                f"weft-ct {f(med('W7', 'weft-ct', 'rss_per_task_b'), 1)} B)")
             + " | " + verdict(ok, None if b is None else f"over by {b[0] - TARGET_RSS_B:.1f} B, "
                              f"{100 * (b[0] / TARGET_RSS_B - 1):.1f}%") + " |")
L.append("")

L += ["## Notes", ""]
if cell_info:
    L.append("- weft's cell for one sleeping task (`weft-bench-time cell`, through a counting "
             "allocation hook):")
    L.append("")
    L.append("  ```")
    L += ["  " + l for l in cell_info.splitlines()]
    L.append("  ```")
    L.append("")
    L.append("  A cell is the 64-byte task header plus the future (W7: just the `weft_sleep`, "
             "whose timer entry is intrusive: the wheel allocates nothing per timer), requested "
             "rounded up to the scheduler's 64-byte cell class so that cells can be recycled "
             "across types; glibc then adds its 8-byte header and 16-byte rounding. W7's RSS per "
             "task is essentially that heap chunk.")
    L.append("")
checks = {(w, v) for (w, rt, m), vs in samples.items() if m == "check" for v in vs}
for w in sorted({w for w, _ in checks}):
    vals = sorted(v for x, v in checks if x == w)
    L.append(f"- {w} schedule check (sum of the drawn durations, ms): "
             + (f"{vals[0]:,.0f} in every run." if len(vals) == 1
                else "**differs between runs**: " + ", ".join(f"{v:,.0f}" for v in vals) + "."))
mins = [v for (w, rt, m), vs in samples.items() if m == "late_min_ms" for v in vs]
if mins:
    L.append(f"- Earliest wake-up over all W6 runs: {min(mins):+.3f} ms relative to the deadline "
             + ("(no runtime ever woke a task early)." if min(mins) >= 0 else "(**a task woke early**)."))
loads = [v for (w, rt, m), vs in samples.items() if m == "load1" for v in vs]
if loads:
    L.append(f"- Machine load going into each run (1-minute load average, `load1` in the csv): "
             f"median {statistics.median(loads):.2f}, range {min(loads):.2f}–{max(loads):.2f}, "
             f"on {ncpu} CPUs" + (": other work was competing for the CPUs during these runs, "
             "which lengthens the lateness tails (a woken task or the timer driver waits for a CPU)."
             if statistics.median(loads) > ncpu * 0.75 else "."))
# measured by hand, not by this script (see the commit that added each)
L += [
    "- Where W6's worst lateness comes from (measured 2026-12-05 on this 2-vCPU VM with a build that logged each drive of the wheels and each nap of the watcher, load average 3-4): the late timers come in clusters of 1-3 consecutive milliseconds, and every cluster lines up with a nap of the watcher that ended 2-4 ms after the deadline it asked the kernel for (59 ms once, under load 8), while the other worker slept without a timeout. The wheel was not behind: each drive fired the millisecond's ~100 timers in 3-4 batches of 32 within about 30 us, with no cascade or batch delaying a due slot. It is the wake-up latency of the one thread that drives the timers: a timed wait that expires while both CPUs run other work waits for the CPU (2-4 ms, the kernel's preemption granularity, on this machine). A Linux 6.12+ shorter scheduling slice for the workers (`sched_setattr` with `sched_runtime`) is a candidate fix; at load 8-10 A/B runs of a bare 1 ms nap loop could not tell it apart from the noise, so it is not in the library. Rechecked on the idle machine (2026-12-05 02:10-02:20 UTC, load average below 0.3), with builds that printed each timer more than 1.5 ms late and each timed wait of a worker that ended more than 1 ms after its limit: the clusters still come (worst 4.2-5.7 ms in 3 of 8 `mt2` runs), and in those runs the watcher's `pthread_cond_timedwait` returned 2.2-4.0 ms after its limit (asked for 0.4-1.0 ms); the wheel's next deadline was right (no nap longer than 1.5 ms was computed), and the late timers had been armed tens of ms before. A bare program on the same idle VM, one thread looping on a 0.7 ms `pthread_cond_timedwait`, overshot by 2.4-3.3 ms about once per 1,500 naps (a 1 ms `clock_nanosleep` loop: up to 1.2 ms). So on this VM a timed wait of an idle vCPU now and then wakes 2-4 ms late with nothing else running: the ≤ 2 ms goal needs either a machine without that wake-up latency or a timer driver that does not sleep through a deadline (a spin before each millisecond's timers would cost a CPU), which is not done. Tried 2026-12-05: a second sleeping worker napping until the same deadlines as the watcher (a bare two-thread wait loop on this VM was rarely late on both threads at once): in W6 `mt2`, 10 interleaved rounds each at load 1.7-3.3, worst lateness 1.35-7.99 ms without it and 1.35-7.69 ms with it, no difference; not kept. On 2026-12-05 at 04:38 UTC (quiet) the 3 rounds of this page's table all stayed under 2 ms (1.35-1.56 ms), but 8 more `mt2` runs right after them (load 0.2-1.3) gave 1.29-5.22 ms, 3 of 8 under 2 ms: the goal is not met reliably on this VM. Instrumented again (issue 13, 2026-12-05 05:40 UTC, load 5.5-7 from other work on the machine; a build that logged every timer fired more than 0.5 ms late with who fired it, and every timed wait of a worker that ended more than 0.3 ms after its limit, against the benchmark's own lateness of each task): in 6 `mt2` runs, of the tasks more than 1.5 ms late 88-95% had been fired late (the driver, not the run queue, was behind), and the worst task of each run was fired 9-13 ms late, by the watcher after a `pthread_cond_timedwait` that returned 8-9 ms after its limit, or by a busy worker's periodic look, then ran within 0.7 ms of the fire (one run: 27 ms later, in the spawn loop's first milliseconds, behind the root's long poll on its worker). At that load the timer thread is runnable but gets no CPU: weft cannot fix that short of privileges (a real-time priority). Tried: a shorter EEVDF slice (`sched_setattr` with `sched_runtime` 100 us) on a bare 0.7 ms nap loop, 3 interleaved pairs of 1,500 naps at load 7: naps over 2 ms 15/1/2 without it and 1/17/5 with it, no difference; a nap cut into 150 us pieces (to keep the vCPU from a long halt), 3 pairs of 2,000 deadlines at load 10: as late (over 2 ms: 62/124/43 vs 57/125/151) for 4x the CPU (35 -> 155 ms per 2 s). Neither is kept.",
    "- The backup (issue 13, 2026-12-05 08:15-09:10 UTC, this 2-vCPU VM shared with five other sessions' builds and tests, load average 2-21): instrumented again (a temporary build that logged every drive of a wheel with who drove it and how late its most overdue timer was, every park with its intended and actual end and the thread's run-queue wait from /proc/thread-self/schedstat, and every poll of a fired sleep), 4 runs at load 6.8-7.2 before the change: the most overdue drive of each run was 20-25 ms late, made by a worker just back from a park (as the watcher, or notified) whose thread had been runnable but held off the CPU for as long (schedstat run delay 21-26 ms at that wake), while the other worker slept without a timeout or was inside the root's spawn loop; in two of the runs the worst task was fired 6-8 ms late and then waited 17-38 ms more in a run queue. So one more parked worker, the backup (`back_up()` in `src/sched/park.c`), now waits until 250 us after the next deadline and fires what is still due (it returned from its timeout 1-19 times per run, for about 1,000 deadlines: the tasks the watcher fires wake it first). Instrumented with it (10 runs, load 2.2-3.3): the backup fired the most overdue batch in 6 of 10 runs, 0.39-1.09 ms after the deadline; what was left were (1) tasks fired on time and polled 1.1-2.3 ms later: the driver was preempted right after firing with the last task in its LIFO slot, which only its owner (or the watcher, after a nap) runs, and once a sleeper it had just woken blocked on the driver's park lock; so what a parked worker's drive wakes now goes to its local queue (stealable; from the second task on, each push wakes a sleeper), the watcher resigns before it fires, and a sleeper is signalled after its lock is released; (2) a watcher held off the CPU 2.8 ms while the other worker ran the root's 26 ms spawn loop (one long poll: nobody else can run). Interleaved A/B, worst lateness per run, 10 rounds each: at load 3.3-3.9 (backup only) median 5.05 -> 3.70 ms (2.04-13.29 -> 1.44-5.31; runs at or under 2 ms 0/10 -> 2/10), p99 1.28 -> 1.16 ms, CPU 106.7 -> 108.1 ms; at load 16.5-17.2 (all three changes) 78.4 -> 43.5 ms, p99 60.1 -> 27.9 ms, CPU 181 -> 129 ms; tokio-mt2 in the same session (load 18): CPU 471.6 ms, so weft 0.28x. New tests: `time.stall.stalled_watcher_does_not_hold_timers_back` (the watcher's thread held 600 ms by a signal handler that sleeps: the 100 ms sleep fired on time; 630 ms before) and `time.stall.timers_fire_with_backup_and_watcher_racing`. Later interleaved series on the final code, before vs after, worst lateness medians: load 15.0-15.9, 10 rounds: 40.7 vs 40.3 ms; load 10.9-13.8, 10 rounds (with the backup alone as a third binary): 56.7 / 31.4 (backup alone) / 172.4 ms; load 6.5-8.3, 8 rounds: 10.1 / 30.2 (before the last change) / 6.3 ms; load 4.3-5.2, 10 rounds: 11.2 vs 14.6 ms; the order changes from one series to the next, and the instrumented runs of those minutes show why: in the runs with 100 ms to 2 s of lateness both workers' threads were runnable and off the CPU at once for as long (schedstat run delay 0.16-1.57 s at a load average of 6-7, so very likely the VM itself descheduled: `nice -n -15` did not shorten it, and a separate process at nice -10 looping on a 1 ms `nanosleep` beside 8 W6 runs at load 7 overslept by 61-229 ms 7 times in 20 s, while those runs' worst lateness was 4.6-184 ms), which no placement of the timer driver can cover. CPU stayed level in every series (medians 110-133 ms both ways). With one timer firing at a time the backup costs a wake-up per deadline (a 1 ms tick on 2 workers, 2,000 ticks at load 15: 17-20 -> 28-34 us of CPU per tick). Removed since (issue 13, 2026-12-05 11:00-11:40 UTC): the backup waits on a timerfd alarm that the watcher moves past each deadline before its nap, and a parked worker's drive no longer takes the LIFO fast path that woke a sleeper at every firing; `weft-bench-time TICK mt2` (one task sleeping 1 ms 2,000 times), interleaved A/B, 6 rounds at load 13-15: 1.97-2.00 -> 1.03-1.22 voluntary context switches per tick, CPU per tick median 35.0 -> 30.0 us; `weft-bench-timer-busy 1000 200 0 3` (the hog, the sleeper, 3 workers), 5 rounds at load 10-13: 3,640-3,974 -> 2,158-2,864 voluntary context switches per 2,000 ticks (2 workers: about 2,000 both ways, no backup there). The 2 ms goal still needs a quiet-machine rerun: no quiet window came in this session.",
    "- SEED (`weft-bench-time SEED mt4`): the sleep's deadline is fixed at `weft_sleep_init`, in the spawn loop, so wall = spawn loop + 100 ms + about 1 ms (rounding up to the millisecond) in every run measured (e.g. 27.3 + 101.5 = 128.8 ms). The extra time is the root task's spawn loop: about 590 instructions per spawn (callgrind), of which the time layer's share is the clock read in `weft_sleep_init` (41); the cell allocation is 265 (a burst of fresh cells: no cache to recycle from, then malloc), and on 2 CPUs the loop shares them with three workers that poll, fire and free the tasks. Per-worker wheels removed the shared timer lock the three pollers fought over (with the cheaper arm and cancel: SEED total 174 M -> 169 M instructions, callgrind); the wall did not move beyond the noise (medians 130.4 -> 128.9 ms over 5 interleaved rounds at load 10). Then (issue 13) the cells of such a burst are carved from blocks (`src/sched/cells.c`, section Blocks): the profile of the loop (perf, one worker) showed a fifth of its samples in `mprotect()`, glibc growing the spawning thread's arena one page per 21 cells (4,661 calls per run; 297 with blocks), besides malloc itself; with spawn's worker looked up once, the loop went from 631 to 407 instructions per spawn (callgrind, `SEED mt1`, the whole root poll: sleep init, spawn, push). What is left is mostly not instructions: the 100,000 cells are 19 MB of fresh memory, about 4,760 page faults, which cost 8-10 ms of the loop on this VM (a bare loop touching 20 MB of fresh heap takes 8 ms here, and prefaulting with `MADV_POPULATE_WRITE` did not make it cheaper), and the loop's 100,000 clock reads in `weft_sleep_init` about 2-3 ms; so the 9 ms goal for the loop is out of reach while every task needs its own fresh 184-byte cell. Interleaved A/B on the shared machine (11 rounds, 2026-12-05 04:14 UTC, load 3.6-3.8): spawn loop median 32.6 → 21.6 ms, wall 133.5 → 124.3 ms (ranges 128.5-139.0 → 121.2-135.3). Quiet machine (2026-12-05 04:47 UTC, load 0.2-2.8, 5 runs after this page's rounds): wall 119.3-165.9 ms (median 121.5), spawn loop 16.9-65.1 ms (median 17.9): the goal (wall at most 110 ms) is not met. Then (issue 13, item 4) a worker's cell blocks past 256 KiB of a class are 2 MiB mappings marked `MADV_HUGEPAGE` while the allocation hook is libc's own (`src/sched/cells.c`, \"Huge blocks\"): page faults per run 4,796-4,802 -> 186-190 (`/usr/bin/time`), spawn loop median 24.2 -> 9.6 ms (15 interleaved rounds, load 3-6; a bare loop touching 20 MB at a 192-byte stride: median 17 ms on fresh heap, 2.6 ms on huge pages). A faster loop packs the 100,000 deadlines into fewer milliseconds (~12,000 a millisecond), and the wall then waits for the timers' drain: a profile of the drain (perf, the samples after the first deadline) had 28% in the wheel's walk of a due slot (one dependent cache miss per entry: the cells are 19 MB, cold since their arm 100 ms earlier), 16% in the inject queue's pop, 11% in the spawning worker recycling the cells the others freed. So a fired sleep's drop no longer takes its wheel's lock (each fired task took the lock of the wheel being fired), drivers start with their own wheel (two drivers fire two wheels side by side instead of queueing on one lock), the driver prefetches the woken tasks' headers while it walks, and a huge block's cells start on a cache line (a 192-byte cell's task header and timer entry each in one line). CPU time per run (medians of 10 interleaved rounds at load 8.0-8.3): 42.2 ms before, 35.0 with huge blocks, 31.1 with the timer changes (then with a busy worker's look passing over a held wheel lock too, since dropped: 24.8 vs 30.4 ms without/with it over 12 rounds at load 16), 27.7 with the aligned cells; wall medians 132.0 / 134.4 / 123.6 / 115.5 ms in the same rounds. Final interleaved A/B, old vs new binary (2026-12-05 06:24 UTC, 15 rounds, load 15.7-15.9, other helpers' benchmarks on the machine): page faults 4,797 -> 187, spawn loop median 24.6 -> 12.2 ms (20.8-71.2 -> 8.7-113.0), CPU 35.4 -> 25.2 ms, wall 125.5 -> 117.1 ms (121.4-172.1 -> 110.1-213.8); no run at or under 110 ms at that load, so the goal is not shown met: it needs the quiet-machine rerun. Quiet machine (2026-12-05 07:19 UTC, load 1.8, 10 runs of `weft-bench-time SEED mt4` right after this page's rounds): wall 108.6-149.8 ms, median 109.7, 7 of 10 at or under 110 ms (the two slowest were the first two runs, spawn loop 40-49 ms; the other eight 6.3-8.8 ms); CPU 25.6-70.8 ms, median 28.0: the goal is met by the median, not by every run. W6 `mt2` in the same session (8 rounds, load 14.8-15.9): CPU 156.7 -> 126.1 ms, spawn loop 60.1 -> 31.6 ms, p99 lateness 14.3 -> 7.6 ms, worst ~23 ms both. The clock read in `weft_sleep_init` (~22 ns here, 2-3 ms of the loop) stays: its deadline is fixed at init, and a cached or coarse clock lags the real one (CLOCK_MONOTONIC_COARSE by up to a tick, or more on a tickless idle CPU), so a deadline computed from it would end the sleep early; the first poll's read stays too (a poll after the deadline must return READY).",
    "- SEED run by run (issue 13, goal: every run at most 110 ms; 2026-12-05 13:55-14:25 UTC). `weft-bench-time SEED` now says where a run's time went (bench/weft_time.c, header): `first_ms` (first task done), `last_late_ms` (root's wake-up after the last task's deadline), the spawning thread's `spawn_cpu_ms`, `spawn_sys_ms` (kernel, per tick) and `spawn_wait_ms` (runnable, waiting for a CPU: schedstat) over the loop, `spawn_slices`, and the other threads' `others_cpu_ms` with the other workers' `others_polls`/`steals`/`parks` meanwhile. The machine was never quiet in this session (load 7.5-17 from other sessions' builds), so the runs below were made at nice -20 in an autogroup of their own (`setsid sh -c 'echo -20 > /proc/self/autogroup; exec nice -n -20 ...'`), which hands the benchmark most of both CPUs (a bare two-thread spin got 0.76 of a CPU per thread that way, 0.14-0.21 without): a stand-in for the quiet machine, not the same one; the CPUs were also slower than at the session's start (the loop's own CPU time 9-10 ms in the series below, 4.7-5.5 ms in the first runs at 14:03 UTC). Findings:",
    "  - Where the wall goes: wall = spawn loop + 100 ms + the last deadline's rounding up to the millisecond (uniform, 0.02-0.96 ms measured) + `last_late`. `last_late`: median 1.2 ms, 0.1-7.4 (32 runs of the final binary); 4-7 ms in 9 of them: 3 of the 4 runs whose loop took only ~10 ms (~10,000 deadlines a millisecond, more than the 2 CPUs fire, poll and free per millisecond at this speed: the drain, not the deadline, ends the run), and 6 at any loop length (a late wake-up of whoever drives the timers, as in W6 above, or other work on the CPUs). So wall ≈ 100 + rounding + max(spawn loop, drain of the 100,000) + ~1 ms: both the loop and the drain must stay under ~8.5 ms in every run. The drain (perf cpu-clock, samples from the first deadline to the root's wake-up, a run with `last_late` 5.8 ms): `weft__wheel_advance` 25% (a due slot's list walk, one dependent cache miss per cold entry), `weft__sched_spill_pop` 10%, `task_wake` 9%, `weft__time_drive` 7%, the benchmark's shared countdown 7%, `sched_yield` 3.5%.",
    "  - The spawn loop with 1, 2 and 4 workers (20 interleaved rounds each, load 7.5-8.2; medians, ranges): mt4 17.3 ms (10.0-45.7; own CPU 10.2, run-queue wait 5.6, 0.0-14.2, 10 slices), wall 119.6; mt2 17.9 (CPU 9.4, wait 8.6), wall 119.5; mt1 10.3 (CPU 9.6, wait 0.4), wall 116.4 but `last_late` 5.0 ms (the one worker polls the 100,000 after the loop, then drains alone). The other workers poll most tasks during the loop (`others_polls` median 99,900, 72,900-100,000; `others_cpu_ms` median 9.4, about the spawner's own CPU): on 2 CPUs one helper already takes half the spawner's CPU here, three take no more.",
    "  - Wake-ups are not the cost: `strace -f -c`, 3 runs: 63-109 futex calls, 21-167 `sched_yield`, 1-12 `timerfd_settime` per whole run; the other workers park 3-85 times per loop (median 19). A perf `sched:sched_switch` trace over the loop (8 runs, load 8; a rough attribution from the switch events) put 0.8-9.5 ms of the spawner's waits behind its own workers and 1-10 ms behind other processes; its own workers preempted it 0-29 times per loop.",
    "  - Slow loops of another kind: `spawn_sys_ms` 20-60 ms (5 of 24 runs in one series, 1 of 20 in another), spawn loops of 40-70 ms: perf puts 36% of such a run's samples in the kernel's `clear_page_erms` on the spawning thread, the huge pages of the cell blocks zeroed at many times the usual cost (fresh guest memory on this VM; no runtime lever but touching less fresh memory). Yesterday's slow first runs fit this.",
    "  - Tried, not kept (no measurable gain, or a cost elsewhere): (1) no wake-up for parallelism alone (a push to the worker's own queue, a successful searcher handing the search on) while as many workers are awake as the affinity mask has CPUs: spawn wait medians 10.1 -> 8.2 ms, slices 16.5 -> 11.5, wall 124.2 -> 120.9 ms (20 interleaved rounds, load 10.2-10.8), within the noise: the watcher, napping 1 ms while the spawner's LIFO slot stays full and its poll count stands still, joins after its nap anyway; (2) with it, the watcher parking again without a round while that many workers are awake: spawn wait 9.3 ms, and it would leave queued tasks behind workers blocked inside a poll (it needs each worker's CPU clock to tell blocked from busy); (3) the spawner pinned to CPU 0 and the other threads to CPU 1 (mt2, bench-side, 8 interleaved rounds at load 10): run-queue wait 7.1 -> 0.3 ms, but the loop's own CPU time was never under 19.9 ms pinned (9-10 ms in the other series): inconclusive. Not tried, with why: a deadline finer than the wheel's millisecond (the rounding is the least a 1 ms wheel can promise without firing early; sub-millisecond deadlines need a wider `weft_sleep`, 64 bytes by ABI, and a driver that fires inside a slot); skipping the first poll's clock read in `weft_sleep_poll` (a third of a helper's poll of a new sleeper) would send a sleep first polled after its deadline through the wheel instead of READY at once, which coroutine deadlines, fd watches and connect timeouts rely on.",
    "  - What is left, so the goal is not shown met in every run: the spawn loop's own CPU (about 425 instructions per spawn, callgrind `SEED mt1`, the root's whole poll; 440 with `mt4`, plus a 28 ns clock read per `weft_sleep_init` on this VM, 2.8 ms per loop), a CPU shared with the workers that poll the new tasks, the kernel zeroing fresh huge pages, and the drain's cache misses on 19 MB of cells that went cold during the 100 ms.",
    "- `weft-bench-time TIMEOUT <mt<n>|ct> [scale]`: one task runs 1,000,000 x scale `weft_timeout`s around a future that is ready at once (the timer is never armed: the inner future is polled first) and around one that returns PENDING once (armed at the PENDING, cancelled at the READY), plus both futures bare; arm_cancel_ns = timeout_once - once. Callgrind (scale 0.1, mt4): `weft_sleep_poll` + `weft_sleep_drop` per arm + cancel 754 -> 314 instructions (the wheel's next deadline no longer recomputed by a scan at each arm and cancel; a per-worker wheel under a spinlock instead of one runtime-wide wheel under a pthread mutex).",
]
if ncpu < 3:
    L.append(f"- This machine has {ncpu} CPUs, shared with other work: a worst-case lateness is "
             "one sample of the tail and moves with whatever else was scheduled at that moment; "
             "the p99 column is the steadier figure.")
if failures:
    L.append("- Failed runs (left out of the medians): "
             + "; ".join(f"{w} {rt} round {r}: {why}" for w, rt, r, why in failures) + ".")
L += ["", "## Reproduce", "", "```sh",
      "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build",
      "ROUNDS=3 SCALE=1 bench/compare_time.sh     # builds the peers first (bench/peers/build.sh)",
      "```", ""]
open(out, "w").write("\n".join(L))
print(f"compare_time.sh: wrote {out} and {out[:-3]}.csv", file=sys.stderr)
PY
then
    echo "compare_time.sh: writing the report failed" >&2
    failed=1
fi

if ((failed)); then
    echo "compare_time.sh: some runs FAILED:" >&2
    sed 's/^/  /' "$failures" >&2
    exit 1
fi
