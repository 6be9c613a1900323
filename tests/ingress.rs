//! Injection, end to end: the real daemon, real clients (swaks, Python's smtplib and raw
//! pipelined sockets), real TLS with a certificate made by the test, and the spool read back
//! with `ember list` / `ember show message`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{Ember, python, swaks};

fn certificate(dir: &std::path::Path) {
    let ck = rcgen::generate_simple_self_signed(vec!["mx.ember.test".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("server.pem"), format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem())).unwrap();
}

const CONFIG: &str = "\
host-name mx.ember.test
smtp-listener 127.0.0.1:0
smtp-server-tls-certificate server.pem
<smtp-user alice>
    password s3cret
</smtp-user>
<source 127.0.0.1>
    always-allow-relaying yes
    process-x-virtual-mta yes
    process-x-job yes
    allow-starttls yes
    max-message-size 1M
    smtp-max-auth-failure-rate 4/m
</source>
<source 127.0.0.6>
    smtp-service no
</source>
<source 127.0.0.7>
    always-allow-relaying yes
    max-rcpt-per-message 2
</source>
<virtual-mta vmta1>
    smtp-source-host 127.0.0.2 v1.ember.test
</virtual-mta>
<virtual-mta-pool pool1>
    virtual-mta vmta1
</virtual-mta-pool>
<domain *>
    suppress-file suppressed.txt
</domain>
<acct-file acct.csv>
    records r,b
</acct-file>
<spool spool>
</spool>
";

/// An Ember on CONFIG, with its certificate and suppression file in place.
fn ember() -> Ember {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    std::fs::write(dir.path().join("suppressed.txt"), "complained@example.com\n@blocked.example\n").unwrap();
    Ember::start_in(dir, CONFIG)
}

fn port(e: &Ember) -> String {
    e.smtp().to_string()
}

