//! DKIM signatures for one outgoing message under one queue's settings (`dkim-*`,
//! `second-dkim-*`), with the keys of [`KeyStore`].
//!
//! Signing uses mail-auth's canonicalization, hashing and key operations; the signature is
//! assembled here because mail-auth's builder always writes `t=`, and PowerMTA adds it only
//! with `dkim-add-timestamp yes`.

use mail_auth::common::crypto::SigningKey;
use mail_auth::common::headers::{HeaderStream, Writable};
use mail_auth::dkim::{Canonicalization, Signature};

use super::keys::{DomainKey, KeyKind, KeyStore, PrivateKey};
use crate::config::settings::Settings;
use crate::config::{Dir, policy};
use crate::message::headers::Header;

/// Headers signed when present (PowerMTA's documented default set, plus RFC 8058's
/// `List-Unsubscribe-Post`); `dkim-headers` adds to it.
pub const DEFAULT_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
];

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the message has no From header to sign for")]
    NoFrom,
    #[error("signing for {domain} with selector {selector} failed: {why}")]
    Crypto { domain: String, selector: String, why: String },
}

/// The settings of one signature.
#[derive(Debug, Clone)]
pub struct SignatureSpec {
    pub identity: String,
    pub fallback: Option<String>,
    pub kind: KeyKind,
    /// Only keys of this selector (`X-DKIM-Options` `s=`); `None`: any.
    pub selector: Option<String>,
}

/// Everything a queue's settings say about signing, read once per message batch.
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub signatures: Vec<SignatureSpec>,
    pub header_canon: Canonicalization,
    pub body_canon: Canonicalization,
    pub extra_headers: Vec<String>,
    pub oversign: Vec<String>,
    pub timestamp: bool,
    pub expire_after: Option<u64>,
    /// `dkim-add-body-limit`: write `l=`, the length of the signed (canonicalized) body.
    pub body_limit: bool,
    /// `dkim-query-method`: the `q=` tag, when set.
    pub query_method: Option<String>,
}

fn wants(value: Option<&str>, message: &Header<'_>, x_dkim_options: Option<&str>) -> bool {
    match value {
        Some("yes" | "true") => true,
        Some("if-x-dkim-options-present") => x_dkim_options.is_some() || message.get("x-dkim-options").is_some(),
        _ => false,
    }
}

fn kind(value: Option<&str>) -> KeyKind {
    // rsa-sha1 is obsolete (RFC 8301): an RSA key signs with rsa-sha256 instead.
    if value == Some("ed25519-sha256") { KeyKind::Ed25519 } else { KeyKind::Rsa }
}

fn canon(value: Option<&str>) -> Canonicalization {
    if value == Some("simple") { Canonicalization::Simple } else { Canonicalization::Relaxed }
}

impl SignOptions {
    /// The signatures a queue's settings ask for on this message; `None` when none.
    /// `x_dkim_options` is the message's `X-DKIM-Options` (kept in its envelope at injection
    /// under `process-x-dkim-options`): it overrides the first signature's options.
    pub fn from_settings(s: &Settings, message: &Header<'_>, x_dkim_options: Option<&str>) -> Option<SignOptions> {
        let mut signatures = Vec::new();
        if wants(s.text(Dir::DkimSign), message, x_dkim_options) {
            signatures.push(SignatureSpec {
                identity: policy::text(s, Dir::DkimIdentity).to_string(),
                fallback: s.text(Dir::DkimIdentityFallback).map(str::to_string),
                kind: kind(s.text(Dir::DkimAlgorithm)),
                selector: None,
            });
        }
        if wants(s.text(Dir::SecondDkimSign), message, x_dkim_options) {
            signatures.push(SignatureSpec {
                identity: crate::config::policy::text(s, Dir::SecondDkimIdentity).to_string(),
                fallback: None,
                kind: kind(s.text(Dir::SecondDkimAlgorithm)),
                selector: None,
            });
        }
        if signatures.is_empty() {
            return None;
        }
        let mut options = SignOptions::with_signatures(s, signatures);
        if let Some(header) = x_dkim_options
            && let Err(e) = super::options::apply(header, &mut options)
        {
            tracing::warn!("{e}: the message is signed with its queue's DKIM settings");
        }
        Some(options)
    }

    /// `options` (the queue's, if it signs) with a signature for the message's From domain
    /// first, unless one of them already signs for it: for Ember's own reports, which their
    /// receivers expect signed by the reporting domain (TLS-RPT, RFC 8460). The queue's
    /// `dkim-algorithm` chooses the key; canonicalization and the other options are the queue's.
    pub fn with_from_signature(options: Option<SignOptions>, s: &Settings) -> SignOptions {
        let from = SignatureSpec {
            identity: "strict-from".into(),
            fallback: None,
            kind: kind(s.text(Dir::DkimAlgorithm)),
            selector: None,
        };
        let Some(mut options) = options else { return SignOptions::with_signatures(s, vec![from]) };
        // Ember's reports have no Sender field: these identities resolve to the From domain.
        let signs_from =
            |spec: &SignatureSpec| matches!(spec.identity.as_str(), "sender-or-from" | "strict-from" | "from");
        if !options.signatures.iter().any(signs_from) {
            options.signatures.insert(0, from);
        }
        options
    }

