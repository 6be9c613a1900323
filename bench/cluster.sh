#!/usr/bin/env bash
# Cluster mode (cluster-redis): what sharing limits through Redis costs.
#
# 1. Acquisition latency: examples/cluster-latency against a local redis-server (loopback): one
#    shared-rate reservation (a script run over 4 limiters, as a message meeting max-msg-rate,
#    max-data-volume-rate, a VMTA and a pool rate) and one connection lease, p50/p99/p999.
# 2. Throughput of one node without cluster mode (the baseline), then with 1, 2 and 3 nodes: N Ember nodes on one Redis, one identity (virtual MTA v,
#    source 127.0.0.2), relaying to Postfix's smtp-sink with max-smtp-out 20 and a message rate
#    high enough never to bind (so every message still makes its reservation in Redis); the same
#    total injected by smtp-source, split evenly across the nodes; time from the first injection
#    until every node's accounting file has all its deliveries.
#
#   bench/cluster.sh [MESSAGES] [SIZE] [ACQUISITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-30000} size=${2:-5120} acquisitions=${3:-20000}
work=$(mktemp -d /tmp/ember-cluster.XXXXXX)
chmod 755 "$work"
redis_pid=""; sink_pid=""; pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server" >&2; exit 1; }
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
cargo build --release --quiet
cargo build --release --quiet --example cluster-latency
now() { date +%s.%N; }

redis_port=26379
redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no > "$work/redis.log" 2>&1 &
redis_pid=$!
until redis-cli -p $redis_port ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
url="redis://127.0.0.1:$redis_port/0"

echo "cluster: acquisition latency on loopback (redis-server $(redis-server --version | awk '{print $3}'))"
./target/release/examples/cluster-latency "$url" "$acquisitions" 4

sink_port=26025
smtp-sink -c -u nobody 127.0.0.1:$sink_port 1000 > "$work/sink.count" 2>&1 &
sink_pid=$!
until (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null; do sleep 0.1; done

node_conf() { # node number, and "solo" for a node without cluster mode (the baseline)
    local n=$1 cluster="cluster-redis $url
cluster-node-name bench-$1"
    [ "${2:-}" = solo ] && cluster=""
    mkdir -p "$work/node$n"
    cat > "$work/node$n/ember.conf" <<CF
smtp-listener 127.0.0.1:$((26100 + n))
http-mgmt-port 0
total-max-smtp-in 1000
$cluster
<source 127.0.0.1>
    always-allow-relaying yes
    default-virtual-mta v
</source>
<virtual-mta v>
    smtp-source-host 127.0.0.2 bench.ember.test
</virtual-mta>
<domain *>
    smtp-hosts [127.0.0.1]:$sink_port
    max-smtp-out 20
    max-msg-rate 1000000/s
    max-msg-per-connection 0
    connection-idle-timeout 2s
</domain>
<acct-file $work/node$n/acct.csv>
    records d
</acct-file>
<spool $work/node$n/spool>
</spool>
CF
}

for nodes in solo 1 2 3; do
    redis-cli -p $redis_port flushdb > /dev/null
    pids=()
    mode=""
    if [ "$nodes" = solo ]; then nodes=1 mode=solo; fi
    for n in $(seq 1 "$nodes"); do
        rm -rf "$work/node$n"
        node_conf "$n" $mode
        ./target/release/ember run --config "$work/node$n/ember.conf" > "$work/node$n/out" 2>&1 &
        pids+=($!)
    done
    for n in $(seq 1 "$nodes"); do
        if [ -n "$mode" ]; then
            until grep -qs "ember ready" "$work/node$n/out"; do sleep 0.1; done
        else
            until grep -qs "cluster: connected to Redis" "$work/node$n/out"; do sleep 0.1; done
        fi
    done
    per=$((messages / nodes))
    start=$(now)
    sources=()
    for n in $(seq 1 "$nodes"); do
        smtp-source -s 20 -m "$per" -l "$size" -f bench@ember.test -t rcpt@example.com 127.0.0.1:$((26100 + n)) &
        sources+=($!)
    done
    for p in "${sources[@]}"; do wait "$p"; done
    for n in $(seq 1 "$nodes"); do
        until [ -f "$work/node$n/acct.csv" ] && [ "$(wc -l < "$work/node$n/acct.csv")" -gt "$per" ]; do sleep 0.2; done
    done
    end=$(now)
    if [ -n "$mode" ]; then
        awk -v m=$((per * nodes)) -v a="$start" -v b="$end" \
            'BEGIN { printf "baseline: 1 node without cluster mode: %d messages in %.2fs, %.0f msg/s\n", m, b - a, m / (b - a) }'
    else
        awk -v n="$nodes" -v m=$((per * nodes)) -v a="$start" -v b="$end" \
            'BEGIN { printf "cluster: %d node(s): %d messages in %.2fs, %.0f msg/s (one identity, every message reserved in Redis)\n", n, m, b - a, m / (b - a) }'
    fi
    for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done
    pids=()
done
