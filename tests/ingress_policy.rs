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
