//! Outbound TLS settings checked when the configuration loads: the OpenSSL names of TLS 1.3
//! cipher suites (`smtp-tls-tlsv1.3-ciphersuites`, which rustls must implement) and a `<domain>`
//! that turns off both TLS versions Ember has.

use std::collections::BTreeSet;

use super::diag::Diagnostics;
use super::model::{Config, DomainBlock};
use super::settings::Settings;
use super::table::Dir;

/// The TLS 1.3 suites rustls implements, by their OpenSSL (and IANA) names, in rustls's
/// default preference order.
pub const TLS13_SUITES: &[&str] = &["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"];

/// TLS 1.3 suites OpenSSL knows and rustls does not.
const UNIMPLEMENTED: &[&str] = &["TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"];

/// Why a `smtp-tls-tlsv1.3-ciphersuites` value names no usable suite.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    #[error("TLS 1.3 cipher suite {0} is not implemented by rustls; use {known}", known = TLS13_SUITES.join(", "))]
    Unimplemented(String),
    #[error("unknown TLS 1.3 cipher suite {0:?}; known: {known}", known = TLS13_SUITES.join(", "))]
    Unknown(String),
    #[error("no TLS 1.3 cipher suite given; known: {known}", known = TLS13_SUITES.join(", "))]
    Empty,
}

/// The suites of an OpenSSL `-ciphersuites` string (names separated by `:`), in the order given.
pub fn tls13_suites(text: &str) -> Result<Vec<&'static str>, SuiteError> {
    let mut out = Vec::new();
    for name in text.split([':', ',', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
        let upper = name.to_ascii_uppercase();
        match TLS13_SUITES.iter().find(|s| **s == upper) {
            Some(s) if !out.contains(s) => out.push(*s),
            Some(_) => {}
            None if UNIMPLEMENTED.contains(&upper.as_str()) => {
                return Err(SuiteError::Unimplemented(name.to_string()));
            }
            None => {
                return Err(SuiteError::Unknown(name.to_string()));
            }
        }
    }
    if out.is_empty() {
        return Err(SuiteError::Empty);
    }
    Ok(out)
}

/// Reports bad suite lists and blocks that allow neither TLS 1.2 nor TLS 1.3.
pub fn check(config: &Config, diags: &mut Diagnostics) {
    let mut seen = BTreeSet::new();
    let blocks = config
        .domains
        .iter()
        .chain(config.vmtas.iter().flat_map(|v| &v.domains))
        .chain(config.pools.iter().flat_map(|p| &p.domains))
        .filter(|d: &&DomainBlock| seen.insert(std::sync::Arc::as_ptr(&d.settings)))
        .map(|d| d.settings.as_ref());
    for settings in std::iter::once(&config.queue_defaults).chain(blocks) {
        check_block(settings, diags);
    }
}

fn check_block(settings: &Settings, diags: &mut Diagnostics) {
    if let Some(e) = settings.get(Dir::SmtpTlsTlsv13Ciphersuites)
        && let Some(text) = settings.text(Dir::SmtpTlsTlsv13Ciphersuites)
        && let Err(why) = tls13_suites(text)
        && let Some(at) = e.origin.value_location()
    {
        diags.error(at, format!("smtp-tls-tlsv1.3-ciphersuites: {why}"));
    }
    let off = |d: Dir| settings.get(d).is_some() && !settings.flag(d);
    if off(Dir::SmtpTlsAllowTlsv12)
        && off(Dir::SmtpTlsAllowTlsv13)
        && let Some(at) = settings.get(Dir::SmtpTlsAllowTlsv13).and_then(|e| e.origin.location())
    {
        diags.error(
            at,
            "smtp-tls-allow-tlsv1.2 and smtp-tls-allow-tlsv1.3 are both no: Ember has no other TLS version \
             (to deliver without TLS, say use-starttls no)",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    #[test]
    fn openssl_names_map_in_order_and_unknown_ones_are_listed() {
        assert_eq!(
            tls13_suites("TLS_CHACHA20_POLY1305_SHA256:tls_aes_128_gcm_sha256").unwrap(),
            ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]
        );
        let err = tls13_suites("TLS_AES_128_CCM_SHA256").unwrap_err().to_string();
        assert!(err.contains("not implemented by rustls") && err.contains("TLS_AES_256_GCM_SHA384"), "{err}");
        let err = tls13_suites("ECDHE-RSA-AES128-GCM-SHA256").unwrap_err().to_string();
        assert!(err.contains("unknown") && err.contains("TLS_CHACHA20_POLY1305_SHA256"), "{err}");
    }

    #[test]
    fn config_errors_point_at_the_line() {
        let text = "<domain a.example>\n smtp-tls-tlsv1.3-ciphersuites TLS_FOO\n</domain>\n<domain b.example>\n smtp-tls-allow-tlsv1.2 no\n smtp-tls-allow-tlsv1.3 no\n</domain>\n<domain c.example>\n smtp-tls-allow-tlsv1.2 no\n smtp-tls-tlsv1.3-ciphersuites TLS_AES_128_GCM_SHA256\n</domain>\n";
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        let shown = loaded.diagnostics.to_string();
        assert_eq!(loaded.diagnostics.errors().count(), 2, "{shown}");
        assert!(shown.contains("t.conf:2") && shown.contains("unknown TLS 1.3 cipher suite \"TLS_FOO\""), "{shown}");
        assert!(shown.contains("t.conf:6") && shown.contains("both no"), "{shown}");
    }
}
