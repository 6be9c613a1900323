#!/usr/bin/env bash
# Adaptive delivery against static shaping, on the provider simulator (tests/support/provider.py)
# over real sockets.
#
# Rate: MESSAGES messages (default 400) to a provider that takes RATE messages a second per IP
# (default 8) and answers 421 [RP-001] above it, from a queue configured at 50/s with no backoff
# rule, with `adaptive-delivery yes` and then `no`. Reports the pace (messages accepted a second,
# from the first attempt to the last acceptance, as a share of RATE) and the share of attempts the
# provider deferred.
#
# Connections: 200 messages, 5 a connection, to a busy provider (50 ms a message) that refuses a
# third concurrent connection with 421 [TSS04]; queue max-smtp-out 10. Reports the share of
# connections refused and the time to deliver everything.
#
# Each pair runs RUNS times (default 3, alternating); the summary gives medians.
#
#   RUNS=3 bench/adaptive.sh [MESSAGES] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-400} rate=${2:-8} runs=${RUNS:-3}
work=$(mktemp -d /tmp/ember-adaptive.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
cargo build --release --quiet --bin ember

# Starts the provider; echoes its port.
provider() {
    local log=$1; shift
    python3 tests/support/provider.py --listen 127.0.0.1:0 --log "$log" --ready-file "$log.ready" "$@" > /dev/null &
    pids+=($!)
    until [ -f "$log.ready" ]; do sleep 0.05; done
    cut -d: -f2 "$log.ready"
}

# run NAME PROVIDER-ARGS DOMAIN-LINES N: one Ember, one provider, N messages; prints the
# provider's figures as "attempts accepted deferred connects refused first last".
run() {
    local name=$1 provider_args=$2 domain=$3 n=$4
    local log="$work/$name.jsonl"
    rm -rf "$work/$name" "$log" "$log.ready"
    mkdir -p "$work/$name"
    # shellcheck disable=SC2086
    local port; port=$(provider "$log" $provider_args)
    cat > "$work/$name/ember.conf" <<CF
smtp-listener 127.0.0.1:0
http-mgmt-port 127.0.0.1:0
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<spool $work/$name/spool>
</spool>
<domain *>
    smtp-hosts [127.0.0.1]:$port
    retry-after 1s
    retry-recipients-after 1s
$domain
</domain>
CF
    ./target/release/ember run --config "$work/$name/ember.conf" > "$work/$name/out" 2>&1 &
    local ember=$!
    pids+=($ember)
    until grep -q "^smtp listener " "$work/$name/out" 2>/dev/null; do sleep 0.05; done
    local smtp; smtp=$(grep -m1 "^smtp listener " "$work/$name/out" | awk "{print \$3}")
    python3 - "$smtp" "$n" "$log" <<'PY'
import json, smtplib, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, log = int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(host, int(port))
for i in range(n):
    s.sendmail("bench@example.net", ["r%d@example.com" % i], "Subject: %d\r\n\r\nx\r\n" % i)
s.quit()
while True:
    events = [json.loads(l) for l in open(log)]
    accepted = [e for e in events if e["event"] == "accepted"]
    if len(accepted) >= n:
        break
    time.sleep(0.2)
kinds = lambda k: [e for e in events if e["event"] == k]
deferred = kinds("deferred")
attempts = accepted + deferred
first = min(e["t"] for e in attempts)
last = max(e["t"] for e in accepted)
print(len(attempts), len(accepted), len(deferred), len(kinds("connect")), len(kinds("refused")), first, last)
PY
    kill "$ember" 2>/dev/null || true
    wait "$ember" 2>/dev/null || true
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

rate_domain() { printf '    max-msg-rate 50/s\n    max-smtp-out 4\n    adaptive-delivery %s\n' "$1"; }
conn_domain() { printf '    max-smtp-out 10\n    max-msg-per-connection 5\n    adaptive-delivery %s\n' "$1"; }

declare -A pace deferred refused took
for i in $(seq 1 "$runs"); do
    for mode in yes no; do
        read -r attempts accepted def _ _ first last < <(run "rate-$mode-$i" "--style microsoft --rate $rate" "$(rate_domain $mode)" "$messages")
        p=$(awk -v a="$accepted" -v f="$first" -v l="$last" -v r="$rate" 'BEGIN { printf "%.1f", 100 * a / (l - f) / r }')
        d=$(awk -v d="$def" -v a="$attempts" 'BEGIN { printf "%.1f", 100 * d / a }')
        echo "rate run $i adaptive=$mode: $accepted accepted, $def deferred of $attempts attempts ($d%), pace $p% of ${rate}/s"
        pace[$mode]+="$p "
        deferred[$mode]+="$d "
        read -r _ accepted _ connects refs first last < <(run "conn-$mode-$i" "--style yahoo --connections 2 --data-delay 0.05" "$(conn_domain $mode)" 200)
        r=$(awk -v r="$refs" -v c="$connects" 'BEGIN { printf "%.1f", 100 * r / (r + c) }')
        t=$(awk -v f="$first" -v l="$last" 'BEGIN { printf "%.1f", l - f }')
        echo "connections run $i adaptive=$mode: $refs of $((refs + connects)) connections refused ($r%), 200 messages in ${t}s"
        refused[$mode]+="$r "
        took[$mode]+="$t "
    done
done
echo
echo "medians of $runs runs:"
for mode in yes no; do
    label=$([ $mode = yes ] && echo adaptive || echo static)
    echo "  $label: rate: pace $(echo ${pace[$mode]} | tr ' ' '\n' | median)% of ${rate}/s, $(echo ${deferred[$mode]} | tr ' ' '\n' | median)% of attempts deferred;" \
        "connections: $(echo ${refused[$mode]} | tr ' ' '\n' | median)% refused, 200 messages in $(echo ${took[$mode]} | tr ' ' '\n' | median)s"
done
