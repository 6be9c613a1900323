//! Injection policy details, end to end: implicit-TLS listeners, the STARTTLS injection guard,
//! inbound connection caps, timeouts, required AUTH, named suppression lists, header edits.

mod support;

use support::{Ember, python, swaks};

fn certificate(dir: &std::path::Path) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("server.pem"), format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem())).unwrap();
}

#[test]
fn implicit_tls_listener_and_the_starttls_injection_guard() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    let config = "\
smtp-listener 127.0.0.1:0
smtp-server-tls-certificate server.pem
<smtp-listener 127.0.0.1:0>
    immediate-tls yes
</smtp-listener>
<source 127.0.0.1>
    always-allow-relaying yes
    allow-starttls yes
</source>
<spool spool>
</spool>
";
    let e = Ember::start_in(dir, config);
    assert_eq!(e.listeners.len(), 2);
    let script = r#"
import socket, ssl, sys
plain, implicit = sys.argv[1], sys.argv[2]
ctx = ssl._create_unverified_context()
def lines(f):
    out = []
    while True:
        l = f.readline().decode()
        out.append(l.strip())
        if len(l) < 4 or l[3] == " ":
            return " | ".join(out)
# Implicit TLS: the greeting arrives inside TLS.
h, p = implicit.rsplit(":", 1)
t = ctx.wrap_socket(socket.create_connection((h, int(p))), server_hostname="localhost")
f = t.makefile("rb")
print("implicit", lines(f), t.version() is not None)
t.close()
# STARTTLS with a command pipelined behind it, in clear: it must not run inside TLS.
h, p = plain.rsplit(":", 1)
s = socket.create_connection((h, int(p)))
f = s.makefile("rb")
lines(f)
s.sendall(b"EHLO a.example\r\n"); lines(f)
s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
print("starttls", lines(f))
t = ctx.wrap_socket(s, server_hostname="localhost")
f = t.makefile("rb")
t.sendall(b"EHLO a.example\r\n"); lines(f)
t.sendall(b"RCPT TO:<b@example.com>\r\n")
print("after", lines(f))
"#;
    let out = python(script, &[e.listeners[0].to_string(), e.listeners[1].to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("implicit 220 "), "{stdout}");
    assert!(stdout.contains("starttls 220 2.0.0 ready to start TLS"), "{stdout}");
    // The pipelined MAIL was discarded: RCPT finds no transaction.
    assert!(stdout.contains("after 503 5.5.1 need MAIL before RCPT"), "{stdout}");
    assert!(e.log_contains("discarding"), "the discard is logged");
}

