//! The last edits to a message before its bytes leave, per queue: `sanitize-headers`, then the
//! fields Ember adds at delivery (`added.rs`), then the DKIM signatures (so nothing changes a
//! signed header after signing).
//!
//! Works on the header block only; the body is hashed by the signer, never rewritten.

use std::sync::Arc;

use crate::config::Dir;
use crate::config::settings::Settings;
use crate::dkim::KeyStore;
use crate::dkim::sign::{self, SignError, SignOptions};
use crate::message::headers::Header;

/// What the field dialect's `sanitize-headers yes` removes: Ember's control headers, the
/// injector's envelope leftovers, and its fingerprints.
pub const SANITIZED: &[&str] = &[
    "x-virtual-mta",
    "x-job",
    "x-envid",
    "x-dkim-options",
    "x-dkim-key",
    "bcc",
    "return-path",
    "x-mailer",
    "x-php-originating-script",
    "x-originating-ip",
    "x-source-ip",
];

/// The message as it goes to the queue's destination. Unchanged (the same `Arc`) when the queue
/// neither sanitises, adds nor signs. `source` are the settings of the source the message came
/// from; `dkim_options` its `X-DKIM-Options`, when its source processed the header.
/// `sign_for_from`: the message is one of Ember's own reports that must carry a signature of
/// its From domain whatever the queue's `dkim-sign` says (TLS-RPT, RFC 8460), made with the
/// domain's `domain-key` when there is one.
#[allow(clippy::too_many_arguments)]
pub fn outgoing(
    keys: &KeyStore,
    vmta: &str,
    settings: &Settings,
    source: &Settings,
    dkim_options: Option<&str>,
    sign_for_from: bool,
    body: Arc<Vec<u8>>,
    now: u64,
) -> Result<Arc<Vec<u8>>, SignError> {
    let mut message = body;
    if settings.flag(Dir::SanitizeHeaders) {
        let remove: Vec<String> = SANITIZED.iter().map(|s| s.to_string()).collect();
        let header = Header::parse(&message);
        let cleaned = header.rewrite(b"", &remove, b"");
        if cleaned.len() != message.len() {
            message = Arc::new(cleaned);
        }
    }
    if let Some(added) = super::added::add(&message, settings, source, vmta, now) {
        message = Arc::new(added);
    }
    // Most queues do not sign: no header parse for them.
    let off = |d: Dir| matches!(settings.text(d), None | Some("no" | "false"));
    if off(Dir::DkimSign) && off(Dir::SecondDkimSign) && !sign_for_from {
        return Ok(message);
    }
    let header = Header::parse(&message);
    let options = SignOptions::from_settings(settings, &header, dkim_options);
    let options = if sign_for_from { Some(SignOptions::with_from_signature(options, settings)) } else { options };
    let Some(options) = options else { return Ok(message) };
    let signatures = match sign::sign(keys, vmta, &options, &message, now) {
        Ok(s) => s,
        Err(SignError::NoFrom) => {
            tracing::warn!("a message without a usable From header goes out unsigned (virtual MTA {vmta})");
            return Ok(message);
        }
        Err(e) => return Err(e),
    };
    if signatures.is_empty() {
        return Ok(message);
    }
    let mut signed = Vec::with_capacity(signatures.len() + message.len());
    signed.extend_from_slice(&signatures);
    signed.extend_from_slice(&message);
    Ok(Arc::new(signed))
}
