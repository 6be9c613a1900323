//! Peers of the event sinks: the HTTP receiver (`webhook.py`, which records every request and
//! can be told to fail, hang or answer garbage) and a real `nats-server` with JetStream.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::{free_port, wait_listening};

/// `tests/support/webhook.py` on a loopback port.
pub struct Webhook {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub mode_file: PathBuf,
}

/// One request the receiver logged.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// What the receiver answered: 200, 500, … or "hang" / "garbage".
    pub status: serde_json::Value,
}

impl Webhook {
    pub fn start(dir: &Path) -> Webhook {
        let port = free_port("127.0.0.1");
        let log = dir.join(format!("webhook-{port}.jsonl"));
        let mode_file = dir.join(format!("webhook-{port}.mode"));
        let mut w = Webhook { child: None, addr: format!("127.0.0.1:{port}").parse().unwrap(), log, mode_file };
        w.restart();
        w
    }

    /// Starts the receiver again on the same port (after `down`).
    pub fn restart(&mut self) {
        let mut child = Command::new("python3")
            .arg(super::support_dir().join("webhook.py"))
            .args(["--listen", &self.addr.to_string(), "--log"])
            .arg(&self.log)
            .arg("--mode-file")
            .arg(&self.mode_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "webhook.py did not start: {line:?}");
        self.child = Some(child);
    }

    /// Stops the receiver: connections are refused until `restart`.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How the next requests are answered: ok, fail, reject, hang, garbage.
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(&self.mode_file, mode).unwrap();
    }

    pub fn requests(&self) -> Vec<Request> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| Request {
                headers: v["headers"]
                    .as_object()
                    .map(|h| {
                        h.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string())).collect()
                    })
                    .unwrap_or_default(),
                body: v["body"].as_str().unwrap_or("").to_string(),
                status: v["status"].clone(),
            })
            .collect()
    }

    /// The events of every request answered 200, in arrival order (with repeats).
    pub fn accepted_events(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| serde_json::from_str::<Vec<serde_json::Value>>(&r.body).expect("a JSON array"))
            .collect()
    }

    /// Polls until `done` holds for the accepted events, up to `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.accepted_events();
            if done(&events) {
                return events;
            }
            assert!(Instant::now() < deadline, "the receiver never got {what}: {events:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.down();
    }
}

/// `nats-server -js` on a loopback port, its store in the test's directory.
pub struct NatsServer {
    child: Child,
    pub port: u16,
}

impl NatsServer {
    pub fn start(dir: &Path) -> NatsServer {
        let port = free_port("127.0.0.1");
        let store = dir.join("nats-store");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server, installed by scripts/test.sh)");
        wait_listening(format!("127.0.0.1:{port}").parse().unwrap());
        NatsServer { child, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