    /// The queue's signing options (canonicalization, headers, tags) for `signatures`.
    fn with_signatures(s: &Settings, signatures: Vec<SignatureSpec>) -> SignOptions {
        let lower = |d: Dir| s.list(d).iter().map(|h| h.trim().to_lowercase()).filter(|h| !h.is_empty()).collect();
        SignOptions {
            signatures,
            header_canon: canon(s.text(Dir::DkimHeadersCanon)),
            body_canon: canon(s.text(Dir::DkimBodyCanon)),
            extra_headers: lower(Dir::DkimHeaders),
            oversign: lower(Dir::DkimDisallowAddingHeaders),
            timestamp: s.flag(Dir::DkimAddTimestamp),
            expire_after: s.interval(Dir::DkimExpireAfter).map(|d| d.as_secs()),
            body_limit: s.flag(Dir::DkimAddBodyLimit),
            query_method: s.text(Dir::DkimQueryMethod).map(str::to_string),
        }
    }
}

/// The domain of the address in a From/Sender value (`"Name" <a@b>` or `a@b`).
pub fn address_domain(value: &str) -> Option<String> {
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(l), Some(r)) if l < r => &value[l + 1..r],
        _ => value.trim(),
    };
    let (_, domain) = addr.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    (!domain.is_empty() && !domain.contains(char::is_whitespace)).then_some(domain)
}

/// Resolves a `dkim-identity` value to (signing domain, `i=` when it names an address).
fn identity(spec: &str, message: &Header<'_>) -> Result<(String, Option<String>), SignError> {
    let from = || message.get("from").as_deref().and_then(address_domain);
    match spec {
        "sender-or-from" => message
            .get("sender")
            .as_deref()
            .and_then(address_domain)
            .or_else(from)
            .map(|d| (d, None))
            .ok_or(SignError::NoFrom),
        "strict-from" | "from" => from().map(|d| (d, None)).ok_or(SignError::NoFrom),
        other => match other.rsplit_once('@') {
            Some(("", d)) => Ok((d.to_lowercase(), None)),
            Some((_, d)) => Ok((d.to_lowercase(), Some(other.to_string()))),
            None => Ok((other.to_lowercase(), None)),
        },
    }
}

/// Signs `message` as `options` say; the `DKIM-Signature` header fields to prepend, first
/// signature first. A signature whose identity has no key is skipped with a log line naming
/// the domain (PowerMTA sends such mail unsigned).
pub fn sign(
    keys: &KeyStore,
    vmta: &str,
    options: &SignOptions,
    message: &[u8],
    now: u64,
) -> Result<Vec<u8>, SignError> {
    let header = Header::parse(message);
    let mut out = Vec::new();
    for spec in &options.signatures {
        let (domain, auid) = identity(&spec.identity, &header)?;
        let selector = spec.selector.as_deref();
        let mut chosen =
            keys.find_selector(vmta, &domain, spec.kind, selector).map(|k| (k, domain.clone(), auid.clone()));
        if chosen.is_none()
            && let Some(fallback) = &spec.fallback
        {
            let (d, a) = identity(fallback, &header)?;
            chosen = keys.find_selector(vmta, &d, spec.kind, selector).map(|k| (k, d, a));
        }
        let Some((key, domain, auid)) = chosen else {
            tracing::info!(
                "no {} domain-key for {domain} (virtual MTA {vmta}): the message goes out without this signature",
                spec.kind.algorithm()
            );
            continue;
        };
        let signed_domain = if key.domain == "*" { domain } else { key.domain.clone() };
        let names = signed_names(&header, options);
        let sig = signature(key, &signed_domain, auid, &names, options, message, now)?;
        let mut header = Vec::with_capacity(512);
        sig.write(&mut header, true);
        out.extend_from_slice(&with_query_method(&header, options));
    }
    Ok(out)
}

/// The `h=` list: the default set and `dkim-headers` as far as present, once per name (mail-auth
/// signs every occurrence of a listed name), and each `dkim-disallow-adding-headers` name once
/// more, so an added instance breaks the signature.
fn signed_names(header: &Header<'_>, options: &SignOptions) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in DEFAULT_HEADERS.iter().map(|s| s.to_string()).chain(options.extra_headers.iter().cloned()) {
        if header.count(&name) > 0 && !names.contains(&name) {
            names.push(name);
        }
    }
    if !names.iter().any(|n| n == "from") {
        names.insert(0, "from".into());
    }
    for name in &options.oversign {
        if !names.contains(name) {
            names.push(name.clone());
        }
        names.push(name.clone());
    }
    names
}

