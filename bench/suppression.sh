#!/usr/bin/env bash
# Global suppression list benchmark: N addresses (default 10,000,000) imported with
# `ember suppression import` (no daemon: straight into the journal), then the daemon started on
# that journal. Reports the import time, the load time the daemon prints, and the memory the
# list costs: the daemon's resident set (VmRSS) with the list minus with an empty list, per entry.
#
#   bench/suppression.sh [ADDRESSES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
work=$(mktemp -d /tmp/ember-supp-bench.XXXXXX)
ember_pid=""
trap '[ -n "$ember_pid" ] && kill $ember_pid 2>/dev/null; rm -rf "$work"' EXIT
cargo build --release --quiet
ember=./target/release/ember

# Addresses like real lists: varied local parts over a few thousand domains.
awk -v n="$n" 'BEGIN { srand(42); for (i = 0; i < n; i++) printf "user.%d.%x@domain%d.example\n", i, int(rand() * 1e6), i % 5000 }' \
    > "$work/list.txt"
bytes=$(stat -c %s "$work/list.txt")

conf() {
    cat > "$work/$1.conf" <<CF
smtp-listener 127.0.0.1:0
http-mgmt-port 0
<spool $work/$1-spool>
</spool>
CF
}

# Starts the daemon on config $1, waits for ready; prints its VmRSS in KiB and the load line.
run() {
    $ember run --config "$work/$1.conf" > "$work/$1.out" 2>&1 &
    ember_pid=$!
    until grep -q "ember ready" "$work/$1.out"; do
        kill -0 $ember_pid 2>/dev/null || { cat "$work/$1.out"; exit 1; }
        sleep 0.2
    done
    rss=$(awk '/VmRSS/ { print $2 }' /proc/$ember_pid/status)
    load=$(grep "global suppression list" "$work/$1.out")
    kill $ember_pid; wait $ember_pid 2>/dev/null || true; ember_pid=""
    echo "$rss|$load"
}

conf empty
empty=$(run empty)
conf full
mkdir -p "$work/full-spool"
start=$(date +%s.%N)
$ember suppression import "$work/list.txt" --config "$work/full.conf" > "$work/import.out" 2>&1
end=$(date +%s.%N)
full=$(run full)
rss_empty=${empty%%|*} rss_full=${full%%|*}
awk -v n="$n" -v b="$bytes" -v e="$rss_empty" -v f="$rss_full" -v s="$start" -v t="$end" -v load="${full#*|}" -v imp="$(tail -1 "$work/import.out")" 'BEGIN {
    printf "suppression: %d addresses (%.0f MB of text)\n", n, b / 1e6
    printf "import (ember suppression import, no daemon): %.1fs, %.0f addresses/s\n  %s\n", t - s, n / (t - s), imp
    printf "daemon start: %s\n", load
    printf "daemon RSS: %.1f MiB empty, %.1f MiB with the list: %.1f bytes per entry\n", e / 1024, f / 1024, (f - e) * 1024 / n
}'
