#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every global symbol that libweft defines starts with weft_ (public) or
# weft__ (internal): a user's own `loop_task_future` or `queue_push` must
# link against the static library as well as the shared one.
#   symbols.sh NM libweft.so libweft.a
set -euo pipefail
nm=$1 so=$2 ar=$3
bad=0

check() {   # $1: what, stdin: "name" lines
    local what=$1 name
    while read -r name; do
        case $name in
        weft_*) ;;
        # ASan's ODR indicator of a weft_ global (build-asan)
        __odr_asan.weft_*|__odr_asan_gen_weft_*) ;;
        # toolchain symbols a shared object always carries
        _init|_fini|_edata|_end|__bss_start) ;;
        *) echo "$what defines a global symbol outside weft_: $name"; bad=1 ;;
        esac
    done
}

# the shared library's dynamic symbol table: what a program can bind to
check "$so" < <("$nm" -D --defined-only "$so" | awk 'NF >= 3 { print $3 }')
# every object in the static library: what a program's link can collide with
check "$ar" < <("$nm" -g --defined-only "$ar" | awk 'NF >= 3 { print $3 }')

n_so=$("$nm" -D --defined-only "$so" | grep -c ' weft_' || true)
n_ar=$("$nm" -g --defined-only "$ar" | grep -c ' weft_' || true)
if [ "$n_so" -eq 0 ] || [ "$n_ar" -eq 0 ]; then
    echo "no weft_ symbols found ($so: $n_so, $ar: $n_ar): is nm reading them?"
    exit 1
fi
[ $bad -eq 0 ] && echo "ok: $n_so exported symbols, $n_ar global symbols in the archive, all weft_"
exit $bad
