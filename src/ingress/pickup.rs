//! The pickup directory (`pickup DIR BADDIR`, docs/operations.md "Injection"): files that start
//! with `x-sender:` and `x-receiver:` lines (then optional `x-envid:` and `x-job:`), followed by
//! the message. `<source {pickup}>` governs them. A file is removed only after its message is
//! durable in the spool; a bad file moves to BADDIR with the reason logged; when the spool is full
//! the file stays and is tried again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::StoreError;
use super::context::Context;
use super::policy::SourcePolicy;
use crate::message::{Envelope, MessageId, Origin, Recipient};
use crate::outcome::acct::{Record, RecordType};
use crate::time;

/// How often the directory is scanned.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// What a pickup file holds once its `x-` lines are read.
#[derive(Debug, PartialEq, Eq)]
pub struct PickupFile {
    pub sender: String,
    pub recipients: Vec<String>,
    pub env_id: Option<String>,
    pub job_id: Option<String>,
    /// The message, with CRLF line endings.
    pub message: Vec<u8>,
}

/// Why a pickup file goes to BADDIR without being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickupError {
    #[error("more than one x-sender line")]
    TwoSenders,
    #[error("x-receiver {0:?} is not an address")]
    NotAnAddress(String),
    #[error("BSMTP pickup files are not supported; use x-sender/x-receiver lines")]
    Bsmtp,
    #[error("no x-sender line at the top of the file")]
    NoSender,
    #[error("no x-receiver line")]
    NoRecipient,
}

/// Parses a pickup file; the error is the reason it goes to BADDIR.
pub fn parse(bytes: &[u8]) -> Result<PickupFile, PickupError> {
    let mut sender = None;
    let mut recipients = Vec::new();
    let (mut env_id, mut job_id) = (None, None);
    let mut pos = 0;
    while pos < bytes.len() {
        let end = bytes[pos..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| pos + p + 1);
        let line = String::from_utf8_lossy(&bytes[pos..end]);
        let line = line.trim_end_matches(['\r', '\n']);
        let Some((name, value)) = line.split_once(':') else { break };
        let value = value.trim().trim_start_matches('<').trim_end_matches('>').to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "x-sender" => {
                if sender.replace(value).is_some() {
                    return Err(PickupError::TwoSenders);
                }
            }
            "x-receiver" => {
                if !value.contains('@') {
                    return Err(PickupError::NotAnAddress(value));
                }
                recipients.push(value);
            }
            "x-envid" => env_id = Some(value),
            "x-job" => job_id = Some(value),
            _ => break,
        }
        pos = end;
    }
    if bytes.starts_with(b"HELO")
        || bytes.starts_with(b"EHLO")
        || bytes.starts_with(b"helo")
        || bytes.starts_with(b"ehlo")
    {
        return Err(PickupError::Bsmtp);
    }
    let sender = sender.ok_or(PickupError::NoSender)?;
    if recipients.is_empty() {
        return Err(PickupError::NoRecipient);
    }
    Ok(PickupFile { sender, recipients, env_id, job_id, message: to_crlf(&bytes[pos..]) })
}

/// Normalises bare LF line endings (files written by local tools) to CRLF.
fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// `pickup-remove-dot`: undoes SMTP dot-stuffing written into a file, a line starting with `..`
/// losing its first dot (other lines, a lone `.` included, are kept as they are).
fn remove_dots(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if !(line_start && b == b'.' && message.get(i + 1) == Some(&b'.')) {
            out.push(b);
        }
        line_start = b == b'\n';
    }
    out
}

/// Scans `dir` until the task is dropped.
pub async fn run(contexts: Arc<ArcSwap<Context>>, dir: PathBuf, bad: PathBuf) {
    let mut ticker = tokio::time::interval(SCAN_INTERVAL);
    loop {
        ticker.tick().await;
        let ctx = contexts.load_full();
        if ctx.intake.is_closed() {
            // Draining: files stay in the directory for whoever takes over.
            continue;
        }
        // Directory listing, reads, removals and renames run on blocking threads: a slow or
        // network-mounted pickup directory must not hold up a runtime thread.
        let listed = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || list(&dir)
        })
        .await;
        let mut names = match listed {
            Ok(Ok(names)) => names,
            Ok(Err(e)) => {
                tracing::error!("pickup: cannot read {}: {e}", dir.display());
                continue;
            }
            Err(e) => {
                tracing::error!("pickup: listing {} failed: {e}", dir.display());
                continue;
            }
        };
        names.sort();
        for path in names {
            match take(&ctx, &path).await {
                Ok(id) => {
                    if let Err(e) = tokio::fs::remove_file(&path).await {
                        // Stored but not removed: it would be injected twice. Say so loudly.
                        tracing::error!(
                            "pickup: message {id} is stored but {} could not be removed: {e}",
                            path.display()
                        );
                    } else {
                        tracing::info!("pickup: stored {} as message {id}", path.display());
                    }
                }
                Err(Taken::Retry(why)) => {
                    tracing::warn!("pickup: {} left for later: {why}", path.display());
                    break;
                }
                Err(Taken::Bad(why)) => move_to_bad(&path, &bad, &why).await,
            }
        }
    }
}

