//! Real peers for the client tests, in one place: `tests/support/receiver.py` (scripted replies
//! and misbehaviour, a JSON-lines log to assert on) and Postfix's `smtp-sink`; certificates
//! made with rcgen; a short-timeout client configuration and a message builder.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::ClientConfig;
use crate::delivery::{OutgoingMessage, OutgoingRecipient};
use crate::message::Notify;

pub const RECEIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/receiver.py");
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// How `receiver.py` is started besides its script.
#[derive(Default)]
pub struct Options {
    /// PEM with certificate and key: STARTTLS is offered.
    pub tls_cert: Option<PathBuf>,
    pub no_esmtp: bool,
}

/// A running `receiver.py`, killed when dropped.
pub struct Receiver {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub fn start(script: Value) -> Receiver {
        Receiver::start_with(script, Options::default())
    }

    /// Starts the receiver on a free port and waits for its "ready" line (no sleeping).
    pub fn start_with(script: Value, options: Options) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let script_path = dir.path().join("script.json");
        std::fs::write(&script_path, script.to_string()).unwrap();
        let log = dir.path().join("log.jsonl");
        let mut cmd = Command::new("python3");
        cmd.arg(RECEIVER).args(["--listen", "127.0.0.1:0", "--script"]).arg(&script_path).arg("--log").arg(&log);
        if let Some(cert) = &options.tls_cert {
            cmd.arg("--tls-cert").arg(cert);
        }
        if options.no_esmtp {
            cmd.arg("--no-esmtp");
        }
        let stderr = dir.path().join("stderr");
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr).unwrap()).spawn().expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("ready ") else {
            let _ = child.wait();
            panic!("receiver.py did not start: {line}{}", std::fs::read_to_string(&stderr).unwrap_or_default());
        };
        let addr = addr.parse().unwrap();
        Receiver { child, addr, log, _dir: dir }
    }

    /// Every logged event so far.
    pub fn log(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.log().into_iter().filter(|e| e["event"] == kind).collect()
    }

    /// Accepted messages, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.events("message")
    }

    /// Every command line received, in order.
    pub fn commands(&self) -> Vec<String> {
        self.events("command").iter().map(|e| e["line"].as_str().unwrap().to_string()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running Postfix `smtp-sink` dumping every transaction to one file, killed when dropped.
pub struct Sink {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Sink {
    /// `smtp-sink` with extra options (`-e`: no ESMTP, `-p`: no PIPELINING, …).
    pub fn start(options: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        // smtp-sink runs as nobody (-u) and writes its dump there.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        // smtp-sink cannot pick its own port: take a free one and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(SMTP_SINK)
            .args(["-u", "nobody", "-D"])
            .arg(dir.path().join("dump"))
            .args(options)
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink runs");
        // smtp-sink has no readiness signal: poll its port, briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Sink { child, addr, dir }
    }

    /// Everything dumped so far (smtp-sink's X-* headers, then each message).
    pub fn dump(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dump")).unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority and a server certificate for `mx.test` signed by it.
pub struct Certs {
    _dir: tempfile::TempDir,
    /// Server certificate chain and key in one PEM, for `--tls-cert`.
    pub server_pem: PathBuf,
    /// The CA certificate, for `smtp-tls-ca-file`.
    pub ca_pem: PathBuf,
    /// Another CA, which did not sign the server certificate.
    pub other_ca_pem: PathBuf,
    /// A client certificate (CN `ember client`) signed by the CA, with its key.
    pub client_pem: PathBuf,
}

pub fn certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key)
    };
    let (ca_cert, ca_key) = ca("Ember test CA");
    let (other_cert, _) = ca("Some other CA");
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["mx.test".to_string()]).unwrap().signed_by(&key, &ca_cert, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["client.ember.test".to_string()]).unwrap();
    client_params.distinguished_name.push(rcgen::DnType::CommonName, "ember client");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Certs {
        server_pem: write("server.pem", format!("{}{}{}", leaf.pem(), ca_cert.pem(), key.serialize_pem())),
        ca_pem: write("ca.pem", ca_cert.pem()),
        other_ca_pem: write("other-ca.pem", other_cert.pem()),
        client_pem: write("client.pem", format!("{}{}", client.pem(), client_key.serialize_pem())),
        _dir: dir,
    }
}

/// A client configuration with 5 s timeouts, so a broken test fails in seconds (timeout tests
/// shorten one of them and assert the error comes well before 5 s).
pub fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        greeting_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        data_send_timeout: Duration::from_secs(5),
        data_termination_timeout: Duration::from_secs(5),
        ..ClientConfig::new("ember.test")
    }
}

pub fn message(recipients: &[&str], body: &str) -> OutgoingMessage {
    OutgoingMessage {
        sender: "sender@ember.test".into(),
        recipients: recipients
            .iter()
            .map(|a| OutgoingRecipient { address: a.to_string(), notify: Notify::default(), orcpt: None })
            .collect(),
        env_id: None,
        ret: None,
        eight_bit: false,
        smtputf8: false,
        body: Arc::new(body.as_bytes().to_vec()),
    }
}

/// A small message with CRLF line endings.
pub fn body(text: &str) -> String {
    format!("Subject: test\r\nFrom: sender@ember.test\r\n\r\n{}", text.replace('\n', "\r\n"))
}