#[test]
fn connection_cap_and_command_timeout() {
    let config = "\
smtp-listener 127.0.0.1:0
total-max-smtp-in 1
<source 127.0.0.1>
    smtp-command-timeout 1s
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    let script = r#"
import socket, sys, time
h, p = sys.argv[1].rsplit(":", 1)
first = socket.create_connection((h, int(p)))
print("first", first.recv(200).decode().strip())
second = socket.create_connection((h, int(p)))
print("second", second.recv(200).decode().strip())
# The first session says nothing: the 1s command timeout closes it with 421.
first.settimeout(30)
print("idle", first.recv(200).decode().strip())
"#;
    let out = python(script, &[e.smtp().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("first 220 "), "{stdout}");
    assert!(stdout.contains("second 421 4.7.0") && stdout.contains("too many connections"), "{stdout}");
    assert!(stdout.contains("idle 421 4.4.2") && stdout.contains("command timeout"), "{stdout}");
}

#[test]
fn required_auth_named_suppression_lists_and_header_edits() {
    let config = "\
host-name mx.policy.test
smtp-listener 127.0.0.1:0
<address-list do-not-mail>
    address ceo@example.com
    domain competitor.example
    address /^abuse@/
</address-list>
<smtp-user bob>
    password hunter2
</smtp-user>
<source 127.0.0.1>
    always-allow-relaying yes
    require-auth yes
    allow-unencrypted-plain-auth yes
    suppression-lists do-not-mail
    add-message-id-header yes
    add-date-header yes
    hide-message-source yes
    remove-header X-Internal-Trace
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    let server = e.smtp().to_string();
    let out = swaks(&["--server", &server, "--from", "a@example.net", "--to", "b@example.com", "--quit-after", "MAIL"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("530 5.7.0 authentication required"));
    for (rcpt, list) in [
        ("ceo@example.com", true),
        ("x@competitor.example", true),
        ("abuse@isp.example", true),
        ("ok@example.com", false),
    ] {
        let out = swaks(&[
            "--server",
            &server,
            "--auth",
            "PLAIN",
            "--auth-user",
            "bob",
            "--auth-password",
            "hunter2",
            "--from",
            "a@example.net",
            "--to",
            rcpt,
            "--data",
            "Subject: policy\nX-Internal-Trace: secret\n\nbody\n",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let refused = text.contains(&format!("550 5.7.1 recipient is in suppression list \"do-not-mail\": <{rcpt}>"));
        assert_eq!(refused, list, "{rcpt}: {text}");
    }
    let spooled = e.spooled();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let shown = e.cli(&["show", "message", spooled[0]["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    // The first line is the envelope (JSON); the message follows.
    let message = &text[text.find('\n').unwrap() + 1..];
    let header = &message[..message.find("\r\n\r\n").unwrap()];
    assert!(header.contains("Message-ID: <") && header.contains("@mx.policy.test>"), "{header}");
    assert!(header.contains("Date: "), "{header}");
    assert!(!header.contains("X-Internal-Trace"), "{header}");
    // hide-message-source: no client name or address in Received.
    assert!(header.contains("Received: by mx.policy.test (Ember) with ESMTPA"), "{header}");
    assert!(!header.contains("127.0.0.1"), "{header}");
}

#[test]
fn received_stripping_address_qualification_and_relay_addresses() {
    let config = "\
host-name mx.inject.test
smtp-listener 127.0.0.1:0
domain-suffix corp.example
relay-domain corp.example
relay-address vip@outside.example
<source 127.0.0.1>
    remove-received-headers yes
    relay-address /^ops-[a-z]+@partner\\.example$/
</source>
<source 127.0.0.2>
    auto-qualify-domain no
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    let message = "Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
                   Received: from c.example\r\n\tby d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
                   Subject: strip\r\n\r\nbody line\r\nReceived: in the body stays\r\n";
    let rcpts = ["alice", "vip@outside.example", "ops-night@partner.example", "other@outside.example"];
    let out = e.send_with_script("127.0.0.1", "bob", &rcpts, message);
    // Bare local parts are qualified with domain-suffix, in MAIL FROM and RCPT TO.
    assert_eq!(out["mail"][0], 250, "{out}");
    assert!(out["mail"][1].as_str().unwrap().contains("<bob@corp.example>"), "{out}");
    assert_eq!(out["rcpt"]["alice"][0], 250, "{out}");
    assert!(out["rcpt"]["alice"][1].as_str().unwrap().contains("<alice@corp.example>"), "{out}");
    // relay-address: global exact address and the source's regex relay; the domain does not.
    assert_eq!(out["rcpt"]["vip@outside.example"][0], 250, "{out}");
    assert_eq!(out["rcpt"]["ops-night@partner.example"][0], 250, "{out}");
    assert_eq!(out["rcpt"]["other@outside.example"][0], 550, "{out}");
    assert_eq!(out["data"][0], 250, "{out}");

    // Without auto-qualify-domain a bare local part is refused as before; the source-level
    // relay-address does not apply to another source.
    let out = e.send_with_script("127.0.0.2", "bob", &["x@corp.example"], "Subject: no\r\n\r\nx\r\n");
    assert_eq!(out["mail"][0], 501, "{out}");
    let out = e.send_with_script("127.0.0.2", "m@corp.example", &["alice", "ops-night@partner.example"], message);
    assert_eq!(out["rcpt"]["alice"][0], 501, "{out}");
    assert_eq!(out["rcpt"]["ops-night@partner.example"][0], 550, "{out}");

    // One message (one row per recipient), with the qualified sender and the accepted recipients.
    let spooled = e.spooled();
    let mut rows: Vec<(String, String, String)> = spooled
        .iter()
        .map(|m| {
            (m["id"].as_str().unwrap().into(), m["sender"].as_str().unwrap().into(), m["rcpt"].as_str().unwrap().into())
        })
        .collect();
    rows.sort();
    let id = rows[0].0.clone();
    let expected: Vec<(String, String, String)> =
        ["alice@corp.example", "ops-night@partner.example", "vip@outside.example"]
            .iter()
            .map(|r| (id.clone(), "bob@corp.example".to_string(), r.to_string()))
            .collect();
    assert_eq!(rows, expected);
    // remove-received-headers: the incoming Received fields are gone, Ember's own is there,
    // and the body is untouched.
    let message = e.shown_message(&id);
    let (header, body) = message.split_once("\r\n\r\n").unwrap();
    assert_eq!(header.matches("Received:").count(), 1, "{header}");
    assert!(header.starts_with("Received: from reporter.test ([127.0.0.1])"), "{header}");
    assert!(header.contains("by mx.inject.test (Ember)"), "{header}");
    assert!(!header.contains("a.example") && !header.contains("d.example"), "{header}");
    assert!(body.contains("Received: in the body stays"), "{body}");
}

#[test]
fn received_headers_are_kept_by_default() {
    let config = "\
host-name mx.inject.test
smtp-listener 127.0.0.1:0
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    let message = "Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: keep\r\n\r\nx\r\n";
    let out = e.send_with_script("127.0.0.1", "a@example.net", &["b@example.com"], message);
    assert_eq!(out["data"][0], 250, "{out}");
    let spooled = e.spooled();
    let message = e.shown_message(spooled[0]["id"].as_str().unwrap());
    let header = &message[..message.find("\r\n\r\n").unwrap()];
    assert_eq!(header.matches("Received:").count(), 2, "{header}");
    assert!(header.contains("from a.example by b.example"), "{header}");
}
