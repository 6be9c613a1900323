#!/usr/bin/env python3
"""Sends one message with Python's smtplib and reports every reply, for tests that check
refusals per recipient.

Usage: smtp_send.py HOST:PORT SOURCE_IP MAIL_FROM RCPT[,RCPT...] MESSAGE_FILE
Prints one JSON object: {"mail": [code, text], "rcpt": {ADDR: [code, text]}, "data": [code, text] | null}
"""
import json
import smtplib
import sys

host, port = sys.argv[1].rsplit(":", 1)
source, sender, rcpts, path = sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5]
message = open(path, "rb").read()
s = smtplib.SMTP(host, int(port), source_address=(source, 0), timeout=60)
s.ehlo("reporter.test")
out = {"mail": list(s.mail(sender, ["BODY=8BITMIME"])), "rcpt": {}, "data": None}
ok = False
for r in rcpts:
    code, text = s.rcpt(r)
    out["rcpt"][r] = [code, text.decode()]
    ok = ok or code == 250
if ok:
    code, text = s.data(message)
    out["data"] = [code, text.decode()]
s.quit()
out["mail"][1] = out["mail"][1].decode()
print(json.dumps(out))