/// The complete files waiting in `dir`.
fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Writers create files under a temporary name and rename them when complete.
            !name.starts_with('.') && !name.ends_with(".tmp")
        })
        .collect())
}

enum Taken {
    Retry(String),
    Bad(String),
}

async fn take(ctx: &Context, path: &Path) -> Result<MessageId, Taken> {
    let bytes = tokio::fs::read(path).await.map_err(|e| Taken::Retry(format!("cannot read: {e}")))?;
    let mut file = parse(&bytes).map_err(|e| Taken::Bad(e.to_string()))?;
    if ctx.config.global.flag(crate::config::Dir::PickupRemoveDot) {
        file.message = remove_dots(&file.message);
    }
    let local = "127.0.0.1".parse().expect("literal");
    let policy = SourcePolicy::for_client(&ctx.config, local, &["{pickup}"]);
    if let Some(max) = policy.max_message_size
        && file.message.len() as u64 > max
    {
        return Err(Taken::Bad(format!("message of {} bytes exceeds max-message-size {max}", file.message.len())));
    }
    let now = time::now_secs();
    let mut message = Vec::with_capacity(file.message.len() + 100);
    if policy.add_received_header {
        message.extend_from_slice(
            format!("Received: by {} (Ember) with pickup; {}\r\n", ctx.host_name(), time::rfc5322(now)).as_bytes(),
        );
    }
    message.extend_from_slice(&file.message);
    let envelope = Envelope {
        id: MessageId(0),
        sender: file.sender.clone(),
        recipients: file.recipients.iter().map(Recipient::new).collect(),
        vmta: policy.default_virtual_mta.clone(),
        job_id: file.job_id.clone(),
        env_id: file.env_id.clone(),
        ret: None,
        eight_bit: message.iter().any(|b| *b >= 0x80),
        smtputf8: false,
        arrival_ms: time::now_millis(),
        priority: None,
        dkim_options: None,
        origin: Origin { kind: "pickup".into(), sources: vec!["{pickup}".into()], ..Origin::default() },
    };
    let id = ctx.sink.store(envelope, message).await.map_err(|e| match e {
        StoreError::Full(w) | StoreError::Failed(w) => Taken::Retry(w),
    })?;
    if ctx.accounting.wants(RecordType::Receipt) {
        for r in &file.recipients {
            ctx.accounting.write(
                &Record::new(RecordType::Receipt)
                    .set("timeLogged", time::acct(now))
                    .set("orig", file.sender.clone())
                    .set("rcpt", r.clone())
                    .set("srcType", "pickup")
                    .set("vmta", policy.default_virtual_mta.clone().unwrap_or_else(|| "{default}".into()))
                    .set("jobId", file.job_id.clone().unwrap_or_default())
                    .set("envId", file.env_id.clone().unwrap_or_default()),
            );
        }
    }
    Ok(id)
}

async fn move_to_bad(path: &Path, bad: &Path, why: &str) {
    let target = bad.join(path.file_name().unwrap_or_default());
    match tokio::fs::rename(path, &target).await {
        Ok(()) => tracing::warn!("pickup: moved {} to {}: {why}", path.display(), target.display()),
        Err(e) => tracing::error!(
            "pickup: {} is bad ({why}) and could not be moved to {}: {e}",
            path.display(),
            bad.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_normalises_line_ends() {
        let f =
            parse(b"x-sender: a@x.com\nx-receiver: <b@y.com>\nX-Receiver: c@z.com\nx-job: j1\nSubject: hi\n\nbody\n")
                .unwrap();
        assert_eq!(f.sender, "a@x.com");
        assert_eq!(f.recipients, ["b@y.com", "c@z.com"]);
        assert_eq!(f.job_id.as_deref(), Some("j1"));
        assert_eq!(f.message, b"Subject: hi\r\n\r\nbody\r\n");
    }

    #[test]
    fn remove_dots_undoes_dot_stuffing_at_line_starts_only() {
        let stuffed = b"..first\r\nmid..dle\r\n...three\r\n.\r\n.single\r\n..\r\n";
        assert_eq!(remove_dots(stuffed), b".first\r\nmid..dle\r\n..three\r\n.\r\n.single\r\n.\r\n");
        assert_eq!(remove_dots(b""), b"");
    }

    #[test]
    fn bad_files_say_why() {
        assert_eq!(parse(b"Subject: x\n\nbody").unwrap_err().to_string(), "no x-sender line at the top of the file");
        assert_eq!(parse(b"x-sender: a@x\nSubject: x\n").unwrap_err().to_string(), "no x-receiver line");
        assert!(parse(b"x-sender: a@x\nx-receiver: nobody\n").unwrap_err().to_string().contains("not an address"));
        assert!(parse(b"EHLO x\r\nMAIL FROM:<a@x>\r\n").unwrap_err().to_string().contains("BSMTP"));
    }
}
