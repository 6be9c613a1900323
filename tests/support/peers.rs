//! Real receiving peers for delivery tests: Postfix's `smtp-sink`, a private Postfix instance
//! (`bench/postfix-instance.sh`), and the scripted receiver (`receiver.py`). Each is started on
//! a free port and stopped when dropped; readiness is checked by connecting, never by sleeping.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on `ip` (bound and released; good enough on a test machine).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `addr`, up to a bound.
pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::yield_now();
    }
}

/// Postfix's smtp-sink, dumping each message into `dir`.
pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Sink {
    pub fn start(ip: &str, port: u16, dir: &Path) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        // smtp-sink drops privileges to this user after binding.
        Command::new("chown").arg("nobody").arg(dir).status().unwrap();
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let child = Command::new("smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/%Y%m%d%H%M%S.", dir.display()))
            .arg(format!("{ip}:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (package postfix)");
        wait_listening(addr);
        Sink { child, addr, dir: dir.to_path_buf() }
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
            .collect();
        out.sort();
        out
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Postfix accepting mail on 127.0.0.1:port (queued, not delivered further).
pub struct Postfix {
    pub dir: PathBuf,
    pub addr: SocketAddr,
}

impl Postfix {
    pub fn start(dir: &Path, port: u16, extra: &[String]) -> Postfix {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/postfix-instance.sh");
        let out =
            Command::new("bash").arg(script).arg("start").arg(dir).arg(port.to_string()).args(extra).output().unwrap();
        assert!(
            out.status.success(),
            "postfix: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Postfix { dir: dir.to_path_buf(), addr: format!("127.0.0.1:{port}").parse().unwrap() }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/postfix-instance.sh");
        let _ = Command::new("bash").arg(script).arg("stop").arg(&self.dir).output();
    }
}

/// The scripted receiver (`tests/support/receiver.py`): replies chosen by the test, every
/// connection and message logged as JSON lines.
pub struct Receiver {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Receiver {
    /// Starts on `ip` (port chosen by the receiver) with `script` (JSON).
    pub fn start(ip: &str, script: &serde_json::Value, dir: &Path, tls_cert: Option<&Path>) -> Receiver {
        Receiver::start_on(&format!("{ip}:0"), script, dir, tls_cert)
    }

    pub fn start_on(listen: &str, script: &serde_json::Value, dir: &Path, tls_cert: Option<&Path>) -> Receiver {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Several receivers may share a directory: each gets its own script and log.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let tag = format!("{}-{}", listen.replace([':', '.'], "_"), NEXT.fetch_add(1, Ordering::Relaxed));
        let script_path = dir.join(format!("receiver-{tag}.json"));
        let log = dir.join(format!("receiver-{tag}.jsonl"));
        std::fs::write(&script_path, script.to_string()).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/receiver.py"))
            .args(["--listen", listen, "--script"])
            .arg(&script_path)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(cert) = tls_cert {
            cmd.arg("--tls-cert").arg(cert);
        }
        let (child, addr) = spawn_ready(&mut cmd, "receiver");
        Receiver { child, addr, log }
    }

    /// Logged events of one kind (`message`, `connect`, …).
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        logged(&self.log, kind)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads an accounting file with a CSV parser (Python's `csv`, as operators' tools would):
/// the header and one map per record.
pub fn read_acct(path: &Path) -> (Vec<String>, Vec<std::collections::HashMap<String, String>>) {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import csv,json,sys\nr=csv.reader(open(sys.argv[1],newline=''))\nrows=list(r)\nprint(json.dumps({'header':rows[0],'rows':[dict(zip(rows[0],x)) for x in rows[1:]]}))")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let header = v["header"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect();
    let rows = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
        .collect();
    (header, rows)
}

/// The mailbox provider simulator (`tests/support/provider.py`): hidden per-IP rate and
/// connection limits, answered as Microsoft, Yahoo or Gmail answer them.
pub struct Provider {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Provider {
    /// `style`: microsoft, yahoo or gmail; `rate`: messages per IP in any second (0: none);
    /// `connections`: concurrent connections per IP (0: none).
    pub fn start(ip: &str, style: &str, rate: u32, connections: u32, dir: &Path) -> Provider {
        Provider::start_with(ip, style, rate, connections, dir, &[])
    }

    /// With more arguments (`--data-delay 0.05`).
    pub fn start_with(ip: &str, style: &str, rate: u32, connections: u32, dir: &Path, extra: &[&str]) -> Provider {
        let log = dir.join(format!("provider-{ip}-{style}.jsonl"));
        let mut cmd = Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/provider.py"))
            .args(["--listen", &format!("{ip}:0"), "--style", style])
            .args(["--rate", &rate.to_string(), "--connections", &connections.to_string(), "--log"])
            .arg(&log)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let (child, addr) = spawn_ready(&mut cmd, "provider");
        Provider { child, addr, log }
    }

    /// Logged events of one kind (`accepted`, `deferred`, `connect`, `refused`).
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        logged(&self.log, kind)
    }
}

/// Starts a Python peer that prints "ready HOST:PORT" once it listens; returns it and its address.
fn spawn_ready(cmd: &mut Command, what: &str) -> (Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = cmd.spawn().expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("{what} did not start: {line:?}")).parse().unwrap();
    (child, addr)
}

/// The JSON-lines events of one kind a peer logged.
fn logged(log: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == kind)
        .collect()
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mta_sts_host.py`: an HTTPS MTA-STS policy host on IP:443 (root needed) with `cert` (PEM:
/// certificate, chain, key), answering as `action` says (`ok`, `redirect`, …) with `policy`.
pub struct PolicyHost {
    child: Child,
}

impl PolicyHost {
    pub fn start(dir: &Path, ip: &str, cert: &Path, action: &str, policy: &str) -> PolicyHost {
        let policy_file = dir.join(format!("policy-{ip}.txt"));
        std::fs::write(&policy_file, policy).unwrap();
        let ready = dir.join(format!("ready-{ip}"));
        // A host started again on the same address must not be taken for ready by its
        // predecessor's file.
        let _ = std::fs::remove_file(&ready);
        let child = Command::new("python3")
            .arg(super::support_dir().join("mta_sts_host.py"))
            .args(["--listen", &format!("{ip}:443"), "--action", action])
            .arg("--cert")
            .arg(cert)
            .arg("--policy")
            .arg(&policy_file)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the policy host on {ip} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PolicyHost { child }
    }
}

impl Drop for PolicyHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `e`'s `acct.csv` until a record of `kind` for `rcpt` appears. A `t` also matches the
/// queue's own `tq` deferral of the recipient's domain (written when nothing could be sent).
pub fn wait_acct_record(e: &super::Ember, kind: &str, rcpt: &str) -> std::collections::HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if e.path("acct.csv").exists() {
            let (_, rows) = read_acct(&e.path("acct.csv"));
            let queue = format!("{}/", rcpt.split('@').nth(1).unwrap());
            let wanted = |r: &std::collections::HashMap<String, String>| {
                (r["type"] == kind && r["rcpt"] == rcpt)
                    || (kind == "t" && r["type"] == "tq" && r["queue"].starts_with(&queue))
            };
            if let Some(r) = rows.into_iter().find(wanted) {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "no {kind} record for {rcpt}; log: {:?}", e.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `rx` got the message for `rcpt` over TLS (`None`: it never got it).
pub fn delivered_over_tls(rx: &Receiver, rcpt: &str) -> Option<bool> {
    rx.events("message")
        .iter()
        .find(|m| m["rcpts"].as_array().is_some_and(|r| r.iter().any(|a| a == rcpt)))
        .map(|m| m["tls"].as_bool().unwrap_or(false))
}
