//! A validating DNS setup on loopback for DANE tests: zones signed by `ldns-signzone` (keys from
//! `ldns-keygen`, Debian package `ldnsutils`) and served by `unbound` as a validating recursive
//! resolver (`auth-zone` for the data, a trust anchor for each signed zone). Everything lives in
//! the test's directory; unbound listens on 127.0.0.1 on a free port, is ready when `start`
//! returns (a query has been answered), and stops when dropped.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, Query};
use hickory_resolver::proto::rr::{Name, RecordType};

/// A zone file ready for unbound, with the DS record of its key when signed.
pub struct Zone {
    pub name: String,
    pub file: PathBuf,
    /// The DS record (a trust anchor for unbound) of a signed zone.
    pub ds: Option<PathBuf>,
}

impl Zone {
    /// An unsigned zone `name` with `records` (zone file lines relative to the origin).
    pub fn unsigned(dir: &Path, name: &str, records: &str) -> Zone {
        let file = dir.join(format!("{name}.zone"));
        std::fs::write(&file, zone_text(name, records)).unwrap();
        Zone { name: name.into(), file, ds: None }
    }

    /// `name` signed with a fresh KSK and ZSK (ECDSA P-256). `tamper`: owner names (absolute,
    /// with the trailing dot) and types whose RRSIG is then made invalid, as an attacker's
    /// answer would be (`("_25._tcp.mx.example.test.", "TLSA")`).
    pub fn signed(dir: &Path, name: &str, records: &str, tamper: &[(&str, &str)]) -> Zone {
        let zone = dir.join(format!("{name}.zone"));
        std::fs::write(&zone, zone_text(name, records)).unwrap();
        let keygen = |ksk: bool| {
            let mut cmd = Command::new("ldns-keygen");
            cmd.current_dir(dir).args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                cmd.arg("-k");
            }
            let out = cmd.arg(name).output().expect("ldns-keygen (apt-get install ldnsutils)");
            assert!(out.status.success(), "ldns-keygen: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let (ksk, zsk) = (keygen(true), keygen(false));
        let out = Command::new("ldns-signzone")
            .current_dir(dir)
            .arg(&zone)
            .args([&zsk, &ksk])
            .output()
            .expect("ldns-signzone (apt-get install ldnsutils)");
        assert!(out.status.success(), "ldns-signzone: {}", String::from_utf8_lossy(&out.stderr));
        let file = dir.join(format!("{name}.zone.signed"));
        if !tamper.is_empty() {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut tampered = 0;
            let lines: Vec<String> = text
                .lines()
                .map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let hit = fields.len() > 5
                        && fields[3] == "RRSIG"
                        && tamper.iter().any(|(owner, rtype)| fields[0] == *owner && fields[4] == *rtype);
                    if !hit {
                        return line.to_string();
                    }
                    tampered += 1;
                    // The signature is the last field (base64): change one of its characters.
                    let signature = fields[fields.len() - 1];
                    let mut bytes = signature.as_bytes().to_vec();
                    bytes[4] = if bytes[4] == b'A' { b'B' } else { b'A' };
                    line.replace(signature, std::str::from_utf8(&bytes).unwrap())
                })
                .collect();
            assert_eq!(tampered, tamper.len(), "RRSIGs to tamper with not found in {}", file.display());
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        }
        Zone { name: name.into(), file, ds: Some(dir.join(format!("{ksk}.ds"))) }
    }
}

fn zone_text(name: &str, records: &str) -> String {
    format!(
        "$ORIGIN {name}.\n$TTL 300\n@ IN SOA ns.{name}. hostmaster.{name}. 1 3600 600 86400 300\n@ IN NS ns.{name}.\nns IN A 127.0.0.1\n{records}\n"
    )
}

/// unbound validating the signed zones it serves.
pub struct Unbound {
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Unbound {
    /// # Panics
    /// When unbound is not installed or does not start answering.
    pub fn start(dir: &Path, zones: &[Zone]) -> Unbound {
        let port = free_port();
        let mut conf = format!(
            "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  username: \"\"\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n  module-config: \"validator iterator\"\n  val-log-level: 2\n  local-zone: \"test.\" nodefault\n",
            dir = dir.display()
        );
        for zone in zones {
            if let Some(ds) = &zone.ds {
                conf.push_str(&format!("  trust-anchor-file: \"{}\"\n", ds.display()));
            }
        }
        for zone in zones {
            conf.push_str(&format!(
                "auth-zone:\n  name: \"{}\"\n  zonefile: \"{}\"\n  for-upstream: yes\n  for-downstream: no\n  fallback-enabled: no\n",
                zone.name,
                zone.file.display()
            ));
        }
        let conf_file = dir.join("unbound.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let log = dir.join("unbound.log");
        let child = Command::new(unbound_binary())
            .arg("-d")
            .arg("-c")
            .arg(&conf_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unbound (apt-get install unbound): {e}"));
        let mut unbound = Unbound { addr: SocketAddr::from(([127, 0, 0, 1], port)), child, log };
        unbound.wait_answering(&zones[0].name);
        unbound
    }

    /// Queries the SOA of `zone` every 100 ms until it is answered (50 tries at most).
    fn wait_answering(&mut self, zone: &str) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut query = Message::query();
        query.metadata.id = 4343;
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(format!("{zone}.")).unwrap(), RecordType::SOA));
        let bytes = query.to_vec().unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..50 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("unbound exited ({status}): {}", self.log());
            }
            let _ = socket.send_to(&bytes, self.addr);
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && Message::from_vec(&buf[..n]).is_ok_and(|m| m.metadata.id == 4343)
            {
                return;
            }
        }
        panic!("unbound does not answer on {}", self.addr);
    }

    /// What unbound logged (validation failures with `val-log-level: 2`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unbound_binary() -> &'static str {
    ["/usr/sbin/unbound", "/sbin/unbound"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("unbound")
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
