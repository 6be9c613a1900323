//! `ember suppression add|remove|check|import|export`: the global suppression list, through the
//! running daemon's API (`/api/v1/suppression`), or, when no daemon runs, in its journal directly
//! (the journal's lock tells the two cases apart, so there is never a second writer).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::client::Client;
use super::error::CliError;
use super::remote::Mgmt;
use crate::config::FileCheck;
use crate::hygiene::import::{BadLine, parse_lines};
use crate::hygiene::store::{Entry, StoreError, SuppressionStore};

/// Lines sent (or added) per import request: one fdatasync each.
const CHUNK_LINES: usize = 200_000;
/// Bad lines printed individually; beyond this only counted.
const SHOWN_BAD_LINES: usize = 100;

/// Where the list is: the daemon, or the journal itself.
enum Target {
    Live(Client),
    Offline(Box<SuppressionStore>),
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ember: suppression: {e}");
    ExitCode::from(1)
}

fn target(config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> Result<Target, CliError> {
    let loaded = super::show::load(config_path, FileCheck::Warn);
    let mgmt = mgmt.cloned().or_else(|| super::inspect::config_mgmt(&loaded.config));
    if let Some(m) = &mgmt
        && listening(m)
    {
        return Ok(Target::Live(Client::new(m.clone())?));
    }
    let path = crate::daemon::suppression_path(&loaded.config);
    match SuppressionStore::open(&path) {
        Ok((store, report)) => {
            for bad in &report.bad_lines {
                eprintln!("warning: skipped {bad}");
            }
            Ok(Target::Offline(Box::new(store)))
        }
        Err(StoreError::Locked(path)) => Err(CliError::Locked { path, mgmt }),
        Err(e) => Err(CliError::Store(e)),
    }
}

/// Whether something accepts connections on the management port (else the journal is edited
/// offline, or its lock says a daemon holds it).
fn listening(mgmt: &Mgmt) -> bool {
    let addrs = mgmt.socket_addrs().unwrap_or_default();
    addrs.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok())
}

pub fn change(addresses: &[String], add: bool, config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> ExitCode {
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
        Ok(Target::Live(client)) => {
            let path = if add { "/api/v1/suppression/add" } else { "/api/v1/suppression/remove" };
            match client.post(path, &serde_json::json!({"addresses": addresses})) {
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

pub fn check(address: &str, config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> ExitCode {
    let suppressed = match target(config_path, mgmt) {
        Err(e) => return fail(e),
        Ok(Target::Live(client)) => {
            match client.get(&format!("/api/v1/suppression?address={}", super::remote::encode(address))) {
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

pub fn import(file: &Path, config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> ExitCode {
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
            Target::Live(client) => {
                let path = format!("/api/v1/suppression/import?first_line={line_no}");
                client.post_text(&path, &chunk).map(|v| {
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

pub fn export(out: Option<&Path>, config_path: Option<&Path>, mgmt: Option<&Mgmt>) -> ExitCode {
    let mut sink: Box<dyn Write> = match out {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return fail(format!("cannot create {}: {e}", p.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = match target(config_path, mgmt) {
        Err(e) => return fail(e),
        Ok(Target::Live(client)) => {
            match client.get_text("/api/v1/suppression/export").and_then(|body| copy(body, &mut sink)) {
                Ok(lines) => lines,
                Err(e) => return fail(e),
            }
        }
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

/// Copies an export to `sink` as it arrives; the number of lines (entries).
fn copy(mut body: impl Read, sink: &mut dyn Write) -> Result<usize, CliError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::Read(Box::new(ureq::Error::Io(e)))),
        };
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count();
        sink.write_all(&buf[..n]).map_err(CliError::Write)?;
    }
}
