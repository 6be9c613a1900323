#!/usr/bin/env python3
"""A scripted SMTP receiver for Ember's integration tests (Python 3.11, standard library only).

Usage:
    receiver.py --listen 127.0.0.1:PORT --script FILE.json --log FILE.jsonl
                [--tls-cert PEM] [--no-esmtp] [--ready-file F]

PORT may be 0: the receiver picks a free port. Once listening it prints "ready HOST:PORT" on
stdout and, with --ready-file, writes "HOST:PORT" to that file (atomically: a temporary file
renamed), so tests wait for either and never sleep. --tls-cert names one PEM file with the
certificate chain and its key; without it STARTTLS is not offered. --no-esmtp answers EHLO with
502 (clients must fall back to HELO).

Script (JSON object; every key is optional):

    REPLY is a string such as "250 2.1.5 ok" ("\\n" in it makes a multi-line reply: each line is
    sent as given, so write the full "250-..." / "250 ..." lines), or a list of such strings used
    in turn: the first use (counted over all connections) gets the first entry, the next use the
    second, and the last entry repeats.

    "hostname"   name in the default replies                          default "mx.test"
    "greeting"   REPLY on connect                                     "220 mx.test ESMTP receiver.py"
    "ehlo"       REPLY: the first line of a 250 EHLO reply, or a refusal ("502 5.5.1 no")
                                                                      "250 mx.test"
    "extensions" keywords offered after EHLO, e.g. ["PIPELINING", "SIZE 10485760", "AUTH PLAIN LOGIN"]
                 default: PIPELINING, SIZE 52428800, 8BITMIME, ENHANCEDSTATUSCODES, DSN, SMTPUTF8,
                 and STARTTLS when --tls-cert is given
    "extensions_after_tls"  keywords offered after STARTTLS           "extensions" without STARTTLS
    "helo"       REPLY to HELO                                        "250 mx.test"
    "starttls"   REPLY to STARTTLS (the handshake follows a 220)      "220 2.0.0 ready to start TLS"
    "auth"       {"user": U, "password": P}: the only credentials accepted (any when absent);
                 PLAIN (with or without initial response) and LOGIN are understood
    "auth_ok" / "auth_fail"  REPLY                                    "235 2.7.0 ok" / "535 5.7.8 bad credentials"
    "mail"       REPLY to MAIL                                        "250 2.1.0 ok"
    "rcpt"       REPLY to RCPT for addresses no rule matches          "250 2.1.5 ok"
    "rcpt_rules" [{"address": "a@x.test", "replies": REPLY}, {"regex": "^temp", "replies": REPLY}]
                 the first matching rule answers (address: exact, case-insensitive; regex: search);
                 each rule has its own turn counter, so ["451 4.3.0 try later", "250 ok"] refuses
                 the first attempt and accepts the next
    "data"       REPLY to DATA (the body is read only after a 354)    "354 go ahead"
    "data_end"   REPLY to the end of data and to BDAT ... LAST        "250 2.0.0 queued as N"
    "bdat"       REPLY to a BDAT chunk that is not LAST               "250 2.0.0 N octets received"
    "rset", "noop", "quit"  REPLY                                     "250 2.0.0 ok", ..., "221 2.0.0 bye"
    "data_end_delay"  seconds to wait, after logging a message, before answering its end of data
                 (a slow server: the transaction is in flight while the test acts)  0
    "tls_min_version" / "tls_max_version"  "TLSv1.2" or "TLSv1.3": the versions the handshake allows
    "tls_client_ca"  PEM file: ask for a client certificate, which must chain to it (none is fine)
    "idle_timeout" seconds a client may stay idle between transactions; then "421" and close
    "misbehave"  {PHASE: ACTION, ...} or {PHASE: [ACTION or null, ...]} (in turn, like REPLY)
                 PHASE: connect (instead of the greeting), ehlo, helo, starttls, tls (instead of the
                 handshake), auth, mail, rcpt, data, data_end, bdat, rset, quit
                 ACTION: "hang"     answer nothing and read nothing more; keep the socket open
                         "drop"     close the connection without answering
                         "huge"     a 200 KB multi-line reply (2000 lines), then a last line
                         "endless"  continuation lines until the client goes away (cap 1 GB)
                         "endless_line"  one line that never ends, until the client goes away
                         "slow"     wait 0.3 s, then answer as usual (a busy receiver)
                         "garbage"  a line that is not SMTP (for "tls": bytes that are not TLS,
                                    sent after the client's first handshake message)
                         "inject"   (starttls only) a second reply in the same write as the 220,
                                    as a response injection would; the handshake follows

Semantics kept from real servers: RCPT before an accepted MAIL gets 503, DATA without an
accepted RCPT gets 554, RSET clears the transaction, text after STARTTLS's 220 that arrived
before the handshake is discarded.

Log (one JSON object per line, written and flushed before the reply that follows it is sent,
so a client that has read a reply can read the log entry):
    {"event": "connect", "conn": N, "peer": IP, "port": P}
    {"event": "command", "conn": N, "line": "...", "tls": BOOL, "batch": K}
        batch: the number of the network read the line arrived in (commands pipelined in one
        write share it)
    {"event": "tls", "conn": N, "version": "TLSv1.3", "cipher": "...", "reused": BOOL,
     "client_cn": CN of a verified client certificate or null}
    {"event": "auth", "conn": N, "mechanism": M, "user": U, "ok": BOOL, "tls": BOOL}
    {"event": "message", "conn": N, "peer": IP, "ehlo": NAME, "hello": "EHLO"|"HELO", "tls": BOOL,
     "auth_user": U|null, "mail_from": ADDR, "mail_params": "...", "rcpts": [ADDR...],
     "rcpt_params": ["..."], "via": "DATA"|"BDAT", "size": N, "data": TEXT, "reply": "..."}
        data: the message as received (dot-stuffing undone), decoded as UTF-8 with replacement
    {"event": "misbehave", "conn": N, "phase": PHASE, "action": ACTION}
    {"event": "close", "conn": N}
    Every entry also has "t": the wall-clock time in seconds.
"""

