#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end check of examples/https_server with `openssl s_client` as the
# client (Debian's openssl package; .ci/run installs it):
#   https.sh BIN
# A throwaway certificate is made in a temporary folder; the client
# verifies it (-verify_return_error) for the name localhost, offers ALPN
# http/1.1, sends two pipelined requests, the second with Connection:
# close, and must get both replies. Then a connection is left idle and the
# server gets SIGTERM: the drain (--drain-ms 300) must close it, and the
# server must exit 0 (in the ASan build, a leak would make it non-zero).
set -euo pipefail
bin=$1
if ! command -v openssl >/dev/null; then
    echo "SKIP: the openssl command is not installed (Debian: apt-get install openssl)"
    exit 0
fi
dir=$(mktemp -d)
pid= idle=
trap 'kill -9 $pid $idle 2>/dev/null || true; rm -rf "$dir"' EXIT
fail() { echo "FAIL (https): $*" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1

"$bin" --cert "$dir/cert.pem" --key "$dir/key.pem" --port 0 --workers 2 --drain-ms 300 \
    >"$dir/out" 2>&1 &
pid=$!
port=
for _ in $(seq 200); do
    port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$dir/out")
    [[ -n $port ]] && break
    kill -0 $pid 2>/dev/null || fail "server exited: $(cat "$dir/out")"
    sleep 0.05
done
[[ -n $port ]] || fail "no 'listening on' line"

client() {
    openssl s_client -connect 127.0.0.1:$port -servername localhost \
        -CAfile "$dir/cert.pem" -verify_return_error -alpn http/1.1 -quiet "$@"
}

printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
    timeout 20 bash -c "$(declare -f client); port=$port dir=$dir; client" >"$dir/reply" 2>&1 ||
    fail "s_client: $(cat "$dir/reply")"
n=$(grep -c 'Hello, World!' "$dir/reply" || true)
[[ $n == 2 ]] || fail "two replies expected, got: $(cat "$dir/reply")"
grep -q 'Connection: close' "$dir/reply" || fail "no Connection: close: $(cat "$dir/reply")"

# an idle keep-alive connection at SIGTERM: closed by the drain
mkfifo "$dir/in"
client <"$dir/in" >"$dir/idle" 2>&1 &
idle=$!
exec 3>"$dir/in"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3
for _ in $(seq 200); do
    grep -q 'Hello, World!' "$dir/idle" && break
    sleep 0.05
done
grep -q 'Hello, World!' "$dir/idle" || fail "reply on the idle connection: $(cat "$dir/idle")"
kill -TERM $pid
rc=0
timeout 10 tail --pid=$idle -f /dev/null || rc=$?
exec 3>&-
[[ $rc == 0 ]] || fail "the drain did not close the idle connection"
wait $pid || fail "exit status $? after SIGTERM: $(cat "$dir/out")"
grep -q "draining" "$dir/out" || fail "no drain: $(cat "$dir/out")"
echo "ok"
