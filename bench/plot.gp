# SPDX-License-Identifier: MIT
# Bar chart for docs/benchmarks.md, called by bench/report.py:
#   gnuplot -e "datafile='…'; outfile='…'; term='pngcairo'; ymin=0.1; ymax=3" bench/plot.gp
# datafile columns: workload, weft-mt2/tokio-mt2, weft-mt2/go2 ('?' = missing).
if (!exists("term")) term = "pngcairo"
if (term eq "pngcairo") {
    set terminal pngcairo size 900,520 enhanced font "sans,11"
} else {
    set terminal png size 900,520
}
set output outfile

set title "weft-mt2 time relative to peers (median ns/op ratio; lower is better)"
set ylabel "ratio (log scale)"
set logscale y
set yrange [ymin:ymax]
set ytics ("0.01" 0.01, "0.02" 0.02, "0.05" 0.05, "0.1" 0.1, "0.2" 0.2, "0.3" 0.3, "0.5" 0.5, "0.7" 0.7, "1" 1, "1.5" 1.5, "2" 2, "3" 3, "5" 5, "10" 10, "20" 20, "50" 50, "100" 100)
set grid ytics lc rgb "#dddddd"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top left opaque
set xtics nomirror
set border 3

# Target lines: 0.5 (tokio target, dashed) and 1.0 (parity / Go target).
set arrow 1 from graph 0, first 0.5 to graph 1, first 0.5 nohead lw 2 dt 2 lc rgb "#c00000" front
set arrow 2 from graph 0, first 1.0 to graph 1, first 1.0 nohead lw 2 lc rgb "#404040" front
set label 1 "0.5 target vs tokio" at graph 1, first 0.5 right offset -0.5,0.6 tc rgb "#c00000" front
set label 2 "1.0 parity (target vs Go)" at graph 1, first 1.0 right offset -0.5,0.6 tc rgb "#404040" front

# Bar centres in a 2-series cluster with gap 1: x = index -/+ 1/6.
plot datafile using 2:xtic(1) title "weft-mt2 / tokio-mt2" lc rgb "#4878cf", \
     ''       using 3 title "weft-mt2 / go2" lc rgb "#6acc65", \
     ''       using ($0 - 1.0/6):2:(sprintf("%.2f", $2)) with labels offset 0,0.7 notitle, \
     ''       using ($0 + 1.0/6):3:(sprintf("%.2f", $3)) with labels offset 0,0.7 notitle
