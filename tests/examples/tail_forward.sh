#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End-to-end check of examples/tail_forward, against a one-connection TCP
# sink written in Perl (perl-base is part of every Debian system; no nc is
# needed) that listens on 127.0.0.1, port 0, and writes what it receives to
# a file. The forwarder is given the name "localhost", so the lookup runs
# (and an IPv6 answer first, refused, is skipped for the IPv4 one).
#   tail_forward.sh follow BIN - `tail -n +1 -f FILE`: lines already in the
#                                file and lines appended later arrive; SIGTERM
#                                drains (tail is stopped, its last lines are
#                                sent) and the forwarder exits 0
#   tail_forward.sh exit BIN   - a command that prints and exits: every line
#                                arrives, the forwarder ends on its own, 0
#   tail_forward.sh refused BIN - nobody listens: exit status 1, the command
#                                is stopped and nothing is left running
set -euo pipefail
kind=$1
bin=$2
dir=$(mktemp -d)
pid=
sink=
trap 'kill -9 $pid $sink 2>/dev/null || true; rm -rf "$dir"' EXIT

fail() { echo "FAIL ($kind): $*" >&2; [[ -f $dir/out ]] && cat "$dir/out" >&2; exit 1; }

start_sink() {
    perl -MIO::Socket::INET -e '
        my ($d) = @ARGV;
        my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
                                      Listen => 1, ReuseAddr => 1) or die "listen: $!";
        open(my $p, ">", "$d/port.tmp") or die; print $p $l->sockport, "\n"; close $p;
        rename("$d/port.tmp", "$d/port") or die;
        my $c = $l->accept or die "accept: $!";
        open(my $o, ">", "$d/got") or die; $o->autoflush(1);
        while (defined(my $line = <$c>)) { print $o $line; }
    ' "$dir" &
    sink=$!
    for _ in $(seq 200); do [[ -f $dir/port ]] && break; sleep 0.05; done
    [[ -f $dir/port ]] || fail "the sink did not start"
    port=$(cat "$dir/port")
}

# wait until the sink's file has N lines (10 s)
wait_lines() {
    for _ in $(seq 200); do
        [[ -f $dir/got && $(wc -l <"$dir/got") -ge $1 ]] && return 0
        sleep 0.05
    done
    fail "expected $1 lines, got: $(cat "$dir/got" 2>/dev/null)"
}

case $kind in
follow)
    start_sink
    printf 'one\ntwo\n' >"$dir/log"
    "$bin" localhost "$port" --drain-ms 5000 -- tail -n +1 -f "$dir/log" >"$dir/out" 2>&1 &
    pid=$!
    wait_lines 2
    printf 'three\n' >>"$dir/log"
    wait_lines 3
    kill -TERM $pid
    wait $pid || fail "exit status $? after SIGTERM"
    pid=
    grep -q "draining" "$dir/out" || fail "no drain"
    grep -q "forwarded 3 lines; the command was killed by signal 15" "$dir/out" || fail "summary"
    wait $sink || fail "sink"
    sink=
    [[ $(cat "$dir/got") == $'one\ntwo\nthree' ]] || fail "lines: $(cat "$dir/got")"
    ;;
exit)
    start_sink
    "$bin" localhost "$port" -- sh -c 'echo alpha; echo beta; printf "no newline"' \
        >"$dir/out" 2>&1 &
    pid=$!
    for _ in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    wait $pid || fail "exit status $?"
    pid=
    grep -q "forwarded 3 lines; the command exited with 0" "$dir/out" || fail "summary"
    wait $sink || fail "sink"
    sink=
    [[ $(cat "$dir/got") == $'alpha\nbeta\nno newline' ]] || fail "lines: $(cat "$dir/got")"
    ;;
refused)
    # a port nobody listens on: bind one, close it
    port=$(perl -MIO::Socket::INET -e 'my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
        LocalPort => 0, Listen => 1) or die; print $l->sockport')
    rc=0
    timeout 20 "$bin" 127.0.0.1 "$port" -- sleep 1000 >"$dir/out" 2>&1 || rc=$?
    [[ $rc == 1 ]] || fail "exit status $rc"
    grep -q "killed by signal 15" "$dir/out" || fail "the command was not stopped"
    ;;
*)
    fail "unknown kind"
    ;;
esac
echo "ok $kind"
