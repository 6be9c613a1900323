//! Test support shared by the integration tests: start the real `ember` binary on a config
//! written by the test, wait for it to be ready (by reading its output, never by sleeping), stop
//! or kill it, and run its CLI against the same config.

#![allow(dead_code)]

pub mod dns;
pub mod dnssec;
pub mod event_peers;
pub mod http;
pub mod peers;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const EMBER: &str = env!("CARGO_BIN_EXE_ember");

/// Holds delivery: every queue tries a loopback port nobody listens on, then waits an hour.
pub const HOLD: &str = "<domain *>\n    smtp-hosts [127.0.0.1]:9\n    retry-after 1h\n</domain>\n";

/// A running (or stopped) Ember with its own directory.
pub struct Ember {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    child: Option<Child>,
    /// Every stdout line so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    lines: Option<mpsc::Receiver<String>>,
    log: Option<mpsc::Receiver<String>>,
    /// SMTP listeners as the daemon reported them.
    pub listeners: Vec<SocketAddr>,
    /// The management API, as the daemon reported it.
    pub mgmt: Option<SocketAddr>,
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
    all: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            all.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    })
}

impl Ember {
    /// Writes `config` (relative paths resolve in the test's directory) and starts Ember on it.
    pub fn start(config: &str) -> Ember {
        Ember::start_in(tempfile::tempdir().unwrap(), config)
    }