/// A raw SMTP client: writes exactly what the test says (pipelined or not) and reads replies.
struct Raw {
    stream: TcpStream,
    pending: String,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_from(addr, None)
    }

    fn connect_from(addr: SocketAddr, local: Option<&str>) -> Raw {
        let stream = match local {
            None => TcpStream::connect(addr).unwrap(),
            Some(ip) => connect_from(ip, addr),
        };
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut raw = Raw { stream, pending: String::new() };
        let greeting = raw.reply();
        assert!(greeting.starts_with("220 ") || greeting.starts_with("521 "), "{greeting}");
        raw.pending = greeting;
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one complete (possibly multi-line) reply.
    fn reply(&mut self) -> String {
        let mut text = String::new();
        let mut buf = [0u8; 1];
        let mut line = Vec::new();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return text + &String::from_utf8_lossy(&line),
                Ok(_) => {}
                Err(e) => panic!("reading a reply: {e}; so far {text:?}"),
            }
            line.push(buf[0]);
            if buf[0] == b'\n' {
                let l = String::from_utf8_lossy(&line).to_string();
                text.push_str(&l);
                let last = l.len() >= 4 && l.as_bytes()[3] == b' ';
                line.clear();
                if last {
                    return text;
                }
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

/// Connects from a chosen local address (127.0.0.x stand in for other client hosts).
fn connect_from(local_ip: &str, to: SocketAddr) -> TcpStream {
    let sock = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{local_ip}:0").parse().unwrap()).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    });
    sock.set_nonblocking(false).unwrap();
    sock
}

fn message(body: &str) -> String {
    format!("From: a@example.net\r\nTo: b@example.com\r\nSubject: test\r\n\r\n{body}\r\n")
}

#[test]
fn swaks_with_pipelining_starttls_and_auth_plain_and_login() {
    let e = ember();
    for auth in ["PLAIN", "LOGIN"] {
        let out = swaks(&[
            "--server",
            &port(&e),
            "--from",
            "sender@example.net",
            "--to",
            "rcpt@example.com",
            "--pipeline",
            "--tls",
            "--auth",
            auth,
            "--auth-user",
            "alice",
            "--auth-password",
            "s3cret",
            "--header",
            "X-Job: job-42",
            "--h-Subject",
            &format!("auth {auth}"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "swaks {auth}: {text}");
        assert!(text.contains("235 2.7.0 authentication successful"), "{text}");
        assert!(text.contains("250 2.6.0 message"), "{text}");
    }
    let spooled = e.spooled();
    assert_eq!(spooled.len(), 2, "{spooled:?}");
    assert!(spooled.iter().all(|m| m["job_id"] == "job-42" && m["queue"] == "example.com/{default}"), "{spooled:?}");
    // The Received header says the session was encrypted and authenticated.
    let shown = e.cli(&["show", "message", spooled[0]["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("with ESMTPSA"), "{text}");
    assert!(!text.contains("X-Job:"), "X-Job must be stripped: {text}");
}

#[test]
fn pipelined_session_exercises_every_extension() {
    let e = ember();
    let mut c = Raw::connect(e.smtp());
    let ehlo = c.command("EHLO client.example");
    for ext in
        ["PIPELINING", "SIZE 1048576", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING", "STARTTLS"]
    {
        assert!(ehlo.contains(ext), "EHLO lacks {ext}: {ehlo}");
    }
    // AUTH is not offered in clear text (allow-unencrypted-plain-auth is off).
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    // One write: MAIL with DSN and 8BITMIME parameters, three RCPTs (one suppressed), DATA.
    c.send(
        b"MAIL FROM:<bounces@example.net> SIZE=300 BODY=8BITMIME RET=HDRS ENVID=env-1\r\n\
RCPT TO:<one@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;one@example.com\r\n\
RCPT TO:<complained@example.com>\r\n\
RCPT TO:<x@sub.blocked.example>\r\n\
RCPT TO:<two@example.org>\r\n\
DATA\r\n",
    );
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert_eq!(
        c.reply(),
        "550 5.7.1 recipient is in suppression list \"suppressed.txt\": <complained@example.com>\r\n"
    );
    assert!(c.reply().starts_with("550 5.7.1 recipient is in suppression list"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354 "));
    c.send("Subject: caf\u{e9}\r\n\r\n..leading dot\r\n8-bit: \u{e9}\r\n.\r\n".as_bytes());
    let accepted = c.reply();
    assert!(accepted.starts_with("250 2.6.0 message ") && accepted.contains("for 2 recipients"), "{accepted}");
    // SIZE declared too large is refused before any data.
    assert!(c.command("MAIL FROM:<a@example.net> SIZE=5000000").starts_with("552 5.3.4"));
    // SMTPUTF8 addresses, then BDAT in two chunks.
    assert!(c.command("MAIL FROM:<j\u{f6}rg@example.net> SMTPUTF8").starts_with("250 "));
    assert!(c.command("RCPT TO:<z\u{fc}@example.com>").starts_with("250 "));
    c.send(b"BDAT 10\r\nSubject: bBDAT 13 LAST\r\n\r\n\r\nchunked\r\n");
    assert!(c.reply().starts_with("250 2.0.0 10 octets"));
    assert!(c.reply().starts_with("250 2.6.0"));
    assert!(c.command("QUIT").starts_with("221 2.0.0"));

    let spooled = e.spooled();
    let first: Vec<_> = spooled.iter().filter(|m| m["env_id"] == "env-1").collect();
    assert_eq!(first.len(), 2, "{spooled:?}");
    let id = first[0]["id"].as_str().unwrap();
    let shown = e.cli(&["show", "message", id]);
    let text = String::from_utf8_lossy(&shown.stdout).to_string();
    let envelope: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(envelope["ret"], "Headers");
    assert_eq!(envelope["eight_bit"], true);
    assert_eq!(envelope["recipients"][0]["notify"]["failure"], true);
    // smtp-proto keeps the address of ORCPT=rfc822;ADDR (the type is rfc822 for SMTP).
    assert_eq!(envelope["recipients"][0]["orcpt"], "one@example.com");
    // Dot-unstuffing happened, 8-bit bytes are intact.
    assert!(text.contains("\r\n.leading dot\r\n8-bit: \u{e9}\r\n"), "{text}");
    let bdat: Vec<_> = spooled.iter().filter(|m| m["sender"] == "j\u{f6}rg@example.net").collect();
    assert_eq!(bdat.len(), 1);
    let shown = e.cli(&["show", "message", bdat[0]["id"].as_str().unwrap()]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Subject: b\r\n\r\nchunked\r\n"));

    // The r records: one per accepted recipient, PowerMTA's columns.
    let acct = std::fs::read_to_string(e.path("acct.csv")).unwrap();
    let header = acct.lines().next().unwrap();
    assert!(
        header.starts_with(
            "type,timeLogged,orig,rcpt,orcpt,srcType,srcMta,rcvSourceIp,rcvDestinationIp,vmta,vmtaPool,jobId,envId"
        ),
        "{header}"
    );
    assert_eq!(acct.lines().filter(|l| l.starts_with("r,")).count(), 3, "{acct}");
}

#[test]
fn smtplib_injection_with_virtual_mta_header() {
    let e = ember();
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
s.ehlo("py.example")
msg = "From: a@example.net\r\nTo: b@example.com\r\nX-Virtual-MTA: vmta1\r\nSubject: hi\r\n\r\nhello\r\n"
s.sendmail("a@example.net", ["b@example.com"], msg)
msg2 = msg.replace("vmta1", "pool1")
s.sendmail("pool@example.net", ["c@example.com"], msg2)
try:
    s.sendmail("a@example.net", ["b@example.com"], msg.replace("vmta1", "nope"))
    print("accepted-unknown")
except smtplib.SMTPDataError as err:
    print("refused", err.smtp_code, err.smtp_error.decode())
s.quit()
"#;
    let out = python(script, &[port(&e)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("refused 550 5.3.5 specified VirtualMTA does not exist: \"nope\""), "{stdout}");
    let spooled = e.spooled();
    assert_eq!(spooled.len(), 2);
    let v1 = spooled.iter().find(|m| m["sender"] == "a@example.net").unwrap();
    assert_eq!(v1["vmta"], "vmta1");
    assert_eq!(v1["queue"], "example.com/vmta1");
    let pool = spooled.iter().find(|m| m["sender"] == "pool@example.net").unwrap();
    assert_eq!(pool["vmta"], "pool1");
    let shown = e.cli(&["show", "message", v1["id"].as_str().unwrap()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(!text.contains("X-Virtual-MTA"), "the header must be stripped: {text}");
    assert!(text.contains("Received: from py.example ([127.0.0.1])"), "{text}");
}

#[test]
fn relay_rights_service_and_recipient_limits_by_source() {
    let e = ember();
    // 127.0.0.5 matches no <source>: PowerMTA's defaults, no relaying.
    let mut c = Raw::connect_from(e.smtp(), Some("127.0.0.5"));
    c.command("EHLO outsider.example");
    c.command("MAIL FROM:<a@outsider.example>");
    assert_eq!(
        c.command("RCPT TO:<victim@example.com>"),
        "550 5.7.1 relaying to <victim@example.com> denied for 127.0.0.5\r\n"
    );
    assert!(c.command("DATA").starts_with("503 5.5.1") || c.command("DATA").starts_with("554"));
    // smtp-service no: 521 at the greeting.
    let c = Raw::connect_from(e.smtp(), Some("127.0.0.6"));
    assert!(c.pending.is_empty() || c.pending.starts_with("521"));
    let out = swaks(&[
        "--server",
        &port(&e),
        "--local-interface",
        "127.0.0.6",
        "--to",
        "x@example.com",
        "--quit-after",
        "CONNECT",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("521 5.7.1 mx.ember.test does not accept mail from you"));
    // max-rcpt-per-message 2.
    let mut c = Raw::connect_from(e.smtp(), Some("127.0.0.7"));
    c.command("EHLO feeder.example");
    c.command("MAIL FROM:<a@feeder.example>");
    assert!(c.command("RCPT TO:<1@example.com>").starts_with("250"));
    assert!(c.command("RCPT TO:<2@example.com>").starts_with("250"));
    assert_eq!(c.command("RCPT TO:<3@example.com>"), "452 4.5.3 too many recipients (at most 2 per message)\r\n");
    assert!(e.spooled().is_empty());
}

#[test]
fn hostile_input_is_answered_and_never_accepted() {
    let e = ember();
    let mut c = Raw::connect(e.smtp());
    // Out of sequence.
    assert!(c.command("MAIL FROM:<a@example.net>").starts_with("503 5.5.1"));
    assert!(c.command("DATA").starts_with("503 5.5.1"));
    // Garbage and NUL bytes.
    assert!(c.command("FOO\0BAR").starts_with("500"));
    // A 10 MB line: one reply, and the session goes on.
    let mut long = vec![b'A'; 10 << 20];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    c.send(&long);
    assert_eq!(c.reply(), "500 5.5.6 line too long\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    // A message over max-message-size (1M): read to the end, then refused.
    c.command("EHLO x.example");
    c.command("MAIL FROM:<a@example.net>");
    c.command("RCPT TO:<b@example.com>");
    assert!(c.command("DATA").starts_with("354"));
    let mut big = message(&"x".repeat(1000)).into_bytes();
    for _ in 0..1200 {
        big.extend_from_slice(&[b'y'; 998]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send(&big);
    assert!(c.reply().starts_with("552 5.3.4 message exceeds the size limit"));
    // STARTTLS with a command pipelined behind it: the command must not run.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n");
    assert!(c.reply().starts_with("220 2.0.0"));
    drop(c);
    // A client that vanishes mid-DATA leaves nothing behind.
    let mut c = Raw::connect(e.smtp());
    c.command("EHLO x.example");
    c.command("MAIL FROM:<vanish@example.net>");
    c.command("RCPT TO:<b@example.com>");
    c.command("DATA");
    c.send(message("half a message").as_bytes());
    drop(c);
    // A bare LF dot does not end DATA (no smuggling): the message is still open when we quit.
    let mut c = Raw::connect(e.smtp());
    c.command("EHLO x.example");
    c.command("MAIL FROM:<smuggle@example.net>");
    c.command("RCPT TO:<b@example.com>");
    c.command("DATA");
    c.send(b"Subject: s\r\n\r\nbody\n.\nMAIL FROM:<second@example.net>\r\n");
    drop(c);
    // Both sessions end without a 250: the daemon says so, and the spool stays empty.
    e.wait_log_count("client disconnected mid-transaction", 2);
    assert!(e.spooled().is_empty(), "{:?}", e.spooled());
}

#[test]
fn auth_guessing_is_throttled() {
    let e = ember();
    let script = r#"
import smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
results = []
for attempt in range(6):
    s = smtplib.SMTP(host, int(port))
    s.starttls(context=ssl._create_unverified_context())
    try:
        # One mechanism per attempt (smtplib.login would try PLAIN, then LOGIN).
        s.user, s.password = "alice", "guess%d" % attempt
        s.ehlo()
        s.auth("PLAIN", s.auth_plain)
        results.append("ok")
    except smtplib.SMTPAuthenticationError as e:
        results.append(str(e.smtp_code))
    except smtplib.SMTPServerDisconnected:
        results.append("closed")
    try:
        s.quit()
    except Exception:
        pass
print(",".join(results))
"#;
    let out = python(script, &[port(&e)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // 4/m: three refusals, the fourth failure locks the client out, and so do later attempts.
    let results: Vec<&str> = stdout.trim().split(',').collect();
    assert_eq!(&results[..3], ["535", "535", "535"], "{stdout}");
    assert!(results[3..].iter().all(|r| *r == "421"), "{stdout}");
}

#[test]
fn full_spool_answers_452_and_unwritable_spool_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let config = "smtp-listener 127.0.0.1:0\n<source 127.0.0.1>\n always-allow-relaying yes\n</source>\n<spool spool>\n min-free-space 1000000G\n</spool>\n";
    let e = Ember::start_in(dir, config);
    let out = swaks(&["--server", &port(&e), "--from", "a@example.net", "--to", "b@example.com"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("452 4.3.1 insufficient system storage"), "{text}");
    assert!(e.spooled().is_empty());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-dir"), "x").unwrap();
    std::fs::write(dir.path().join("ember.conf"), "smtp-listener 127.0.0.1:0\n<spool not-a-dir/spool>\n</spool>\n")
        .unwrap();
    let out = std::process::Command::new(crate::support::EMBER)
        .args(["run", "--config"])
        .arg(dir.path().join("ember.conf"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-dir/spool"), "{stderr}");
}

#[test]
fn spool_max_recipients_refuses_what_would_pass_the_cap_and_takes_what_fits() {
    let config = "smtp-listener 127.0.0.1:0\nspool-max-recipients 3\n<source 127.0.0.1>\n always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n";
    let e = Ember::start(config);
    let send = |to: &str| {
        let out = swaks(&["--server", &port(&e), "--from", "a@example.net", "--to", to]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // Held mail stays queued (crate::support::HOLD), so the count only grows.
    let text = send("r1@example.com,r2@example.com");
    assert!(text.contains("250 2.6.0"), "{text}");
    let text = send("r3@example.com,r4@example.com");
    assert!(text.contains("452 4.3.1"), "2 + 2 recipients pass a cap of 3: {text}");
    let text = send("r3@example.com");
    assert!(text.contains("250 2.6.0"), "2 + 1 fits: {text}");
    let text = send("r5@example.com");
    assert!(text.contains("452 4.3.1"), "{text}");
    let queued = e.spooled();
    assert_eq!(queued.len(), 3, "one row per queued recipient: {queued:?}");
    assert!(e.log_contains("spool-max-recipients 3 reached"));
}

#[test]
fn pickup_directory_files_are_spooled_and_bad_ones_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let config = "smtp-listener 127.0.0.1:0\npickup pickup bad\n<spool spool>\n</spool>\n<acct-file acct.csv>\n records r\n</acct-file>\n";
    let e = Ember::start_in(dir, config);
    std::fs::write(e.path("pickup/.m1.tmp"), "x-sender: a@example.net\nx-receiver: b@example.com\nx-receiver: c@example.org\nx-job: pick-1\n\nSubject: picked\n\nhi\n").unwrap();
    std::fs::rename(e.path("pickup/.m1.tmp"), e.path("pickup/m1")).unwrap();
    std::fs::write(e.path("pickup/m2"), "Subject: no envelope\n\nhi\n").unwrap();
    e.wait_log("pickup: stored");
    e.wait_log("pickup: moved");
    assert!(!e.path("pickup/m1").exists());
    let spooled = e.spooled();
    assert_eq!(spooled.len(), 2, "{spooled:?}");
    assert!(spooled.iter().all(|m| m["job_id"] == "pick-1"));
    assert!(e.path("bad/m2").exists());
    assert!(e.log_contains("no x-sender line at the top of the file"));
}

#[test]
fn pickup_remove_dot_undoes_dot_stuffing_and_is_off_by_default() {
    for (remove, expected) in [
        (true, "\r\n.dotted\r\nmid..dle\r\n..three\r\n.single\r\n"),
        (false, "\r\n..dotted\r\nmid..dle\r\n...three\r\n.single\r\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let flag = if remove { "pickup-remove-dot yes\n" } else { "" };
        let config = format!("smtp-listener 127.0.0.1:0\n{flag}pickup pickup bad\n<spool spool>\n</spool>\n");
        let e = Ember::start_in(dir, &config);
        std::fs::write(e.path("pickup/.m1.tmp"), "x-sender: a@example.net\nx-receiver: b@example.com\nSubject: dots\n\n..dotted\nmid..dle\n...three\n.single\n").unwrap();
        std::fs::rename(e.path("pickup/.m1.tmp"), e.path("pickup/m1")).unwrap();
        e.wait_log("pickup: stored");
        let spooled = e.spooled();
        assert_eq!(spooled.len(), 1, "{spooled:?}");
        let message = e.shown_message(spooled[0]["id"].as_str().unwrap());
        let body = &message[message.find("\r\n\r\n").unwrap() + 2..];
        assert_eq!(body, expected, "pickup-remove-dot {remove}: {message:?}");
    }
}
