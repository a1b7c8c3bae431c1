#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the peer benchmarks offline:
#   tokio/target/release/weft-peer-tokio  (Rust, Debian's packaged crates)
#   go/weft-peer-go                        (Go, standard library only)
#   libuv/weft-peer-libuv-time             (C, the timer workloads W6/W7 on libuv)
# Installs Debian packages only when the tools are missing. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

missing=()
compgen -G '/usr/share/cargo/registry/tokio-1.*' >/dev/null || missing+=(librust-tokio-dev)
command -v go >/dev/null || missing+=(golang-go)
command -v cargo >/dev/null || missing+=(cargo)   # Debian's cargo/rustc as a fallback
[[ -e /usr/include/uv.h ]] || missing+=(libuv1-dev)
if ((${#missing[@]})); then
    echo "build.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi

# tokio: .cargo/config.toml points crates-io at /usr/share/cargo/registry, offline.
(cd "$here/tokio" && cargo build --release)

# Go: no external modules; keep caches out of $HOME in case it is odd.
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-/tmp/weft-peer-gocache}"
export GOPATH="${GOPATH:-/tmp/weft-peer-gopath}"
(cd "$here/go" && go build -o weft-peer-go .)

# libuv: one C file against Debian's libuv1-dev.
"${CC:-cc}" -O2 -Wall -Wextra -o "$here/libuv/weft-peer-libuv-time" "$here/libuv/timers.c" -luv

echo "build.sh: built $here/tokio/target/release/weft-peer-tokio, $here/go/weft-peer-go" \
     "and $here/libuv/weft-peer-libuv-time" >&2
