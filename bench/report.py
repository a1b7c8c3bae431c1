#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Summaries for bench/compare.sh: medians, tables, docs/benchmarks.md, chart.

  report.py table    --csv R --failures F --workload W
      prints one workload's table (median, min-max, ratios) to stdout.
  report.py markdown --csv R --failures F --out MD --png PNG [--rounds N]
                     [--scale S] [--runtimes "..."] [--weft-bench PATH]
      writes the markdown report and, with gnuplot, the bar chart.

R has the header workload,runtime,round,ns_per_op (successful runs only);
F has lines workload,runtime,round,reason (failed runs).
"""

import argparse
import csv
import datetime
import glob
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ORDER = ["weft-mt2", "tokio-mt2", "go2", "weft-mt1", "weft-ct", "tokio-ct"]

WORKLOADS = {
    "W1": ("spawn_many_local",
           "a task on the runtime spawns 1,000,000 tasks that each bump a counter; op = one spawn + run"),
    "W2": ("spawn_many_remote",
           "a plain OS thread outside the runtime spawns 1,000,000 tasks (injection queue); op = one spawn + run"),
    "W3": ("yield_many",
           "1,000 tasks each yield 1,000 times; op = one yield + re-poll"),
    "W4": ("ping_pong",
           "1,000 task pairs pass a counter 1,000 round trips over two capacity-1 channels; op = one hop (send + wake + receive)"),
    "W5": ("chained_spawn",
           "each task spawns the next, 1,000,000 in all; op = one spawn + first poll"),
    "C1": ("chan_1p1c",
           "1 producer task sends 10,000,000 messages to 1 consumer task over a channel bounded "
           "to 1,024; op = one message (send + receive)"),
    "C4": ("chan_4p4c",
           "4 producer tasks send 10,000,000 messages in all to 4 consumer tasks over a channel "
           "bounded to 1,024 (tokio: 4 sharded mpsc channels, see the notes); op = one message"),
    "M1": ("mutex_contention",
           "1,000 tasks each lock and unlock one async mutex 1,000 times, bumping the counter it "
           "guards; op = one lock/unlock pair"),
}

# The scheduler workloads (targets vs tokio and Go) and the sync-layer
# workloads (channels, mutex: their own target, vs tokio only).
SCHED_WORKLOADS = ["W1", "W2", "W3", "W4", "W5"]
SYNC_WORKLOADS = ["C1", "C4", "M1"]

# (label, numerator, denominator)
RATIOS = [
    ("weft-mt2/tokio-mt2", "weft-mt2", "tokio-mt2"),
    ("weft-mt2/go2", "weft-mt2", "go2"),
    ("weft-ct/tokio-ct", "weft-ct", "tokio-ct"),
]

TARGET_TOKIO = 0.5  # weft-mt2 at most 0.5x tokio-mt2
TARGET_GO = 1.0     # weft-mt2 faster than go2
TARGET_SYNC_TOKIO = 1 / 1.5  # C1, C4, M1: at least 1.5x tokio-mt2's throughput


# ---- data ---------------------------------------------------------------------

def load(csv_path, failures_path):
    """Returns ({(workload, runtime): [ns, ...]}, [(w, rt, round, reason)])."""
    samples = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["workload"], row["runtime"])
            samples.setdefault(key, []).append(float(row["ns_per_op"]))
    failures = []
    if failures_path and os.path.exists(failures_path):
        with open(failures_path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    failures.append(tuple(line.split(",", 3)))
    return samples, failures


def stats(values):
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def ratio(samples, w, num, den):
    a, b = stats(samples.get((w, num), [])), stats(samples.get((w, den), []))
    if a is None or b is None or b[0] == 0:
        return None
    return a[0] / b[0]


def runtimes_present(samples, failures, requested=None):
    seen = {rt for (_, rt) in samples} | {f[1] for f in failures}
    if requested:
        seen |= set(requested)
    return [rt for rt in ORDER if rt in seen] + sorted(seen - set(ORDER))


def workloads_present(samples, failures):
    seen = {w for (w, _) in samples} | {f[0] for f in failures}
    known = [w for w in WORKLOADS if w in seen]   # W1-W5, then C1, C4, M1
    return known + sorted(seen - set(WORKLOADS))


def fmt_ns(x):
    if x is None:
        return "—"
    return f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}"


def failed_count(failures, w, rt):
    return sum(1 for f in failures if f[0] == w and f[1] == rt)


# ---- terminal table -------------------------------------------------------------

def cmd_table(args):
    samples, failures = load(args.csv, args.failures)
    w = args.workload
    name = WORKLOADS.get(w, ("?", ""))[0]
    rts = runtimes_present({k: v for k, v in samples.items() if k[0] == w},
                           [f for f in failures if f[0] == w])
    print()
    print(f"{w} {name}")
    print(f"  {'runtime':<10} {'median ns/op':>13} {'min':>10} {'max':>10}  runs")
    for rt in rts:
        vals = samples.get((w, rt), [])
        s = stats(vals)
        nf = failed_count(failures, w, rt)
        runs = f"{len(vals)}" + (f" ({nf} FAILED)" if nf else "")
        if s is None:
            print(f"  {rt:<10} {'—':>13} {'—':>10} {'—':>10}  {runs}")
        else:
            print(f"  {rt:<10} {fmt_ns(s[0]):>13} {fmt_ns(s[1]):>10} {fmt_ns(s[2]):>10}  {runs}")
    parts = [f"{label} {fmt_ratio(ratio(samples, w, n, d))}" for label, n, d in RATIOS]
    print("  ratios of medians: " + "   ".join(parts))
    sys.stdout.flush()


# ---- environment ----------------------------------------------------------------

def sh(cmd, cwd=None):
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") or line.startswith("Model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tokio_version():
    lock = os.path.join(HERE, "peers", "tokio", "Cargo.lock")
    try:
        text = open(lock).read()
        m = re.search(r'\[\[package\]\]\s*name = "tokio"\s*version = "([^"]+)"', text)
        if m:
            return m.group(1) + " (Cargo.lock)"
    except OSError:
        pass
    versions = [os.path.basename(p)[len("tokio-"):]
                for p in glob.glob("/usr/share/cargo/registry/tokio-1.*")]
    if versions:
        versions.sort(key=lambda v: [int(x) if x.isdigit() else 0 for x in re.split(r"[.-]", v)])
        return versions[-1] + " (/usr/share/cargo/registry)"
    return "unknown"


def go_version():
    binary = os.path.join(HERE, "peers", "go", "weft-peer-go")
    v = sh(["go", "version", binary])
    if v and ":" in v:
        return v.split(":", 1)[1].strip() + " (weft-peer-go built with)"
    return sh(["go", "version"]) or "unknown"


def c_compiler(weft_bench):
    # weft-bench lives in <build>/bench/; its CMakeCache.txt names the compiler.
    build = os.path.dirname(os.path.dirname(os.path.abspath(weft_bench)))
    cache = os.path.join(build, "CMakeCache.txt")
    cc, build_type = None, None
    try:
        for line in open(cache):
            if line.startswith("CMAKE_C_COMPILER:"):
                cc = line.split("=", 1)[1].strip()
            elif line.startswith("CMAKE_BUILD_TYPE:"):
                build_type = line.split("=", 1)[1].strip()
    except OSError:
        pass
    version = sh([cc or "gcc", "--version"]) or "unknown"
    if build_type:
        version += f", CMake build type {build_type}"
    return version


def git_rev():
    rev = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    if not rev:
        return "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + (" with uncommitted changes" if dirty else "")


# ---- chart ----------------------------------------------------------------------

def write_chart(samples, workloads, png):
    """Returns None on success, else why there is no chart."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot is not installed"
    rows, values = [], []
    for w in workloads:
        rt = ratio(samples, w, "weft-mt2", "tokio-mt2")
        rg = ratio(samples, w, "weft-mt2", "go2")
        rows.append((w, rt, rg))
        values += [x for x in (rt, rg) if x is not None]
    if not values:
        return "no workload has both weft-mt2 and a peer"
    ymin = min(values + [TARGET_TOKIO]) / 1.8
    ymax = max(values + [TARGET_GO]) * 1.8
    probe = subprocess.run([gnuplot, "-e", "set terminal"], capture_output=True, text=True)
    terminals = probe.stdout + probe.stderr
    term = "pngcairo" if "pngcairo" in terminals else "png"
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        data = f.name
        f.write("# workload weft-mt2/tokio-mt2 weft-mt2/go2\n")
        for w, rt, rg in rows:
            f.write(f"{w} {'?' if rt is None else f'{rt:.4f}'} {'?' if rg is None else f'{rg:.4f}'}\n")
    try:
        setup = (f"datafile='{data}'; outfile='{png}'; term='{term}'; "
                 f"ymin={ymin:.6g}; ymax={ymax:.6g}")
        out = subprocess.run([gnuplot, "-e", setup, os.path.join(HERE, "plot.gp")],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return "gnuplot failed: " + out.stderr.strip()[-500:]
    finally:
        os.unlink(data)
    return None


# ---- markdown -------------------------------------------------------------------

def sched_targets(L, samples, workloads):
    """The scheduler workloads' targets (W1-W5): vs tokio-mt2 and vs go2."""
    L.append("## Targets")
    L.append("")
    L.append(f"Each of W1–W5 at most {TARGET_TOKIO}× tokio multi_thread's time "
             f"(`weft-mt2/tokio-mt2` ≤ {TARGET_TOKIO}), and faster than Go "
             f"(`weft-mt2/go2` < {TARGET_GO:.1f}).")
    L.append("")
    L.append(f"| Workload | weft-mt2/tokio-mt2 | ≤ {TARGET_TOKIO}? | weft-mt2/go2 | < {TARGET_GO:.1f}? | Met |")
    L.append("|:---|---:|:---:|---:|:---:|:---:|")
    met_count, judged = 0, 0
    for w in workloads:
        rt = ratio(samples, w, "weft-mt2", "tokio-mt2")
        rg = ratio(samples, w, "weft-mt2", "go2")
        ok_t = None if rt is None else rt <= TARGET_TOKIO
        ok_g = None if rg is None else rg < TARGET_GO
        yn = lambda b: "n/a" if b is None else ("yes" if b else "**no**")
        if ok_t is None or ok_g is None:
            met = "n/a"
        else:
            judged += 1
            met = "yes" if (ok_t and ok_g) else "**no**"
            met_count += ok_t and ok_g
        L.append(f"| {w} | {fmt_ratio(rt)} | {yn(ok_t)} | {fmt_ratio(rg)} | {yn(ok_g)} | {met} |")
    L.append("")
    missing = [w for w in SCHED_WORKLOADS if w not in workloads]
    unjudged = len(workloads) - judged
    summary = f"Targets met on {met_count} of {len(workloads)} workloads"
    extra = []
    if unjudged:
        extra.append(f"{unjudged} not judged because runs failed")
    if missing:
        extra.append(f"not run: {', '.join(missing)}")
    if extra:
        summary += " (" + "; ".join(extra) + ")"
    if judged and met_count == judged and not missing and not unjudged:
        summary += ": **all targets met**."
    else:
        summary += "."
    L.append(summary)
    L.append("")


def sync_targets(L, samples, workloads):
    """The sync-layer workloads' target (C1, C4, M1): at least 1.5x tokio-mt2's
    throughput, that is weft-mt2's time at most 1/1.5 of tokio-mt2's. Go and
    current-thread ratios are shown, not judged."""
    L.append("## Targets: channels and mutex")
    L.append("")
    L.append("Each of C1, C4 and M1 at least 1.5× tokio multi_thread's throughput "
             f"(`weft-mt2/tokio-mt2` ≤ 1/1.5 ≈ {TARGET_SYNC_TOKIO:.3f}). The Go and "
             "current-thread ratios are for information; they have no target.")
    L.append("")
    L.append(f"| Workload | weft-mt2/tokio-mt2 | Met (≤ {TARGET_SYNC_TOKIO:.3f}) | "
             "weft-mt2/go2 (info) | weft-ct/tokio-ct (info) |")
    L.append("|:---|---:|:---:|---:|---:|")
    met_count, judged = 0, 0
    for w in workloads:
        rt = ratio(samples, w, "weft-mt2", "tokio-mt2")
        rg = ratio(samples, w, "weft-mt2", "go2")
        rc = ratio(samples, w, "weft-ct", "tokio-ct")
        if rt is None:
            met = "n/a"
        else:
            judged += 1
            ok = rt <= TARGET_SYNC_TOKIO
            met_count += ok
            met = "yes" if ok else "**no**"
        # three decimals: the threshold is 0.666..., so 0.67 would not tell
        r3 = "—" if rt is None else f"{rt:.3f}"
        L.append(f"| {w} | {r3} | {met} | {fmt_ratio(rg)} | {fmt_ratio(rc)} |")
    L.append("")
    missing = [w for w in SYNC_WORKLOADS if w not in workloads]
    unjudged = len(workloads) - judged
    summary = f"Target met on {met_count} of {len(workloads)} sync workloads"
    extra = []
    if unjudged:
        extra.append(f"{unjudged} not judged because runs failed")
    if missing:
        extra.append(f"not run: {', '.join(missing)}")
    if extra:
        summary += " (" + "; ".join(extra) + ")"
    if judged and met_count == judged and not missing and not unjudged:
        summary += ": **all met**."
    else:
        summary += "."
    L.append(summary)
    L.append("")



def cmd_markdown(args):
    samples, failures = load(args.csv, args.failures)
    requested = args.runtimes.split() if args.runtimes else None
    rts = runtimes_present(samples, failures, requested)
    workloads = workloads_present(samples, failures)
    md_dir = os.path.dirname(os.path.abspath(args.out))
    png_rel = os.path.relpath(os.path.abspath(args.png), md_dir)
    csv_rel = os.path.splitext(os.path.basename(args.out))[0] + ".csv"

    chart_problem = write_chart(samples, workloads, args.png)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ncpu = os.cpu_count() or 0
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    L = []
    L.append("# weft benchmarks: weft vs tokio vs Go")
    L.append("")
    L.append("Generated by `bench/compare.sh` (`make bench-compare`); do not edit by hand.")
    L.append("")
    L.append(f"- Date: {now}")
    L.append(f"- Machine: {ncpu} CPUs (nproc), {cpu_model()}, {platform.system()} {platform.release()}")
    wb = args.weft_bench or "build/bench/weft-bench"
    L.append(f"- weft: commit {git_rev()}, `{wb}`; C compiler {c_compiler(wb)}")
    rustc = sh(["rustc", "--version"], cwd=os.path.join(HERE, "peers", "tokio")) or "unknown"
    L.append(f"- tokio {tokio_version()}, {rustc}, release profile")
    L.append(f"- Go: {go_version()}")
    L.append(f"- Rounds: {args.rounds}; scale: {args.scale}"
             + ("" if float(args.scale) == 1.0 else " (**not the standard scale 1**)"))
    L.append("")

    L.append("## Method")
    L.append("")
    L.append("Each workload runs in its own process per runtime; a program times only the "
             "workload (not building the runtime), checks its own result, and prints "
             "`RESULT <workload> <runtime> <ns_per_op>`. For each workload, "
             f"{args.rounds} rounds run one after the other, and each round runs every runtime "
             "once, interleaved in the order " + ", ".join(f"`{r}`" for r in (requested or rts))
             + ", so drifting machine noise hits all runtimes alike. "
             "The tables show the median ns/op over the rounds and the min–max range; "
             "ratios are of medians (below 1 means weft is faster). "
             f"Raw per-round results: [{csv_rel}]({csv_rel}).")
    L.append("")
    L.append("Runtimes: `weft-mt2`, `weft-mt1`: weft's multi-threaded scheduler with 2 / 1 "
             "workers; `weft-ct`: weft's current-thread scheduler; `tokio-mt2`: tokio "
             "`multi_thread` with 2 workers; `tokio-ct`: tokio `current_thread`; `go2`: Go "
             "goroutines with GOMAXPROCS=2.")
    L.append("")
    L.append("Workloads (scale multiplies the task counts"
             + ("; for C1 and C4, the message count" if any(w in SYNC_WORKLOADS for w in workloads)
                else "") + "):")
    L.append("")
    for w in workloads:
        name, what = WORKLOADS.get(w, ("?", "?"))
        L.append(f"- **{w} {name}**: {what}.")
    L.append("")

    L.append("## Results (ns per op)")
    L.append("")
    L.append("Each runtime cell: median (min–max).")
    L.append("")
    header = ["Workload"] + [f"`{rt}`" for rt in rts] + [label for label, _, _ in RATIOS]
    L.append("| " + " | ".join(header) + " |")
    L.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    for w in workloads:
        cells = [f"{w} {WORKLOADS.get(w, ('?',))[0]}"]
        for rt in rts:
            s = stats(samples.get((w, rt), []))
            nf = failed_count(failures, w, rt)
            if s is None:
                cell = "failed" if nf else "—"
            else:
                cell = f"{fmt_ns(s[0])} ({fmt_ns(s[1])}–{fmt_ns(s[2])})"
                if nf:
                    cell += f" [{nf} failed]"
            cells.append(cell)
        cells += [fmt_ratio(ratio(samples, w, n, d)) for _, n, d in RATIOS]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")

    sched = [w for w in workloads if w not in SYNC_WORKLOADS]
    sync = [w for w in workloads if w in SYNC_WORKLOADS]
    if sched:
        sched_targets(L, samples, sched)
    if sync:
        sync_targets(L, samples, sync)

    L.append("## Chart")
    L.append("")
    if chart_problem is None:
        L.append(f"![weft-mt2 time relative to tokio-mt2 and go2 per workload, "
                 f"log scale; lines at 0.5 and 1.0]({png_rel})")
        L.append("")
        L.append("Bars: median time of `weft-mt2` divided by the peer's (log scale; lower is "
                 "better). Dashed line at 0.5 (the tokio target of W1–W5), solid line at 1.0 "
                 "(parity, the Go target)."
                 + (" C1, C4 and M1 have a different target, 0.667 vs tokio, which the chart "
                    "does not draw." if any(w in SYNC_WORKLOADS for w in workloads) else ""))
    else:
        L.append(f"No chart: {chart_problem}.")
        print(f"report.py: no chart: {chart_problem}", file=sys.stderr)
    L.append("")

    notes = []
    if ncpu < 3:
        notes.append(f"This machine has only {ncpu} CPUs: the 2-worker runtimes share them with "
                     "the main/block_on thread (and W2's spawner thread), so the multi-threaded "
                     "numbers include contention a larger machine would not have.")
    notes.append("W4's channels: tokio uses tokio::sync::mpsc::channel(1), Go a buffered chan of "
                 "1, weft its public MPMC channel (weft_chan bounded to 1, with a fresh send or "
                 "receive future per message). Every weft figure here comes from the public API.")
    notes.append("W3: each task counts its own yields and adds them to the shared total once, in "
                 "all three programs, so that a contended counter is not what W3 measures.")
    notes.append("W2, W3 and issue 13: instruction counts per operation from callgrind on a "
                 "Release build (`valgrind --tool=callgrind build/bench/weft-bench W3 mt2`; W2 "
                 "at scale 0.2; threads run one at a time there, so the counts are free of the "
                 "machine's load): W3 went from 340 to 270 instructions per yield (a yielding "
                 "task goes back to the run queue without an atomic operation on its state, two "
                 "compare-and-swaps fewer per yield; the worker loop's common round is inline). "
                 "W2's count is unchanged within callgrind's run-to-run spread (about 390 "
                 "instructions to spawn a task from the plain thread, 365 to run it): its "
                 "changes cut what callgrind does not model, lock hold times and cross-core "
                 "traffic (the inject queue wakes a worker only when a push makes it non-empty "
                 "and cuts batches outside its lock, the cell cache no longer walks its lists, "
                 "the flags the workers read on every round no longer share a cache line with "
                 "the counter every remote spawn writes). The wall-clock table above is what "
                 "the lead's quiet-machine run measures.")
    if any(w in SYNC_WORKLOADS for w in workloads):
        notes.append("C1, C4: messages are 8-byte integers; producer tasks send the values "
                     "1…N (each producer a contiguous range) and every program checks the exact "
                     "number received and their sum. weft uses one weft_chan bounded to 1,024, "
                     "closed by the last producer; Go one chan of capacity 1,024, closed by the "
                     "last producer; tokio tokio::sync::mpsc, closed when the senders drop.")
        notes.append("C4 on tokio: tokio has no multi-consumer channel (mpsc is "
                     "single-consumer; broadcast delivers every message to every receiver), so "
                     "the closest honest analogue is 4 mpsc channels, one per consumer, each "
                     "bounded to 256 (1,024 in all, as weft's and Go's one channel), with each "
                     "producer sending round-robin over the 4. That uses mpsc as designed and "
                     "adds no lock per message (sharing one Receiver behind a tokio Mutex "
                     "would, and that variant is several times slower on tokio); it also spreads "
                     "the contention over 4 queues where weft and Go have one, so it is the "
                     "choice that favours tokio. It gives up load balancing between consumers, "
                     "which this even workload does not need.")
        notes.append("M1: weft's weft_mutex, tokio's tokio::sync::Mutex, Go's sync.Mutex (a "
                     "blocking lock with spinning, not an async one); the check is that the "
                     "guarded counter ends at tasks × 1,000 (1,000,000).")
    notes.append("W4 and issue 13 (item 1): per message, callgrind on a Release build (`valgrind --tool=callgrind build/bench/weft-bench W4 mt2 0.1`) counts 740 instructions (795 before the third channel pass, tokio's peer 914 on the same run); about 420 of them are the channel's three polls (a send, a receive that parks, the same receive woken), two inits and two drops, a park under the lock and a wake under it; the rest is the scheduler's poll and wake (~250) and the benchmark's own futures (~70). cachegrind's simulated L1 (`--tool=cachegrind --cache-sim=yes`, scale 1) misses 4.4 times per message, 5.7 before: W4's 2,000 channels and 2,000 task cells do not stay in L1, so each line a message touches is a miss, and a capacity-1 channel now takes three lines instead of six or seven. The wall-clock table above is what the lead's quiet-machine run measures.")
    notes.append("W2, W3 and issue 13: instruction counts per operation from callgrind on a Release build (`valgrind --tool=callgrind build/bench/weft-bench W3 mt2`; W2 at scale 0.2; threads run one at a time there, so the counts are free of the machine's load): W3 went from 340 to 270 instructions per yield (a yielding task goes back to the run queue without an atomic operation on its state, two compare-and-swaps fewer per yield; the worker loop's common round is inline), then to 224 (`WEFT_YIELD`'s resume is ready without calling `weft_yield_poll`: one call per yield instead of two; the worker loop runs the task inline instead of calling `weft__sched_run_task`, whose register saves were 18 instructions; a countdown instead of `tick % 61`; the poll's waker and context set up once per worker instead of on the stack at every poll; the poll-timing and busy-loop accounting out of line, so `weft__task_run` keeps a small frame). What is left per yield (224): about 94 in `weft__task_run` itself (the trailer and stall-lint stores the dump reads, begin-poll, the future's and output's addresses from the type, saves and restores), 76 in the worker loop (the local queue's push and its one compare-and-swap pop, about 31; the LIFO, closed, trace and timer/I/O looks), 31 in the benchmark's own poll function, 18 in `weft_yield_poll` and 11 in `weft__async_parked` (the await site for the dump). With the cell blocks (docs/benchmarks-time.md, SEED), W1 (spawns from a task, whose queued tasks pile up faster than they complete) went from 795-1,007 to 690-700 instructions per task (three runs each; the count varies with how callgrind interleaves the threads) at the same L1 misses; W5 644 → 603; W4 795 → 784 per message; W2 899-1,118 → 782-919 (all at scale 0.2, whole process, 2 workers). Interleaved A/B runs of the binaries before and after these changes on the shared 2-CPU machine (2026-12-05 04:14 UTC, load average 3.6-3.8, other sessions building), medians: on the current-thread runtime (7 rounds, spreads under 2% but for one outlier each) W1 155.5 → 133.8 ns, W2 108.6 → 97.1, W3 18.5 → 16.1, W4 55.0 → 55.2, W5 36.3 → 34.6; on 2 workers (11 rounds, spreads of 20-300%) W1 87.6 → 89.3, W2 112.4 → 106.9, W3 17.0 → 17.6 (minimum 16.6 → 14.5), W4 57.0 → 55.6, W5 36.2 → 34.2: the 2-worker differences are inside the noise there, and W3's 17% fewer instructions did not show as a clear 2-worker gain on that machine; the quiet-machine table above is the one to trust. W2's count is unchanged within callgrind's run-to-run spread (about 390 instructions to spawn a task from the plain thread, 365 to run it): its changes cut what callgrind does not model, lock hold times and cross-core traffic (the inject queue wakes a worker only when a push makes it non-empty and cuts batches outside its lock, the cell cache no longer walks its lists, the flags the workers read on every round no longer share a cache line with the counter every remote spawn writes). The wall-clock table above is what the lead's quiet-machine run measures.")
    notes.append("W4, W3 and issue 13 (item 1 and W3, third pass): counts per operation from "
                 "callgrind and cachegrind on Release builds (threads run one at a time there). "
                 "Atomic read-modify-writes are counted by running callgrind with "
                 "`--dump-instr=yes` and summing the executions of the binary's lock-prefixed "
                 "instructions (and `xchg` with memory). W4 (scale 1, 2,000,000 messages): 9.26 "
                 "→ 7.06 atomic operations, 729 → 744 instructions and 4.56 → 0.64 simulated "
                 "L1 misses per message. The misses are the big change: a LIFO chain now runs "
                 "up to 32 slot polls instead of 3 (cut at the periodic look, so the inject "
                 "queue and the timers wait no longer), and W4's 1,000 pairs no longer go "
                 "round the whole run queue every 4 messages, touching each pair's two cells "
                 "and two channels cold (chain of 8: 2.04 misses, 16: 1.07, 32 without the "
                 "cut: 0.49). The atomic operations: a wake made on a worker of the task's own "
                 "runtime hands the idle task over already RUNNING, as a yield entry, so the "
                 "wake's compare-and-swap also does the begin-poll's (src/task/task.h, "
                 "\"Local wakes\"), and the first clone of a task's own waker during its poll "
                 "(the park in the channel's wait list) takes over the poll's reference, so "
                 "end-poll drops nothing (src/task/task.c, \"The lent reference\"); the wake "
                 "now asks whether it is local (a thread-local and the task's scheduler), "
                 "which is most of the 15 instructions more. W3 is unchanged: 224 "
                 "instructions, 1.02 atomic operations (the local queue's pop) and 1.98 L1 "
                 "misses per yield. tokio's peer on the same runs: W4 914 instructions, 15.3 "
                 "atomic operations and 0.08 L1 misses per message (tokio 1.24 bounds a LIFO "
                 "chain by its coop budget, about 64 of W4's polls), W3 500 instructions and 6.1 "
                 "atomic operations per yield. Interleaved "
                 "wall-clock A/B runs of the binaries before and after on the shared 2-CPU "
                 "machine (2026-12-05 06:48 UTC, load average 6-8.5, 21 rounds each, the order "
                 "alternating every round) show nothing beyond the noise: W4 on 2 workers "
                 "after/before per round 1.015 (medians 86.6 → 87.2 ns, tokio 122), on 1 worker "
                 "0.961, current-thread 0.958; W3, whose instructions did not change, 0.941 "
                 "(fixed-order runs at the same load gave W4 0.81-0.83 and W3 0.77: the order "
                 "alone moves a run by that much); at load 13-19 every figure was 3-10 times "
                 "its quiet value. The lead's quiet-machine table above is the one to read.")
    notes.append("W4 and W3, issue 13 (fourth pass: many runnable tasks on 2 workers). W4 keeps "
                 "about 1,000 tasks runnable, more than two 256-slot local queues hold. A full "
                 "local queue used to move half of itself to the shared inject queue, and the "
                 "other worker's periodic look (one task every 61 polls, which then always found "
                 "the queue non-empty) ran it: a pair moved to the other core with its cells and "
                 "channels, and both workers took the inject lock every 61 polls. Now the "
                 "overflow goes to the worker's own spill list (docs/ARCHITECTURE.md, \"Each "
                 "worker owns\"): polls of a task on another worker than its last poll went from "
                 "24,000-33,000 to about 3,700 per run (2,000 of them first polls; W3 "
                 "2,900-3,800 to 1,300-2,000). A LIFO chain runs up to 64 slot polls (was 32; "
                 "still cut at the periodic look): simulated L1 misses per message 0.64 to "
                 "0.33 (callgrind `--cache-sim=yes`, scale 1). The park's store of the cloned "
                 "waker was compiled into a 16-byte reload of two 8-byte stack stores, which the "
                 "store buffer cannot forward (perf `cpu-clock` sampling on 1 worker: 26% of the "
                 "samples in `ring_recv_locked`, 7% after); a local wake into an empty LIFO slot "
                 "runs without a frame; word-sized ring slots are addressed without a multiply. "
                 "callgrind per message (scale 1, 2 workers): 744 to 726 instructions, 7.06 to "
                 "7.03 atomic operations. Wall clock (interleaved, before/after/tokio, each run "
                 "under `chrt -f 10` so that the other sessions' builds, load average 12-13, "
                 "stayed off the two CPUs during it; 2026-12-05 09:35 UTC, medians): W4 on 2 "
                 "workers 24.3 to 21.1 ns (tokio 38.0; per round 0.64 to 0.56, 12 rounds), on "
                 "1 worker 45.3 to 42.8, current-thread 45.4 to 42.8 (tokio 95.1: 0.48 to "
                 "0.45); W3 on 2 workers 12.1 to 9.4 (tokio 20.1: 0.60 to 0.47; W3's tasks "
                 "overflowed through the inject queue too); W1, W2, W5, C1, C4, M1 unchanged "
                 "or faster (3 rounds each). What is left of W4 is instructions: 726 per "
                 "message at 4-5 per cycle (1 worker: 42.8 ns), of which the poll's own "
                 "bookkeeping in `weft__task_run` (begin and end of poll, the trailer and stall "
                 "fields the dump reads, the lint checks) is about 134, the channel's two "
                 "receive polls, send poll, park, notify, two inits and two drops about 410, "
                 "the wake and its LIFO push about 60, the worker's chain loop 28 and the "
                 "benchmark's own futures 67. Its seven atomic read-modify-writes are not the "
                 "bottleneck: replacing the LIFO slot's exchange by a plain load and store (an "
                 "experiment, unsafe against the watcher, not kept) gained 1-2%. W3 (scale 1, "
                 "callgrind): 224 instructions per yield as before, simulated L1 misses 1.99 to "
                 "1.17.")
    notes.append("How the costs grow with 1 to 16 workers: [scaling.md](scaling.md).")
    if failures:
        notes.append("Failed runs (left out of the medians): "
                     + "; ".join(f"{w} {rt} round {r}: {why}" for w, rt, r, why in failures) + ".")
    if notes:
        L.append("## Notes")
        L.append("")
        for n in notes:
            L.append(f"- {n}")
        L.append("")

    L.append("## Reproduce")
    L.append("")
    L.append("```sh")
    L.append("make && make bench-compare          # or: ROUNDS=5 SCALE=1 bench/compare.sh")
    L.append("```")
    L.append("")

    with open(args.out, "w") as f:
        f.write("\n".join(L))
    wrote = [args.out, os.path.splitext(args.out)[0] + ".csv"]
    if chart_problem is None:
        wrote.append(args.png)
    print("report.py: wrote " + ", ".join(wrote), file=sys.stderr)
    return 1 if chart_problem else 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--csv", required=True)
    t.add_argument("--failures")
    t.add_argument("--workload", required=True)
    m = sub.add_parser("markdown")
    m.add_argument("--csv", required=True)
    m.add_argument("--failures")
    m.add_argument("--out", required=True)
    m.add_argument("--png", required=True)
    m.add_argument("--rounds", default="?")
    m.add_argument("--scale", default="1")
    m.add_argument("--runtimes")
    m.add_argument("--weft-bench")
    args = p.parse_args()
    if args.cmd == "table":
        cmd_table(args)
        return 0
    return cmd_markdown(args)


if __name__ == "__main__":
    sys.exit(main())
