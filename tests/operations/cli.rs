//! The CLI over the management API: every command against a running daemon with real traffic,
//! asserting on its `--json` output (and on the text where operators' scripts parse it).

use std::process::{Command, Output};

use serde_json::Value;

use super::{acct_rows, config, inject, mgmt, route_all, until};
use crate::support::peers::{Sink, free_port};
use crate::support::{EMBER, Ember};

const KEY: &str = "cliKey0123456789abcdef0123456789";

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ember failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ember ARGS --mgmt ADDR --config FILE`, expecting success; the JSON it printed.
fn json(e: &Ember, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(&e.live_cli(&all));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{args:?} printed no JSON ({err}): {text}"))
}

fn names(v: &Value, field: &str) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x[field].as_str().unwrap().to_string()).collect()
}

#[test]
fn every_command_against_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let held = "<domain held.example>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n";
    let e = Ember::start_in(dir, &config("operator", &format!("{held}{}", route_all(sink.addr.port()))));
    for n in 0..3 {
        inject(&e, &format!("s{n}@sent.example"), &["--header", "X-Job: cli-sent"]);
    }
    for n in 0..2 {
        inject(&e, &format!("h{n}@held.example"), &["--header", "X-Job: cli-held"]);
    }
    acct_rows(&e, "d", 3);
    until("the held queue in retry", || {
        (json(&e, &["show", "queues", "--mode", "retry"]).as_array()?.len() == 1).then_some(())
    });

    let status = json(&e, &["show", "status"]);
    assert_eq!(status["traffic"]["delivered"], 3);
    assert_eq!(status["queue"]["smtp"]["rcp"], 2);
    let text = ok(&e.live_cli(&["show", "status"]));
    assert!(text.contains("Traffic") && text.contains("Connections") && text.contains("SMTP queue"), "{text}");

    assert_eq!(
        names(&json(&e, &["show", "queues", "--paused", "no", "held.example"]), "queue"),
        ["held.example/{default}"]
    );
    assert_eq!(json(&e, &["show", "queues", "--connected", "yes"]), Value::Array(vec![]));
    let text = ok(&e.live_cli(&["show", "queues"]));
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("queue") && header.contains("#rcpt") && header.contains("last error"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("held.example/{default}") && l.contains(" retry ")), "{text}");
    let errors = json(&e, &["show", "queues", "--errors", "held.example"]);
    assert_eq!(errors[0]["errors"][0]["kind"], "queue-failure");
    let top = json(&e, &["show", "topqueues", "--maxitems", "1"]);
    assert_eq!(names(&top, "queue"), ["held.example/{default}"]);
    let domains = json(&e, &["show", "domains"]);
    assert_eq!(names(&domains, "domain"), ["held.example", "sent.example"]);
    assert_eq!(json(&e, &["show", "topdomains"])[0]["domain"], "held.example");
    let vmtas = json(&e, &["show", "vmtas"]);
    assert_eq!(vmtas[0]["delivered"], 3);
    let jobs = json(&e, &["show", "jobs"]);
    assert_eq!(names(&jobs, "job_id"), ["cli-held", "cli-sent"]);
    assert_eq!(jobs[1]["delivered"], 3);
    let settings = json(&e, &["show", "settings", "held.example", "--live"]);
    assert!(settings.to_string().contains("retry-after"), "{settings}");
    assert!(ok(&e.live_cli(&["show", "settings", "held.example"])).contains("retry-after 1h"));

    let listed = json(&e, &["list", "--queue", "held.example"]);
    assert_eq!(listed["total"], 2);
    assert_eq!(json(&e, &["list", "--jobId", "cli-held", "--rcpt", "h1@held.example"])["total"], 1);

    // pause/resume queue and job, schedule, set mode, sources
    assert_eq!(json(&e, &["pause", "queue", "held.example"])["matched"], 1);
    assert_eq!(json(&e, &["show", "queues", "--paused", "yes"])[0]["mode"], "paused");
    assert!(ok(&e.live_cli(&["explain", "held.example"])).contains("paused by an operator"));
    assert_eq!(json(&e, &["resume", "queue", "held.example"])["matched"], 1);
    assert_eq!(json(&e, &["pause", "job", "cli-held"])["job_id"], "cli-held");
    let scheduled = ok(&e.live_cli(&["schedule", "--retry-recipients", "held.example/*"]));
    assert_eq!(scheduled.trim(), format!("1 of {} matching queues scheduled.", domains.as_array().unwrap().len()));
    assert_eq!(json(&e, &["show", "queues", "held.example"])[0]["held_recipients"], 2);
    assert_eq!(json(&e, &["resume", "job", "cli-held"])["recipients"], 2);
    assert!(ok(&e.live_cli(&["set", "queue", "--mode=backoff", "sent.example"])).contains("1 queue changed"));
    assert_eq!(json(&e, &["show", "queues", "--mode", "backoff"])[0]["queue"], "sent.example/{default}");
    assert!(ok(&e.live_cli(&["disable", "source", "127.0.0.1", "held.example"])).contains("1 queue changed"));
    assert!(ok(&e.live_cli(&["enable", "source", "127.0.0.1", "held.example"])).contains("1 queue changed"));

    // delete (a b record), rotate, reload
    let no_filter = e.live_cli(&["delete", "--rcpt", "h0@held.example"]);
    assert!(!no_filter.status.success());
    assert!(String::from_utf8_lossy(&no_filter.stderr).contains("--queue or --job-id"));
    assert_eq!(json(&e, &["delete", "--queue", "held.example", "--rcpt", "h0@held.example"])["deleted"], 1);
    assert!(acct_rows(&e, "b", 1)[0]["dsnDiag"].contains("deleted by an operator"));
    let rotated = json(&e, &["rotate", "acct"]);
    assert!(rotated["rotated"][0].as_str().unwrap().contains("acct"), "{rotated}");
    assert_eq!(json(&e, &["reload"])["reloaded"], true);
    let good = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(&e.config, format!("{good}\nmax-smtp-out banana\n")).unwrap();
    let broken = e.live_cli(&["reload"]);
    assert!(!broken.status.success());
    let why = String::from_utf8_lossy(&broken.stderr);
    assert!(why.contains("422") && why.contains("max-smtp-out"), "{why}");
    std::fs::write(&e.config, good).unwrap();

    // inject: a message file and a recipient list, in batches, with a summary.
    let message = e.path("message.eml");
    std::fs::write(&message, "From: a@example.net\r\nSubject: bulk\r\n\r\nHello.\r\n").unwrap();
    let list = e.path("rcpts.txt");
    let rcpts: String = (0..25).map(|n| format!("bulk{n}@sent.example\n")).collect();
    std::fs::write(&list, format!("# the list\n{rcpts}")).unwrap();
    let summary = json(
        &e,
        &[
            "inject",
            "--from",
            "bulk@example.net",
            "--rcpts",
            list.to_str().unwrap(),
            "--job-id",
            "bulk1",
            "--batch",
            "10",
            message.to_str().unwrap(),
        ],
    );
    assert_eq!((summary["recipients"].as_u64(), summary["accepted"].as_u64()), (Some(25), Some(25)), "{summary}");
    // sent.example is in backoff, which still delivers: every recipient arrives (in the
    // accounting file started by the rotation above).
    let d = acct_rows(&e, "d", 25);
    assert_eq!(d.iter().filter(|r| r["jobId"] == "bulk1").count(), 25);
    std::fs::write(&list, "bulk@sent.example\nnot an address\n").unwrap();
    let bad = e.live_cli(&[
        "inject",
        "--from",
        "b@example.net",
        "--rcpts",
        list.to_str().unwrap(),
        message.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("rcpts.txt:2:"), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn api_key_from_the_flag_or_the_environment_and_mgmt_as_a_url() {
    let e = Ember::start(&config("monitor", &format!("http-api-key {KEY}\n")));
    inject(&e, "x@held.example", &[]);
    until("the queue", || (json(&e, &["show", "queues"]).as_array()?.len() == 1).then_some(()));
    let url = format!("http://{}/", mgmt(&e));
    let run = |extra: &[&str], env: Option<&str>| {
        let mut c = Command::new(EMBER);
        c.args(["pause", "queue", "held.example", "--mgmt", &url]).args(extra).env_remove("EMBER_API_KEY");
        if let Some(k) = env {
            c.env("EMBER_API_KEY", k);
        }
        c.output().unwrap()
    };
    let denied = run(&[], None);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"), "{}", String::from_utf8_lossy(&denied.stderr));
    assert!(ok(&run(&["--api-key", KEY], None)).contains("1 queue changed"));
    assert!(ok(&run(&[], Some(KEY))).contains("1 queue changed"));
    assert!(!run(&[], Some("wrong")).status.success());
}

#[test]
fn suppression_commands_send_the_api_key_like_the_others() {
    let e = Ember::start(&config("monitor", &format!("http-api-key {KEY}\n")));
    let addr = mgmt(&e).to_string();
    let run = |args: &[&str], extra: &[&str], env: Option<&str>| {
        let mut c = Command::new(EMBER);
        c.arg("suppression").args(args).args(["--mgmt", &addr]).args(extra).env_remove("EMBER_API_KEY");
        if let Some(k) = env {
            c.env("EMBER_API_KEY", k);
        }
        c.output().unwrap()
    };
    let denied = run(&["add", "a@key.example"], &[], None);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"), "{}", String::from_utf8_lossy(&denied.stderr));
    assert!(ok(&run(&["add", "a@key.example"], &["--api-key", KEY], None)).contains("added 1 of 1 entry"));
    assert!(ok(&run(&["check", "a@key.example"], &[], Some(KEY))).contains("a@key.example: suppressed"));
    // The flag wins over the environment.
    assert!(
        ok(&run(&["remove", "a@key.example"], &["--api-key", KEY], Some("wrong"))).contains("removed 1 of 1 entry")
    );
    assert!(!run(&["add", "a@key.example"], &[], Some("wrong")).status.success());
}
