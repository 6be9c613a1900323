#!/usr/bin/env python3
"""Injects many messages over parallel SMTP connections and records which ones got 250.

Used by the crash tests: the daemon may be killed at any moment, so every thread stops at its
first connection error, and the acknowledged senders are written out at the end.

usage: inject.py HOST:PORT TOTAL CONNECTIONS BODY_BYTES ACKED_FILE
Prints "acked N" every 250 acknowledgements and "done N" at the end.
"""
import smtplib
import sys
import threading

host, port = sys.argv[1].rsplit(":", 1)
total, connections, body_bytes = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
acked_file = sys.argv[5]

acked = []
lock = threading.Lock()
filler = ("x" * 76 + "\r\n") * max(1, body_bytes // 78)


def worker(index):
    per = total // connections
    try:
        s = smtplib.SMTP(host, int(port), timeout=60)
        s.ehlo("crash.test")
        for n in range(per):
            sender = "t%d-%d@crash.test" % (index, n)
            msg = "From: %s\r\nTo: r@example.com\r\nSubject: %d/%d\r\n\r\n%s" % (sender, index, n, filler)
            s.sendmail(sender, ["r%d@example.com" % n], msg)
            with lock:
                acked.append(sender)
                if len(acked) % 250 == 0:
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
