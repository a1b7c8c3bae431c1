#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every public header compiles alone (twice: its include guard) as strict
# C11 and as C++17 with -Wall -Wextra -Werror -pedantic under each of gcc,
# g++, clang and clang++ that is installed (c11.headers and cxx.headers
# build with the configured compilers only). An adapter header is checked
# where its library's header is found.
#   headers.sh INCLUDE_DIR
set -uo pipefail
inc=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-headers.XXXXXX")
trap 'rm -rf "$work"' EXIT
headers=(weft.h)
for h in "$inc"/weft/*.h; do headers+=("weft/${h##*/}"); done
declare -A dep=([hiredis]=hiredis/hiredis.h [curl]=curl/curl.h [cares]=ares.h)
compilers=()
for c in ${WEFT_HEADERS_CC:-gcc clang g++ clang++}; do command -v "$c" >/dev/null && compilers+=("$c"); done
[ "${#compilers[@]}" -gt 0 ] || { echo "SKIP: no compiler"; exit 77; }
for a in hiredis curl cares; do
    printf '#include <%s>\n' "${dep[$a]}" > "$work/dep.c"
    if "${compilers[0]}" -fsyntax-only "$work/dep.c" 2>/dev/null; then
        headers+=("weft/adapters/$a.h")
    else
        echo "note: <${dep[$a]}> not found: weft/adapters/$a.h not checked"
    fi
done
bad=0 n=0
for h in "${headers[@]}"; do
    printf '#include <%s>\n#include <%s>\nint weft_headers_check;\n' "$h" "$h" > "$work/t.c"
    cp "$work/t.c" "$work/t.cpp"
    for c in "${compilers[@]}"; do
        case "$c" in
            *++) std=(-std=c++17) src=$work/t.cpp ;;
            *)   std=(-std=c11) src=$work/t.c ;;
        esac
        n=$((n + 1))
        if ! "$c" "${std[@]}" -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$inc" "$src" \
                2> "$work/err"; then
            echo "== $h with $c ${std[*]}:"
            head -n 20 "$work/err"
            bad=1
        fi
    done
done
[ "$bad" = 0 ] || exit 1
echo "ok: ${#headers[@]} headers x ${#compilers[@]} compilers ($n compiles): ${compilers[*]}"
