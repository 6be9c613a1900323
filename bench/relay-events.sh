#!/usr/bin/env bash
# Relay throughput with and without event sinks, same machine, same run: MESSAGES messages of SIZE
# bytes from Postfix's smtp-source over CONNECTIONS connections, relayed by Ember to Postfix's
# smtp-sink, first with no event sink, then with one HTTP sink (tests/support/webhook.py answering
# 200) and one NATS JetStream sink (nats-server -js) enabled. Prints both end-to-end rates (from
# the first injected message until the last `d` accounting record), their ratio, and how long the
# sinks took after the mail to have every event. The machine is shared and noisy, so the pair runs
# RUNS times (default 3, alternating without and with sinks) and the summary gives medians.
#
# The two receivers stand in for services on other machines. Here they share the two cores with
# the relay, so by default they run in the SCHED_IDLE class (`chrt --idle 0`): the CPU they take
# is what the cores have spare, not a share of the relay's own. Their CPU per message is printed
# either way; RECEIVERS_IDLE=no measures them competing at the relay's priority.
#
#   RUNS=3 RECEIVERS_IDLE=yes bench/relay-events.sh [MESSAGES] [CONNECTIONS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-50000} connections=${2:-20} size=${3:-5120} runs=${RUNS:-3} receivers_idle=${RECEIVERS_IDLE:-yes}
work=$(mktemp -d /tmp/ember-relay-events.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server missing: apt-get install nats-server" >&2; exit 1; }
cargo build --release --quiet --bin ember
receiver_sched=""
[ "$receivers_idle" = yes ] && receiver_sched="chrt --idle 0"
now() { date +%s.%N; }
hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
wait_port() { until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.1; done; }

sink_port=25270
smtp-sink -c -u nobody 127.0.0.1:$sink_port 1000 > "$work/sink.count" 2>&1 &
pids+=($!)
wait_port $sink_port
$receiver_sched python3 tests/support/webhook.py --listen 127.0.0.1:25271 --log "$work/webhook.jsonl" --no-bodies > "$work/webhook.out" &
webhook_pid=$!
pids+=($webhook_pid)
wait_port 25271
$receiver_sched nats-server -js -a 127.0.0.1 -p 25272 -sd "$work/nats" > /dev/null 2>&1 &
nats_pid=$!
pids+=($nats_pid)
wait_port 25272
# The stream the NATS sink publishes to, through the server's JetStream API (no nats CLI needed).
python3 - <<'PY'
import json, socket
s = socket.create_connection(("127.0.0.1", 25272))
s.recv(4096)
cfg = json.dumps({"name": "EMBER", "subjects": ["ember.events"], "storage": "file"}).encode()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.bench 1\r\nPUB $JS.API.STREAM.CREATE.EMBER _INBOX.bench %d\r\n%s\r\n' % (len(cfg), cfg))
reply = b""
while b"MSG _INBOX.bench" not in reply or not reply.endswith(b"\r\n"):
    reply += s.recv(4096)
assert b'"error"' not in reply, reply
PY

run() {
    local name=$1 sinks=$2 port=$3
    rm -rf "$work/$name-spool" "$work/$name-acct.csv" "$work/$name-events" "$work/webhook.jsonl"
    cat > "$work/$name.conf" <<CF
smtp-listener 127.0.0.1:$port
http-mgmt-port 127.0.0.1:$((port + 100))
http-access 127.0.0.1 admin
total-max-smtp-in 1000
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<domain *>
    smtp-hosts [127.0.0.1]:$sink_port
    max-smtp-out $connections
    max-msg-per-connection 0
    connection-idle-timeout 2s
</domain>
<acct-file $work/$name-acct.csv>
    records d
</acct-file>
<spool $work/$name-spool>
</spool>
$sinks
CF
    ./target/release/ember run --config "$work/$name.conf" > "$work/$name.out" 2>&1 &
    local pid=$!
    pids+=($pid)
    until grep -q "ember ready" "$work/$name.out"; do kill -0 $pid || { cat "$work/$name.out"; exit 1; }; sleep 0.1; done
    local start end own0 rcv0
    start=$(now) own0=$(ticks $pid) rcv0=$(( $(ticks $webhook_pid) + $(ticks $nats_pid) ))
    smtp-source -s "$connections" -m "$messages" -l "$size" -f bench@ember.test -t rcpt@example.com 127.0.0.1:$port
    until [ "$(wc -l < "$work/$name-acct.csv")" -gt "$messages" ]; do sleep 0.05; done
    end=$(now)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }' > "$work/$name.seconds"
    # CPU while the mail flowed: Ember's own, and the two receivers' (ms per message).
    awk -v t=$(( $(ticks $pid) - own0 )) -v hz="$hz" -v n="$messages" 'BEGIN { printf "%.3f", t / hz / n * 1000 }' > "$work/$name.own"
    awk -v t=$(( $(ticks $webhook_pid) + $(ticks $nats_pid) - rcv0 )) -v hz="$hz" -v n="$messages" \
        'BEGIN { printf "%.3f", t / hz / n * 1000 }' > "$work/$name.receivers"
    if [ -n "$sinks" ]; then
        # Both sinks caught up: every reception and delivery event taken.
        until curl -s "http://127.0.0.1:$((port + 100))/api/v1/status" | python3 -c '
import json, sys
ev = json.load(sys.stdin)["data"]["events"]
sys.exit(0 if ev["head"] >= 2 * int(sys.argv[1]) and all(s["lag_events"] == 0 for s in ev["sinks"]) else 1)' "$messages"; do sleep 0.2; done
        awk -v a="$end" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }' > "$work/$name.sinks"
    fi
    kill -TERM $pid; wait $pid || true
}

