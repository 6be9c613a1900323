//! The tests' HTTP client for the management API (and chromedriver): one request, the status,
//! headers and body back, whatever the status. A thin layer over `ureq`, the client the CLI
//! uses; tests that must send malformed HTTP keep raw sockets of their own.

use std::net::SocketAddr;
use std::time::Duration;

use ureq::Agent;
use ureq::http::Request;

pub struct Answer {
    pub status: u16,
    /// The status line and header lines, as `HTTP/1.1 200\r\nname: value...`.
    pub headers: String,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `data` member of a success envelope (asserts 200).
    pub fn data(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.json()["data"].clone()
    }
}

/// An agent that hands back every answer as it is: errors and redirects are what the tests check.
fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        // ureq's own headers stay out of the requests the tests shape (no compression either).
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .build()
        .new_agent()
}

/// Sends `method path` with extra header lines (`Name: value`) and a body (none for an empty GET).
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut builder = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for h in headers {
        let (name, value) = h.split_once(':').unwrap_or_else(|| panic!("header line {h:?}"));
        builder = builder.header(name.trim(), value.trim());
    }
    let agent = agent();
    let sent = if body.is_empty() && method != "POST" {
        agent.run(builder.body(()).expect("a valid request"))
    } else {
        agent.run(builder.body(body.to_vec()).expect("a valid request"))
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"));
    let status = response.status().as_u16();
    let mut head = format!("HTTP/1.1 {status}");
    for (name, value) in response.headers() {
        head.push_str(&format!("\r\n{name}: {}", String::from_utf8_lossy(value.as_bytes())));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_else(|e| panic!("reading the answer to {method} {path}: {e}"));
    Answer { status, headers: head, body }
}

pub fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], b"")
}

/// A JSON POST as the CLI and the dashboard send it.
pub fn post(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Answer {
    request(addr, "POST", path, &["Content-Type: application/json"], body.to_string().as_bytes())
}
