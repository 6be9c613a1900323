#!/usr/bin/env python3
"""Injects many messages over parallel SMTP connections and records which ones got 250.

Used by the crash tests: the daemon may be killed at any moment, so every thread stops at its
first connection error, and the acknowledged senders are written out at the end.

usage: inject.py HOST:PORT TOTAL CONNECTIONS BODY_BYTES ACKED_FILE [REPORT_EVERY] [TAG]
Prints "acked N" every REPORT_EVERY (default 250) acknowledgements and "done N" at the end.
Senders are t<thread>-<n>@crash.test, or <TAG>t<thread>-<n>@crash.test with a TAG (one per round
of a test that injects several times into the same daemon).
"""
import smtplib
import sys
import threading

host, port = sys.argv[1].rsplit(":", 1)
total, connections, body_bytes = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
acked_file = sys.argv[5]
report_every = int(sys.argv[6]) if len(sys.argv) > 6 else 250
tag = sys.argv[7] if len(sys.argv) > 7 else ""

acked = []
lock = threading.Lock()
filler = ("x" * 76 + "\r\n") * max(1, body_bytes // 78)


def worker(index):
    per = total // connections
    try:
        s = smtplib.SMTP(host, int(port), timeout=60)
        s.ehlo("crash.test")
        for n in range(per):
            sender = "%st%d-%d@crash.test" % (tag, index, n)
            msg = "From: %s\r\nTo: r@example.com\r\nSubject: %d/%d\r\n\r\n%s" % (sender, index, n, filler)
            s.sendmail(sender, ["r%d@example.com" % n], msg)
            with lock:
                acked.append(sender)
                if len(acked) % report_every == 0:
                    print("acked %d" % len(acked), flush=True)
        s.quit()
    except Exception:
        # The daemon went away mid-conversation: what was not acknowledged is not ours to count.
        pass


threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(acked_file, "w") as f:
    f.write("\n".join(acked))
print("done %d" % len(acked), flush=True)
