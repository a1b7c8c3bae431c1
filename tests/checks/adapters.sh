#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Were the adapters' foreign libraries found when CMake configured the build?
#   adapters.sh "MISSING;LIST"
# Passes when none is missing. Otherwise fails under WEFT_REQUIRE_ADAPTERS=1
# (CI installs them all: a missing one means its tests silently did not
# run), and is reported skipped (exit 77) elsewhere.
set -euo pipefail
missing=${1//;/ }
if [ -z "$missing" ]; then
    echo "ok: hiredis, libcurl and c-ares found; their adapter tests are built"
    exit 0
fi
echo "adapter libraries not found at configure time: $missing"
echo "(Debian: apt-get install libhiredis-dev libcurl4-openssl-dev libc-ares-dev, then re-run cmake)"
if [ "${WEFT_REQUIRE_ADAPTERS:-}" = 1 ]; then
    echo "FAIL: WEFT_REQUIRE_ADAPTERS=1"
    exit 1
fi
echo "SKIP"
exit 77
