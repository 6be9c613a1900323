//! Accounting files (`<acct-file PATH>` or `<acct-file |COMMAND>`): RFC 4180 CSV with PowerMTA's
//! record types and column names (REFERENCE.md §4), written by one thread per file.
//!
//! A file's columns are the union of the fields of the record types it takes, in PowerMTA's order,
//! `type` first; a record leaves the columns of other types empty. The header line is written when
//! a file is created (or a pipe started).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::config::value::Value;
use crate::config::{Config, Dir};

/// A record type and its long name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    Delivery,
    Bounce,
    Transient,
    TransientQueue,
    Receipt,
    FeedbackLoop,
    RemoteBounce,
    RemoteStatus,
}

impl RecordType {
    pub fn code(self) -> &'static str {
        match self {
            RecordType::Delivery => "d",
            RecordType::Bounce => "b",
            RecordType::Transient => "t",
            RecordType::TransientQueue => "tq",
            RecordType::Receipt => "r",
            RecordType::FeedbackLoop => "f",
            RecordType::RemoteBounce => "rb",
            RecordType::RemoteStatus => "rs",
        }
    }

    pub fn parse(text: &str) -> Option<RecordType> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "d" | "delivery" => RecordType::Delivery,
            "b" | "bounce" => RecordType::Bounce,
            "t" | "transient" => RecordType::Transient,
            "tq" | "transient-queue" => RecordType::TransientQueue,
            "r" | "receipt" => RecordType::Receipt,
            "f" | "feedback-loop" => RecordType::FeedbackLoop,
            "rb" | "remote-bounce" => RecordType::RemoteBounce,
            "rs" | "remote-status" => RecordType::RemoteStatus,
            _ => return None,
        })
    }

    /// PowerMTA's default columns for this type, in order.
    pub fn fields(self) -> &'static [&'static str] {
        const DBT: &[&str] = &[
            "type",
            "timeLogged",
            "timeQueued",
            "orig",
            "rcpt",
            "orcpt",
            "dsnAction",
            "dsnStatus",
            "dsnDiag",
            "dsnMta",
            "bounceCat",
            "srcType",
            "srcMta",
            "dlvType",
            "dlvSourceIp",
            "dlvDestinationIp",
            "dlvEsmtpAvailable",
            "dlvSize",
            "vmta",
            "jobId",
            "envId",
            "queue",
            "vmtaPool",
            "dlvTlsProtocol",
            "dlvTlsCipher",
        ];
        match self {
            RecordType::Delivery | RecordType::Bounce | RecordType::Transient => DBT,
            RecordType::TransientQueue => &[
                "type",
                "timeLogged",
                "queue",
                "vmta",
                "dsnStatus",
                "dsnDiag",
                "dsnMta",
                "dlvType",
                "dlvSourceIp",
                "dlvDestinationIp",
                "userString",
            ],
            RecordType::Receipt => &[
                "type",
                "timeLogged",
                "orig",
                "rcpt",
                "orcpt",
                "srcType",
                "srcMta",
                "rcvSourceIp",
                "rcvDestinationIp",
                "vmta",
                "vmtaPool",
                "jobId",
                "envId",
                "userString",
                "rcvSmtpUser",
            ],
            RecordType::FeedbackLoop => &[
                "type",
                "timeLogged",
                "repSourceIp",
                "feedbackType",
                "format",
                "userAgent",
                "envId",
                "orig",
                "rcpt",
                "reportingMta",
                "dlvSourceIp",
                "reportedDomain",
            ],
            RecordType::RemoteBounce | RecordType::RemoteStatus => &[
                "type",
                "timeLogged",
                "orig",
                "rcpt",
                "orcpt",
                "dsnAction",
                "dsnStatus",
                "dsnDiag",
                "dsnMta",
                "dsnReportingMta",
                "bounceCat",
                "srcType",
                "srcMta",
                "envId",
                "format",
            ],
        }
    }
}

/// One accounting record: its type and named values (missing names are written empty).
#[derive(Clone, Debug)]
pub struct Record {
    pub kind: RecordType,
    pub values: Vec<(&'static str, String)>,
}

impl Record {
    pub fn new(kind: RecordType) -> Record {
        Record { kind, values: vec![("type", kind.code().to_string())] }
    }

    pub fn set(mut self, field: &'static str, value: impl Into<String>) -> Record {
        self.values.push((field, value.into()));
        self
    }

