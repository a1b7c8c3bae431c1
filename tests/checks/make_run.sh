#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make run` builds only what the demo needs: every build command it would
# run (make -n, nothing is executed) names a --target, never the whole tree
# of tests and benchmarks (minutes on two cores).
#   make_run.sh MAKE SOURCE_DIR
set -euo pipefail
make=$1 src=$2
plan=$("$make" -n -s -C "$src" run CMAKE=cmake 2>&1)
builds=$(grep -- '--build' <<<"$plan" || true)
if [ -z "$builds" ]; then
    echo "make -n run builds nothing?"; echo "$plan"; exit 1
fi
if grep -v -- '--target' <<<"$builds"; then
    echo "^ make run builds more than the demo"; exit 1
fi
grep -q -- '--target fakeio' <<<"$builds" || { echo "make run does not build fakeio"; exit 1; }
echo "ok: $builds"
