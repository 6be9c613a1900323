//! `ember suppression add|remove|check|import|export`: the global suppression list, through the
//! running daemon's API (`/api/v1/suppression`), or, when no daemon runs, in its journal directly
//! (the journal's lock tells the two cases apart, so there is never a second writer).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::error::CliError;
use crate::config::FileCheck;
use crate::hygiene::import::{BadLine, parse_lines};
use crate::hygiene::store::{Entry, StoreError, SuppressionStore};

/// Lines sent (or added) per import request: one fdatasync each.
const CHUNK_LINES: usize = 200_000;
/// Bad lines printed individually; beyond this only counted.
const SHOWN_BAD_LINES: usize = 100;

/// Where the list is: the daemon, or the journal itself.
enum Target {
    Live(SocketAddr),
    Offline(Box<SuppressionStore>),
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ember: suppression: {e}");
    ExitCode::from(1)
}

fn target(config_path: Option<&Path>, mgmt: Option<SocketAddr>) -> Result<Target, CliError> {
    let loaded = super::show::load(config_path, FileCheck::Warn);
    let addr = match mgmt {
        Some(a) => Some(a),
        None => crate::daemon::mgmt_addr(&loaded.config).map(|mut a| {
            if a.ip().is_unspecified() {
                a.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
            }
            a
        }),
    };
    if let Some(addr) = addr
        && TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
    {
        return Ok(Target::Live(addr));
    }
    let path = crate::daemon::suppression_path(&loaded.config);
    match SuppressionStore::open(&path) {
        Ok((store, report)) => {
            for bad in &report.bad_lines {
                eprintln!("warning: skipped {bad}");
            }
            Ok(Target::Offline(Box::new(store)))
        }
        Err(StoreError::Locked(path)) => Err(CliError::Locked { path, addr }),
        Err(e) => Err(CliError::Store(e)),
    }
}

