#!/usr/bin/env python3
"""An HTTP receiver for Ember's event-sink tests (Python 3, standard library only).

Usage:
    webhook.py --listen 127.0.0.1:PORT --log FILE.jsonl [--mode-file FILE] [--no-bodies]

PORT may be 0: a free port is picked. Once listening it prints "ready HOST:PORT" on stdout.
Every request is logged as one JSON line: {"path", "headers": {name: value}, "body", "status"}
(status is what the receiver answered, or "hang" / "garbage"); with --no-bodies the body is
left out of the log (benchmarks: the receiver then costs the machine less). The mode file, read on each
request, says how to answer (absent or empty: "ok"):

    ok       200
    fail     500 Internal Server Error
    reject   400 Bad Request
    hang     read the request, then answer nothing for 60 s (the client must time out)
    garbage  write bytes that are not HTTP and close
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--mode-file")
    p.add_argument("--no-bodies", action="store_true")
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)

    def mode():
        if not args.mode_file:
            return "ok"
        try:
            with open(args.mode_file) as f:
                return f.read().strip() or "ok"
        except FileNotFoundError:
            return "ok"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle holds the body until the
        # client acknowledges the headers, which it delays by up to 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            body = "" if args.no_bodies else body.decode("utf-8", "replace")
            m = mode()
            status = {"ok": 200, "fail": 500, "reject": 400}.get(m, m)
            entry = {"path": self.path, "headers": {k: v for k, v in self.headers.items()}, "body": body, "status": status}
            with LOCK:
                with open(args.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                    # Flushed (a killed receiver loses nothing), not fsynced: the receiver
                    # would otherwise compete for the disk with the MTA it measures.
                    f.flush()
            if m == "hang":
                time.sleep(60)
                self.close_connection = True
                return
            if m == "garbage":
                self.wfile.write(b"\x00\x01 this is not HTTP\r\n\r\n")
                self.wfile.flush()
                self.close_connection = True
                return
            text = b"ok" if status == 200 else b"no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    server = Server((host, int(port)), Handler)
    print("ready %s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
