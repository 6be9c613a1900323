#!/usr/bin/env bash
# Relay benchmark (issue: delivery engine): 50,000 messages of 5 KiB from Postfix's smtp-source
# over 20 connections, relayed to Postfix's smtp-sink, through Ember and through Postfix
# configured as the equivalent relay, same machine, same run. Prints end-to-end msg/s (from the
# first injected message until the sink has everything), the ratio, machine CPU seconds per
# 1,000 messages, and peak RSS; then the raw one-hop rate (smtp-source straight into smtp-sink)
# measured in the same run, and Ember's time-to-250 (p50/p99/p999) while it relays under the same
# load (injection by examples/smtp-latency, which times each final dot to its reply).
#
# Time to 250 is measured twice, both while Ember relays what it receives to the sink:
# - closed loop: each of the connections sends its next message as soon as the last is answered,
#   so the machine is saturated and the figure grows with the whole machine's CPU per message
#   (load generator and sink included) and falls with its speed;
# - at the relay's rate: the connections together offer the rate this pair's Ember run relayed
#   end to end, evenly spread (SMTP_LATENCY_RATE), so the figure is the wait of a message at the
#   load Ember sustains, below saturation.
#
# The machine is shared and noisy, so the whole comparison runs RUNS times (default 3: three
# pairs, each Ember then Postfix then the raw hop) and the summary gives the median of each
# figure. CPU is reported twice: the machine's (load generator and sink included) and each MTA's
# own (Ember: its process; Postfix: its master and every child, live or reaped), per message.
#
# Durability: both fsync before acknowledging a message (see bench/ingest.sh).
#
# smtp-source opens a new connection for every message unless told otherwise, so by default each
# message also pays a TCP handshake, the banner, HELO and QUIT. REUSE=yes (smtp-source -d) sends
# every message of a connection over it, as injecting applications with a connection pool do;
# it applies to all three (Ember, Postfix, raw).
#
#   RUNS=3 REUSE=no bench/relay.sh [MESSAGES] [CONNECTIONS] [SIZE] [RECIPIENTS-PER-MESSAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-50000} connections=${2:-20} size=${3:-5120} rcpts=${4:-1} runs=${RUNS:-3}
reuse=() reused=""
case "${REUSE:-no}" in yes) reuse=(-d) reused=", connections reused" ;; no) ;; *) echo "REUSE must be yes or no" >&2; exit 2 ;; esac
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
# CPU ticks a process used, with those of the children it reaped.
proc_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Postfix's own CPU ticks: its master (which reaps every child that exits) and the live children.
postfix_ticks() {
    local master t=0 p
    master=$(head -1 "$work/postfix/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    [ -n "$master" ] || { echo 0; return; }
    for p in $master $(ps -o pid= --ppid "$master"); do t=$((t + $(proc_ticks "$p"))); done
    echo $t
}

sink_port=25260
smtp-sink -c -u nobody 127.0.0.1:$sink_port 1000 > "$work/sink.count" 2>&1 &
sink_pid=$!
until (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null; do sleep 0.1; done

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
# CPU seconds per 1,000 messages from a tick count.
per_1000() { awk -v t="$1" -v hz="$hz" -v n="$messages" 'BEGIN { printf "%.3f", t / hz / n * 1000 }'; }
# A percentile (p50, p99) in ms from smtp-latency's output line in FILE.
percentile() { sed -n "s/.*$1 \([0-9.]*\) ms.*/\1/p" "$2"; }
# The median of the numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_pair() {
    local run=$work/run$1
    mkdir -p "$run"
    # --- Ember -----------------------------------------------------------------------------------
    cat > "$run/ember.conf" <<CF
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
    <acct-file $run/acct.csv>
        records d
    </acct-file>
    <spool $run/ember-spool>
    </spool>
CF
    ./target/release/ember run --config "$run/ember.conf" > "$run/ember.out" 2>&1 &
    ember_pid=$!
    until grep -qs "ember ready" "$run/ember.out"; do kill -0 $ember_pid || { cat "$run/ember.out"; exit 1; }; sleep 0.1; done
    start=$(now); cpu0=$(cpu_ticks); own0=$(proc_ticks $ember_pid)
    smtp-source "${reuse[@]}" -s "$connections" -m "$messages" -l "$size" -r "$rcpts" -f bench@ember.test -t rcpt@example.com 127.0.0.1:25261
    # Delivered: one d record per recipient (plus the header line).
    until [ "$(wc -l < "$run/acct.csv")" -gt "$deliveries" ]; do sleep 0.2; done
    end=$(now); cpu1=$(cpu_ticks); own1=$(proc_ticks $ember_pid)
    ember_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    ember_cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$hz" -v n="$messages" 'BEGIN { printf "%.2f", t / hz / n * 1000 }')
    ember_rss=$(awk '/VmHWM/ { print $2 }' /proc/$ember_pid/status)
    ember_own=$(per_1000 $((own1 - own0)))
    # Time to 250 while relaying: the same load again, injected by a client that times each reply.
    ./target/release/examples/smtp-latency 127.0.0.1:25261 "$messages" "$connections" "$size" > "$run/latency.txt"
    SMTP_LATENCY_RATE=$(rate "$messages" "$ember_s") ./target/release/examples/smtp-latency \
        127.0.0.1:25261 "$messages" "$connections" "$size" > "$run/latency-paced.txt"
    kill -TERM $ember_pid; wait $ember_pid || true; ember_pid=""

    # --- raw: smtp-source straight into smtp-sink (the ceiling of one hop on this machine) ---------
    start=$(now)
    smtp-source "${reuse[@]}" -s "$connections" -m "$messages" -l "$size" -r "$rcpts" -f bench@raw.test -t rcpt@example.com 127.0.0.1:$sink_port
    end=$(now)
    raw_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')

    # --- Postfix ---------------------------------------------------------------------------------
    bench/postfix-instance.sh start "$work/postfix" 25262 \
        "relayhost = [127.0.0.1]:$sink_port" \
        "smtp_destination_concurrency_limit = $connections" \
        "default_destination_concurrency_limit = $connections"
    # Postfix's processes come and go: a sampler sums their RSS every 0.5 s while it works (from
    # the first injection on: it delivers while it receives) and keeps the peak.
    ( peak=0
      while :; do
          # This instance only: its master (pid file in its queue directory) and its children.
          master=$(head -1 "$work/postfix/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
          rss=$( { [ -n "$master" ] && ps -o rss= -p "$master" --ppid "$master"; } | awk '{ s += $1 } END { print s + 0 }')
          [ "$rss" -gt "$peak" ] && { peak=$rss; echo "$peak" > "$run/postfix.rss"; }
          sleep 0.5
      done ) &
    sampler=$!
    start=$(now); cpu0=$(cpu_ticks); own0=$(postfix_ticks)
    smtp-source "${reuse[@]}" -s "$connections" -m "$messages" -l "$size" -r "$rcpts" -f bench@postfix.test -t rcpt@example.com 127.0.0.1:25262
    until [ "$(grep -c 'status=sent' "$work/postfix/maillog" 2>/dev/null || echo 0)" -ge "$deliveries" ]; do sleep 0.2; done
    end=$(now); cpu1=$(cpu_ticks); own1=$(postfix_ticks)
    postfix_s=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    postfix_cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$hz" -v n="$messages" 'BEGIN { printf "%.2f", t / hz / n * 1000 }')
    postfix_own=$(per_1000 $((own1 - own0)))
    kill $sampler; wait $sampler 2>/dev/null || true
    postfix_rss=$(cat "$run/postfix.rss" 2>/dev/null || echo 0)
    bench/postfix-instance.sh stop "$work/postfix"

    local p99 p50 paced_p99 paced_p50
    p50=$(percentile p50 "$run/latency.txt")
    p99=$(percentile p99 "$run/latency.txt")
    paced_p50=$(percentile p50 "$run/latency-paced.txt")
    paced_p99=$(percentile p99 "$run/latency-paced.txt")
    # Ember's rate as a share of the raw hop's, both measured in this pair.
    local share
    share=$(awk -v r="$raw_s" -v e="$ember_s" 'BEGIN { printf "%.3f", r / e * 100 }')
    echo "run $1"
    echo "  ember    ${ember_s}s  $(rate "$messages" "$ember_s") msg/s  cpu ${ember_cpu}s/1000 msgs (machine), ${ember_own}s (own)  peak RSS $((ember_rss / 1024)) MiB"
    echo "  postfix  ${postfix_s}s  $(rate "$messages" "$postfix_s") msg/s  cpu ${postfix_cpu}s/1000 msgs (machine), ${postfix_own}s (own)  peak RSS $((postfix_rss / 1024)) MiB (its processes, sampled)"
    echo "  raw      ${raw_s}s  $(rate "$messages" "$raw_s") msg/s  smtp-source -> smtp-sink, one hop, no MTA (ember at $(printf '%.1f' "$share")% of it)"
    echo "  ember under relay load, closed loop: $(cat "$run/latency.txt")"
    echo "  ember under relay load, at the relay's rate: $(cat "$run/latency-paced.txt")"
    # One line per run for the medians: ember msg/s, postfix msg/s, ratio, raw msg/s, share of
    # raw, machine CPU (ember, postfix), own CPU (ember, postfix, and their ratio), p50, p99, RSS,
    # p50 and p99 at the relay's rate.
    awk -v e="$ember_s" -v p="$postfix_s" -v r="$raw_s" -v n="$messages" -v ec="$ember_cpu" -v pc="$postfix_cpu" \
        -v eo="$ember_own" -v po="$postfix_own" -v p50="$p50" -v p99="$p99" -v er="$((ember_rss / 1024))" -v share="$share" \
        -v pp50="$paced_p50" -v pp99="$paced_p99" \
        'BEGIN { printf "%f %f %f %f %f %s %s %s %s %f %s %s %s %s %s\n", n / e, n / p, p / e, n / r, share, ec, pc, eo, po, (eo > 0 ? po / eo : 0), p50, p99, er, pp50, pp99 }' \
        >> "$work/results"
}

echo "relay: $messages messages x $size bytes x $rcpts recipients over $connections connections$reused, smtp-source -> MTA -> smtp-sink, $runs runs"
echo "durability: both MTAs fsync the message before answering 250 (Ember: group-committed fdatasync of its spool log)"
for i in $(seq 1 "$runs"); do run_pair "$i"; done
col() { awk -v c="$1" '{ print $c }' "$work/results" | median; }
echo "median of $runs runs"
printf '  ember    %.0f msg/s   postfix %.0f msg/s   ratio %.2fx end-to-end\n' "$(col 1)" "$(col 2)" "$(col 3)"
printf '  raw      %.0f msg/s   ember at %.1f%% of the raw one-hop rate (median of the per-pair shares)\n' "$(col 4)" "$(col 5)"
printf '  cpu per 1000 msgs: machine ember %.3fs, postfix %.3fs; own ember %.3fs, postfix %.3fs (postfix/ember %.1fx)\n' \
    "$(col 6)" "$(col 7)" "$(col 8)" "$(col 9)" "$(col 10)"
printf '  ember time to 250 under load: closed loop p50 %.2f ms, p99 %.2f ms; at the relay'"'"'s rate p50 %.2f ms, p99 %.2f ms\n' \
    "$(col 11)" "$(col 12)" "$(col 14)" "$(col 15)"
printf '  ember peak RSS %.0f MiB\n' "$(col 13)"
