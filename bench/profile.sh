#!/usr/bin/env bash
# Where Ember's CPU goes while it relays: the relay benchmark's load (smtp-source, 20
# connections, 5 KiB messages -> Ember -> smtp-sink), with `perf record` (Debian's linux-perf)
# sampling the Ember process only, after a warm-up of 2,000 messages. Prints Ember's own CPU per
# message, the share of samples per thread and per binary (kernel, ember, libc), and the Ember
# frames with the largest inclusive share. The raw profile stays in OUT (default
# /tmp/ember-relay.perf) for `perf report -i OUT`.
#
# perf samples the cpu-clock software event, which works on virtual machines without hardware
# counters; call stacks come from DWARF unwinding of the release build (`debug = 1`).
#
#   bench/profile.sh [MESSAGES] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-20000} out=${2:-/tmp/ember-relay.perf}
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 1; }
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
cargo build --release --quiet
work=$(mktemp -d /tmp/ember-profile.XXXXXX)
chmod 755 "$work"
sink_pid=""; ember_pid=""
cleanup() {
    [ -n "$ember_pid" ] && kill "$ember_pid" 2>/dev/null || true
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sink_port=25280
smtp-sink -c -u nobody 127.0.0.1:$sink_port 1000 > /dev/null 2>&1 &
sink_pid=$!
until (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null; do sleep 0.1; done
cat > "$work/ember.conf" <<CF
smtp-listener 127.0.0.1:25281
http-mgmt-port 0
total-max-smtp-in 1000
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<domain *>
    smtp-hosts [127.0.0.1]:$sink_port
    max-smtp-out 20
    max-msg-per-connection 0
    connection-idle-timeout 2s
</domain>
<acct-file $work/acct.csv>
    records d
</acct-file>
<spool $work/spool>
</spool>
CF
./target/release/ember run --config "$work/ember.conf" > "$work/ember.out" 2>&1 &
ember_pid=$!
until grep -q "ember ready" "$work/ember.out"; do kill -0 $ember_pid || { cat "$work/ember.out"; exit 1; }; sleep 0.1; done
inject() {
    smtp-source -s 20 -m "$1" -l 5120 -f bench@ember.test -t rcpt@example.com 127.0.0.1:25281
    until [ "$(($(wc -l < "$work/acct.csv") - 1))" -ge "$2" ]; do sleep 0.2; done
}
inject 2000 2000
ticks() { awk '{ print $14, $15 }' "/proc/$ember_pid/stat"; }
read -r u0 s0 < <(ticks)
perf record -q -F 997 --call-graph dwarf,16384 -o "$out" -p "$ember_pid" 2>/dev/null &
perf_pid=$!
sleep 0.5 # perf attaches to every thread before it samples; nothing to wait on but time
inject "$messages" $((messages + 2000))
kill -INT $perf_pid; wait $perf_pid || true
read -r u1 s1 < <(ticks)
hz=$(getconf CLK_TCK)
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v n="$messages" 'BEGIN {
    printf "ember own cpu: %.3f ms/msg (user %.3f, kernel %.3f) over %d messages\n", (u + s) / hz / n * 1000, u / hz / n * 1000, s / hz / n * 1000, n }'
echo "--- samples per thread"
perf report -i "$out" --no-children --sort comm --stdio -g none 2>/dev/null | grep '%' | head -8
echo "--- samples per binary"
perf report -i "$out" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -5
echo "--- ember frames, inclusive share"
perf report -i "$out" --children --sort sym --stdio -g none 2>/dev/null | grep 'ember::' | grep -v '(inlined)' | head -25
