#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every weft_* name that a public header mentions (in a comment or in code)
# exists: a function, object or type that <weft.h> (or <weft/tls.h>) declares. A comment that
# names a function that does not exist (weft_tcp_listen()) fails here.
#   header_names.sh C_COMPILER INCLUDE_DIR
set -euo pipefail
cc=$1 inc=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-names.XXXXXX")
trap 'rm -rf "$work"' EXIT

# weft_x_ and weft_x* are families, weft__x internal, `struct weft_x` a tag
# (any tag may be named): not names to check
text=$(cat "$inc"/weft.h "$inc"/weft/*.h)
tags=$(grep -oE '\bstruct weft_[a-z0-9_]+' <<<"$text" | sed 's/^struct //' | sort -u)
names=$(grep -oE '\bweft_[a-z0-9_]*[a-z0-9]\b' <<<"$text" | grep -v '^weft__' | sort -u |
        grep -vxF -f <(echo "$tags"; echo weft__none))
{
    echo '#define _GNU_SOURCE'
    echo '#include <weft.h>'
    echo '#include <weft/tls.h>'    # optional libweft_tls: not in the umbrella
    i=0
    for n in $names; do
        # a type, a function or an object alike: typeof accepts each
        echo "__typeof__($n) *weft_check_$i;"
        i=$((i + 1))
    done
} > "$work/names.c"
if ! "$cc" -std=gnu11 -fsyntax-only -I"$inc" "$work/names.c" 2> "$work/err"; then
    cat "$work/err"
    echo "== a public header names something <weft.h> does not declare:"
    sed -nE 's/.*error: [^a-z_]*(weft_[a-z0-9_]+).*/\1/p' "$work/err" | sort -u
    exit 1
fi
echo "ok: $(wc -w <<<"$names") names, all declared"
