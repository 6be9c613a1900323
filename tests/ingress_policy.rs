//! Injection policy details, end to end: implicit-TLS listeners, the STARTTLS injection guard,
//! inbound connection caps, timeouts, required AUTH, named suppression lists, header edits.

use crate::support::{Ember, python, swaks};

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

#[test]
fn aliases_rewrite_recipients_and_broken_auth_clients_get_the_legacy_line() {
    let config = "\
host-name mx.alias.test
smtp-listener 127.0.0.1:0
alias sales@example.com a@x.example,b@y.example
<aliases>
    alias postmaster ops@example.org
</aliases>
<address-list blocked>
    address b@y.example
</address-list>
<smtp-user bob>
    password hunter2
</smtp-user>
<source 127.0.0.1>
    always-allow-relaying yes
    suppression-lists blocked
    allow-unencrypted-plain-auth yes
    broken-auth-clients yes
</source>
<source 127.0.0.2>
    allow-unencrypted-plain-auth yes
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    let out = e.send_with_script(
        "127.0.0.1",
        "a@example.net",
        &["Sales@Example.com", "postmaster@mx.alias.test", "plain@example.com"],
        "Subject: alias\r\n\r\nx\r\n",
    );
    for rcpt in ["Sales@Example.com", "postmaster@mx.alias.test", "plain@example.com"] {
        assert_eq!(out["rcpt"][rcpt][0], 250, "{out}");
    }
    assert_eq!(out["data"][0], 250, "{out}");
    // The aliases are replaced by their targets; the suppressed target is dropped.
    let mut rcpts: Vec<String> = e.spooled().iter().map(|m| m["rcpt"].as_str().unwrap().to_string()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["a@x.example", "ops@example.org", "plain@example.com"]);

    // broken-auth-clients: the legacy AUTH= line follows the standard one, for that source only.
    let ehlo = |source: &str| {
        let script = r#"
import smtplib, sys
h, p = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(h, int(p), source_address=(sys.argv[2], 0))
code, text = s.ehlo("old.client")
print(text.decode())
s.quit()
"#;
        let out = python(script, &[e.smtp().to_string(), source.to_string()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let legacy = ehlo("127.0.0.1");
    assert!(legacy.contains("AUTH PLAIN LOGIN\nAUTH=LOGIN PLAIN"), "{legacy}");
    let modern = ehlo("127.0.0.2");
    assert!(modern.contains("AUTH PLAIN LOGIN") && !modern.contains("AUTH="), "{modern}");
}

/// A CA (`NAME-ca.pem`) and a client certificate it signed (`NAME-client.pem`, with its key).
fn client_ca(dir: &std::path::Path, name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![format!("{name}.client.test")]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-client.pem")), format!("{}{}", client.pem(), key.serialize_pem())).unwrap();
}

#[test]
fn listener_tls_versions_and_client_certificates_verified_against_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    client_ca(dir.path(), "good");
    client_ca(dir.path(), "rogue");
    let config = "\
smtp-listener 127.0.0.1:0 tls=yes
smtp-server-tls-certificate server.pem
smtp-server-tls-ca-file good-ca.pem
<smtp-listener 127.0.0.1:0>
    immediate-tls yes
    tls-allow-tlsv1.2 no
    tls-ca-file rogue-ca.pem
</smtp-listener>
<spool spool>
</spool>
";
    let e = Ember::start_in(dir, config);
    let script = r#"
import socket, ssl, sys
def attempt(addr, tls12, cert):
    ctx = ssl._create_unverified_context()
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert != "-":
        ctx.load_cert_chain(cert)
    h, p = addr.rsplit(":", 1)
    try:
        t = ctx.wrap_socket(socket.create_connection((h, int(p)), timeout=20), server_hostname="localhost")
        f = t.makefile("rb")
        f.readline()
        t.sendall(b"EHLO client.test\r\n")
        line = f.readline().decode()
        return "ok " + t.version() if line.startswith("250") else "fail " + line
    except (ssl.SSLError, OSError) as e:
        return "fail"
server, strict, good, rogue = sys.argv[1:5]
print("global-tls12-nocert", attempt(server, True, "-"))
print("global-good", attempt(server, False, good))
print("global-rogue", attempt(server, False, rogue))
print("strict-tls12", attempt(strict, True, "-"))
print("strict-tls13", attempt(strict, False, "-"))
print("strict-good", attempt(strict, False, good))
print("strict-rogue", attempt(strict, False, rogue))
"#;
    let args = [
        e.listeners[0].to_string(),
        e.listeners[1].to_string(),
        e.path("good-client.pem").display().to_string(),
        e.path("rogue-client.pem").display().to_string(),
    ];
    let out = python(script, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // Server-wide: TLS 1.2 allowed, a certificate is optional, but one sent must chain to the CA.
    assert!(stdout.contains("global-tls12-nocert ok TLSv1.2"), "{stdout}");
    assert!(stdout.contains("global-good ok TLSv1.3"), "{stdout}");
    assert!(stdout.contains("global-rogue fail"), "{stdout}");
    // The listener block overrides both: TLS 1.3 only, and its own CA.
    assert!(stdout.contains("strict-tls12 fail"), "{stdout}");
    assert!(stdout.contains("strict-tls13 ok TLSv1.3"), "{stdout}");
    assert!(stdout.contains("strict-good fail"), "{stdout}");
    assert!(stdout.contains("strict-rogue ok TLSv1.3"), "{stdout}");
}

#[test]
fn source_groups_cap_their_connections_and_keep_reserved_slots() {
    let config = "\
smtp-listener 127.0.0.1:0
total-max-smtp-in 3
<source-group vip>
    reserved-smtp-in 1
</source-group>
<source-group small>
    max-smtp-in 1
</source-group>
<source 127.0.0.2>
    source-group vip
</source>
<source 127.0.0.3>
    source-group small
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    // Each connection is kept open (a held slot) and its first reply printed.
    let script = r#"
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
held = []
for label, ip in [("small1", "127.0.0.3"), ("small2", "127.0.0.3"), ("other1", "127.0.0.1"),
                  ("other2", "127.0.0.1"), ("vip1", "127.0.0.2"), ("vip2", "127.0.0.2")]:
    s = socket.create_connection((h, int(p)), source_address=(ip, 0), timeout=20)
    held.append(s)
    print(label, s.recv(300).decode().strip())
"#;
    let out = python(script, &[e.smtp().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("small1 220 "), "{stdout}");
    assert!(stdout.contains("small2 421 4.7.0") && stdout.contains("source-group small (max-smtp-in 1)"), "{stdout}");
    assert!(stdout.contains("other1 220 "), "{stdout}");
    // One slot is left, and it is vip's: another client is refused, vip gets it.
    assert!(stdout.contains("other2 421 4.7.0") && stdout.contains("(the free ones are reserved)"), "{stdout}");
    assert!(stdout.contains("vip1 220 "), "{stdout}");
    // Then the global cap holds for everyone.
    let vip2 = stdout.lines().find(|l| l.starts_with("vip2 ")).unwrap();
    assert!(vip2.starts_with("vip2 421 4.7.0") && vip2.ends_with("too many connections, try again later"), "{stdout}");
}

#[test]
fn run_as_root_no_drops_to_the_spool_owner_after_binding() {
    let dir = tempfile::tempdir().unwrap();
    // The daemon must reach its files as `nobody`; the spool directory says who it runs as.
    std::process::Command::new("chmod").arg("755").arg(dir.path()).status().unwrap();
    std::fs::create_dir(dir.path().join("spool")).unwrap();
    let chown = std::process::Command::new("chown").arg("65534:65534").arg(dir.path().join("spool")).status().unwrap();
    assert!(chown.success());
    let config = "\
run-as-root no
smtp-listener 127.0.0.1:0
<source 127.0.0.1>
    always-allow-relaying yes
</source>
<spool spool>
</spool>
";
    let e = Ember::start_in(dir, config);
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.pid())).unwrap();
    let ids =
        |key: &str| status.lines().find(|l| l.starts_with(key)).unwrap().split_whitespace().skip(1).collect::<Vec<_>>();
    assert_eq!(ids("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(ids("Gid:"), ["65534"; 4], "{status}");
    assert_eq!(ids("Groups:"), ["65534"], "{status}");
    // Still a working MTA: the message is stored by the unprivileged daemon.
    let out = e.send_with_script("127.0.0.1", "a@example.net", &["b@example.com"], "Subject: x\r\n\r\nx\r\n");
    assert_eq!(out["data"][0], 250, "{out}");
    assert_eq!(e.spooled().len(), 1);
}

#[test]
fn a_source_rewrite_list_rewrites_mail_from_and_the_from_domain_on_receipt() {
    let config = "\
smtp-listener 127.0.0.1:0
<rewrite-list brand>
    mail-from *@old.example *@new.example
    from-domain [*.]old.example new.example
</rewrite-list>
<source 127.0.0.1>
    always-allow-relaying yes
    rewrite-list brand
</source>
<source 127.0.0.2>
    always-allow-relaying yes
</source>
<spool spool>
</spool>
";
    let e = Ember::start(config);
    let message = "From: Shop <news@mail.old.example>\r\nSubject: rewrite\r\n\r\nFrom: a@old.example stays\r\n";
    let out = e.send_with_script("127.0.0.1", "bounces@old.example", &["a@example.com"], message);
    assert_eq!(out["data"][0], 250, "{out}");
    let out = e.send_with_script("127.0.0.2", "bounces@old.example", &["b@example.com"], message);
    assert_eq!(out["data"][0], 250, "{out}");
    let spooled = e.spooled();
    let row = |rcpt: &str| spooled.iter().find(|m| m["rcpt"] == rcpt).unwrap().clone();
    let rewritten = row("a@example.com");
    assert_eq!(rewritten["sender"], "bounces@new.example");
    let text = e.shown_message(rewritten["id"].as_str().unwrap());
    assert!(text.contains("\r\nFrom: Shop <news@new.example>\r\n"), "{text}");
    assert!(text.contains("From: a@old.example stays"), "the body is untouched: {text}");
    // Another source has no list: nothing changes.
    let kept = row("b@example.com");
    assert_eq!(kept["sender"], "bounces@old.example");
    assert!(e.shown_message(kept["id"].as_str().unwrap()).contains("From: Shop <news@mail.old.example>"));
}

#[test]
fn a_certificate_user_is_authenticated_by_its_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    client_ca(dir.path(), "good");
    let config = "\
smtp-listener 127.0.0.1:0 tls=yes
smtp-server-tls-certificate server.pem
smtp-server-tls-ca-file good-ca.pem
<smtp-user good.client.test>
    authentication-method certificate
</smtp-user>
<smtp-user alice>
    password pw
</smtp-user>
<source 0/0>
    require-auth yes
    always-allow-relaying yes
</source>
<spool spool>
</spool>
";
    let e = Ember::start_in(dir, config);
    let script = r#"
import base64, socket, ssl, sys
def session(addr, cert, auth):
    ctx = ssl._create_unverified_context()
    if cert != "-":
        ctx.load_cert_chain(cert)
    h, p = addr.rsplit(":", 1)
    t = ctx.wrap_socket(socket.create_connection((h, int(p)), timeout=20), server_hostname="localhost")
    f = t.makefile("rb")
    def reply():
        out = []
        while True:
            l = f.readline().decode()
            out.append(l.strip())
            if len(l) < 4 or l[3] == " ":
                return " | ".join(out)
    reply()
    t.sendall(b"EHLO client.test\r\n"); ehlo = reply()
    if auth:
        t.sendall(b"AUTH PLAIN " + base64.b64encode(auth.encode()) + b"\r\n"); print("auth", reply())
    t.sendall(b"MAIL FROM:<a@example.net>\r\n")
    return ("AUTH " in ehlo), reply()
addr, good = sys.argv[1:3]
print("cert", session(addr, good, None))
print("nocert", session(addr, "-", None))
print("password", session(addr, "-", "\0good.client.test\0x"))
print("alice", session(addr, "-", "\0alice\0pw"))
"#;
    let out = python(script, &[e.listeners[0].to_string(), e.path("good-client.pem").display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // The certificate authenticates: AUTH is no longer offered and MAIL is accepted.
    assert!(stdout.contains("cert (False, '250 2.1.0"), "{stdout}");
    assert!(stdout.contains("nocert (True, '530 5.7.0 authentication required')"), "{stdout}");
    // A certificate user has no password to AUTH with; password users are unaffected.
    assert!(stdout.contains("auth 535 5.7.8"), "{stdout}");
    assert!(stdout.contains("password (True, '530 5.7.0"), "{stdout}");
    assert!(stdout.contains("auth 235 2.7.0") && stdout.contains("alice (True, '250 2.1.0"), "{stdout}");
}
