#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the peer servers of the network benchmarks (W8 HTTP hello, W9 TCP
# echo) offline, and installs what they and bench/compare_net.sh need:
#   tokio-net/target/release/weft-peer-tokio-net  (Rust, Debian's packaged crates)
#   go-net/weft-peer-go-net                        (Go, package net only)
#   libuv/weft-peer-libuv-net                      (C, Debian's libuv1-dev)
#   wrk                                            (W8's load, Debian's wrk)
# W9's load generator, build/bench/weft-loadgen, is built by CMake (`make`).
# Installs Debian packages only when they are missing (apt-get: needs root).
# Idempotent: a second run is a quick no-op rebuild.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -e /usr/include/uv.h ]] || missing+=(libuv1-dev)
command -v go >/dev/null || missing+=(golang-go)
command -v cargo >/dev/null || missing+=(cargo)   # Debian's cargo/rustc as a fallback
compgen -G '/usr/share/cargo/registry/tokio-1.*' >/dev/null || missing+=(librust-tokio-dev)
compgen -G '/usr/share/cargo/registry/mio-0.*' >/dev/null || missing+=(librust-mio-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if ((${#missing[@]})); then
    echo "build_net.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${missing[@]}"
fi

# tokio: .cargo/config.toml points crates-io at /usr/share/cargo/registry, offline.
(cd "$here/tokio-net" && cargo build --release --quiet)

# Go: no external modules; keep caches out of $HOME in case it is odd.
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-/tmp/weft-peer-gocache}"
export GOPATH="${GOPATH:-/tmp/weft-peer-gopath}"
(cd "$here/go-net" && go build -o weft-peer-go-net .)

# libuv: one C file; rebuilt only when older than its source.
uv=$here/libuv
if [[ ! -x $uv/weft-peer-libuv-net || $uv/net.c -nt $uv/weft-peer-libuv-net ]]; then
    # shellcheck disable=SC2046  # pkg-config's words are meant to split
    ${CC:-cc} -O2 -Wall -Wextra -Werror -o "$uv/weft-peer-libuv-net" "$uv/net.c" \
        $(pkg-config --cflags --libs libuv)
fi

echo "build_net.sh: built $here/tokio-net/target/release/weft-peer-tokio-net," \
     "$here/go-net/weft-peer-go-net and $uv/weft-peer-libuv-net" >&2
