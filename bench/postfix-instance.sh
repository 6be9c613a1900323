#!/usr/bin/env bash
# A private Postfix instance for side-by-side benchmarks: its own config, queue and log under
# DIR, smtpd on 127.0.0.1:PORT, never touching the system instance's queue.
#
#   bench/postfix-instance.sh start DIR PORT [main.cf lines…]
#   bench/postfix-instance.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2

case "$cmd" in
start)
    port=$3; shift 3
    rm -rf "$dir"; mkdir -p "$dir/etc" "$dir/data" "$dir/spool"
    cp /etc/postfix/master.cf "$dir/etc/master.cf"
    # Replace the port-25 listener with ours.
    sed -i "s/^smtp      inet.*/127.0.0.1:$port inet n - n - - smtpd/" "$dir/etc/master.cf"
    cat > "$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
myhostname = bench.postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = /var, /tmp, $dir
maillog_file = $dir/maillog
default_process_limit = 200
CF
    for line in "$@"; do echo "$line" >> "$dir/etc/main.cf"; done
    chown postfix "$dir/data"
    # postfix refuses a config directory the default instance does not list. Tests start
    # instances in parallel: serialise edits of the default main.cf.
    exec 9>/tmp/ember-postfix-instances.lock
    flock 9
    current=$(postconf -h alternate_config_directories)
    case " $current " in *" $dir/etc "*) ;; *) postconf -e "alternate_config_directories = $current $dir/etc" ;; esac
    flock -u 9
    postfix -c "$dir/etc" start >/dev/null 2>&1 || { echo "postfix did not start:"; tail -5 "$dir/maillog"; exit 1; }
    # Ready when smtpd answers.
    for _ in $(seq 100); do
        if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then exec 3>&-; exit 0; fi
        sleep 0.1
    done
    echo "postfix never listened on $port"; exit 1
    ;;
stop)
    postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
    ;;
esac
