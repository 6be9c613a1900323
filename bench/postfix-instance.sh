#!/usr/bin/env bash
# A private Postfix instance for side-by-side benchmarks: its own main.cf, master.cf, queue and
# log under DIR, smtpd on 127.0.0.1:PORT. Both configuration files are written here in full, so
# the instance does not depend on (or touch) the machine's own Postfix configuration in
# /etc/postfix: only the installed programs are used. Run as root (postfix start needs it).
#
#   bench/postfix-instance.sh start DIR PORT [main.cf lines…]
#   bench/postfix-instance.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2

case "$cmd" in
start)
    port=$3; shift 3
    rm -rf "$dir"; mkdir -p "$dir/etc" "$dir/data" "$dir/spool"
    cat > "$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
myhostname = bench.postfix.test
mydomain = postfix.test
myorigin = \$myhostname
# Nothing is delivered locally: every recipient is relayed (from 127.0.0.0/8 only).
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
# No TLS either way: the benchmark measures queueing and delivery, not the handshake.
smtpd_tls_security_level = none
smtp_tls_security_level = none
# Log to a file of our own (through the postlog service below), not to syslog.
maillog_file_prefixes = /var, /tmp, $dir
maillog_file = $dir/maillog
default_process_limit = 200
biff = no
CF
    # Extra lines replace the setting of the same name above.
    for line in "$@"; do
        name=$(echo "${line%%=*}" | tr -d ' ')
        sed -i "/^$name *=/d" "$dir/etc/main.cf"
        echo "$line" >> "$dir/etc/main.cf"
    done
    # The services this instance needs, all unchrooted (a chroot would need copies of system
    # files inside the queue directory). Columns: service type private unpriv chroot wakeup
    # maxproc command.
    cat > "$dir/etc/master.cf" <<CF
127.0.0.1:$port inet n - n - - smtpd
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
qmgr       unix  n - n 300  1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
proxywrite unix  - - n -    1 proxymap
smtp       unix  - - n -    - smtp
relay      unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
CF
    chown postfix "$dir/data"
    postfix -c "$dir/etc" start >/dev/null 2>&1 || {
        echo "postfix did not start:"
        tail -5 "$dir/maillog" 2>/dev/null || true
        postfix -c "$dir/etc" check 2>&1 | tail -5 || true
        exit 1
    }
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
