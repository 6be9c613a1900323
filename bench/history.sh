#!/usr/bin/env bash
# History queries over a large event log: EVENTS events (default 10,000,000) written with
# examples/fill-events.rs, then the daemon started on that log (the index is rebuilt by a scan at
# start); reports the start time, the memory the index costs (VmRSS with the log minus with an
# empty one), and the time of GET /api/v1/events by recipient, message id, job and since.
#
#   bench/history.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
work=$(mktemp -d /tmp/ember-history-bench.XXXXXX)
ember_pid=""
trap '[ -n "$ember_pid" ] && kill $ember_pid 2>/dev/null; rm -rf "$work"' EXIT
cargo build --release --quiet --bin ember --example fill-events
ember=./target/release/ember

conf() {
    port=$2
    mkdir -p "$work/$1-spool" "$work/$1-events"
    cat > "$work/$1.conf" <<CF
smtp-listener 127.0.0.1:0
http-mgmt-port 127.0.0.1:$port
http-access 127.0.0.1 admin
event-log yes
event-log-retain 30d
event-log-dir $work/$1-events
<spool $work/$1-spool>
</spool>
CF
}

start() {
    $ember run --config "$work/$1.conf" > "$work/$1.out" 2>&1 &
    ember_pid=$!
    until grep -q "ember ready" "$work/$1.out"; do
        kill -0 $ember_pid 2>/dev/null || { cat "$work/$1.out"; exit 1; }
        sleep 0.2
    done
}

stop() { kill $ember_pid; wait $ember_pid 2>/dev/null || true; ember_pid=""; }

conf empty 18091
start empty
rss_empty=$(awk '/VmRSS/ { print $2 }' /proc/$ember_pid/status)
stop

conf full 18092
./target/release/examples/fill-events "$work/full-events" "$n" | tee "$work/fill.out"
last=$(awk '/^last event at/ { print $4 }' "$work/fill.out")
du -sh "$work/full-events" | awk '{ print "log on disk: " $1 }'
start full
rss_full=$(awk '/VmRSS/ { print $2 }' /proc/$ember_pid/status)
grep "^event log " "$work/full.out"
awk -v n="$n" -v e="$rss_empty" -v f="$rss_full" 'BEGIN {
    printf "daemon RSS: %.1f MiB empty log, %.1f MiB with %d events: %.1f bytes per event\n", e / 1024, f / 1024, n, (f - e) * 1024 / n
}'
q() {
    # Best of 5 (the first also warms the page cache), as curl measures the whole request.
    best=$(for i in 1 2 3 4 5; do curl -s -o "$work/answer.json" -w '%{time_total}\n' "http://127.0.0.1:18092/api/v1/events?$1"; done | sort -n | head -1)
    count=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['data']['count'])" "$work/answer.json")
    printf "%-40s %6s events  %.1f ms\n" "$1" "$count" "$(echo "$best * 1000" | bc -l)"
}
q "rcpt=user1234567@domain4567.example"
q "rcpt=USER42@domain42.example"
q "message_id=$(printf '%016x' $((0x10000000 + 600000)))"
q "job=job7&limit=1000"
q "since=$((last - 1))&limit=1000"
q "since=$((last - 3600))&limit=100000"
stop
