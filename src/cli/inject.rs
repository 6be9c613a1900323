//! `ember inject`: bulk injection of one RFC 5322 message to a list of recipients through the
//! daemon's Transmissions API, in batches (one durable spool message per batch), with a
//! progress bar on a terminal and a summary at the end.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::error::CliError;
use super::inspect::fail;
use super::remote::Remote;
use crate::ingress::transmissions::Accepted;

/// What `ember inject` was asked to do.
pub struct Inject<'a> {
    pub message: &'a Path,
    pub recipients: &'a Path,
    pub from: &'a str,
    pub job_id: Option<&'a str>,
    pub batch: usize,
}

/// Addresses from a list file: one per line; blank lines and `#` comments skipped. Errors name
/// the line.
fn read_list(path: &Path) -> Result<Vec<String>, CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| CliError::ReadList { path: path.to_path_buf(), source })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let address = line.trim_start_matches('<').trim_end_matches('>');
        if !address.contains('@') || address.contains(char::is_whitespace) {
            return Err(CliError::ListLine { path: path.to_path_buf(), line: n + 1, text: line.to_string() });
        }
        out.push(address.to_string());
    }
    Ok(out)
}

pub fn inject(remote: &Remote, job: &Inject<'_>) -> ExitCode {
    let message = match std::fs::read(job.message) {
        Ok(m) => m,
        Err(e) => return fail(format!("{}: {e}", job.message.display())),
    };
    // The API carries the message as a JSON string: it must be UTF-8 (8-bit MIME parts are).
    let Ok(message) = String::from_utf8(message) else {
        return fail(format!(
            "{}: the message is not UTF-8 text; encode 8-bit parts (base64 or quoted-printable)",
            job.message.display()
        ));
    };
    let recipients = match read_list(job.recipients) {
        Ok(r) if r.is_empty() => return fail(format!("{}: no recipients", job.recipients.display())),
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let client = match remote.client() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let bar = indicatif::ProgressBar::new(recipients.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} recipients, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let (mut accepted, mut rejected, mut failed_batches) = (0u64, 0u64, Vec::new());
    for (n, chunk) in recipients.chunks(job.batch.max(1)).enumerate() {
        let body = json!({
            "return_path": job.from,
            "campaign_id": job.job_id,
            "recipients": chunk.iter().map(|r| json!({"address": r})).collect::<Vec<_>>(),
            "content": {"email_rfc822": message},
        });
        match client.exchange("/api/v1/transmissions", &body) {
            Ok((200, v)) => {
                let results: Accepted = serde_json::from_value(v["results"].clone()).unwrap_or_default();
                accepted += results.total_accepted_recipients as u64;
                rejected += results.total_rejected_recipients as u64;
            }
            Ok((status, v)) => {
                let why = v["errors"][0]["description"].as_str().or(v["message"].as_str()).unwrap_or("").to_string();
                rejected += chunk.len() as u64;
                failed_batches.push(format!("batch {} ({} recipients): {status} {why}", n + 1, chunk.len()));
                // Access and request errors repeat for every batch: stop at the first.
                if status != 503 {
                    break;
                }
            }
            Err(e) => {
                bar.abandon();
                return fail(format!("{e} (after {accepted} recipients accepted)"));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let summary = json!({
        "recipients": recipients.len(),
        "accepted": accepted,
        "rejected": rejected,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "errors": failed_batches,
    });
    if remote.json {
        println!("{summary}");
    } else {
        println!(
            "{accepted} of {} recipients accepted in {:.1}s ({:.0}/s); {rejected} rejected",
            recipients.len(),
            secs,
            accepted as f64 / secs.max(0.001)
        );
        for e in &failed_batches {
            println!("  {e}");
        }
    }
    if accepted == recipients.len() as u64 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