    /// Like `start`, in a directory the test has already prepared (certificates, lists).
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Ember {
        let path = dir.path().join("ember.conf");
        // Tests run in parallel: PowerMTA's default management port (8080 on every address)
        // would collide, so a config that does not choose one gets a free loopback port.
        let mut config = if config.contains("http-mgmt-port") {
            config.to_string()
        } else {
            format!("{config}\nhttp-mgmt-port 127.0.0.1:0\nhttp-access 127.0.0.1 admin\n")
        };
        // Tests may only talk to loopback: a config that routes nothing itself (no smtp-hosts,
        // no local name-server) holds its mail on a port where nobody listens, so the queue
        // waits in retry mode instead of asking the internet's DNS.
        if !config.contains("smtp-hosts") && !config.contains("name-server") {
            config.push_str(HOLD);
        }
        std::fs::write(&path, config).unwrap();
        let mut e = Ember {
            dir,
            config: path,
            child: None,
            stdout: Arc::default(),
            stderr: Arc::default(),
            lines: None,
            log: None,
            listeners: Vec::new(),
            mgmt: None,
        };
        e.launch();
        e
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Starts the daemon and waits for its ready line.
    pub fn launch(&mut self) {
        let mut child = Command::new(EMBER)
            .args(["run", "--config"])
            .arg(&self.config)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ember");
        let (tx, rx) = mpsc::channel();
        let (log_tx, log_rx) = mpsc::channel();
        let readers = [
            collect(child.stdout.take().unwrap(), Arc::clone(&self.stdout), Some(tx)),
            collect(child.stderr.take().unwrap(), Arc::clone(&self.stderr), Some(log_tx)),
        ];
        self.log = Some(log_rx);
        self.listeners.clear();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("management http ") {
                        self.mgmt = addr.parse().ok();
                    }
                    if let Some(addr) = line.strip_prefix("smtp listener ") {
                        let addr = addr.split_whitespace().next().unwrap();
                        self.listeners.push(addr.parse().unwrap());
                    }
                    if line.starts_with("ember ready") {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    for r in readers {
                        let _ = r.join();
                    }
                    panic!(
                        "ember did not become ready ({status:?}):\nstdout: {:?}\nstderr: {:?}",
                        self.stdout.lock().unwrap(),
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
        self.child = Some(child);
        self.lines = Some(rx);
    }

    /// The first SMTP listener.
    pub fn smtp(&self) -> SocketAddr {
        self.listeners[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for a stdout line containing `needle` (an event the test expects), up to a bound.
    pub fn wait_stdout(&self, needle: &str) -> String {
        let rx = self.lines.as_ref().unwrap();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stdout line containing {needle:?}: {:?}", self.stdout.lock().unwrap()),
            }
        }
    }

    /// Waits until the log (stderr) has shown `count` lines containing `needle` since the first
    /// launch (counted over the whole log, so the order of waits does not matter).
    pub fn wait_log_count(&self, needle: &str, count: usize) {
        let rx = self.log.as_ref().unwrap();
        loop {
            let seen =
                self.stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|l| l.contains(needle)).count();
            if seen >= count {
                return;
            }
            // Each new log line wakes us to count again.
            if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                panic!(
                    "log never showed {needle:?} {count} times: {:?}",
                    self.stderr.lock().unwrap_or_else(|p| p.into_inner())
                );
            }
        }
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) {
        self.wait_log_count(needle, 1);
    }

    /// Whether stderr (the log) has a line containing `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// SIGTERM and wait; asserts a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let status = child.wait().unwrap();
            assert!(status.success(), "ember exited with {status}; stderr: {:?}", self.stderr.lock().unwrap());
        }
    }

    /// SIGKILL: the crash tests' power cut.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// Runs `ember ARGS --config CONFIG`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(EMBER).args(args).arg("--config").arg(&self.config).current_dir(self.dir.path()).output().unwrap()
    }

    /// `ember ARGS --mgmt ADDR --config CONFIG`: a live view from the running daemon's API.
    pub fn live_cli(&self, args: &[&str]) -> Output {
        let mgmt = self.mgmt.expect("the daemon printed its management address").to_string();
        Command::new(EMBER)
            .args(args)
            .args(["--mgmt", &mgmt])
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Polls `show queues` until a queue says it is waiting for a reason containing `needle`
    /// (the limiter, in the words `explain` uses), and returns that reason.
    pub fn wait_queue_reason(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.live_cli(&["show", "queues", "--json"]);
            let queues: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let reasons = queues.as_array().into_iter().flatten().filter_map(|q| q["waiting_reason"].as_str());
            if let Some(reason) = reasons.into_iter().find(|r| r.contains(needle)) {
                return reason.to_string();
            }
            assert!(std::time::Instant::now() < deadline, "no queue ever waited for {needle:?}: {queues}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Injects `n` messages over one connection (Python's smtplib), one recipient each:
    /// `{prefix}{i}@example.com`, in order.
    pub fn inject_numbered(&self, n: usize, prefix: &str) {
        let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
for i in range(int(sys.argv[2])):
    s.sendmail("a@example.net", ["%s%d@example.com" % (sys.argv[3], i)], "Subject: %d\r\n\r\nx\r\n" % i)
s.quit()
"#;
        let out = python(script, &[self.smtp().to_string(), n.to_string(), prefix.to_string()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Sends `message` from `source` (a loopback address) with `smtp_send.py`, which reports
    /// every reply of the session as JSON.
    pub fn send_with_script(&self, source: &str, from: &str, rcpts: &[&str], message: &str) -> serde_json::Value {
        let file = self.path(&format!("msg-{}.eml", rcpts.join("_").replace(['@', '.'], "-")));
        std::fs::write(&file, message).unwrap();
        let out = Command::new("python3")
            .arg(support_dir().join("smtp_send.py"))
            .arg(self.smtp().to_string())
            .args([source, from, &rcpts.join(",")])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "smtp_send.py: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The message `ember show message` prints for a spooled id (after the envelope line).
    pub fn shown_message(&self, id: &str) -> String {
        let shown = self.cli(&["show", "message", id]);
        let text = String::from_utf8_lossy(&shown.stdout).to_string();
        text[text.find('\n').unwrap() + 1..].to_string()
    }

    /// `ember list --json`, parsed.
    pub fn spooled(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["list", "--json"]);
        assert!(out.status.success(), "ember list: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("ember list --json")
    }
}

impl Drop for Ember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// Runs a Python snippet with arguments; returns its output.
pub fn python(script: &str, args: &[String]) -> Output {
    Command::new("python3").arg("-c").arg(script).args(args).output().expect("python3")
}

/// Runs swaks with arguments; returns its output.
pub fn swaks(args: &[&str]) -> Output {
    Command::new("swaks").args(args).output().expect("swaks is installed by scripts/test.sh")
}

/// The directory of this test crate's support files.
pub fn support_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support"))
}
