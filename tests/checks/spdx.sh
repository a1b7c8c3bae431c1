#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The project is MIT-licensed (LICENSE) and every source file says so in
# its first lines: "SPDX-License-Identifier: MIT" (C and C++ sources and
# headers, shell, CMake, Make, Python, gnuplot, Go, Rust, TOML, pkg-config
# and CMake templates, sanitizer suppressions, go.mod). Files that take no
# comment or are generated (Markdown, CSV, images, Cargo.lock, .gitignore)
# are not checked. The file list is git's where SOURCE_DIR is a checkout,
# else every file under it outside build directories.
#   spdx.sh SOURCE_DIR
set -euo pipefail
src=$1
cd "$src"
grep -q '^MIT License' LICENSE || { echo "LICENSE is missing or not the MIT licence"; exit 1; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    list() { git ls-files --cached --others --exclude-standard; }
else
    list() { find . -path ./.git -prune -o -path './build*' -prune -o -type f -print | sed 's|^\./||'; }
fi
files=()
empty=
while IFS= read -r f; do
    [ -f "$f" ] || continue
    case "$f" in
        *.c|*.h|*.cpp|*.hpp|*.sh|*.cmake|*.py|*.gp|*.go|*.rs|*.toml|*.in|*.supp|*.mod) ;;
        */CMakeLists.txt|CMakeLists.txt|Makefile|*/Makefile|.ci/*) ;;
        *) continue ;;
    esac
    if [ -s "$f" ]; then files+=("$f"); else empty+="$f"$'\n'; fi
done < <(list)
[ "${#files[@]}" -gt 0 ] || { echo "no source files found"; exit 1; }
# one awk over every file: those without the line in their first 3 lines
missing=$(awk 'FNR == 1 { if (NR > 1 && !ok) print prev; ok = 0; prev = FILENAME }
               FNR <= 3 && /SPDX-License-Identifier: MIT/ { ok = 1 }
               END { if (!ok) print prev }' "${files[@]}")
missing=$empty$missing
if [ -n "$missing" ]; then
    grep . <<<"$missing" | sed 's/^/no SPDX-License-Identifier: MIT in the first 3 lines: /'
    exit 1
fi
echo "ok: ${#files[@]} source files, each with its SPDX line"