fn signature(
    key: &DomainKey,
    domain: &str,
    auid: Option<String>,
    names: &[String],
    options: &SignOptions,
    message: &[u8],
    now: u64,
) -> Result<Signature, SignError> {
    let crypto = |why: mail_auth::Error| SignError::Crypto {
        domain: domain.to_string(),
        selector: key.selector.clone(),
        why: why.to_string(),
    };
    let mut sig = Signature {
        v: 1,
        a: match key.key.as_ref() {
            PrivateKey::Rsa(k) => k.algorithm(),
            PrivateKey::Ed25519(k) => k.algorithm(),
        },
        d: domain.to_string(),
        s: key.selector.clone(),
        h: names.to_vec(),
        i: auid.unwrap_or_default(),
        ch: options.header_canon,
        cb: options.body_canon,
        ..Default::default()
    };
    let parsed = Header::parse(message);
    let (_, headers, signed, body) = sig.canonicalize(Fields { fields: parsed.fields(), body: parsed.body() });
    let body = {
        // l= counts the canonicalized body (RFC 6376 §3.5), which is what is hashed; writing it
        // out once gives both.
        let mut canonical = Vec::with_capacity(parsed.body().len());
        body.write(&mut canonical);
        canonical
    };
    if options.body_limit {
        sig.l = body.len() as u64;
    }
    sig.bh = match key.key.as_ref() {
        PrivateKey::Rsa(k) => k.hash(body.as_slice()).as_ref().to_vec(),
        PrivateKey::Ed25519(k) => k.hash(body.as_slice()).as_ref().to_vec(),
    };
    sig.h = signed;
    sig.t = if options.timestamp { now } else { 0 };
    sig.x = options.expire_after.map_or(0, |x| now + x);
    let mut data = Vec::with_capacity(1024);
    headers.write(&mut data);
    let mut own = Vec::with_capacity(512);
    sig.write(&mut own, false);
    data.extend_from_slice(&with_query_method(&own, options));
    sig.b = match key.key.as_ref() {
        PrivateKey::Rsa(k) => k.sign(data.as_slice()),
        PrivateKey::Ed25519(k) => k.sign(data.as_slice()),
    }
    .map_err(crypto)?;
    Ok(sig)
}

/// The signature header with `q=` after its `c=` tag when `dkim-query-method` asks for one.
/// mail-auth does not write `q=`, so it is inserted into the header as written and into the
/// form that is signed alike; both carry the same `c=…` text, so the signature covers it.
fn with_query_method(written: &[u8], options: &SignOptions) -> Vec<u8> {
    let Some(q) = options.query_method.as_deref().filter(|q| q.bytes().all(|b| b.is_ascii_graphic() && b != b';'))
    else {
        return written.to_vec();
    };
    let Some(c) = written.windows(3).position(|w| w == b" c=") else { return written.to_vec() };
    let end = written[c..].iter().position(|&b| b == b';').map_or(written.len(), |p| c + p);
    let mut out = Vec::with_capacity(written.len() + q.len() + 4);
    out.extend_from_slice(&written[..end]);
    out.extend_from_slice(format!("; q={q}").as_bytes());
    out.extend_from_slice(&written[end..]);
    out
}

/// Ember's header parser as mail-auth's header stream (mail-auth keeps its own iterator private).
struct Fields<'x, I> {
    fields: I,
    body: &'x [u8],
}

impl<'x, I: Iterator<Item = (&'x [u8], &'x [u8])>> HeaderStream<'x> for Fields<'x, I> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        self.fields.next()
    }

    fn body(&mut self) -> &'x [u8] {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(domain_block: &str) -> Settings {
        let text = format!("<domain *>\n{domain_block}</domain>\n");
        let config =
            crate::config::load_str("d.conf", &text, std::path::Path::new("."), crate::config::FileCheck::Warn);
        config.config.queue_settings("reports.test", None).unwrap().settings
    }

    #[test]
    fn a_report_gets_a_signature_for_its_from_domain_whatever_the_queue_signs() {
        // The queue does not sign: one From signature, the queue's algorithm.
        let s = settings(" dkim-algorithm ed25519-sha256\n");
        let options = SignOptions::with_from_signature(None, &s);
        let specs: Vec<_> = options.signatures.iter().map(|s| (s.identity.as_str(), s.kind)).collect();
        assert_eq!(specs, [("strict-from", KeyKind::Ed25519)]);
        // The queue signs for another domain: the From signature comes first, the queue's stays.
        let s = settings(" dkim-sign yes\n dkim-identity @esp.example\n");
        let header = Header::parse(b"From: postmaster@ember.test\r\n\r\n");
        let options = SignOptions::with_from_signature(SignOptions::from_settings(&s, &header, None), &s);
        let ids: Vec<_> = options.signatures.iter().map(|s| s.identity.as_str()).collect();
        assert_eq!(ids, ["strict-from", "@esp.example"]);
        // The queue signs for the From domain already: nothing added.
        let s = settings(" dkim-sign yes\n");
        let options = SignOptions::with_from_signature(SignOptions::from_settings(&s, &header, None), &s);
        let ids: Vec<_> = options.signatures.iter().map(|s| s.identity.as_str()).collect();
        assert_eq!(ids, ["sender-or-from"]);
    }
}
