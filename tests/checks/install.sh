#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install weft to temporary prefixes and build a small consumer against each
# install, through pkg-config (when present) and through find_package(weft):
#   1. CMAKE_INSTALL_LIBDIR absolute, as distribution builds pass it;
#   2. CMAKE_INSTALL_LIBDIR relative, installed with --prefix elsewhere than
#      the configured prefix (weft.pc and weftConfig.cmake are relocatable).
#   install.sh CMAKE SOURCE_DIR C_COMPILER
set -euo pipefail
cmake=$1 src=$2 cc=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 2 ] && jobs=2

mkdir -p "$work/consumer"
cat > "$work/consumer/main.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <weft.h>

typedef struct add { int a, b; } add;

static weft_poll add_poll(add *f, weft_context *cx, void *out)
{
    (void)cx;
    *(int *)out = f->a + f->b;
    return WEFT_READY;
}
WEFT_DEFINE_FUTURE_STATIC(add, add_poll, NULL, int);

int main(void)
{
    weft_runtime *rt;
    weft_runtime_options opt = { .flavor = WEFT_CURRENT_THREAD };
    add f = { 2, 3 };
    int out = 0;

    if (weft_runtime_new(&rt, &opt) != 0 || weft_block_on(rt, &add_future, &f, &out) != 0)
        return 1;
    weft_runtime_free(rt);
    if (out != 5 || weft_version() != WEFT_VERSION_HEX)
        return 1;
    /* the version the build system saw (pkg-config's or find_package's) */
    if (strcmp(WEFT_VERSION_STRING, CONSUMER_EXPECT_VERSION) != 0 ||
        strcmp(weft_version_string(), WEFT_VERSION_STRING) != 0) {
        printf("version: header %s, library %s, package %s\n", WEFT_VERSION_STRING,
               weft_version_string(), CONSUMER_EXPECT_VERSION);
        return 1;
    }
    puts("consumer ok");
    return 0;
}
C
cat > "$work/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES C)
find_package(weft REQUIRED)
add_executable(consumer main.c)
# the package's own version (weftConfigVersion.cmake), given to the program
add_compile_definitions(CONSUMER_EXPECT_VERSION="${weft_VERSION}")
target_link_libraries(consumer PRIVATE weft::weft)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE weft::weft_static)
CM

# one build of the library (Debug: quick to compile), configured twice
build=$work/build
configure() {   # $1: configured prefix, $2: libdir
    "$cmake" -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
        -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCH=OFF \
        -DWEFT_SANITIZE= -DCMAKE_INSTALL_PREFIX="$1" -DCMAKE_INSTALL_LIBDIR="$2" >/dev/null
}

consume() {     # $1: what, $2: install prefix, $3: the libdir it should use
    local what=$1 prefix=$2 libdir=$3 pcdir
    [ -f "$libdir/libweft.so" ] || { echo "$what: no $libdir/libweft.so"; exit 1; }
    if command -v pkg-config >/dev/null; then
        pcdir=$libdir/pkgconfig
        [ -f "$pcdir/weft.pc" ] || { echo "$what: no $pcdir/weft.pc"; exit 1; }
        echo "$what: pkg-config --libs: $(PKG_CONFIG_PATH=$pcdir pkg-config --libs weft)"
        # shellcheck disable=SC2046
        "$cc" -std=c11 -Wall -Wextra -Werror -pedantic \
            -o "$work/pc-consumer" "$work/consumer/main.c" \
            -DCONSUMER_EXPECT_VERSION="\"$(PKG_CONFIG_PATH=$pcdir pkg-config --modversion weft)\"" \
            $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs weft)
        LD_LIBRARY_PATH=$libdir "$work/pc-consumer"
    else
        echo "$what: pkg-config not found: pkg-config consumer skipped"
    fi
    rm -rf "$work/cm-build"
    "$cmake" -S "$work/consumer" -B "$work/cm-build" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    "$cmake" --build "$work/cm-build" >/dev/null
    "$work/cm-build/consumer"
    "$work/cm-build/consumer_static"
    echo "$what: find_package(weft) consumers ok"
}

# a libdir find_package() searches by default: Debian's multiarch
# lib/x86_64-linux-gnu, or lib64 where the compiler has no multiarch name
multiarch=$("$cc" -print-multiarch 2>/dev/null || true)
sub=${multiarch:+lib/$multiarch}
sub=${sub:-lib64}

# 1. absolute libdir (inside the prefix, as /usr/lib/x86_64-linux-gnu is)
configure "$work/abs" "$work/abs/$sub"
"$cmake" --build "$build" -j "$jobs" >/dev/null   # weft, weft_static (and libweft_tls where OpenSSL is)
"$cmake" --install "$build" >/dev/null
consume "absolute libdir" "$work/abs" "$work/abs/$sub"

# 2. relative libdir; installed under another prefix than configured
configure "$work/configured" "$sub"
"$cmake" --build "$build" -j "$jobs" >/dev/null   # weft, weft_static (and libweft_tls where OpenSSL is)
"$cmake" --install "$build" --prefix "$work/rel" >/dev/null
consume "relative libdir" "$work/rel" "$work/rel/$sub"
