//! The main log (`log-file`): lines go to the file instead of stderr, `ember rotate log` moves
//! it aside keeping `log-rotate` files, a reload may name another file, and a reload naming one
//! the daemon cannot write is refused with the old file still in use.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::{config, inject, until};
use crate::support::Ember;
use crate::support::peers::Receiver;

fn read(e: &Ember, name: &str) -> String {
    std::fs::read_to_string(e.path(name)).unwrap_or_default()
}

/// Injects one message and waits for the line saying it was delivered to reach `file`.
fn delivery_logged(e: &Ember, user: &str, file: &str) {
    inject(e, &format!("{user}@example.com"), &[]);
    until(&format!("the delivery to {user} in {file}"), || {
        let text = read(e, file);
        text.lines().any(|l| l.contains("delivered") && l.contains(&format!("<{user}@example.com>"))).then_some(())
    });
}

fn rotate(e: &Ember) -> String {
    let out = e.live_cli(&["rotate", "log"]);
    assert!(out.status.success(), "rotate log: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn log_lines_go_to_log_file_which_rotates_and_follows_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start("127.0.0.1", &json!({}), dir.path(), None);
    let settings = format!(
        "log-file logs/ember.log\nlog-rotate 2\n<domain example.com>\n    smtp-hosts [127.0.0.1]:{}\n</domain>\n",
        rx.addr.port()
    );
    let mut e = Ember::start_in(dir, &config("admin", &settings));
    let log = e.path("logs/ember.log");
    assert!(
        e.stdout.lock().unwrap().iter().any(|l| l == &format!("logging to {}", log.display())),
        "the foreground daemon says where its log goes"
    );
    delivery_logged(&e, "first", "logs/ember.log");
    assert!(
        !e.stderr.lock().unwrap().iter().any(|l| l.contains("first@example.com")),
        "with a log-file, lines do not also go to stderr"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o640);

    // rotate log: the old lines move to .1, new ones start a new file.
    assert_eq!(rotate(&e), format!("rotated to {}.1", log.display()));
    delivery_logged(&e, "second", "logs/ember.log");
    assert!(read(&e, "logs/ember.log.1").contains("<first@example.com>"));
    assert!(!read(&e, "logs/ember.log.1").contains("<second@example.com>"));
    assert!(!read(&e, "logs/ember.log").contains("<first@example.com>"));

    // Two more rotations with lines in between: log-rotate 2 keeps .1 and .2 only.
    rotate(&e);
    delivery_logged(&e, "third", "logs/ember.log");
    rotate(&e);
    assert!(read(&e, "logs/ember.log.1").contains("<third@example.com>"));
    assert!(read(&e, "logs/ember.log.2").contains("<second@example.com>"));
    assert!(!e.path("logs/ember.log.3").exists(), "more than log-rotate files kept");

    // A reload naming another file moves the log there.
    let text = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(&e.config, text.replace("logs/ember.log", "other/ember.log")).unwrap();
    let out = e.live_cli(&["reload"]);
    assert!(out.status.success(), "reload: {}", String::from_utf8_lossy(&out.stderr));
    delivery_logged(&e, "fourth", "other/ember.log");
    assert!(!read(&e, "logs/ember.log").contains("<fourth@example.com>"));

    // A file that cannot be opened (here: a directory) refuses the reload; the log stays where
    // it was.
    std::fs::create_dir(e.path("a-directory")).unwrap();
    std::fs::write(&e.config, text.replace("logs/ember.log", "a-directory")).unwrap();
    let out = e.live_cli(&["reload"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a reload with an unwritable log-file was accepted: {said}");
    assert!(said.contains("log-file") && said.contains("a-directory"), "the refusal names the file: {said}");
    delivery_logged(&e, "fifth", "other/ember.log");
    e.stop();
}
