#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One version everywhere: project(weft VERSION ...) in CMakeLists.txt, the
# macros of <weft/core.h> (WEFT_VERSION_MAJOR/MINOR/PATCH/STRING), the
# generated weft.pc (Version:) and weftConfigVersion.cmake. (The installed
# copies and weft_version() are checked by checks.install.)
#   version.sh PROJECT_VERSION INCLUDE_DIR BUILD_DIR
set -euo pipefail
ver=$1 inc=$2 bin=$3
core=$inc/weft/core.h
macro() { sed -nE "s/^#define WEFT_VERSION_$1 +(.*)\$/\\1/p" "$core"; }
hdr="$(macro MAJOR).$(macro MINOR).$(macro PATCH)"
str=$(macro STRING | tr -d '"')
pc=$(sed -nE 's/^Version: *//p' "$bin/weft.pc")
cm=$(sed -nE 's/^set\(PACKAGE_VERSION "([^"]*)"\).*/\1/p' "$bin/weftConfigVersion.cmake")
echo "CMakeLists.txt $ver; core.h $hdr, \"$str\"; weft.pc $pc; weftConfigVersion.cmake $cm"
[ "$hdr" = "$ver" ] && [ "$str" = "$ver" ] && [ "$pc" = "$ver" ] && [ "$cm" = "$ver" ] ||
    { echo "version mismatch"; exit 1; }
