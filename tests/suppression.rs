//! `ember suppression` and `/api/v1/suppression`: importing a file with garbage lines (reported
//! with their numbers, the rest loaded) into the journal while no daemon runs, then the daemon
//! refusing those recipients at RCPT; add/remove/check/export through the API with the
//! `http-access` levels (reads need monitor, changes operator).

use std::process::{Command, Output};

use crate::support::{EMBER, Ember, support_dir};

const KEY: &str = "k0123456789abcdef0123456789abcdef";

fn config() -> String {
    format!(
        "smtp-listener 127.0.0.1:0\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 monitor\nhttp-api-key {KEY}\n<source 127.0.0.1>\n    always-allow-relaying yes\n</source>\n<spool spool>\n</spool>\n"
    )
}

fn rcpt(e: &Ember, to: &str) -> u64 {
    let file = e.path("m.eml");
    std::fs::write(&file, "Subject: x\r\n\r\nhi\r\n").unwrap();
    let out = Command::new("python3")
        .arg(support_dir().join("smtp_send.py"))
        .arg(e.smtp().to_string())
        .args(["127.0.0.1", "a@example.net", to])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["rcpt"][to][0].as_u64().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
}

#[test]
fn import_offline_then_manage_through_the_api_with_access_levels() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ember.conf");
    std::fs::write(&conf, config()).unwrap();
    let list = dir.path().join("list.txt");
    let mut body = String::new();
    for i in 0..5000 {
        body.push_str(&format!("user{i}@import.example\n"));
    }
    body.push_str("# a comment\n\nnot an address\n@blocked.example\nx@@y\n");
    std::fs::write(&list, &body).unwrap();
    // No daemon: the journal is written directly.
    let out =
        Command::new(EMBER).args(["suppression", "import"]).arg(&list).arg("--config").arg(&conf).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("imported 5001 entries (5001 new)"), "{stdout}");
    assert!(stdout.contains("2 bad lines skipped"), "{stdout}");
    assert!(stderr.contains("list.txt:5003: not an address or @domain: \"not an address\""), "{stderr}");
    assert!(stderr.contains("list.txt:5005: "), "{stderr}");
    let check = |args: &[&str]| Command::new(EMBER).args(args).arg("--config").arg(&conf).output().unwrap();
    assert_eq!(check(&["suppression", "check", "USER42@import.example"]).status.code(), Some(0));
    assert_eq!(check(&["suppression", "check", "someone@else.example"]).status.code(), Some(2));

    let e = Ember::start_in(dir, &config());
    assert!(e.stdout.lock().unwrap().iter().any(|l| l.contains("entries in") && l.contains("5001 entries")));
    assert_eq!(rcpt(&e, "user4999@import.example"), 550);
    assert_eq!(rcpt(&e, "x@sub.blocked.example"), 550);
    assert_eq!(rcpt(&e, "fresh@import.example"), 250);
    // While the daemon runs, the journal is its alone: without the API the CLI refuses.
    let offline = e.cli(&["suppression", "add", "fresh@import.example"]);
    let (_, stderr) = text(&offline);
    assert_eq!(offline.status.code(), Some(1));
    assert!(stderr.contains("is held by a running daemon"), "{stderr}");

    // Monitor level reads, but may not change.
    let out = e.live_cli(&["suppression", "check", "user1@import.example"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = e.live_cli(&["suppression", "add", "fresh@import.example"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("403 insufficient access level"), "{stderr}");
    assert_eq!(rcpt(&e, "fresh@import.example"), 250);

    // With the API key (admin): add, remove, export.
    let mgmt = e.mgmt.unwrap().to_string();
    let admin = |args: &[&str]| {
        Command::new(EMBER)
            .args(args)
            .args(["--mgmt", &mgmt])
            .arg("--config")
            .arg(&e.config)
            .env("EMBER_API_KEY", KEY)
            .output()
            .unwrap()
    };
    let out = admin(&["suppression", "add", "fresh@import.example", "other@import.example"]);
    assert!(text(&out).0.contains("added 2 of 2 entries"), "{:?}", text(&out));
    assert_eq!(rcpt(&e, "fresh@import.example"), 550);
    let out = admin(&["suppression", "remove", "user7@import.example"]);
    assert!(text(&out).0.contains("removed 1 of 1 entry"), "{:?}", text(&out));
    assert_eq!(rcpt(&e, "user7@import.example"), 250);
    let bad = admin(&["suppression", "add", "not an address"]);
    assert_eq!(bad.status.code(), Some(1));
    let export = e.path("export.txt");
    let out = admin(&["suppression", "export", export.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let exported = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), 5001 + 2 - 1);
    assert!(lines.contains(&"@blocked.example") && lines.contains(&"fresh@import.example"));
    assert!(!lines.contains(&"user7@import.example"));
    // A second import through the API: only the new lines count, bad lines numbered.
    std::fs::write(e.path("more.txt"), "user1@import.example\nnew1@import.example\n<broken\n").unwrap();
    let out = admin(&["suppression", "import", e.path("more.txt").to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("imported 2 entries (1 new)"), "{stdout}");
    assert!(stderr.contains("more.txt:3: "), "{stderr}");
    assert_eq!(rcpt(&e, "new1@import.example"), 550);
}
