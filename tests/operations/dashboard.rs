//! The dashboard in a real browser: Debian's headless Chromium driven through chromedriver's
//! WebDriver HTTP API (plain JSON over the test's own HTTP client). The page loads from `/ui`,
//! its numbers change while mail flows (without a reload), a queue is paused with its button,
//! and the CLI then reports that queue paused. Screenshots are saved under `target/`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use serde_json::{Value, json};

use super::{config, inject, mgmt, route_all, until};
use crate::support::Ember;
use crate::support::http::request;
use crate::support::peers::{Sink, free_port, wait_listening};

/// chromedriver on a free loopback port with one browser session, both ended when dropped.
struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port("127.0.0.1");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (package chromium-driver) is installed by scripts/test.sh");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr);
        let mut d = Driver { child, addr, session: String::new() };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-first-run", "--disable-extensions"]
            }
        }}});
        let a = d.raw("POST", "/session", &caps.to_string());
        assert_eq!(a.status, 200, "chromedriver could not start chromium: {}", a.body);
        d.session = a.json()["value"]["sessionId"].as_str().expect("a WebDriver session").to_string();
        d
    }

    fn raw(&self, method: &str, path: &str, body: &str) -> crate::support::http::Answer {
        let headers: &[&str] = if method == "POST" { &["Content-Type: application/json"] } else { &[] };
        request(self.addr, method, path, headers, body.as_bytes())
    }

    /// A command of this session that must succeed; its `value`.
    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let a = self.raw(method, &format!("/session/{}{what}", self.session), &body);
        assert_eq!(a.status, 200, "webdriver {method} {what}: {}", a.body);
        a.json()["value"].clone()
    }

    /// The element matching a CSS selector, if any now.
    fn find(&self, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css}).to_string();
        let a = self.raw("POST", &format!("/session/{}/element", self.session), &body);
        if a.status != 200 {
            return None;
        }
        a.json()["value"].as_object()?.values().next()?.as_str().map(str::to_string)
    }

    /// The text of the element matching `css`. The page re-renders every two seconds, so an
    /// element may go stale between finding and reading it: that is `None`, and callers poll.
    fn text(&self, css: &str) -> Option<String> {
        let id = self.find(css)?;
        let a = self.raw("GET", &format!("/session/{}/element/{id}/text", self.session), "");
        if a.status != 200 {
            return None;
        }
        a.json()["value"].as_str().map(str::to_string)
    }

    fn click(&self, css: &str) -> bool {
        let Some(id) = self.find(css) else { return false };
        self.raw("POST", &format!("/session/{}/element/{id}/click", self.session), "{}").status == 200
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), "");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn number(text: &str) -> u64 {
    text.chars().filter(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
}

#[test]
fn the_dashboard_shows_live_traffic_and_pauses_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start("127.0.0.1", free_port("127.0.0.1"), &dir.path().join("sink"));
    let held = "<domain held.example>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n";
    // The queue detail lists recipient events only for queues that track them (PowerMTA's default: no).
    let tracked = "<domain live.example>\n    track-recipient-events yes\n</domain>\n";
    let e = Ember::start_in(dir, &config("operator", &format!("{held}{tracked}{}", route_all(sink.addr.port()))));
    inject(&e, "first@held.example", &[]);

    let d = Driver::start();
    d.cmd("POST", "/url", Some(json!({"url": format!("http://{}/ui", mgmt(&e))})));
    let before = until("the overview's delivered count", || d.text("#delivered-total").map(|t| number(&t)));
    assert_eq!(before, 0);
    // Mail flows; the open page follows it without being reloaded.
    for n in 0..5 {
        inject(&e, &format!("r{n}@live.example"), &[]);
    }
    until("5 delivered on the page", || d.text("#delivered-total").filter(|t| number(t) == 5).map(|_| ()));
    until("6 received on the page", || d.text("#received-total").filter(|t| number(t) == 6).map(|_| ()));
    let script = json!({"script": "return performance.getEntriesByType('navigation').length", "args": []});
    assert_eq!(d.cmd("POST", "/execute/sync", Some(script)), 1, "the page was never reloaded");
    let overview = d.cmd("GET", "/screenshot", None);

    // Queues: the held queue's Pause button, then the CLI's view of it.
    assert!(d.click("a[href='#queues']"));
    let pause = "button.pause[data-queue='held.example/{default}']";
    until("a click on the held queue's Pause button", || d.click(pause).then_some(()));
    until("its Resume button", || d.find("button.resume[data-queue='held.example/{default}']").map(|_| ()));
    let out = e.live_cli(&["show", "queues", "--paused", "yes", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let paused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(paused[0]["queue"], "held.example/{default}", "{paused}");
    assert_eq!(paused[0]["mode"], "paused");
    let queues = d.cmd("GET", "/screenshot", None);

    // Queue detail, domains and VMTAs render from the live API too.
    assert!(d.click("a.queue[href='#queue/live.example%2F%7Bdefault%7D']"));
    until("the queue's recipient events", || {
        d.text("#queue-events").filter(|t| t.contains("r4@live.example")).map(|_| ())
    });
    assert!(d.click("a[href='#domains']"));
    until("the domains table", || d.text("#domains-table").filter(|t| t.contains("live.example")).map(|_| ()));
    assert!(d.click("a[href='#vmtas']"));
    until("the VMTAs table", || d.text("#vmtas-table").filter(|t| t.contains("{default}")).map(|_| ()));

    // Suppression search: suppress an address from the page; the CLI then finds it on the list.
    assert!(d.click("a[href='#suppression']"));
    let input = until("the suppression form", || d.find("#suppression-address"));
    let typed = d.raw(
        "POST",
        &format!("/session/{}/element/{input}/value", d.session),
        &json!({"text": "complainer@live.example"}).to_string(),
    );
    assert_eq!(typed.status, 200);
    assert!(d.click("#suppression-add"));
    until("the page's answer", || {
        d.text("#suppression-result").filter(|t| t.starts_with("complainer@live.example: suppressed")).map(|_| ())
    });
    let check = e.live_cli(&["suppression", "check", "complainer@live.example"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    for (name, shot) in [("dashboard-overview.png", overview), ("dashboard-queues.png", queues)] {
        let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let path = target.join(name);
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}
