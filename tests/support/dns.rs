//! DNS servers for tests: a real dnsmasq serving the records a test gives it, and a scripted
//! responder for the answers dnsmasq will not give (a CNAME loop, SERVFAIL, an SOA with a chosen
//! negative TTL). Both listen on 127.0.0.1 on a free port, are ready when `start` returns (a query
//! has been answered: no sleeping), and stop when dropped.
//!
//! dnsmasq needs the Debian package `dnsmasq` (the binary only: its system service is not used).
//! It is started with `--local=/test/`, so unknown names under `.test` are NXDOMAIN; names outside
//! `.test` are REFUSED (no upstream servers).

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, SOA};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

/// A dnsmasq on 127.0.0.1:`addr.port()` serving `records`.
pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Dnsmasq {
    /// `records` are dnsmasq options, e.g. `--mx-host=example.test,mx1.example.test,10`,
    /// `--host-record=mx1.example.test,127.0.0.2`, `--cname=alias.test,target.test`,
    /// `--mx-host=null.test,.,0` (a null MX), `--local-ttl=300` (local records have TTL 0
    /// otherwise).
    ///
    /// # Panics
    /// When dnsmasq is not installed or does not start answering.
    pub fn start(records: &[&str]) -> Dnsmasq {
        let mut last_error = String::new();
        // A free port can be taken by someone else before dnsmasq binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(dnsmasq_binary())
                .args([
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--local=/test/",
                    "--log-facility=-",
                ])
                .arg(format!("--port={port}"))
                .args(records)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run dnsmasq (apt-get install dnsmasq): {e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if wait_until_answering(addr, &mut child) {
                return Dnsmasq { addr, child: Some(child) };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_error.clear();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut last_error);
            }
        }
        panic!("dnsmasq did not start: {last_error}");
    }

    /// Stops the server; its port then refuses queries.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn dnsmasq_binary() -> &'static str {
    ["/usr/sbin/dnsmasq", "/sbin/dnsmasq"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("dnsmasq")
}

/// A port free for both UDP and TCP on 127.0.0.1 (DNS uses both).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Sends a query every 100 ms (50 at most) until one is answered; false if the server exited.
fn wait_until_answering(addr: SocketAddr, child: &mut Child) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut query = Message::query();
    query.metadata.id = 4242;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii("ready.test.").unwrap(), RecordType::A));
    let bytes = query.to_vec().unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..50 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        let _ = socket.send_to(&bytes, addr);
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && Message::from_vec(&buf[..n]).is_ok_and(|m| m.metadata.id == 4242)
        {
            return true;
        }
    }
    false
}

/// What the scripted server answers to one question.
pub struct Scripted {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

impl Scripted {
    pub fn records(answers: Vec<Record>) -> Scripted {
        Scripted { code: ResponseCode::NoError, answers, authorities: Vec::new() }
    }

    pub fn code(code: ResponseCode) -> Scripted {
        Scripted { code, answers: Vec::new(), authorities: Vec::new() }
    }

    /// NXDOMAIN with an SOA for `zone` whose minimum (the negative TTL) is `minimum`.
    pub fn nxdomain_with_soa(zone: &str, minimum: u32) -> Scripted {
        Scripted { code: ResponseCode::NXDomain, answers: Vec::new(), authorities: vec![soa(zone, minimum)] }
    }
}

pub fn name(n: &str) -> Name {
    let mut name = Name::from_ascii(n).unwrap();
    name.set_fqdn(true);
    name
}

pub fn cname(owner: &str, target: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
}

pub fn a(owner: &str, ip: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(ip.parse().unwrap())))
}

pub fn aaaa(owner: &str, ip: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::AAAA(AAAA(ip.parse().unwrap())))
}

pub fn mx(owner: &str, preference: u16, exchange: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::MX(MX::new(preference, name(exchange))))
}

pub fn soa(zone: &str, minimum: u32) -> Record {
    let soa = SOA::new(name(&format!("ns.{zone}")), name(&format!("hostmaster.{zone}")), 1, 3600, 600, 86400, minimum);
    Record::from_rdata(name(zone), minimum, RData::SOA(soa))
}

/// A UDP DNS server answering every question with `script(name, type)` (name lower case, no
/// trailing dot). Counts the questions it gets.
pub struct ScriptedDns {
    pub addr: SocketAddr,
    pub questions: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedDns {
    pub fn start(script: impl Fn(&str, RecordType) -> Scripted + Send + 'static) -> ScriptedDns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let questions = Arc::new(AtomicU64::new(0));
        let (stop2, questions2) = (stop.clone(), questions.clone());
        // The socket is bound before the thread starts: queries sent from now on are answered.
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
                let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
                let Some(query) = request.queries.first().cloned() else { continue };
                questions2.fetch_add(1, Ordering::Relaxed);
                let asked = query.name().to_ascii().trim_end_matches('.').to_lowercase();
                let reply = script(&asked, query.query_type());
                let mut response = Message::response(request.metadata.id, OpCode::Query);
                response.metadata.response_code = reply.code;
                response.metadata.recursion_desired = request.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                response.add_query(query);
                response.add_answers(reply.answers);
                response.add_authorities(reply.authorities);
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer);
                }
            }
        });
        ScriptedDns { addr, questions, stop, thread: Some(thread) }
    }

    pub fn questions(&self) -> u64 {
        self.questions.load(Ordering::Relaxed)
    }
}

impl Drop for ScriptedDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
