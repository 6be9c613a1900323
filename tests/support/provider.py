#!/usr/bin/env python3
"""A mailbox provider simulator for Ember's tests and benchmarks (Python 3.11, standard library).

It receives mail like a large provider does: every source IP has hidden limits, a message rate
(messages accepted in any one-second window) and a number of concurrent connections, and going
over either is answered the way Microsoft, Yahoo or Gmail answer it, with a 421 that closes the
connection:

    microsoft  rate: 421 4.7.0 [RP-001] at RCPT    connections: 421 4.3.2 at connect
    yahoo      rate: 421 4.7.0 [TS01] at MAIL      connections: 421 4.7.0 [TSS04] at connect
    gmail      rate: 421 4.7.28 at end of data     connections: 421 4.7.0 at connect

Usage:
    provider.py --listen 127.0.0.1:0 --style microsoft --rate 8 --connections 2
                --log FILE.jsonl [--data-delay SECONDS] [--ready-file F]

--rate 0 / --connections 0 mean no limit. Once listening it prints "ready HOST:PORT" and, with
--ready-file, writes HOST:PORT to that file (atomically), so callers wait for it, never sleep.

Log (JSON lines, flushed before the reply they describe is sent):
    {"event": "connect", "t": T, "peer": IP, "open": N}        a connection taken (N open from IP)
    {"event": "refused", "t": T, "peer": IP, "open": N}        refused: N were open from IP
    {"event": "accepted", "t": T, "peer": IP, "rcpts": K}      a message taken
    {"event": "deferred", "t": T, "peer": IP, "phase": P}      a message refused for its rate
"""

import argparse
import collections
import json
import os
import socket
import threading
import time

STYLES = {
    "microsoft": {
        "phase": "rcpt",
        "rate": "421 4.7.0 [RP-001] Temporarily rate limited due to IP reputation; try again later",
        "connections": "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel",
    },
    "yahoo": {
        "phase": "mail",
        "rate": "421 4.7.0 [TS01] Messages from {ip} temporarily deferred due to unexpected volume or user complaints",
        "connections": "421 4.7.0 [TSS04] Too many concurrent SMTP connections from this IP address; please try again later",
    },
    "gmail": {
        "phase": "data_end",
        "rate": "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. Try again later",
        "connections": "421 4.7.0 Try again later, closing connection (too many concurrent connections from your IP)",
    },
}


class Limits:
    """The hidden per-IP state, shared by all connections."""

    def __init__(self, rate, connections):
        self.rate = rate
        self.connections = connections
        self.lock = threading.Lock()
        self.open = collections.Counter()
        self.accepted = collections.defaultdict(collections.deque)

    def connect(self, ip):
        with self.lock:
            if self.connections and self.open[ip] >= self.connections:
                return False, self.open[ip]
            self.open[ip] += 1
            return True, self.open[ip]

    def disconnect(self, ip):
        with self.lock:
            self.open[ip] -= 1

    def take(self, ip, now):
        """Whether one more message from ip fits in the last second; counted when it does."""
        with self.lock:
            if not self.rate:
                return True
            window = self.accepted[ip]
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.rate:
                return False
            window.append(now)
            return True


class Log:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", buffering=1)

    def write(self, **event):
        event["t"] = time.time()
        with self.lock:
            self.file.write(json.dumps(event) + "\n")
            self.file.flush()


def session(sock, peer, style, limits, log, counter):
    ip = peer[0]
    f = sock.makefile("rb")

    def send(line):
        sock.sendall((line + "\r\n").encode())

    released = []

    def last(line):
        """The session's last reply: the connection stops counting before it is sent, as it
        would once the client reads it and goes (so a client opening its next connection right
        after never races the count)."""
        if not released:
            released.append(True)
            limits.disconnect(ip)
        send(line)

    ok, open_now = limits.connect(ip)
    if not ok:
        log.write(event="refused", peer=ip, open=open_now)
        send(style["connections"])
        sock.close()
        return
    log.write(event="connect", peer=ip, open=open_now)
    try:
        send("220 mx.provider.test ESMTP simulator")
        rcpts, mail = [], False
        while True:
            line = f.readline()
            if not line:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                send("250-mx.provider.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES" if verb == "EHLO" else "250 mx.provider.test")
            elif verb == "MAIL":
                if style["phase"] == "mail" and not limits.take(ip, time.time()):
                    log.write(event="deferred", peer=ip, phase="mail")
                    last(style["rate"].format(ip=ip))
                    return
                mail, rcpts = True, []
                send("250 2.1.0 ok")
            elif verb == "RCPT":
                if not mail:
                    send("503 5.5.1 MAIL first")
                    continue
                if style["phase"] == "rcpt" and not rcpts and not limits.take(ip, time.time()):
                    log.write(event="deferred", peer=ip, phase="rcpt")
                    last(style["rate"].format(ip=ip))
                    return
                rcpts.append(text)
                send("250 2.1.5 ok")
            elif verb == "DATA":
                if not rcpts:
                    send("554 5.5.1 no valid recipients")
                    continue
                send("354 go ahead")
                while True:
                    body = f.readline()
                    if not body or body in (b".\r\n", b".\n"):
                        break
                if not body:
                    return
                if style["phase"] == "data_end" and not limits.take(ip, time.time()):
                    log.write(event="deferred", peer=ip, phase="data_end")
                    last(style["rate"].format(ip=ip))
                    return
                if counter["delay"]:
                    time.sleep(counter["delay"])
                with counter["lock"]:
                    counter["n"] += 1
                    n = counter["n"]
                log.write(event="accepted", peer=ip, rcpts=len(rcpts))
                send(f"250 2.0.0 queued as {n}")
                mail, rcpts = False, []
            elif verb == "RSET":
                mail, rcpts = False, []
                send("250 2.0.0 ok")
            elif verb == "NOOP":
                send("250 2.0.0 ok")
            elif verb == "QUIT":
                last("221 2.0.0 bye")
                return
            else:
                send("502 5.5.2 command not recognized")
    except OSError:
        return
    finally:
        if not released:
            limits.disconnect(ip)
        try:
            sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--style", choices=sorted(STYLES), default="microsoft")
    p.add_argument("--rate", type=int, default=0)
    p.add_argument("--connections", type=int, default=0)
    p.add_argument("--log", required=True)
    p.add_argument("--data-delay", type=float, default=0.0, help="seconds before answering a message (a busy provider)")
    p.add_argument("--ready-file")
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(128)
    bound = "%s:%d" % server.getsockname()[:2]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(bound)
        os.rename(tmp, args.ready_file)
    print("ready " + bound, flush=True)
    limits = Limits(args.rate, args.connections)
    log = Log(args.log)
    counter = {"n": 0, "lock": threading.Lock(), "delay": args.data_delay}
    style = STYLES[args.style]
    while True:
        sock, peer = server.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=session, args=(sock, peer, style, limits, log, counter), daemon=True).start()


if __name__ == "__main__":
    main()