import argparse
import base64
import json
import os
import re
import socket
import ssl
import sys
import threading
import time

MAX_LINE = 1 << 20


class Script:
    def __init__(self, data, tls_available, no_esmtp):
        self.data = data
        self.host = data.get("hostname", "mx.test")
        self.no_esmtp = no_esmtp
        self.tls_available = tls_available
        self.counters = {}
        self.lock = threading.Lock()
        default_ext = ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN", "SMTPUTF8"]
        if tls_available:
            default_ext.append("STARTTLS")
        self.extensions = data.get("extensions", default_ext)
        self.extensions_after_tls = data.get(
            "extensions_after_tls", [e for e in self.extensions if e.upper() != "STARTTLS"]
        )
        self.rules = []
        for rule in data.get("rcpt_rules", []):
            if "address" in rule:
                addr = rule["address"].lower()
                self.rules.append((lambda a, addr=addr: a.lower() == addr, rule["replies"]))
            else:
                rx = re.compile(rule["regex"])
                self.rules.append((lambda a, rx=rx: rx.search(a) is not None, rule["replies"]))

    def turn(self, key, value):
        """The next entry of a value that may be a list used in turn (the last repeats)."""
        if not isinstance(value, list):
            return value
        if not value:
            return None
        with self.lock:
            n = self.counters.get(key, 0)
            self.counters[key] = n + 1
        return value[min(n, len(value) - 1)]

    def next_message(self):
        with self.lock:
            self.messages = getattr(self, "messages", 0) + 1
            return self.messages

    def reply(self, key, default):
        return self.turn(key, self.data.get(key, default))

    def rcpt_reply(self, address):
        for i, (matches, replies) in enumerate(self.rules):
            if matches(address):
                return self.turn(("rule", i), replies)
        return self.reply("rcpt", "250 2.1.5 ok")

    def misbehaviour(self, phase):
        value = self.data.get("misbehave", {}).get(phase)
        return self.turn(("misbehave", phase), value)


class Log:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, **event):
        # Wall-clock seconds, so tests can measure rates and overlapping connections.
        event["t"] = time.time()
        line = json.dumps(event, ensure_ascii=False)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()


class Dropped(Exception):
    """The session ends here (the client left, or the script says drop)."""