sinks_conf="<event-sink hooks>
    type http
    url http://127.0.0.1:25271/ember
    secret bench
</event-sink>
<event-sink stream>
    type nats
    url nats://127.0.0.1:25272
</event-sink>"

# The median of the numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "relay: $messages messages x $size bytes over $connections connections, smtp-source -> ember -> smtp-sink"
echo "receivers (webhook.py, nats-server) in the SCHED_IDLE class: $receivers_idle"
for r in $(seq 1 "$runs"); do
    run plain "" 25281
    run sinks "$sinks_conf" 25291
    plain=$(cat "$work/plain.seconds") sinks=$(cat "$work/sinks.seconds") lag=$(cat "$work/sinks.sinks")
    own_plain=$(cat "$work/plain.own") own_sinks=$(cat "$work/sinks.own") receivers=$(cat "$work/sinks.receivers")
    batches=$(grep -c . "$work/webhook.jsonl" || true)
    awk -v r="$r" -v n="$messages" -v a="$plain" -v b="$sinks" -v l="$lag" -v h="$batches" 'BEGIN {
        printf "run %d: no sinks %5.0f msg/s, http + nats sinks %5.0f msg/s (%.1f%%), sinks complete %.2fs after the last delivery (%d HTTP batches)\n", r, n / a, n / b, a / b * 100, l, h
    }'
    echo "       ember's own cpu while mail flowed: ${own_plain} ms/msg without sinks, ${own_sinks} ms/msg with; the two receivers ${receivers} ms/msg"
    echo "$plain $sinks $lag $own_plain $own_sinks $receivers" >> "$work/results"
done
col() { awk -v c="$1" '{ print $c }' "$work/results" | median; }
plain=$(col 1) sinks=$(col 2) lag=$(col 3)
echo "median of $runs runs"
awk -v n="$messages" -v s="$plain" 'BEGIN { printf "no sinks            %6.2fs  %5.0f msg/s\n", s, n / s }'
awk -v n="$messages" -v s="$sinks" 'BEGIN { printf "http + nats sinks   %6.2fs  %5.0f msg/s\n", s, n / s }'
ratio=$(awk '{ print $1 / $2 * 100 }' "$work/results" | median)
echo "with sinks: ${ratio}% of the rate without (median of the per-run ratios)"
echo "sinks had every event ${lag}s after the last delivery"
echo "ember's own cpu while mail flowed: $(col 4) ms/msg without sinks, $(col 5) ms/msg with; receivers (webhook.py + nats-server) $(col 6) ms/msg"
