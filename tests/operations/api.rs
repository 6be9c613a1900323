//! The JSON API against a running daemon with real traffic: access levels (deny by default,
//! monitor reads, operator changes, API key = admin), refusals with clear JSON (401, 403, 405,
//! 413, 415, 400), and every endpoint's answer.

use serde_json::json;

use super::{acct_rows, config, inject, mgmt, route_all, until};
use crate::support::Ember;
use crate::support::http::{self, get, post, request};
use crate::support::peers::{Sink, free_port};

const KEY: &str = "k3y0123456789abcdef0123456789abcdef";

fn message(a: &http::Answer) -> String {
    a.json()["message"].as_str().unwrap_or("").to_string()
}

#[test]
fn access_levels_keys_and_csrf_rules() {
    let e = Ember::start(&config("monitor", &format!("http-api-key {KEY}\n")));
    let m = mgmt(&e);
    inject(&e, "a@held.example", &[]);
    until("the queue", || (get(m, "/api/v1/queues").data().as_array()?.len() == 1).then_some(()));
    // Monitor reads but cannot pause.
    assert_eq!(get(m, "/api/v1/status").status, 200);
    let refused = post(m, "/api/v1/queues/pause", &json!({"queue": "held.example"}));
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(message(&refused).contains("insufficient access level"), "{}", refused.body);
    assert_eq!(get(m, "/api/v1/queues?paused=yes").data(), json!([]));
    // A wrong key is 401; the right key is admin.
    let pause = json!({"queue": "held.example"}).to_string();
    let wrong = request(
        m,
        "POST",
        "/api/v1/queues/pause",
        &["Content-Type: application/json", "X-API-Key: nope"],
        pause.as_bytes(),
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let key = format!("X-API-Key: {KEY}");
    let ok = request(m, "POST", "/api/v1/queues/pause", &["Content-Type: application/json", &key], pause.as_bytes());
    assert_eq!(ok.data()["matched"], 1);
    assert_eq!(get(m, "/api/v1/queues?paused=yes").data()[0]["queue"], "held.example/{default}");
    // CSRF: a GET never changes state; a POST must be JSON from this origin.
    let as_get = request(m, "GET", "/api/v1/queues/resume?queue=held.example", &[&key], b"");
    assert_eq!(as_get.status, 405, "{}", as_get.body);
    assert!(message(&as_get).contains("use POST"), "{}", as_get.body);
    let form = request(
        m,
        "POST",
        "/api/v1/queues/resume",
        &[&key, "Content-Type: application/x-www-form-urlencoded"],
        b"queue=held.example",
    );
    assert_eq!(form.status, 415, "{}", form.body);
    let cross = request(
        m,
        "POST",
        "/api/v1/queues/resume",
        &[&key, "Content-Type: application/json", "Origin: http://evil.example"],
        pause.as_bytes(),
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert!(message(&cross).contains("cross-site"), "{}", cross.body);
    // Bad bodies.
    let big = format!("{{\"queue\": \"{}\"}}", "x".repeat(100_000));
    let too_big =
        request(m, "POST", "/api/v1/queues/resume", &[&key, "Content-Type: application/json"], big.as_bytes());
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    let malformed =
        request(m, "POST", "/api/v1/queues/resume", &[&key, "Content-Type: application/json"], b"{\"queue\": ");
    assert_eq!(malformed.status, 400);
    assert!(message(&malformed).contains("malformed JSON"), "{}", malformed.body);
    let unknown = request(
        m,
        "POST",
        "/api/v1/queues/resume",
        &[&key, "Content-Type: application/json"],
        b"{\"queue\": \"a\", \"rm\": 1}",
    );
    assert_eq!(unknown.status, 400);
    assert!(message(&unknown).contains("unknown field"), "{}", unknown.body);
    // None of that resumed the queue.
    assert_eq!(get(m, "/api/v1/queues?paused=yes").data().as_array().unwrap().len(), 1);
    // Paths out of the API are not served.
    for path in [
        "/api/v1/../../etc/passwd",
        "/ui/../../../etc/passwd",
        "/ui/%2e%2e/%2e%2e/etc/passwd",
        "/ui/..%2f..%2f..%2fetc%2fpasswd",
        "/getFile?file=../../etc/passwd",
    ] {
        let a = get(m, path);
        assert!(a.status == 404 || a.status == 400, "{path}: {} {}", a.status, a.body);
        assert!(!a.body.contains("root:"), "{path}");
    }
}

#[test]
fn a_client_without_a_level_reads_nothing() {
    let e = Ember::start(&config("none", "http-access 127.0.0.2 admin\n"));
    for path in ["/api/v1/status", "/api/v1/queues", "/metrics", "/api/v1/openapi.json", "/ui", "/nothing-here"] {
        let a = get(mgmt(&e), path);
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(message(&a).contains("has no http-access level"), "{path}: {}", a.body);
    }
    let a = post(mgmt(&e), "/api/v1/reload", &json!({}));
    assert_eq!(a.status, 403);
}

#[test]
fn every_endpoint_with_real_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let held = "<domain held.example>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n";
    // The queue detail lists recipient events only for queues that track them (PowerMTA's default: no).
    let tracked = "<domain sent.example>\n    track-recipient-events yes\n</domain>\n";
    let e = Ember::start_in(dir, &config("operator", &format!("{held}{tracked}{}", route_all(sink.addr.port()))));
    let m = mgmt(&e);
    for n in 0..4 {
        inject(&e, &format!("r{n}@sent.example"), &["--header", "X-Job: sent-job"]);
    }
    for n in 0..3 {
        inject(&e, &format!("h{n}@held.example"), &["--header", "X-Job: held-job"]);
    }
    acct_rows(&e, "d", 4);

    // status
    let status = until("4 deliveries in status", || {
        let s = get(m, "/api/v1/status").data();
        (s["traffic"]["delivered"] == 4).then_some(s)
    });
    assert_eq!(status["traffic"]["total"]["in"]["msg"], 7);
    assert_eq!(status["queue"]["smtp"]["rcp"], 3);
    assert_eq!(status["minutes"].as_array().unwrap().len(), 60);
    assert_eq!(status["minutes"].as_array().unwrap().iter().map(|x| x["delivered"].as_u64().unwrap()).sum::<u64>(), 4);

    // queues with filters: the held queue waits in retry mode after its connection failed.
    let held_q = until("the held queue in retry", || {
        let q = get(m, "/api/v1/queues?mode=retry").data();
        (q.as_array()?.len() == 1).then_some(q[0].clone())
    });
    assert_eq!(held_q["queue"], "held.example/{default}");
    assert_eq!(held_q["recipients"], 3);
    assert_eq!(get(m, "/api/v1/queues?connected=yes").data(), json!([]));
    assert_eq!(get(m, "/api/v1/queues?queue=sent.example").data()[0]["delivered"], 4);
    assert_eq!(get(m, "/api/v1/queues?sort=rcpt&maxitems=1").data()[0]["queue"], "held.example/{default}");
    assert_eq!(get(m, "/api/v1/queues?paused=maybe").status, 400);

    // queue detail: recipient events, errors, mode changes, settings.
    let detail = get(m, "/api/v1/queues/detail?queue=sent.example/{default}").data();
    assert_eq!(detail["events"].as_array().unwrap().len(), 4);
    assert_eq!(detail["events"][0]["kind"], "delivered");
    assert_eq!(detail["events"][0]["job_id"], "sent-job");
    let detail = get(m, "/api/v1/queues/detail?queue=held.example").data();
    assert_eq!(detail["errors"][0]["kind"], "queue-failure");
    assert!(detail["errors"][0]["diag"].as_str().unwrap().contains("4"), "{detail}");
    assert!(detail["settings"].to_string().contains("retry-after"), "{detail}");
    assert_eq!(get(m, "/api/v1/queues/detail?queue=nowhere.example").status, 404);

    // domains, VMTAs, settings
    let domains = get(m, "/api/v1/domains?sort=rcpt").data();
    assert_eq!(domains[0]["domain"], "held.example");
    assert_eq!(domains[1]["delivered"], 4);
    let vmtas = get(m, "/api/v1/vmtas").data();
    let default = vmtas.as_array().unwrap().iter().find(|v| v["name"] == "{default}").unwrap();
    assert_eq!(default["delivered"], 4);
    assert_eq!(default["recipients"], 3);
    let settings = get(m, "/api/v1/settings?queue=held.example").data();
    assert!(settings["text"].as_str().unwrap().contains("retry-after 1h"), "{settings}");

    // messages
    let listed = get(m, "/api/v1/messages?queue=held.example&maxitems=2").data();
    assert_eq!(listed["total"], 3);
    assert_eq!(listed["recipients"].as_array().unwrap().len(), 2);
    assert_eq!(get(m, "/api/v1/messages?rcpt=h1@held.example").data()["recipients"][0]["job_id"], "held-job");

    // jobs: totals, pause and resume.
    let jobs = get(m, "/api/v1/jobs").data();
    let sent = jobs.as_array().unwrap().iter().find(|j| j["job_id"] == "sent-job").unwrap();
    assert_eq!((sent["delivered"].as_u64(), sent["queued"].as_u64()), (Some(4), Some(0)));
    // The held job's recipients wait for a retry, not in the ready list: pausing holds what
    // becomes ready later; a schedule with retry-recipients makes them ready, and the paused job
    // keeps them back.
    let paused = post(m, "/api/v1/jobs/pause", &json!({"job_id": "held-job"})).data();
    assert_eq!(paused["job_id"], "held-job");
    let jobs = get(m, "/api/v1/jobs").data();
    assert!(jobs.as_array().unwrap().iter().any(|j| j["job_id"] == "held-job" && j["paused"] == true), "{jobs}");
    post(m, "/api/v1/queues/schedule", &json!({"queue": "held.example", "retry_recipients": true})).data();
    let q = get(m, "/api/v1/queues?queue=held.example").data();
    assert_eq!((q[0]["held_recipients"].as_u64(), q[0]["messages_ready"].as_u64()), (Some(3), Some(0)), "{q}");
    let resumed = post(m, "/api/v1/jobs/resume", &json!({"job_id": "held-job"})).data();
    assert_eq!(resumed["recipients"], 3);
    let q = get(m, "/api/v1/queues?queue=held.example").data();
    assert_eq!((q[0]["held_recipients"].as_u64(), q[0]["recipients"].as_u64()), (Some(0), Some(3)), "{q}");
    assert_eq!(post(m, "/api/v1/jobs/pause", &json!({"job_id": "two words"})).status, 400);

    // pause, resume, schedule, mode
    assert_eq!(post(m, "/api/v1/queues/pause", &json!({"queue": "held.example/*"})).data()["matched"], 1);
    let q = get(m, "/api/v1/queues?paused=yes").data();
    assert_eq!(q[0]["mode"], "paused");
    assert!(q[0]["waiting_reason"].as_str().unwrap().contains("paused by an operator"));
    assert_eq!(post(m, "/api/v1/queues/resume", &json!({"queue": "held.example"})).data()["matched"], 1);
    assert_eq!(get(m, "/api/v1/queues?paused=yes").data(), json!([]));
    let scheduled = post(m, "/api/v1/queues/schedule", &json!({"queue": "*/*", "retry_recipients": true})).data();
    assert!(scheduled["message"].as_str().unwrap().ends_with("matching queues scheduled."), "{scheduled}");
    assert_eq!(post(m, "/api/v1/queues/schedule", &json!({"queue": "none.example"})).status, 404);
    assert_eq!(
        post(m, "/api/v1/queues/mode", &json!({"queue": "sent.example", "mode": "backoff"})).data()["matched"],
        1
    );
    assert_eq!(get(m, "/api/v1/queues?mode=backoff").data()[0]["queue"], "sent.example/{default}");
    assert_eq!(post(m, "/api/v1/queues/mode", &json!({"queue": "sent.example", "mode": "fast"})).status, 400);

    // sources
    let disabled = post(
        m,
        "/api/v1/sources/disable",
        &json!({"ip": "127.0.0.1", "queue": "held.example", "reenable_after": "1h"}),
    );
    assert_eq!(disabled.data()["matched"], 1);
    assert_eq!(
        post(m, "/api/v1/sources/enable", &json!({"ip": "127.0.0.1", "queue": "held.example"})).data()["matched"],
        1
    );
    assert_eq!(post(m, "/api/v1/sources/disable", &json!({"ip": "nope", "queue": "held.example"})).status, 400);

    // delete: needs a queue or a job; writes b records; the spool lets the recipients go.
    assert_eq!(post(m, "/api/v1/messages/delete", &json!({"rcpt": "h0@held.example"})).status, 400);
    let deleted =
        post(m, "/api/v1/messages/delete", &json!({"queue": "held.example", "rcpt": "h0@held.example"})).data();
    assert_eq!(deleted["deleted"], 1);
    let b = acct_rows(&e, "b", 1);
    assert_eq!(b[0]["rcpt"], "h0@held.example");
    assert!(b[0]["dsnDiag"].contains("deleted by an operator"), "{:?}", b[0]);
    let quiet = post(m, "/api/v1/messages/delete", &json!({"job_id": "held-job", "accounting": false})).data();
    assert_eq!(quiet["deleted"], 2);
    until("an empty spool", || (get(m, "/api/v1/messages").data()["total"] == 0).then_some(()));
    assert_eq!(acct_rows(&e, "b", 1).len(), 1, "--no-accounting wrote no b records");
    let jobs = get(m, "/api/v1/jobs").data();
    let held_job = jobs.as_array().unwrap().iter().find(|j| j["job_id"] == "held-job").unwrap();
    assert_eq!((held_job["deleted"].as_u64(), held_job["queued"].as_u64()), (Some(3), Some(0)), "{held_job}");

    // rotate acct
    let rotated = post(m, "/api/v1/acct/rotate", &json!({})).data();
    assert_eq!(rotated["rotated"].as_array().unwrap().len(), 1, "{rotated}");

    // reload: a broken file is refused with its errors, a good one applies.
    let good = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(&e.config, format!("{good}\nmax-smtp-out banana\n")).unwrap();
    let refused = post(m, "/api/v1/reload", &json!({}));
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(message(&refused).contains("ember.conf:"), "{}", refused.body);
    std::fs::write(&e.config, good.replace("retry-after 1h", "retry-after 2h")).unwrap();
    assert_eq!(post(m, "/api/v1/reload", &json!({})).data()["reloaded"], true);
    let settings = get(m, "/api/v1/settings?queue=held.example").data();
    assert!(settings["text"].as_str().unwrap().contains("retry-after 2h"), "{settings}");

    // The OpenAPI document (derived from the handlers; the unit tests in src/mgmt/openapi check it
    // against the route tables) describes only routes the daemon serves: each documented
    // operation reaches a handler, not the fallbacks. The bodies are a JSON string, which no
    // command takes, so nothing changes.
    let doc = get(m, "/api/v1/openapi.json").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{name}", "app.js").replace("{token}", "not-a-token");
        for method in item.as_object().unwrap().keys() {
            let answer = match method.as_str() {
                "get" => get(m, &concrete),
                "post" => request(m, "POST", &concrete, &["Content-Type: application/json"], br#""x""#),
                other => panic!("{other} {path}: the API serves only GET and POST"),
            };
            assert!(!answer.body.contains("no such endpoint"), "{method} {path} is not served: {}", answer.body);
            assert_ne!(answer.status, 405, "{method} {path}: {}", answer.body);
            assert!(answer.status < 500, "{method} {path}: {}", answer.body);
            operations += 1;
        }
    }
    assert!(operations >= 30, "{operations} operations in {doc}");
}

#[test]
fn default_page_size_csrf_switch_and_request_logging() {
    let e = Ember::start(&config(
        "operator",
        "http-default-max-items 2\nhttp-csrf-protection no\nhttp-log-requests yes\nhttp-log-data yes\n\
         <transmissions-api>\n    api-key txkey0123456789abcdef0123456789ab\n    log-requests yes\n</transmissions-api>\n",
    ));
    let m = mgmt(&e);
    for to in ["a@one.example", "b@two.example", "c@three.example"] {
        inject(&e, to, &[]);
    }
    until("three queues", || (get(m, "/api/v1/queues?maxitems=all").data().as_array()?.len() == 3).then_some(()));
    // http-default-max-items: a listing without maxitems has at most 2 items.
    assert_eq!(get(m, "/api/v1/queues").data().as_array().unwrap().len(), 2);
    assert_eq!(get(m, "/api/v1/domains").data().as_array().unwrap().len(), 2);
    assert_eq!(get(m, "/api/v1/messages").data()["recipients"].as_array().unwrap().len(), 2);
    assert_eq!(get(m, "/api/v1/queues?maxitems=3").data().as_array().unwrap().len(), 3);
    assert_eq!(get(m, "/api/v1/queues?maxitems=many").status, 400);
    // http-csrf-protection no: a plain-text POST from another origin is taken.
    let cross = request(
        m,
        "POST",
        "/api/v1/queues/pause",
        &["Content-Type: text/plain", "Origin: http://elsewhere.example"],
        br#"{"queue": "one.example"}"#,
    );
    assert_eq!(cross.status, 200, "{}", cross.body);
    assert_eq!(get(m, "/api/v1/queues?paused=yes").data()[0]["queue"], "one.example/{default}");
    // http-log-requests and http-log-data: the line with its status and the body.
    e.wait_log(r#"http: 127.0.0.1 POST /api/v1/queues/pause -> 200"#);
    e.wait_log(r#"body: {\"queue\": \"one.example\"}"#);
    e.wait_log("http: 127.0.0.1 GET /api/v1/queues?maxitems=many -> 400");
    // log-requests of <transmissions-api>: a refused injection is logged too, without its body.
    let tx = request(m, "POST", "/api/v1/transmissions", &["Content-Type: application/json"], b"{}");
    assert!(tx.status >= 400, "{}", tx.body);
    e.wait_log(&format!("transmissions-api: 127.0.0.1 POST /api/v1/transmissions -> {}", tx.status));
}

#[test]
fn privacy_policy_redacts_recipients_in_a_second_accounting_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let extra = format!(
        "<acct-file private.csv>\n    records r,d\n    privacy-policy redact\n</acct-file>\n{}",
        route_all(sink.addr.port())
    );
    let e = Ember::start_in(dir, &config("monitor", &extra));
    inject(&e, "Someone@dest.example", &[]);
    let plain = acct_rows(&e, "d", 1);
    assert_eq!(plain[0]["rcpt"], "Someone@dest.example");
    let private = until("the redacted d record", || {
        let (_, rows) = crate::support::peers::read_acct(&e.path("private.csv"));
        rows.into_iter().find(|r| r["type"] == "d")
    });
    assert_eq!(private["rcpt"], "redacted@dest.example");
    assert_eq!(private["orig"], "sender@example.net");
    let (_, rows) = crate::support::peers::read_acct(&e.path("private.csv"));
    let receipt = rows.iter().find(|r| r["type"] == "r").expect("an r record");
    assert_eq!(receipt["rcpt"], "redacted@dest.example");
}

/// `curl -k` over HTTPS: (status line and headers, body).
fn curl_https(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "10", "-D", "-"])
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn https_on_the_management_port_with_hsts_redirects_and_handshake_log() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("mgmt.pem"), format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem())).unwrap();
    let e = Ember::start_in(
        dir,
        &config(
            "monitor",
            "http-tls-certificate mgmt.pem\nhttp-redirect-to-https yes\nhttp-strict-transport-security-max-age 1d\nhttp-log-tls yes\n",
        ),
    );
    let m = mgmt(&e);
    let (head, body) = curl_https(m, "/api/v1/status");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("strict-transport-security: max-age=86400"), "{head}");
    assert!(body.contains("\"status\":\"success\""), "{body}");
    e.wait_log("management https: TLS with 127.0.0.1");
    // Plain HTTP on the same port is sent to HTTPS.
    let plain = get(m, "/api/v1/queues?maxitems=all");
    assert_eq!(plain.status, 301, "{}", plain.body);
    assert!(plain.body.contains(&format!("https://{m}/api/v1/queues?maxitems=all")), "{}", plain.body);
    // The access rules hold over HTTPS: a POST needs operator.
    let refused = std::process::Command::new("curl")
        .args(["-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json", "--data", "{\"queue\": \"x\"}"])
        .arg(format!("https://{m}/api/v1/queues/pause"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "403");
}
