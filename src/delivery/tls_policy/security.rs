//! What one recipient domain's transport-security policy is for one connection
//! (`DomainSecurity`): which MX hosts it allows, what the TLS client must verify, whether a
//! session opened for another domain's mail (a rollup's) meets it, and how each session counts
//! for TLS-RPT and `/metrics`. `TlsPolicies` (the parent module) looks policies up and hands
//! these out.

use std::sync::Arc;

use mail_auth::report::tlsrpt::{PolicyType, ResultType};
use rustls::client::danger::ServerCertVerifier;

use super::dane::{self, DaneStatus};
use super::store::CachedPolicy;
use super::sts::Mode;
use super::{TlsPolicies, tlsrpt};
use crate::delivery::client::{ClientConfig, ClientError, Connection, TlsEnforcement, TlsFailure};
use crate::delivery::mx::MxHost;
use crate::smtp::Reply;

/// What one domain's policy is, for one connection.
#[derive(Clone)]
pub struct DomainSecurity {
    pub domain: String,
    /// A valid MTA-STS policy (mode `enforce` or `testing`).
    pub sts: Option<Arc<CachedPolicy>>,
    /// Why no valid policy could be had (fetch or parse failure), for TLS-RPT.
    pub discovery_failure: Option<(ResultType, String)>,
    /// What DANE found (`None`: `use-dane no`, or not an MX route). When it applies, MTA-STS
    /// is not consulted.
    pub dane: Option<DaneStatus>,
    /// The web-PKI verifier the policy's certificate checks use.
    pub(super) verifier: Option<Arc<dyn ServerCertVerifier>>,
    pub(super) policies: Option<Arc<TlsPolicies>>,
}

impl DomainSecurity {
    /// No policy: opportunistic TLS as configured.
    pub fn none(domain: &str) -> DomainSecurity {
        DomainSecurity {
            domain: domain.to_string(),
            sts: None,
            discovery_failure: None,
            dane: None,
            verifier: None,
            policies: None,
        }
    }

    /// The DANE policy, when DANE applies.
    pub(super) fn dane_policy(&self) -> Option<&Arc<dane::DanePolicy>> {
        match &self.dane {
            Some(DaneStatus::Applies(p)) => Some(p),
            _ => None,
        }
    }

    /// DANE governs the connection (it applies, or its lookups failed and deliveries wait).
    pub(super) fn dane_governs(&self) -> bool {
        matches!(self.dane, Some(DaneStatus::Applies(_) | DaneStatus::Failed(_)))
    }

    pub(super) fn mode(&self) -> Option<Mode> {
        self.sts.as_ref().map(|p| p.policy.mode)
    }

    /// The policy's name in replies and logs: "MTA-STS policy of example.com", "DANE policy of
    /// example.com".
    pub fn label(&self) -> String {
        if self.dane_governs() {
            return format!("DANE policy of {}", self.domain);
        }
        format!("MTA-STS policy of {}", self.domain)
    }

    /// What is in force, for logs, `explain` and the API: "DANE (mx…: TLSA 3 1 1 …)", "MTA-STS
    /// enforce (id …; mx: …)" or "none (opportunistic TLS)", with why DANE does not apply.
    pub fn describe(&self) -> String {
        let without_dane = match &self.dane {
            Some(DaneStatus::Applies(p)) => return p.describe(),
            Some(DaneStatus::Failed(why)) => return format!("DANE: deliveries wait, {why}"),
            Some(DaneStatus::NotApplicable(why)) => format!("; DANE not applicable: {why}"),
            None => String::new(),
        };
        let described = match &self.sts {
            Some(p) => format!(
                "MTA-STS {} (policy id {}, mx {}, max_age {})",
                p.policy.mode.as_str(),
                p.id,
                p.policy.mx.join(" "),
                p.policy.max_age
            ),
            None => match &self.discovery_failure {
                Some((_, why)) => format!("none (no valid MTA-STS policy: {why})"),
                None => "none (opportunistic TLS)".to_string(),
            },
        };
        described + &without_dane
    }

