//! The field dialect (docs/config-reference.md, "Field dialect"): spellings operators use in the
//! wild, each mapped onto a documented directive. A mapped value keeps the spelling it was written
//! with, so `show settings` can say "written as max-msg-per-hour 5000".
//!
//! Dialect spellings with no documented equivalent (`sanitize-headers`, `suppress-file`,
//! `max-loop-count`, `bounce-on-4xx-status`, `log-delivery-failures`, `log-fallback-failures`)
//! are ordinary directives of the table.

use super::table::Dir;
use super::table_def::scope::{DOMAIN, GLOBAL, SOURCE};

/// How a dialect spelling becomes documented directives.
#[derive(Clone, Copy, Debug)]
pub enum Mapping {
    /// Same value, other name.
    Rename(Dir),
    /// `N` per hour becomes the rate `N/h`.
    PerHour(Dir),
    /// `USER:PASS` becomes `auth-username USER` and `auth-password PASS`.
    OutboundAuth,
}

/// (written name, blocks where the spelling means this, mapping).
pub const DIALECT: &[(&str, u32, Mapping)] = &[
    ("retry-interval", DOMAIN, Mapping::Rename(Dir::RetryAfter)),
    ("max-retry-time", DOMAIN, Mapping::Rename(Dir::BounceAfter)),
    ("min-retry-interval", DOMAIN, Mapping::Rename(Dir::RetryRecipientsAfter)),
    ("max-msg-per-hour", DOMAIN, Mapping::PerHour(Dir::MaxMsgRate)),
    ("backoff-max-msg-per-hour", DOMAIN, Mapping::PerHour(Dir::BackoffMaxMsgRate)),
    ("always-allow-relay", GLOBAL | SOURCE, Mapping::Rename(Dir::AlwaysAllowRelaying)),
    ("outbound-auth", GLOBAL | DOMAIN, Mapping::OutboundAuth),
    // Legacy names the guide still mentions.
    ("route", DOMAIN, Mapping::Rename(Dir::SmtpHosts)),
    ("delivery-priority", DOMAIN, Mapping::Rename(Dir::QueuePriority)),
    ("max-rcpt-per-message", DOMAIN, Mapping::Rename(Dir::MaxRcptPerTransaction)),
    // PowerMTA 4.x spelling.
    ("421-means-mx-unavailable", DOMAIN, Mapping::Rename(Dir::Smtp421MeansMxUnavailable)),
    ("max-smtp-out-per-source-ip", DOMAIN, Mapping::Rename(Dir::SourceIpMaxSmtpOut)),
];

pub fn lookup(name: &str, block: u32) -> Option<Mapping> {
    DIALECT.iter().find(|(n, scope, _)| *n == name && scope & block != 0).map(|(_, _, m)| *m)
}

/// Whether a directive name is a field-dialect reply code line (`421 RP-001 *, 1h, 5, 1000`).
pub fn is_backoff_line(name: &str) -> bool {
    name.len() == 3 && name.bytes().all(|b| b.is_ascii_digit()) && matches!(name.as_bytes()[0], b'4' | b'5')
}