class Session:
    def __init__(self, sock, peer, conn_id, script, log, tls_context):
        self.sock = sock
        self.peer = peer
        self.id = conn_id
        self.script = script
        self.log = log
        self.tls_context = tls_context
        self.buf = b""
        self.batch = 0
        self.tls = False
        self.hello = None
        self.ehlo_name = None
        self.auth_user = None
        self.reset()

    def reset(self):
        self.mail_from = None
        self.mail_params = ""
        self.rcpts = []
        self.rcpt_params = []

    # --- wire ---------------------------------------------------------------------------------
    def recv_more(self):
        data = self.sock.recv(65536)
        if not data:
            raise Dropped()
        self.batch += 1
        self.buf += data

    def read_line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise Dropped()
            self.recv_more()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, text):
        lines = text.split("\n")
        self.sock.sendall("".join(line.rstrip("\r") + "\r\n" for line in lines).encode("utf-8"))

    # --- misbehaviour -------------------------------------------------------------------------
    def misbehave(self, phase, code="250"):
        """Acts out the script's misbehaviour for this phase; True when the phase is handled."""
        action = self.script.misbehaviour(phase)
        if not action:
            return False
        self.log.write(event="misbehave", conn=self.id, phase=phase, action=action)
        if action == "hang":
            threading.Event().wait()
        if action == "slow":
            time.sleep(0.3)
            return False
        if action == "drop":
            raise Dropped()
        if action == "garbage":
            self.sock.sendall(b"this is not an SMTP reply\r\n")
            return True
        if action == "huge":
            line = f"{code}-" + "x" * 96 + "\r\n"
            self.sock.sendall(line.encode() * 2000 + f"{code} end\r\n".encode())
            return True
        if action in ("endless", "endless_line"):
            if action == "endless":
                block = (f"{code}-" + "x" * 96 + "\r\n").encode() * 100
            else:
                self.sock.sendall(f"{code} ".encode())
                block = b"x" * 10000
            sent = 0
            while sent < (1 << 30):
                self.sock.sendall(block)
                sent += len(block)
            raise Dropped()
        raise SystemExit(f"unknown misbehaviour {action!r}")

    # --- session ------------------------------------------------------------------------------
    def run(self):
        self.log.write(event="connect", conn=self.id, peer=self.peer[0], port=self.peer[1])
        if not self.misbehave("connect", "220"):
            self.send(self.script.reply("greeting", f"220 {self.script.host} ESMTP receiver.py"))
        idle = self.script.data.get("idle_timeout")
        while True:
            if idle and self.mail_from is None:
                # Between transactions: hang up on a client that stays idle too long.
                self.sock.settimeout(idle)
            try:
                line = self.read_line()
            except (socket.timeout, TimeoutError):
                self.log.write(event="idle_close", conn=self.id)
                self.send("421 4.4.2 idle too long, closing")
                raise Dropped()
            self.sock.settimeout(None)
            text = line.decode("utf-8", "replace")
            self.log.write(event="command", conn=self.id, line=text, tls=self.tls, batch=self.batch)
            verb = text.split(" ", 1)[0].upper()
            handler = getattr(self, "cmd_" + verb.lower(), None) if verb.isalpha() else None
            if handler is None:
                self.send("500 5.5.2 command not recognized")
                continue
            if handler(text) == "quit":
                return

    def cmd_ehlo(self, text):
        if self.misbehave("ehlo"):
            return
        if self.script.no_esmtp:
            self.send("502 5.5.1 EHLO not supported")
            return
        first = self.script.reply("ehlo", f"250 {self.script.host}")
        if not first.startswith("250"):
            self.send(first)
            return
        self.hello, self.ehlo_name = "EHLO", text[5:].strip()
        self.reset()
        ext = self.script.extensions_after_tls if self.tls else self.script.extensions
        lines = [first[4:]] + list(ext)
        self.send("\n".join(("250 " if i == len(lines) - 1 else "250-") + l for i, l in enumerate(lines)))

    def cmd_helo(self, text):
        if self.misbehave("helo"):
            return
        reply = self.script.reply("helo", f"250 {self.script.host}")
        if reply.startswith("250"):
            self.hello, self.ehlo_name = "HELO", text[5:].strip()
            self.reset()
        self.send(reply)

    def cmd_starttls(self, text):
        inject = self.script.data.get("misbehave", {}).get("starttls") == "inject"
        if not inject and self.misbehave("starttls"):
            return
        if self.tls or self.tls_context is None:
            self.send("454 4.7.0 TLS not available")
            return
        reply = self.script.reply("starttls", "220 2.0.0 ready to start TLS")
        if inject:
            # A response injection: a plaintext reply right behind the 220, in the same write.
            self.log.write(event="misbehave", conn=self.id, phase="starttls", action="inject")
            reply += "\n250 2.0.0 injected"
        self.send(reply)
        if not reply.startswith("220"):
            return
        self.buf = b""
        action = self.script.misbehaviour("tls")
        if action:
            self.log.write(event="misbehave", conn=self.id, phase="tls", action=action)
            if action == "hang":
                threading.Event().wait()
            if action == "garbage":
                self.sock.recv(65536)  # the ClientHello, so the client is mid-handshake
                self.sock.sendall(b"this is not TLS\r\n" * 4)
            raise Dropped()
        try:
            self.sock = self.tls_context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log.write(event="tls_failed", conn=self.id, error=str(e))
            raise Dropped()
        self.tls = True
        self.hello = None
        self.reset()
        peer = self.sock.getpeercert() or {}
        subject = dict(x[0] for x in peer.get("subject", ()))
        self.log.write(event="tls", conn=self.id, version=self.sock.version(), cipher=self.sock.cipher()[0],
                       reused=self.sock.session_reused, client_cn=subject.get("commonName"))

    def cmd_auth(self, text):
        if self.misbehave("auth"):
            return
        words = text.split()
        mechanism = words[1].upper() if len(words) > 1 else ""
        try:
            if mechanism == "PLAIN":
                if len(words) > 2:
                    token = words[2]
                else:
                    self.send("334 ")
                    token = self.read_line().decode()
                if token == "*":
                    self.send("501 5.0.0 authentication cancelled")
                    return
                _, user, password = base64.b64decode(token).decode().split("\0")
            elif mechanism == "LOGIN":
                self.send("334 VXNlcm5hbWU6")
                user = self.read_line().decode()
                if user == "*":
                    self.send("501 5.0.0 authentication cancelled")
                    return
                self.send("334 UGFzc3dvcmQ6")
                password = self.read_line().decode()
                user, password = base64.b64decode(user).decode(), base64.b64decode(password).decode()
            else:
                self.send("504 5.5.4 mechanism not supported")
                return
        except (ValueError, UnicodeDecodeError):
            self.send("501 5.5.2 cannot decode response")
            return
        wanted = self.script.data.get("auth")
        ok = wanted is None or (wanted.get("user") == user and wanted.get("password") == password)
        self.log.write(event="auth", conn=self.id, mechanism=mechanism, user=user, ok=ok, tls=self.tls)
        if ok:
            self.auth_user = user
            self.send(self.script.reply("auth_ok", "235 2.7.0 ok"))
        else:
            self.send(self.script.reply("auth_fail", "535 5.7.8 bad credentials"))

    def cmd_mail(self, text):
        if self.misbehave("mail"):
            return
        m = re.match(r"(?i)MAIL FROM:\s*<([^>]*)>\s*(.*)", text)
        if not m:
            self.send("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        reply = self.script.reply("mail", "250 2.1.0 ok")
        if reply.startswith("2"):
            self.reset()
            self.mail_from, self.mail_params = m.group(1), m.group(2)
        self.send(reply)

    def cmd_rcpt(self, text):
        if self.misbehave("rcpt"):
            return
        m = re.match(r"(?i)RCPT TO:\s*<([^>]*)>\s*(.*)", text)
        if not m:
            self.send("501 5.5.4 syntax: RCPT TO:<address>")
            return
        if self.mail_from is None:
            self.send("503 5.5.1 need MAIL first")
            return
        reply = self.script.rcpt_reply(m.group(1))
        if reply.startswith("2"):
            self.rcpts.append(m.group(1))
            self.rcpt_params.append(m.group(2))
        self.send(reply)

    def cmd_data(self, text):
        if self.misbehave("data", "354"):
            return
        if not self.rcpts:
            self.send("554 5.5.1 no valid recipients")
            return
        reply = self.script.reply("data", "354 go ahead")
        self.send(reply)
        if not reply.startswith("354"):
            return
        lines = []
        while True:
            line = self.read_line()
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        body = b"".join(l + b"\r\n" for l in lines)
        self.finish_message(body, "DATA")

    def cmd_bdat(self, text):
        words = text.split()
        try:
            size = int(words[1])
        except (IndexError, ValueError):
            self.send("501 5.5.4 syntax: BDAT size [LAST]")
            return
        last = len(words) > 2 and words[2].upper() == "LAST"
        chunk = self.read_exact(size)
        self.bdat_body = getattr(self, "bdat_body", b"") + chunk
        if not last:
            if self.misbehave("bdat"):
                return
            self.send(self.script.reply("bdat", f"250 2.0.0 {size} octets received"))
            return
        body, self.bdat_body = self.bdat_body, b""
        if not self.rcpts:
            self.send("554 5.5.1 no valid recipients")
            return
        self.finish_message(body, "BDAT")

    def finish_message(self, body, via):
        if self.misbehave("data_end"):
            self.reset()
            return
        n = self.script.next_message()
        reply = self.script.reply("data_end", f"250 2.0.0 queued as {n}")
        self.log.write(
            event="message", conn=self.id, peer=self.peer[0], ehlo=self.ehlo_name, hello=self.hello,
            tls=self.tls, auth_user=self.auth_user, mail_from=self.mail_from, mail_params=self.mail_params,
            rcpts=self.rcpts, rcpt_params=self.rcpt_params, via=via, size=len(body),
            data=body.decode("utf-8", "replace"), reply=reply,
        )
        self.reset()
        delay = self.script.data.get("data_end_delay", 0)
        if delay:
            time.sleep(delay)
        self.send(reply)

    def cmd_rset(self, text):
        if self.misbehave("rset"):
            return
        self.reset()
        self.bdat_body = b""
        self.send(self.script.reply("rset", "250 2.0.0 ok"))

    def cmd_noop(self, text):
        self.send(self.script.reply("noop", "250 2.0.0 ok"))

    def cmd_quit(self, text):
        if self.misbehave("quit"):
            return "quit"
        self.send(self.script.reply("quit", "221 2.0.0 bye"))
        return "quit"


def serve(args):
    with open(args.script, encoding="utf-8") as f:
        script_data = json.load(f)
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert)
        # TLS knobs of the script: the versions offered and the CA client certificates must
        # chain to (a client may still send none).
        versions = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
        if "tls_min_version" in script_data:
            tls_context.minimum_version = versions[script_data["tls_min_version"]]
        if "tls_max_version" in script_data:
            tls_context.maximum_version = versions[script_data["tls_max_version"]]
        if "tls_client_ca" in script_data:
            tls_context.verify_mode = ssl.CERT_OPTIONAL
            tls_context.load_verify_locations(script_data["tls_client_ca"])
    script = Script(script_data, tls_context is not None, args.no_esmtp)
    log = Log(args.log)
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(128)
    bound = listener.getsockname()
    address = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(address + "\n")
        os.rename(tmp, args.ready_file)
    print(f"ready {address}", flush=True)

    conn_id = 0
    while True:
        sock, peer = listener.accept()
        conn_id += 1
        session = Session(sock, peer, conn_id, script, log, tls_context)
        threading.Thread(target=run_session, args=(session,), daemon=True).start()


def run_session(session):
    try:
        session.run()
    except (Dropped, OSError, ssl.SSLError):
        pass
    finally:
        session.log.write(event="close", conn=session.id)
        try:
            session.sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description="Scripted SMTP receiver for tests (see the module docstring).")
    p.add_argument("--listen", required=True, help="HOST:PORT (PORT 0 picks a free port)")
    p.add_argument("--script", required=True, help="JSON script")
    p.add_argument("--log", required=True, help="JSON-lines log to append to")
    p.add_argument("--tls-cert", help="PEM with certificate chain and key; enables STARTTLS")
    p.add_argument("--no-esmtp", action="store_true", help="answer EHLO with 502")
    p.add_argument("--ready-file", help="written with HOST:PORT once listening")
    args = p.parse_args()
    try:
        serve(args)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