    /// The hosts a connection may use. In enforce mode only those the policy's `mx` patterns
    /// allow; none left is a refusal in the policy's name (the queue defers).
    pub fn allowed_hosts<'a>(&self, hosts: Vec<&'a MxHost>) -> Result<Vec<&'a MxHost>, Reply> {
        if self.dane_governs() {
            return self.dane_hosts(hosts);
        }
        let Some(policy) = self.sts.as_ref().filter(|p| p.policy.mode == Mode::Enforce) else { return Ok(hosts) };
        let (allowed, refused): (Vec<&MxHost>, Vec<&MxHost>) =
            hosts.into_iter().partition(|h| policy.policy.allows(&h.name));
        if allowed.is_empty() {
            let names: Vec<&str> = refused.iter().map(|h| h.name.as_str()).collect();
            for host in &refused {
                self.record(Some(tlsrpt::Failure {
                    result: ResultType::ValidationFailure,
                    sending_ip: None,
                    mx: Some(host.name.clone()),
                    receiving_ip: host.addrs.first().map(|a| a.ip()),
                    detail: Some("mx-not-in-policy".into()),
                }));
            }
            return Err(Reply::new(
                451,
                "4.7.5",
                format!(
                    "{}: no MX host matches the policy (MX {}; policy mx {})",
                    self.label(),
                    names.join(" "),
                    policy.policy.mx.join(" ")
                ),
            ));
        }
        Ok(allowed)
    }

    /// Sets what the TLS client must do: in enforce mode STARTTLS and a certificate valid for
    /// the MX name (system roots plus `smtp-tls-ca-file`); in testing mode the same check after
    /// the handshake, recorded but not enforced.
    pub fn apply(&self, config: &mut ClientConfig) {
        if let Some(policy) = self.dane_policy() {
            let verifier: Arc<dyn ServerCertVerifier> = Arc::clone(&policy.verifier) as Arc<dyn ServerCertVerifier>;
            config.tls_policy =
                Some(TlsEnforcement { label: self.label(), verifier, optional_for: policy.unprotected() });
            config.tls_audit = None;
            return;
        }
        let Some(verifier) = &self.verifier else { return };
        match self.mode() {
            Some(Mode::Enforce) => {
                config.tls_policy = Some(TlsEnforcement {
                    label: self.label(),
                    verifier: Arc::clone(verifier),
                    optional_for: Vec::new(),
                })
            }
            Some(Mode::Testing) => config.tls_audit = Some(Arc::clone(verifier)),
            _ => {}
        }
    }

    /// A session was opened with `conn`: counts it for TLS-RPT and `/metrics`; in testing mode
    /// a failure is logged.
    pub fn record_connected(&self, conn: &Connection) {
        let failure = self.session_failure(conn, conn.tls_audit());
        self.record_session(conn, failure);
    }

    /// Whether `conn`, opened for another domain's mail (a rollup queue's connection), meets
    /// this domain's policy: its MX name, STARTTLS and the certificate checked now with this
    /// domain's verifier. Counted for TLS-RPT like `record_connected`; in enforce mode a
    /// failure is the reply that defers this domain's recipients (4.7.5, in the policy's name).
    pub fn admits(&self, conn: &Connection) -> Result<(), Reply> {
        if self.dane_governs() {
            // DANE has no testing mode: what it does not admit waits.
            let failure = self.dane_session_failure(conn);
            let refusal = failure.as_ref().map(|(_, why)| Reply::new(451, "4.7.5", format!("{}: {why}", self.label())));
            self.record_session(conn, failure);
            return refusal.map_or(Ok(()), Err);
        }
        let certificate = match (&self.verifier, &self.sts) {
            (Some(verifier), Some(_)) if conn.tls().is_some() => Some(conn.verify_peer(verifier.as_ref())),
            _ => None,
        };
        let failure = self.session_failure(conn, certificate.as_ref());
        let refusal = match (&failure, self.mode()) {
            (Some((_, why)), Some(Mode::Enforce)) => Some(Reply::new(451, "4.7.5", format!("{}: {why}", self.label()))),
            _ => None,
        };
        self.record_session(conn, failure);
        refusal.map_or(Ok(()), Err)
    }

    /// What keeps the session on `conn`, made for another domain's mail, from meeting this
    /// domain's DANE policy: the host's TLSA records checked now against the peer chain.
    pub(super) fn dane_session_failure(&self, conn: &Connection) -> Option<(ResultType, String)> {
        let mx = conn.mx_name();
        let policy = match &self.dane {
            Some(DaneStatus::Applies(p)) => p,
            Some(DaneStatus::Failed(why)) => return Some((ResultType::DnssecInvalid, why.clone())),
            _ => return None,
        };
        let tls_required = match policy.hosts.get(&mx.to_ascii_lowercase()) {
            Some(dane::HostDane::Failed(why)) => return Some((ResultType::DnssecInvalid, why.clone())),
            Some(dane::HostDane::Authenticated(_)) => {
                if conn.tls().is_some() {
                    return conn
                        .verify_peer(policy.verifier.as_ref())
                        .err()
                        .map(|f| (dane_result_type(&f), format!("{mx}: certificate {}", describe_failure(&f))));
                }
                true
            }
            Some(dane::HostDane::EncryptOnly(_)) => true,
            // Not covered by this domain's DANE (no secure TLSA records): opportunistic.
            Some(dane::HostDane::Unprotected(_)) | None => false,
        };
        if tls_required && conn.tls().is_none() {
            let failure = conn.tls_fallback_failure().cloned().unwrap_or(TlsFailure::NotOffered);
            return Some((dane_result_type(&failure), format!("{mx}: the session is not encrypted")));
        }
        None
    }

    /// What keeps the session on `conn` from meeting this policy (`certificate`: the peer
    /// certificate checked with this policy's verifier, when it was not in the handshake).
    pub(super) fn session_failure(
        &self,
        conn: &Connection,
        certificate: Option<&Result<(), TlsFailure>>,
    ) -> Option<(ResultType, String)> {
        let mx = conn.mx_name();
        // Under DANE an open session met what the host's TLSA records ask (or it has none).
        if self.dane_governs() {
            None
        } else if let Some((result, why)) = &self.discovery_failure {
            Some((*result, why.clone()))
        } else if let Some(p) = &self.sts {
            if !p.policy.allows(mx) {
                Some((ResultType::ValidationFailure, format!("{mx} is not in the policy's mx list")))
            } else if conn.tls().is_none() {
                let failure = conn.tls_fallback_failure().cloned().unwrap_or(TlsFailure::NotOffered);
                let why = conn.tls_fallback().unwrap_or("STARTTLS not offered");
                Some((result_type(&failure), format!("{mx}: the session is not encrypted ({why})")))
            } else {
                match certificate {
                    Some(Err(f)) => Some((result_type(f), format!("{mx}: certificate {}", describe_failure(f)))),
                    _ => None,
                }
            }
        } else {
            None
        }
    }

    /// Counts a session for TLS-RPT and `/metrics`; in testing mode a failure is logged.
    pub(super) fn record_session(&self, conn: &Connection, failure: Option<(ResultType, String)>) {
        let mx = conn.mx_name();
        if let Some((_, why)) = &failure
            && self.mode() == Some(Mode::Testing)
            && let Some(policies) = &self.policies
        {
            // Once per domain and reason: a bulk queue would repeat it for every connection.
            policies.log_once(&self.domain, &format!("{} (testing mode, delivering anyway): {why}", self.label()));
        }
        self.record(failure.map(|(result, why)| tlsrpt::Failure {
            result,
            sending_ip: Some(conn.local().ip()),
            mx: Some(mx.to_string()),
            receiving_ip: Some(conn.remote().ip()),
            detail: Some(why),
        }));
    }

    /// A connection failed: a TLS failure under a policy counts for TLS-RPT.
    pub fn record_failed(&self, mx: &str, addr: std::net::SocketAddr, error: &ClientError) {
        if let ClientError::PolicyRefused { failure, why, .. } = error {
            let result = if self.dane_governs() { dane_result_type(failure) } else { result_type(failure) };
            self.record(Some(tlsrpt::Failure {
                result,
                sending_ip: None,
                mx: Some(mx.to_string()),
                receiving_ip: Some(addr.ip()),
                detail: Some(why.clone()),
            }));
        }
    }

    pub(super) fn record(&self, failure: Option<tlsrpt::Failure>) {
        let Some(policies) = &self.policies else { return };
        let (policy_type, policy_string, mx_patterns) = match (&self.dane, &self.sts) {
            (Some(DaneStatus::Applies(p)), _) => {
                (PolicyType::Tlsa, p.policy_strings(), p.hosts.keys().cloned().collect())
            }
            (Some(DaneStatus::Failed(_)), _) => (PolicyType::Tlsa, Vec::new(), Vec::new()),
            (_, Some(p)) => (PolicyType::Sts, p.policy.lines(), p.policy.mx.clone()),
            (_, None) if self.discovery_failure.is_some() => (PolicyType::Sts, Vec::new(), Vec::new()),
            (_, None) => (PolicyType::NoPolicyFound, Vec::new(), Vec::new()),
        };
        policies.count(policy_type, failure.as_ref().map(|f| f.result));
        policies.reports.record(tlsrpt::Session {
            domain: self.domain.clone(),
            policy_type,
            policy_string,
            mx_patterns,
            failure,
        });
    }
}

