//! TLS-RPT (RFC 8460) aggregation: every outbound session's result, counted per recipient
//! domain and policy (type, policy string, MX patterns), failures by result type, sending and
//! receiving address and MX name. The window is kept on disk (`tlsrpt.json` in the state
//! directory) so a restart loses nothing; `take` ends a window and starts the next, for the
//! daily report (built here as `mail_auth`'s `TlsReport`, sent by whoever owns the queues).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use mail_auth::report::tlsrpt::{DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary};
use serde::{Deserialize, Serialize};

/// Domains one window holds at most (a bound on memory; later domains wait for the next).
const MAX_DOMAINS: usize = 100_000;

/// One session's result, as the worker reports it.
#[derive(Clone, Debug)]
pub struct Session {
    pub domain: String,
    pub policy_type: PolicyType,
    pub policy_string: Vec<String>,
    pub mx_patterns: Vec<String>,
    /// `None`: the session succeeded.
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub result: ResultType,
    pub sending_ip: Option<IpAddr>,
    pub mx: Option<String>,
    pub receiving_ip: Option<IpAddr>,
    pub detail: Option<String>,
}

/// What one window collected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Window {
    /// Unix seconds the window started.
    pub start: u64,
    /// Per recipient domain, its policies with their counts.
    pub domains: BTreeMap<String, Vec<Policy>>,
}

pub struct Collector {
    file: Option<PathBuf>,
    window: Mutex<(Window, bool)>,
}

impl Collector {
    /// Starts from the window saved in `file`, if any.
    pub fn open(file: Option<PathBuf>, now: u64) -> Collector {
        let saved = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice::<Window>(&bytes).ok());
        let window = saved.unwrap_or(Window { start: now, domains: BTreeMap::new() });
        Collector { file, window: Mutex::new((window, false)) }
    }

    pub fn record(&self, session: Session) {
        let mut guard = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let (window, dirty) = &mut *guard;
        if !window.domains.contains_key(&session.domain) && window.domains.len() >= MAX_DOMAINS {
            return;
        }
        *dirty = true;
        let policies = window.domains.entry(session.domain.clone()).or_default();
        let details = PolicyDetails {
            policy_type: session.policy_type,
            policy_string: session.policy_string,
            policy_domain: session.domain,
            mx_host: session.mx_patterns,
        };
        let index = match policies.iter().position(|p| p.policy == details) {
            Some(i) => i,
            None => {
                policies.push(Policy {
                    policy: details,
                    summary: Summary { total_success: 0, total_failure: 0 },
                    failure_details: Vec::new(),
                });
                policies.len() - 1
            }
        };
        let policy = &mut policies[index];
        let Some(f) = session.failure else {
            policy.summary.total_success = policy.summary.total_success.saturating_add(1);
            return;
        };
        policy.summary.total_failure = policy.summary.total_failure.saturating_add(1);
        let same = |d: &FailureDetails| {
            d.result_type == f.result
                && d.sending_mta_ip == f.sending_ip
                && d.receiving_mx_hostname == f.mx
                && d.receiving_ip == f.receiving_ip
        };
        match policy.failure_details.iter_mut().find(|d| same(d)) {
            Some(d) => d.failed_session_count = d.failed_session_count.saturating_add(1),
            None => policy.failure_details.push(FailureDetails {
                result_type: f.result,
                sending_mta_ip: f.sending_ip,
                receiving_mx_hostname: f.mx,
                receiving_mx_helo: None,
                receiving_ip: f.receiving_ip,
                failed_session_count: 1,
                additional_information: None,
                failure_reason_code: f.detail,
            }),
        }
    }

    /// Ends the window at `now`: returns it, and the next one starts empty.
    pub fn take(&self, now: u64) -> Window {
        let mut guard = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::replace(&mut guard.0, Window { start: now, domains: BTreeMap::new() });
        guard.1 = true;
        taken
    }

    /// A copy of the window so far.
    pub fn peek(&self) -> Window {
        self.window.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Writes the window to its file when it changed (blocking: call on a blocking thread).
    pub fn save_blocking(&self) {
        let Some(file) = &self.file else { return };
        let bytes = {
            let mut guard = self.window.lock().unwrap_or_else(|p| p.into_inner());
            if !guard.1 {
                return;
            }
            guard.1 = false;
            serde_json::to_vec(&guard.0)
        };
        let written = bytes.map_err(std::io::Error::other).and_then(|bytes| {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, file)
        });
        if let Err(e) = written {
            tracing::warn!("cannot save the TLS-RPT counts in {}: {e}", file.display());
        }
    }
}