    fn get(&self, field: &str) -> &str {
        self.values.iter().rev().find(|(f, _)| *f == field).map_or("", |(_, v)| v.as_str())
    }
}

enum Target {
    File(PathBuf),
    Pipe(String),
}

/// The open accounting outputs of a configuration.
#[derive(Clone, Default)]
pub struct Accounting {
    outputs: Vec<Output>,
}

#[derive(Clone)]
struct Output {
    types: Vec<RecordType>,
    columns: Vec<&'static str>,
    tx: Sender<Vec<String>>,
}

impl Accounting {
    /// Opens every `<acct-file>` of the configuration. Errors name the file.
    pub fn open(config: &Config) -> Result<Accounting, String> {
        let mut outputs = Vec::new();
        for block in config.blocks_of("acct-file") {
            let Some(arg) = block.arg.as_deref() else { continue };
            let types: Vec<RecordType> = match block.settings.effective(Dir::Records) {
                Some(Value::List(l)) => l.iter().filter_map(|t| RecordType::parse(t)).collect(),
                _ => vec![RecordType::Delivery, RecordType::Bounce],
            };
            let mut columns: Vec<&'static str> = Vec::new();
            for t in &types {
                for f in t.fields() {
                    if !columns.contains(f) {
                        columns.push(f);
                    }
                }
            }
            let target = match arg.strip_prefix('|') {
                Some(cmd) => Target::Pipe(cmd.trim().to_string()),
                None => Target::File(config.path(std::path::Path::new(arg))),
            };
            let sync = block.settings.flag(Dir::Sync);
            let (tx, rx) = channel::<Vec<String>>();
            let sink = Sink::open(&target, &columns).map_err(|e| format!("<acct-file {arg}>: {e}"))?;
            std::thread::Builder::new()
                .name("ember-acct".into())
                .spawn(move || sink.run(rx, sync))
                .map_err(|e| format!("<acct-file {arg}>: cannot start writer: {e}"))?;
            outputs.push(Output { types, columns, tx });
        }
        Ok(Accounting { outputs })
    }

    pub fn wants(&self, kind: RecordType) -> bool {
        self.outputs.iter().any(|o| o.types.contains(&kind))
    }

    /// Queues a record for every output that takes its type.
    pub fn write(&self, record: &Record) {
        for o in self.outputs.iter().filter(|o| o.types.contains(&record.kind)) {
            let row: Vec<String> = o.columns.iter().map(|c| record.get(c).to_string()).collect();
            // A writer that died has logged why; accounting must never block or fail delivery.
            let _ = o.tx.send(row);
        }
    }
}

enum Sink {
    File(BufWriter<File>),
    Pipe(Child, BufWriter<ChildStdin>),
}

impl Sink {
    fn open(target: &Target, columns: &[&str]) -> Result<Sink, String> {
        let header = columns.join(",") + "\n";
        match target {
            Target::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
                let mut w = BufWriter::new(file);
                if empty {
                    w.write_all(header.as_bytes())
                        .and_then(|()| w.flush())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
                Ok(Sink::File(w))
            }
            Target::Pipe(cmd) => {
                let mut child = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("Error starting \"{cmd}\": {e}"))?;
                let stdin = child.stdin.take().ok_or_else(|| format!("Error starting \"{cmd}\": no stdin"))?;
                let mut w = BufWriter::new(stdin);
                w.write_all(header.as_bytes())
                    .and_then(|()| w.flush())
                    .map_err(|e| format!("Error writing to \"{cmd}\": {e}"))?;
                Ok(Sink::Pipe(child, w))
            }
        }
    }

    fn run(mut self, rx: Receiver<Vec<String>>, sync: bool) {
        while let Ok(first) = rx.recv() {
            let mut rows = vec![first];
            rows.extend(rx.try_iter());
            if let Err(e) = self.write_rows(&rows, sync) {
                tracing::error!("accounting: {e}; records are no longer written to this output until reload");
                return;
            }
        }
        if let Sink::Pipe(mut child, w) = self {
            drop(w);
            let _ = child.wait();
        }
    }

    fn write_rows(&mut self, rows: &[Vec<String>], sync: bool) -> std::io::Result<()> {
        let w: &mut dyn Write = match self {
            Sink::File(w) => w,
            Sink::Pipe(_, w) => w,
        };
        let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(w);
        for row in rows {
            csv.write_record(row)?;
        }
        csv.flush()?;
        drop(csv);
        if let Sink::File(w) = self {
            w.flush()?;
            if sync {
                w.get_ref().sync_data()?;
            }
        }
        Ok(())
    }
}