/// The TLS-RPT result type of a TLS failure.
pub fn result_type(failure: &TlsFailure) -> ResultType {
    use rustls::CertificateError as C;
    match failure {
        TlsFailure::NotOffered | TlsFailure::Refused => ResultType::StartTlsNotSupported,
        TlsFailure::Certificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            ResultType::CertificateHostMismatch
        }
        TlsFailure::Certificate(C::Expired | C::ExpiredContext { .. }) => ResultType::CertificateExpired,
        TlsFailure::Certificate(C::UnknownIssuer | C::BadSignature) => ResultType::CertificateNotTrusted,
        TlsFailure::Certificate(_) | TlsFailure::Handshake => ResultType::ValidationFailure,
    }
}

/// The TLS-RPT result type of a TLS failure under DANE: a certificate no TLSA record
/// authenticates is `tlsa-invalid`.
pub fn dane_result_type(failure: &TlsFailure) -> ResultType {
    match failure {
        TlsFailure::Certificate(rustls::CertificateError::Other(_)) => ResultType::TlsaInvalid,
        other => result_type(other),
    }
}

pub(super) fn describe_failure(failure: &TlsFailure) -> String {
    match failure {
        TlsFailure::NotOffered => "STARTTLS not offered".into(),
        TlsFailure::Refused => "STARTTLS refused".into(),
        TlsFailure::Certificate(c) => format!("not valid: {c:?}"),
        TlsFailure::Handshake => "handshake failed".into(),
    }
}
