#!/usr/bin/env bash
# Relay benchmark (issue: delivery engine): 50,000 messages of 5 KiB from Postfix's smtp-source
# over 20 connections, relayed to Postfix's smtp-sink, through Ember and through Postfix
# configured as the equivalent relay, same machine, same run. Prints end-to-end msg/s (from the
# first injected message until the sink has everything), the ratio, machine CPU seconds per
# 1,000 messages, and peak RSS; then the raw one-hop rate (smtp-source straight into smtp-sink)
# measured in the same run, and Ember's time-to-250 (p50/p99/p999) while it relays under the same
# load (injection by examples/smtp-latency, which times each final dot to its reply).
#
# Durability: both fsync before acknowledging a message (see bench/ingest.sh).
#
#   bench/relay.sh [MESSAGES] [CONNECTIONS] [SIZE] [RECIPIENTS-PER-MESSAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-50000} connections=${2:-20} size=${3:-5120} rcpts=${4:-1}
deliveries=$((messages * rcpts))
work=$(mktemp -d /tmp/ember-relay.XXXXXX)
chmod 755 "$work"
sink_pid=""; ember_pid=""
cleanup() {
    bench/postfix-instance.sh stop "$work/postfix" 2>/dev/null || true
    [ -n "$ember_pid" ] && kill "$ember_pid" 2>/dev/null || true
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
cargo build --release --quiet
cargo build --release --quiet --example smtp-latency

cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
hz=$(getconf CLK_TCK)
now() { date +%s.%N; }

sink_port=25260
smtp-sink -c -u nobody 127.0.0.1:$sink_port 1000 > "$work/sink.count" 2>&1 &
sink_pid=$!
until (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null; do sleep 0.1; done

# --- Ember -----------------------------------------------------------------------------------
cat > "$work/ember.conf" <<CF
smtp-listener 127.0.0.1:25261
http-mgmt-port 0
total-max-smtp-in 1000
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<domain *>
    smtp-hosts [127.0.0.1]:$sink_port
    max-smtp-out $connections
    max-msg-per-connection 0
    # Postfix's counterpart is its connection cache, on by default for 2s
    # (smtp_connection_cache_on_demand, smtp_connection_cache_time_limit).
    connection-idle-timeout 2s
</domain>
<acct-file $work/acct.csv>
    records d
</acct-file>
<spool $work/ember-spool>
</spool>
CF
./target/release/ember run --config "$work/ember.conf" > "$work/ember.out" 2>&1 &
ember_pid=$!
until grep -q "ember ready" "$work/ember.out"; do kill -0 $ember_pid || { cat "$work/ember.out"; exit 1; }; sleep 0.1; done
start=$(now); cpu0=$(cpu_ticks)
smtp-source -s "$connections" -m "$messages" -l "$size" -r "$rcpts" -f bench@ember.test -t rcpt@example.com 127.0.0.1:25261
# Delivered: one d record per recipient (plus the header line).
until [ "$(wc -l < "$work/acct.csv")" -gt "$deliveries" ]; do sleep 0.2; done
end=$(now); cpu1=$(cpu_ticks)
ember_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
ember_cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$hz" -v n="$messages" 'BEGIN { printf "%.2f", t / hz / n * 1000 }')
ember_rss=$(awk '/VmHWM/ { print $2 }' /proc/$ember_pid/status)
# Time to 250 while relaying: the same load again, injected by a client that times each reply.
./target/release/examples/smtp-latency 127.0.0.1:25261 "$messages" "$connections" "$size" > "$work/latency.txt"
kill -TERM $ember_pid; wait $ember_pid || true; ember_pid=""

# --- raw: smtp-source straight into smtp-sink (the ceiling of one hop on this machine) ---------
start=$(now)
smtp-source -s "$connections" -m "$messages" -l "$size" -r "$rcpts" -f bench@raw.test -t rcpt@example.com 127.0.0.1:$sink_port
end=$(now)
raw_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')

# --- Postfix ---------------------------------------------------------------------------------
bench/postfix-instance.sh start "$work/postfix" 25262 \
    "relayhost = [127.0.0.1]:$sink_port" \
    "smtp_destination_concurrency_limit = $connections" \
    "default_destination_concurrency_limit = $connections"
start=$(now); cpu0=$(cpu_ticks)
smtp-source -s "$connections" -m "$messages" -l "$size" -r "$rcpts" -f bench@postfix.test -t rcpt@example.com 127.0.0.1:25262
# Postfix's processes come and go: sample their summed RSS while it works and keep the peak.
postfix_rss=0
until [ "$(grep -c 'status=sent' "$work/postfix/maillog" 2>/dev/null || echo 0)" -ge "$deliveries" ]; do
    # This instance only: its master (pid file in its queue directory) and the master's children.
    master=$(head -1 "$work/postfix/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    rss=$( { [ -n "$master" ] && ps -o rss= -p "$master" --ppid "$master"; } | awk '{ s += $1 } END { print s + 0 }')
    [ "$rss" -gt "$postfix_rss" ] && postfix_rss=$rss
    sleep 0.2
done
end=$(now); cpu1=$(cpu_ticks)
postfix_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
postfix_cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$hz" -v n="$messages" 'BEGIN { printf "%.2f", t / hz / n * 1000 }')
bench/postfix-instance.sh stop "$work/postfix"

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
echo "relay: $messages messages x $size bytes x $rcpts recipients over $connections connections, smtp-source -> MTA -> smtp-sink"
echo "durability: both MTAs fsync the message before answering 250 (Ember: group-committed fdatasync of its spool log)"
echo "ember    ${ember_s}s  $(rate "$messages" "$ember_s") msg/s  cpu ${ember_cpu}s/1000 msgs (machine)  peak RSS $((ember_rss / 1024)) MiB"
echo "postfix  ${postfix_s}s  $(rate "$messages" "$postfix_s") msg/s  cpu ${postfix_cpu}s/1000 msgs (machine)  peak RSS $((postfix_rss / 1024)) MiB (sum of its processes, sampled)"
awk -v a="$postfix_s" -v b="$ember_s" 'BEGIN { printf "ratio    %.2fx end-to-end\n", a / b }'
echo "raw      ${raw_s}s  $(rate "$messages" "$raw_s") msg/s  smtp-source -> smtp-sink, one hop, no MTA"
awk -v a="$raw_s" -v b="$ember_s" 'BEGIN { printf "ember    %.0f%% of the raw one-hop rate\n", a / b * 100 }'
echo "ember under relay load: $(cat "$work/latency.txt")"
