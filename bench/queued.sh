#!/usr/bin/env bash
# Queued-mail benchmark (issue: performance and hardening): memory per queued recipient and
# restart time with a large spool.
#
# 1. Builds a spool of MESSAGES messages (RECIPIENTS each, SIZE bytes) with examples/fill-spool.rs,
#    which writes through Ember's own spool API (same records, checksums and fsyncs as SMTP).
# 2. Starts Ember on it with delivery held (the only MX refuses connections, retry-after 1h),
#    waits until every recipient is queued (the management API's count), and reports RSS per
#    queued recipient.
# 3. Restarts Ember on the same spool with smtp-sink as the MX and reports the time from the
#    process start to the first delivery, and the spool-recovery progress lines of the log.
#
#   bench/queued.sh [MESSAGES] [RECIPIENTS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-1000000} recipients=${2:-1} size=${3:-2048}
work=$(mktemp -d /tmp/ember-queued.XXXXXX)
chmod 755 "$work"
sink_pid=""; ember_pid=""
cleanup() {
    [ -n "$ember_pid" ] && kill -9 "$ember_pid" 2>/dev/null || true
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
command -v smtp-sink >/dev/null || { echo "smtp-sink missing: apt-get install postfix" >&2; exit 1; }
cargo build --release --quiet --bin ember --example fill-spool
now() { date +%s.%N; }
rss_kib() { awk '/VmRSS/ { print $2 }' /proc/$1/status; }

./target/release/examples/fill-spool "$work/spool" "$messages" "$recipients" "$size"
total=$((messages * recipients))
echo "spool: $(du -sh "$work/spool" | cut -f1) for $messages messages, $total recipients"

config() { # $1: MX port
    cat <<CF
smtp-listener 127.0.0.1:0
http-mgmt-port 127.0.0.1:0
http-access 127.0.0.1 admin
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<domain *>
    smtp-hosts [127.0.0.1]:$1
    retry-after 1h
    max-smtp-out 20
</domain>
<acct-file $work/acct.csv>
    records d
</acct-file>
<spool $work/spool>
</spool>
CF
}
start_ember() { # $1: config file; sets ember_pid, mgmt
    ./target/release/ember run --config "$1" > "$work/ember.out" 2>&1 &
    ember_pid=$!
    until grep -qs "ember ready" "$work/ember.out"; do kill -0 $ember_pid || { cat "$work/ember.out"; exit 1; }; sleep 0.05; done
    mgmt=$(awk '/management http/ { print $3 }' "$work/ember.out")
}

# --- memory: everything queued, delivery held ------------------------------------------------
config 9 > "$work/hold.conf"
start_ember "$work/hold.conf"
base=$(rss_kib $ember_pid)
until [ "$(curl -s "http://$mgmt/api/v1/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("data", d); print(d["queue"]["smtp"]["rcp"])')" -ge "$total" ]; do
    sleep 0.5
done
rss=$(rss_kib $ember_pid)
kill -TERM $ember_pid; wait $ember_pid || true; ember_pid=""
echo "memory: RSS $((rss / 1024)) MiB with $total recipients queued: $(awk -v r="$rss" -v n="$total" 'BEGIN { printf "%.0f", r * 1024 / n }') bytes per recipient (RSS at start $((base / 1024)) MiB)"

# --- restart: time until delivery resumes ----------------------------------------------------
sink_port=25270
smtp-sink -u nobody 127.0.0.1:$sink_port 1000 > /dev/null 2>&1 &
sink_pid=$!
until (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null; do sleep 0.1; done
config $sink_port > "$work/run.conf"
start=$(now)
./target/release/ember run --config "$work/run.conf" > "$work/ember.out" 2>&1 &
ember_pid=$!
until [ -s "$work/acct.csv" ] && [ "$(wc -l < "$work/acct.csv")" -ge 2 ]; do
    kill -0 $ember_pid || { cat "$work/ember.out"; exit 1; }
    sleep 0.02
done
end=$(now)
grep -E "spool recovery:|spool recovered|queued .* recovered" "$work/ember.out" | sed 's/^/  log: /'
echo "restart: first delivery $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s after the process started, with $messages messages queued"
