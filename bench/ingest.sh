#!/usr/bin/env bash
# Ingest benchmark (issue: ingress and spool): 50,000 messages of 5 KiB over 20 connections from
# Postfix's smtp-source into Ember, and the same into Postfix, both holding delivery, same
# machine, same run. Prints both rates, the ratio, and Ember's p50/p99/p999 time-to-250.
#
# Durability: both fsync before answering 250 (Ember: group-committed fdatasync of its segment
# log; Postfix: fsync of each queue file by cleanup).
#
#   bench/ingest.sh [MESSAGES] [CONNECTIONS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-50000} connections=${2:-20} size=${3:-5120}
work=$(mktemp -d /tmp/ember-bench.XXXXXX)
chmod 755 "$work"  # the postfix user must reach its queue inside
trap 'bench/postfix-instance.sh stop "$work/postfix"; kill $ember_pid 2>/dev/null || true; rm -rf "$work"' EXIT

command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
cargo build --release --quiet
cargo build --release --quiet --example smtp-latency

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

# --- Ember -----------------------------------------------------------------------------------
cat > "$work/ember.conf" <<CF
smtp-listener 127.0.0.1:25250
total-max-smtp-in 1000
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<spool $work/ember-spool>
</spool>
CF
./target/release/ember run --config "$work/ember.conf" > "$work/ember.out" 2>&1 &
ember_pid=$!
until grep -q "ember ready" "$work/ember.out"; do
    kill -0 $ember_pid 2>/dev/null || { cat "$work/ember.out"; exit 1; }
    sleep 0.1
done
/usr/bin/time -f "%e" -o "$work/ember.time" \
    smtp-source -s "$connections" -m "$messages" -l "$size" -f bench@ember.test -t rcpt@example.com 127.0.0.1:25250
ember_s=$(cat "$work/ember.time")
ember_rate=$(rate "$messages" "$ember_s")
# Latency under the same load shape, measured by a client that times each final dot to its 250.
./target/release/examples/smtp-latency 127.0.0.1:25250 "$messages" "$connections" "$size" > "$work/latency.txt"
kill -TERM $ember_pid; wait $ember_pid || true

# --- Postfix ---------------------------------------------------------------------------------
bench/postfix-instance.sh start "$work/postfix" 25251 "defer_transports = smtp"
/usr/bin/time -f "%e" -o "$work/postfix.time" \
    smtp-source -s "$connections" -m "$messages" -l "$size" -f bench@postfix.test -t rcpt@example.com 127.0.0.1:25251
postfix_s=$(cat "$work/postfix.time")
postfix_rate=$(rate "$messages" "$postfix_s")
bench/postfix-instance.sh stop "$work/postfix"

echo "ingest: $messages messages x $size bytes over $connections connections, delivery held, fsync before 250"
echo "ember    ${ember_s}s  ${ember_rate} msg/s"
echo "postfix  ${postfix_s}s  ${postfix_rate} msg/s"
awk -v a="$ember_rate" -v b="$postfix_rate" 'BEGIN { printf "ratio    %.2fx\n", a / b }'
cat "$work/latency.txt"
