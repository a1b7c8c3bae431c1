#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draw a weft timeline trace (weft_trace_write(), Chrome JSON) as a PNG with
gnuplot: one row per worker, a bar per poll coloured by the task's name, grey
bars for idle time, ticks for wake-ups. For machines without a browser for
ui.perfetto.dev.

    bench/trace_timeline.py TRACE.json OUT.png [--window-us N] [--at-us T]

--window-us: the width of the window drawn (default 2000 us); --at-us: its
start, in us since the recording began (default: the middle of the trace).
Prints a per-worker summary of the window (polls, busy and idle time)."""
import json
import subprocess
import sys
import tempfile
import os


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = args
    with open(src) as f:
        events = json.load(f)["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    if not slices:
        print("no slices in the trace", file=sys.stderr)
        return 1
    end = max(e["ts"] + e["dur"] for e in slices)
    width = float(opts.get("window-us", 2000))
    start = float(opts.get("at-us", max(0.0, end / 2 - width / 2)))
    stop = start + width
    shown = [e for e in slices if e["ts"] < stop and e["ts"] + e["dur"] > start]
    polls = {}
    for e in shown:
        if e["cat"] == "poll":
            polls[e["name"]] = polls.get(e["name"], 0) + 1
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    top = sorted(polls, key=polls.get, reverse=True)[:len(palette) - 1]
    colour = {n: palette[i] for i, n in enumerate(top)}
    rows = sorted(names)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "slices.dat")
        with open(data, "w") as f:
            for e in shown:
                a = max(e["ts"], start) - start
                b = min(e["ts"] + e["dur"], stop) - start
                if e["cat"] == "park":
                    c, h = "#cccccc", 0.15
                else:
                    c, h = colour.get(e["name"], palette[-1]), 0.35
                f.write(f"{a:.3f} {b:.3f} {rows.index(e['tid'])} {h} {int(c[1:], 16)}\n")
        wakes = os.path.join(tmp, "wakes.dat")
        with open(wakes, "w") as f:
            for e in events:
                if e["ph"] == "i" and e.get("cat") == "wake" and start <= e["ts"] < stop:
                    f.write(f"{e['ts'] - start:.3f} {rows.index(e['tid'])}\n")
        keys = "".join(
            f"set label {i + 1} '{n} ({polls[n]} polls)' at graph 1.01, graph {0.95 - 0.07 * i} "
            f"tc rgb '{colour[n]}' font ',9'\n" for i, n in enumerate(top))
        script = f"""
set terminal pngcairo noenhanced size 1400,{220 + 90 * len(rows)} font ',10'
set output '{out}'
set title 'weft timeline: {os.path.basename(src)}, {start:.0f}-{stop:.0f} us after the start of the recording'
set xlabel 'us (from {start:.0f})'
set xrange [0:{width}]
set yrange [-0.7:{len(rows) - 0.3}]
set ytics ({", ".join(f"'{names[t]}' {i}" for i, t in enumerate(rows))})
set rmargin 28
unset key
{keys}
set label {len(top) + 2} 'idle' at graph 1.01, graph {0.95 - 0.07 * len(top)} tc rgb '#999999' font ',9'
set label {len(top) + 3} '| wake-up' at graph 1.01, graph {0.88 - 0.07 * len(top)} font ',9'
plot '{data}' using (($1+$2)/2):3:(($2-$1)/2):4:5 with boxxyerror fs solid 1.0 noborder lc rgb variable, \\
     '{wakes}' using 1:($2+0.45) with points pt 7 ps 0.3 lc rgb 'black'
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    for t in rows:
        busy = sum(min(e["ts"] + e["dur"], stop) - max(e["ts"], start)
                   for e in shown if e["tid"] == t and e["cat"] == "poll")
        idle = sum(min(e["ts"] + e["dur"], stop) - max(e["ts"], start)
                     for e in shown if e["tid"] == t and e["cat"] == "park")
        n = sum(1 for e in shown if e["tid"] == t and e["cat"] == "poll")
        print(f"{names[t]:>14}: {n:6d} polls, polling {busy / width:6.1%}, idle {idle / width:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
