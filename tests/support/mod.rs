//! Test support shared by the integration tests: start the real `ember` binary on a config
//! written by the test, wait for it to be ready (by reading its output, never by sleeping), stop
//! or kill it, and run its CLI against the same config.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const EMBER: &str = env!("CARGO_BIN_EXE_ember");

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

    /// Waits until the log (stderr) has shown `count` more lines containing `needle`.
    pub fn wait_log_count(&self, needle: &str, count: usize) {
        let rx = self.log.as_ref().unwrap();
        let mut seen = 0;
        while seen < count {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains(needle) => seen += 1,
                Ok(_) => {}
                Err(_) => panic!("log never showed {needle:?} {count} times: {:?}", self.stderr.lock().unwrap()),
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