/// The `rua` mailto addresses of a `_smtp._tls` TXT record (`v=TLSRPTv1; rua=mailto:a@b,…`);
/// `https:` destinations are not used (Ember reports by mail).
pub fn mailto_rua(records: &[String]) -> Vec<String> {
    let Some(record) = records.iter().find(|r| r.trim_start().starts_with("v=TLSRPTv1")) else { return Vec::new() };
    let mut out = Vec::new();
    for field in record.split(';').map(str::trim) {
        let Some(value) = field.strip_prefix("rua=") else { continue };
        for uri in value.split(',').map(str::trim) {
            if let Some(address) = uri.strip_prefix("mailto:")
                && let Ok(address) = percent_encoding::percent_decode_str(address).decode_utf8()
                && address.contains('@')
                && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
            {
                out.push(address.into_owned());
            }
        }
    }
    out
}

/// One domain's report for a window.
pub fn report(
    window: &Window,
    domain: &str,
    organization: &str,
    contact: &str,
    end: u64,
) -> Option<mail_auth::report::tlsrpt::TlsReport> {
    let policies = window.domains.get(domain)?.clone();
    Some(mail_auth::report::tlsrpt::TlsReport {
        organization_name: Some(organization.to_string()),
        date_range: DateRange::from_timestamps(window.start as i64, end as i64),
        contact_info: Some(contact.to_string()),
        report_id: format!("{}.{}@{}", window.start, domain, organization),
        policies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(domain: &str, failure: Option<ResultType>) -> Session {
        Session {
            domain: domain.into(),
            policy_type: PolicyType::Sts,
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx_patterns: vec!["mx.example.com".into()],
            failure: failure.map(|result| Failure {
                result,
                sending_ip: None,
                mx: Some("mx.example.com".into()),
                receiving_ip: Some("192.0.2.1".parse().unwrap()),
                detail: None,
            }),
        }
    }

    #[test]
    fn sessions_add_up_per_policy_and_failure() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collector::open(Some(dir.path().join("tlsrpt.json")), 100);
        c.record(sts("example.com", None));
        c.record(sts("example.com", None));
        c.record(sts("example.com", Some(ResultType::CertificateExpired)));
        c.record(sts("example.com", Some(ResultType::CertificateExpired)));
        c.record(sts("example.com", Some(ResultType::StartTlsNotSupported)));
        c.save_blocking();
        let reopened = Collector::open(Some(dir.path().join("tlsrpt.json")), 200);
        let w = reopened.take(300);
        assert_eq!(w.start, 100);
        let p = &w.domains["example.com"][0];
        assert_eq!((p.summary.total_success, p.summary.total_failure), (2, 3));
        assert_eq!(p.failure_details.len(), 2);
        assert_eq!(p.failure_details[0].failed_session_count, 2);
        assert_eq!(reopened.peek().start, 300);
        let r = report(&w, "example.com", "ember.test", "postmaster@ember.test", 300).unwrap();
        let parsed = mail_auth::report::tlsrpt::TlsReport::parse_json(r.to_json().as_bytes()).unwrap();
        assert_eq!(parsed.policies[0].summary.total_failure, 3);
    }

    #[test]
    fn rua_mailto_addresses_are_found() {
        let rua = mailto_rua(&[
            "v=spf1 -all".into(),
            "v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/x, mailto:tls%2Bops@example.net".into(),
        ]);
        assert_eq!(rua, ["tls@example.com", "tls+ops@example.net"]);
        assert!(mailto_rua(&["v=TLSRPTv1;".into()]).is_empty());
    }
}
