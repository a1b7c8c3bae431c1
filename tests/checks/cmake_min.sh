#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The build promises CMake 3.16 (cmake_minimum_required, README): none of
# its CMake files may use what later versions added. No CMake 3.16 at hand
# to try, so this looks for the features people reach for most, each with
# the version that brought it (PROJECT_IS_TOP_LEVEL once made 3.16-3.20
# build no tests and no examples).
#   cmake_min.sh SOURCE_DIR
set -euo pipefail
src=$1
files=$(cd "$src" && find . -path ./build\* -prune -o \
        \( -name CMakeLists.txt -o -name '*.cmake' -o -name '*.cmake.in' \) -print | sort)
bad=0
while IFS=$'\t' read -r pattern version; do
    [ -n "$pattern" ] || continue
    for f in $files; do
        if grep -nE "$pattern" "$src/$f" | grep -v '^[0-9]*:\s*#' > /tmp/weft-cmake-min.$$; then
            sed "s|^|$f:|; s|\$|   <- needs CMake $version|" /tmp/weft-cmake-min.$$
            bad=1
        fi
    done
done <<'LIST'
_IS_TOP_LEVEL\b	3.21 (PROJECT_IS_TOP_LEVEL, <name>_IS_TOP_LEVEL)
\bcmake_path\s*\(	3.20
\bfile\s*\(\s*(CONFIGURE|ARCHIVE_CREATE|ARCHIVE_EXTRACT|REAL_PATH|CHMOD)	3.18-3.19
\bcmake_language\s*\(	3.18
\bstring\s*\(\s*JSON	3.19
ZIP_LISTS	3.17
CMAKE_CURRENT_FUNCTION	3.17
\$<(LINK_LANGUAGE|DEVICE_LINK|LINK_GROUP|LINK_LIBRARY|PATH|PATH_EQUAL|LIST)[:>]	3.18-3.27
include\s*\(\s*Check(Compiler|Source|Linker)Flag\s*\)	3.18-3.19
\bcmake_minimum_required\s*\(\s*VERSION\s*3\.(1[7-9]|[2-9][0-9])	more than 3.16 (raises the minimum)
LIST
rm -f /tmp/weft-cmake-min.$$
[ $bad -eq 0 ] && echo "ok: no post-3.16 feature in: $(echo $files)"
exit $bad