/// One HTTP/1.1 exchange with the daemon (`Connection: close`); the status and body. Text
/// bodies (import, export) are why this is not `live::request`, which speaks JSON only.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), CliError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|source| CliError::Unreachable { addr, source })?;
    stream.set_read_timeout(Some(Duration::from_secs(600))).map_err(CliError::Send)?;
    // `--api-key`, or `EMBER_API_KEY` through it: the flag wins, as for every other command.
    let key = super::live::API_KEY.get().map(|k| format!("X-API-Key: {k}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{key}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body)).map_err(CliError::Send)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(CliError::Read)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(CliError::NoBody)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(CliError::StatusLine)?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// The `data` of a JSON answer, or the daemon's refusal.
fn json_data(status: u16, body: &[u8]) -> Result<serde_json::Value, CliError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(CliError::NotJson)?;
    if status != 200 {
        return Err(CliError::refused(status, &v));
    }
    Ok(v["data"].clone())
}

pub fn change(addresses: &[String], add: bool, config_path: Option<&Path>, mgmt: Option<SocketAddr>) -> ExitCode {
    let mut entries = Vec::new();
    for a in addresses {
        match Entry::parse(a) {
            Ok(e) => entries.push(e),
            Err(e) => return fail(e),
        }
    }
    let verb = if add { "added" } else { "removed" };
    let changed = match target(config_path, mgmt) {
        Err(e) => return fail(e),
        Ok(Target::Live(addr)) => {
            let path = if add { "/api/v1/suppression/add" } else { "/api/v1/suppression/remove" };
            let body = serde_json::json!({"addresses": addresses}).to_string();
            match http(addr, "POST", path, "application/json", body.as_bytes()).and_then(|(s, b)| json_data(s, &b)) {
                Ok(v) => v["changed"].as_u64().unwrap_or(0) as usize,
                Err(e) => return fail(e),
            }
        }
        Ok(Target::Offline(store)) => match if add { store.add(&entries) } else { store.remove(&entries) } {
            Ok(n) => n,
            Err(e) => return fail(e),
        },
    };
    println!("{verb} {changed} of {} entr{}", entries.len(), if entries.len() == 1 { "y" } else { "ies" });
    ExitCode::SUCCESS
}

pub fn check(address: &str, config_path: Option<&Path>, mgmt: Option<SocketAddr>) -> ExitCode {
    let suppressed = match target(config_path, mgmt) {
        Err(e) => return fail(e),
        Ok(Target::Live(addr)) => {
            let path = format!("/api/v1/suppression?address={}", super::remote::encode(address));
            match http(addr, "GET", &path, "text/plain", b"").and_then(|(s, b)| json_data(s, &b)) {
                Ok(v) => v["suppressed"].as_bool().unwrap_or(false),
                Err(e) => return fail(e),
            }
        }
        Ok(Target::Offline(store)) => store.contains(address),
    };
    if suppressed {
        println!("{address}: suppressed");
        ExitCode::SUCCESS
    } else {
        println!("{address}: not suppressed");
        // Scripts can test the answer: 2 means "not on the list".
        ExitCode::from(2)
    }
}

pub fn import(file: &Path, config_path: Option<&Path>, mgmt: Option<SocketAddr>) -> ExitCode {
    let started = Instant::now();
    let target = match target(config_path, mgmt) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let reader = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    let size = reader.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let (mut valid, mut added, mut bad_count, mut line_no) = (0u64, 0u64, 0u64, 1u64);
    let mut chunk = Vec::with_capacity(8 << 20);
    loop {
        chunk.clear();
        let mut lines = 0;
        while lines < CHUNK_LINES {
            match reader.read_until(b'\n', &mut chunk) {
                Ok(0) => break,
                Ok(_) => lines += 1,
                Err(e) => return fail(format!("reading {}: {e}", file.display())),
            }
        }
        if lines == 0 {
            break;
        }
        let result: Result<(u64, u64, Vec<BadLine>), CliError> = match &target {
            Target::Live(addr) => {
                let path = format!("/api/v1/suppression/import?first_line={line_no}");
                http(*addr, "POST", &path, "text/plain", &chunk).and_then(|(s, b)| json_data(s, &b)).map(|v| {
                    let bad = serde_json::from_value(v["bad_lines"].clone()).unwrap_or_default();
                    (v["valid"].as_u64().unwrap_or(0), v["added"].as_u64().unwrap_or(0), bad)
                })
            }
            Target::Offline(store) => {
                let (entries, bad) = parse_lines(&chunk, line_no);
                store.add(&entries).map(|n| (entries.len() as u64, n as u64, bad)).map_err(CliError::Store)
            }
        };
        let (v, a, bad) = match result {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                return fail(format!("{e} (lines from {line_no} on were not imported)"));
            }
        };
        valid += v;
        added += a;
        for b in &bad {
            bad_count += 1;
            if bad_count as usize <= SHOWN_BAD_LINES {
                bar.suspend(|| eprintln!("{}:{}: {} ({:?})", file.display(), b.line, b.error, b.text));
            }
        }
        line_no += lines as u64;
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{valid} entries, {bad_count} bad"));
    }
    bar.finish_and_clear();
    if bad_count as usize > SHOWN_BAD_LINES {
        eprintln!("... and {} more bad lines", bad_count as usize - SHOWN_BAD_LINES);
    }
    println!(
        "imported {valid} entries ({added} new) from {} in {:.1}s; {bad_count} bad line{} skipped",
        file.display(),
        started.elapsed().as_secs_f64(),
        if bad_count == 1 { "" } else { "s" }
    );
    ExitCode::SUCCESS
}

pub fn export(out: Option<&Path>, config_path: Option<&Path>, mgmt: Option<SocketAddr>) -> ExitCode {
    let mut sink: Box<dyn Write> = match out {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return fail(format!("cannot create {}: {e}", p.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = match target(config_path, mgmt) {
        Err(e) => return fail(e),
        Ok(Target::Live(addr)) => match http(addr, "GET", "/api/v1/suppression/export", "text/plain", b"") {
            Ok((200, body)) => {
                if let Err(e) = sink.write_all(&body) {
                    return fail(e);
                }
                body.iter().filter(|&&b| b == b'\n').count()
            }
            Ok((status, body)) => {
                return fail(json_data(status, &body).err().map(|e| e.to_string()).unwrap_or_default());
            }
            Err(e) => return fail(e),
        },
        Ok(Target::Offline(store)) => match store.export(|e| writeln!(sink, "{e}")) {
            Ok(n) => n,
            Err(e) => return fail(e),
        },
    };
    if let Err(e) = sink.flush() {
        return fail(e);
    }
    if out.is_some() {
        println!("exported {count} entries");
    }
    ExitCode::SUCCESS
}
