#!/usr/bin/env python3
"""Verifies every DKIM-Signature of a message with dkimpy, as a receiver would, but with the
public keys given by the test instead of DNS (tests never query external DNS).

Usage: dkim_verify.py MESSAGE_FILE RECORDS_JSON
    RECORDS_JSON: {"sel._domainkey.example.com": "v=DKIM1; k=rsa; p=...", ...}
Prints one JSON line: [{"index": i, "d": D, "s": S, "a": A, "h": [..], "t": T|null, "x": X|null,
"ok": BOOL, "error": STR|null}, ...] in header order.
"""

import json
import sys

import dkim


def main():
    message = open(sys.argv[1], "rb").read()
    records = json.load(open(sys.argv[2]))

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.rstrip("."), "").encode()

    d = dkim.DKIM(message)
    sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
    results = []
    for i, raw in enumerate(sigs):
        tags = dkim.util.parse_tag_value(b"".join(raw.split()))
        verifier = dkim.DKIM(message)
        error = None
        try:
            ok = verifier.verify(idx=i, dnsfunc=dnsfunc)
        except Exception as e:  # dkimpy raises for malformed signatures
            ok, error = False, str(e)
        results.append({
            "index": i,
            "d": tags.get(b"d", b"").decode(),
            "s": tags.get(b"s", b"").decode(),
            "a": tags.get(b"a", b"").decode(),
            "i": tags.get(b"i", b"").decode() or None,
            "h": tags.get(b"h", b"").decode().split(":"),
            "t": int(tags[b"t"]) if b"t" in tags else None,
            "x": int(tags[b"x"]) if b"x" in tags else None,
            "c": tags.get(b"c", b"simple/simple").decode(),
            "ok": bool(ok),
            "error": error,
        })
    print(json.dumps(results))


main()
