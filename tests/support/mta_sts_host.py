#!/usr/bin/env python3
"""An MTA-STS policy host for Ember's integration tests (Python 3, standard library only).

Usage:
    mta_sts_host.py --listen IP:PORT --cert PEM --action ACTION --policy FILE --ready-file F

Serves HTTPS with the certificate chain and key in PEM. Every request is logged to stdout as
"GET PATH HOST". ACTION says what GET /.well-known/mta-sts.txt gets:
    ok        200, text/plain, the contents of FILE
    redirect  301 to https://elsewhere.test/.well-known/mta-sts.txt
    huge      200 with a 10 MB body (the policy, then padding lines)
    hang      nothing: the connection stays open, unanswered
Any other path is 404. Once listening it writes IP:PORT to the ready file (renamed into place).
"""

import argparse
import http.server
import os
import ssl
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--action", default="ok")
    ap.add_argument("--policy", required=True)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    with open(args.policy, "rb") as f:
        policy = f.read()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            print("GET %s %s" % (self.path, self.headers.get("Host")), flush=True)
            if self.path != "/.well-known/mta-sts.txt":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if args.action == "hang":
                time.sleep(3600)
                return
            if args.action == "redirect":
                self.send_response(301)
                self.send_header("Location", "https://elsewhere.test/.well-known/mta-sts.txt")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = policy
            if args.action == "huge":
                body = policy + b"x: " + b"y" * (10 * 1024 * 1024) + b"\r\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass

    server = Server((host, int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert)
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%s:%s" % (host, server.server_address[1]))
    os.rename(tmp, args.ready_file)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
