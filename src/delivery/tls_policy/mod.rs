//! Transport-security policies of recipient domains: DANE (RFC 7672, `dane`), MTA-STS
//! (RFC 8461) discovery, fetch, cache and background refresh, and TLS-RPT (RFC 8460) counting of
//! every session's result.
//!
//! `TlsPolicies` is shared by every delivery task. A connection asks `for_domain` what the
//! domain's policy is (`DomainSecurity`: DANE when the domain has DNSSEC-validated TLSA records,
//! which then wins over MTA-STS; else MTA-STS), which narrows the MX hosts (`allowed_hosts`), sets
//! what the TLS client must verify (`apply`), and records how the session went
//! (`record_connected`, `record_failed`). Failures to discover or fetch a policy are logged
//! once per domain and reason, and never stop delivery: without a valid policy, delivery is
//! opportunistic as before, unless a cached one is still valid (then that one applies).
//!
//! Knows nothing about queues or retries: a refusal comes back as a reply for the caller.

pub mod dane;
pub mod fetch;
pub mod store;
pub mod sts;
pub mod tlsrpt;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::report::tlsrpt::{PolicyType, ResultType};
use rustls::client::danger::ServerCertVerifier;

use super::client::{ClientConfig, ClientError, Connection, TlsEnforcement, TlsFailure};
use super::mx::{Answer, DnsLookup, Family, HickoryLookup, MxHost, MxPlan, PlanSource};
use crate::smtp::Reply;
use dane::{DaneStatus, HostDane};
use fetch::{FetchError, FetchLimits};
use store::{CachedPolicy, PolicyStore};
use sts::Mode;

/// How long a discovery (TXT lookup, and a fetch when the id changed) is trusted before the
/// next connection to the domain looks again.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

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
    verifier: Option<Arc<dyn ServerCertVerifier>>,
    policies: Option<Arc<TlsPolicies>>,
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
    fn dane_policy(&self) -> Option<&Arc<dane::DanePolicy>> {
        match &self.dane {
            Some(DaneStatus::Applies(p)) => Some(p),
            _ => None,
        }
    }

    /// DANE governs the connection (it applies, or its lookups failed and deliveries wait).
    fn dane_governs(&self) -> bool {
        matches!(self.dane, Some(DaneStatus::Applies(_) | DaneStatus::Failed(_)))
    }

    fn mode(&self) -> Option<Mode> {
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
    fn dane_session_failure(&self, conn: &Connection) -> Option<(ResultType, String)> {
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
    fn session_failure(
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
    fn record_session(&self, conn: &Connection, failure: Option<(ResultType, String)>) {
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

    fn record(&self, failure: Option<tlsrpt::Failure>) {
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

fn describe_failure(failure: &TlsFailure) -> String {
    match failure {
        TlsFailure::NotOffered => "STARTTLS not offered".into(),
        TlsFailure::Refused => "STARTTLS refused".into(),
        TlsFailure::Certificate(c) => format!("not valid: {c:?}"),
        TlsFailure::Handshake => "handshake failed".into(),
    }
}

/// Which policies a domain's configuration asks for (`use-mta-sts`, `use-dane`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsePolicies {
    pub mta_sts: bool,
    pub dane: bool,
}

/// What a discovery found: a valid policy, or why none could be had.
type Discovered = (Option<Arc<CachedPolicy>>, Option<(ResultType, String)>);

/// What is known of one domain's MTA-STS policy.
struct Known {
    policy: Option<Arc<CachedPolicy>>,
    failure: Option<(ResultType, String)>,
    checked: Instant,
    /// The `smtp-tls-ca-file` the domain's deliveries trust, for the background refresh.
    ca_file: Option<PathBuf>,
}

/// What DANE found for a domain, for the MX hosts it was evaluated with, until `expires`.
struct DaneKnown {
    hosts: Vec<String>,
    status: DaneStatus,
    expires: Instant,
}

/// Shared by every delivery task; see the module comment.
pub struct TlsPolicies {
    dns: Arc<HickoryLookup>,
    /// DNSSEC-aware lookups for DANE (`None`: no resolver could be set up for them).
    secure_dns: Option<Arc<dane::dns::SecureDns>>,
    dane_known: Mutex<HashMap<String, DaneKnown>>,
    store: PolicyStore,
    verifiers: Arc<verify::Verifiers>,
    known: Mutex<HashMap<String, Known>>,
    /// One discovery at a time per domain: the others wait for its answer.
    discovering: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last failure logged per domain, so each is logged once.
    logged: Mutex<HashMap<String, String>>,
    limits: FetchLimits,
    pub reports: Arc<tlsrpt::Collector>,
    /// Sessions by policy type and result (`/metrics`).
    sessions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl TlsPolicies {
    /// `state_dir`: where policies (`mta-sts/`) and TLS-RPT counts (`tlsrpt.json`) are kept.
    /// `secure_dns`: the lookups DANE trusts (see `dane::dns`).
    pub fn new(
        dns: Arc<HickoryLookup>,
        secure_dns: Option<Arc<dane::dns::SecureDns>>,
        state_dir: Option<&Path>,
        limits: FetchLimits,
    ) -> TlsPolicies {
        TlsPolicies {
            dns,
            secure_dns,
            dane_known: Mutex::default(),
            store: PolicyStore::new(state_dir.map(|d| d.join("mta-sts"))),
            verifiers: Arc::default(),
            known: Mutex::default(),
            discovering: Mutex::default(),
            logged: Mutex::default(),
            limits,
            reports: Arc::new(tlsrpt::Collector::open(
                state_dir.map(|d| d.join("tlsrpt.json")),
                crate::time::now_secs(),
            )),
            sessions: Mutex::default(),
        }
    }

    /// The policy in force for mail to `domain` delivered by `plan` (`use`: the domain's
    /// `use-mta-sts` and `use-dane`; `ca_file`: its `smtp-tls-ca-file`, trusted besides the
    /// system roots for MTA-STS). DANE, when it applies, wins: MTA-STS is then not consulted.
    pub async fn for_domain(
        self: &Arc<Self>,
        domain: &str,
        plan: &MxPlan,
        use_policies: UsePolicies,
        ca_file: Option<&Path>,
    ) -> DomainSecurity {
        let dane = if use_policies.dane
            && !domain.starts_with('[')
            && matches!(plan.source, PlanSource::Mx | PlanSource::Implicit)
        {
            let hosts: Vec<(String, u16)> =
                plan.hosts.iter().map(|h| (h.name.clone(), h.addrs.first().map_or(25, |a| a.port()))).collect();
            Some(self.dane(domain, hosts, plan.source == PlanSource::Implicit).await)
        } else {
            None
        };
        self.security(domain, dane, use_policies, ca_file).await
    }

    /// The policy of `domain`, a member of a rollup queue, for its mail on a connection made to
    /// `mx_host` (port `port`) for the rollup: under DANE, the host is judged as one of the
    /// member's own MX hosts (its validated MX records must name it for its TLSA records to
    /// count); otherwise the member's MTA-STS policy applies.
    pub async fn for_member(
        self: &Arc<Self>,
        domain: &str,
        mx_host: &str,
        port: u16,
        use_policies: UsePolicies,
        ca_file: Option<&Path>,
    ) -> DomainSecurity {
        let dane = if use_policies.dane {
            Some(self.dane(domain, vec![(mx_host.to_ascii_lowercase(), port)], false).await)
        } else {
            None
        };
        self.security(domain, dane, use_policies, ca_file).await
    }

    /// `domain`'s policy once DANE's verdict is known: DANE when it governs, else MTA-STS.
    async fn security(
        self: &Arc<Self>,
        domain: &str,
        dane: Option<DaneStatus>,
        use_policies: UsePolicies,
        ca_file: Option<&Path>,
    ) -> DomainSecurity {
        let mut security = DomainSecurity::none(domain);
        security.policies = Some(Arc::clone(self));
        if domain.starts_with('[') {
            return security;
        }
        security.dane = dane;
        if security.dane_governs() {
            return security;
        }
        if !use_policies.mta_sts {
            return security;
        }
        let verifier = match self.verifier(ca_file).await {
            Ok(v) => v,
            Err(e) => {
                self.log_once(domain, &format!("MTA-STS not applied to {domain}: {e}"));
                return security;
            }
        };
        let (policy, failure) = self.discover(domain, &verifier, ca_file, false).await;
        security.sts = policy.filter(|p| p.policy.mode != Mode::None);
        security.discovery_failure = failure;
        security.verifier = Some(verifier);
        security
    }

    /// What DANE says about `domain` and the hosts of `plan`: kept for the TTLs of the records
    /// it used, looked up by one task at a time per domain.
    async fn dane(&self, domain: &str, hosts: Vec<(String, u16)>, implicit: bool) -> DaneStatus {
        let names: Vec<String> = hosts.iter().map(|(n, _)| n.clone()).collect();
        let fresh = |known: &HashMap<String, DaneKnown>| {
            known.get(domain).filter(|k| k.hosts == names && k.expires > Instant::now()).map(|k| k.status.clone())
        };
        if let Some(status) = fresh(&self.dane_known.lock().unwrap_or_else(|p| p.into_inner())) {
            return status;
        }
        let Some(dns) = &self.secure_dns else {
            return DaneStatus::NotApplicable("no resolver for DNSSEC lookups".into());
        };
        let gate = Arc::clone(
            self.discovering.lock().unwrap_or_else(|p| p.into_inner()).entry(format!("dane {domain}")).or_default(),
        );
        let _turn = gate.lock().await;
        if let Some(status) = fresh(&self.dane_known.lock().unwrap_or_else(|p| p.into_inner())) {
            return status;
        }
        let (status, keep) = dane::evaluate(dns, domain, &hosts, implicit).await;
        match &status {
            DaneStatus::Failed(why) => self.log_once(domain, &format!("DANE: deliveries to {domain} wait: {why}")),
            DaneStatus::Applies(p) => {
                for (host, h) in &p.hosts {
                    if let HostDane::Failed(why) = h {
                        self.log_once(domain, &format!("DANE: {host} ({domain}) is not used: {why}"));
                    }
                }
            }
            DaneStatus::NotApplicable(_) => {}
        }
        self.dane_known.lock().unwrap_or_else(|p| p.into_inner()).insert(
            domain.to_string(),
            DaneKnown { hosts: names, status: status.clone(), expires: Instant::now() + keep },
        );
        status
    }

    async fn verifier(&self, ca_file: Option<&Path>) -> Result<Arc<dyn ServerCertVerifier>, verify::VerifierError> {
        let ca = ca_file.map(Path::to_path_buf);
        if let Some(built) = self.verifiers.built(ca.as_deref()) {
            return Ok(built);
        }
        // Reading the system store and the CA file is blocking I/O.
        let verifiers = Arc::clone(&self.verifiers);
        tokio::task::spawn_blocking(move || verifiers.get_blocking(ca.as_deref()))
            .await
            .unwrap_or_else(|e| Err(verify::VerifierError::Build(e.to_string())))
    }

    /// The policy of `domain` (`force`: look again even if the last discovery is recent).
    async fn discover(
        &self,
        domain: &str,
        verifier: &Arc<dyn ServerCertVerifier>,
        ca_file: Option<&Path>,
        force: bool,
    ) -> Discovered {
        if !force && let Some(known) = self.fresh(domain) {
            return known;
        }
        let gate = Arc::clone(
            self.discovering.lock().unwrap_or_else(|p| p.into_inner()).entry(domain.to_string()).or_default(),
        );
        let _turn = gate.lock().await;
        // Someone else may have discovered it while this task waited.
        if !force && let Some(known) = self.fresh(domain) {
            return known;
        }
        let now = crate::time::now_secs();
        let mut cached =
            self.known.lock().unwrap_or_else(|p| p.into_inner()).get(domain).and_then(|k| k.policy.clone());
        if cached.is_none() {
            cached = self.store.load(domain).await.map(Arc::new);
        }
        let cached = cached.filter(|c| c.is_valid(now));
        let (policy, failure) = match self.txt_id(domain).await {
            Ok(Some(id)) if cached.as_ref().is_some_and(|c| c.id == id && !c.wants_refresh(now)) => (cached, None),
            Ok(Some(id)) => match self.fetch(domain, verifier).await {
                Ok(policy) => {
                    let fresh = CachedPolicy { domain: domain.to_string(), id, policy, fetched: now };
                    self.store.save(&fresh).await;
                    self.logged.lock().unwrap_or_else(|p| p.into_inner()).remove(domain);
                    (Some(Arc::new(fresh)), None)
                }
                Err((result, why)) => {
                    let kept = if cached.is_some() { "; the cached policy stays in force" } else { "" };
                    self.log_once(domain, &format!("no valid MTA-STS policy for {domain}: {why}{kept}"));
                    let failure = if cached.is_some() { None } else { Some((result, why)) };
                    (cached, failure)
                }
            },
            // No TXT record (or one without v=STSv1): a cached policy stays (RFC 8461 §5.1).
            Ok(None) => (cached, None),
            Err(why) => {
                self.log_once(domain, &format!("MTA-STS discovery for {domain} failed: {why}"));
                (cached, None)
            }
        };
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(
            domain.to_string(),
            Known {
                policy: policy.clone(),
                failure: failure.clone(),
                checked: Instant::now(),
                ca_file: ca_file.map(Path::to_path_buf),
            },
        );
        (policy, failure)
    }

    fn fresh(&self, domain: &str) -> Option<Discovered> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let k = known.get(domain)?;
        let now = crate::time::now_secs();
        (k.checked.elapsed() < DISCOVERY_TTL).then(|| (k.policy.clone().filter(|p| p.is_valid(now)), k.failure.clone()))
    }

    /// The id of `_mta-sts.DOMAIN`'s policy; `Ok(None)` when there is no valid record.
    async fn txt_id(&self, domain: &str) -> Result<Option<String>, String> {
        match self.dns.txt(&format!("_mta-sts.{domain}")).await? {
            Answer::Records { records, .. } => match sts::policy_id(&records) {
                Ok(id) => Ok(Some(id)),
                Err(why) => {
                    self.log_once(domain, &format!("MTA-STS TXT record of {domain} ignored: {why}"));
                    Ok(None)
                }
            },
            Answer::NoRecords { .. } | Answer::NoSuchDomain { .. } => Ok(None),
        }
    }

    async fn fetch(
        &self,
        domain: &str,
        verifier: &Arc<dyn ServerCertVerifier>,
    ) -> Result<sts::Policy, (ResultType, String)> {
        let host = format!("mta-sts.{domain}");
        let fetch_error = |e: FetchError| {
            let result = match e {
                FetchError::Certificate { .. } => ResultType::StsWebpkiInvalid,
                _ => ResultType::StsPolicyFetchError,
            };
            (result, e.to_string())
        };
        let mut addrs = Vec::new();
        for family in [Family::V4, Family::V6] {
            if let Ok(answer) = self.dns.ip(&host, family).await {
                addrs.extend(answer.records().iter().copied());
            }
        }
        let body = fetch::fetch(domain, &addrs, Arc::clone(verifier), self.limits).await.map_err(fetch_error)?;
        sts::Policy::parse(&body).map_err(|e| (ResultType::StsPolicyInvalid, format!("policy from {host}: {e}")))
    }

    fn log_once(&self, domain: &str, message: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.get(domain).is_some_and(|m| m == message) {
            return;
        }
        tracing::warn!("{message}");
        logged.insert(domain.to_string(), message.to_string());
    }

    fn count(&self, policy_type: PolicyType, result: Option<ResultType>) {
        let kind = match policy_type {
            PolicyType::Sts => "sts",
            PolicyType::Tlsa => "tlsa",
            PolicyType::NoPolicyFound => "no-policy-found",
            PolicyType::Other => "other",
        };
        let outcome = match result {
            None => "success",
            Some(r) => result_name(r),
        };
        *self.sessions.lock().unwrap_or_else(|p| p.into_inner()).entry((kind, outcome)).or_insert(0) += 1;
    }

    /// Sessions since start by (policy type, result), for `/metrics`.
    pub fn sessions(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// The policy in force for `domain` as last discovered, in words (`explain`, the queue's API
    /// detail); no lookup.
    pub fn describe(&self, domain: &str, use_policies: UsePolicies) -> String {
        let dane = if use_policies.dane {
            self.dane_known.lock().unwrap_or_else(|p| p.into_inner()).get(domain).map(|k| k.status.clone())
        } else {
            None
        };
        if !use_policies.mta_sts && !matches!(dane, Some(DaneStatus::Applies(_) | DaneStatus::Failed(_))) {
            let mut out = "none (use-mta-sts no)".to_string();
            if let Some(DaneStatus::NotApplicable(why)) = &dane {
                out.push_str(&format!("; DANE not applicable: {why}"));
            }
            return out;
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let k = known.get(domain);
        if k.is_none() && dane.is_none() {
            return "not looked up yet".to_string();
        }
        let security = DomainSecurity {
            sts: k
                .and_then(|k| k.policy.clone())
                .filter(|p| p.policy.mode != Mode::None && p.is_valid(crate::time::now_secs())),
            discovery_failure: k.and_then(|k| k.failure.clone()),
            dane,
            ..DomainSecurity::none(domain)
        };
        security.describe()
    }

    /// Looks again at every domain with a cached policy (on disk or in memory), so policies are
    /// refreshed before they expire and changes are seen without waiting for mail; then saves
    /// the TLS-RPT counts. Run periodically by the daemon.
    pub async fn refresh(&self) {
        // Domains with a policy this process has used, with the CA file their deliveries trust
        // (a policy only on disk is looked at again by its domain's next delivery).
        let domains: Vec<(String, Option<PathBuf>)> = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, k)| k.policy.is_some())
            .map(|(d, k)| (d.clone(), k.ca_file.clone()))
            .collect();
        for (domain, ca_file) in domains {
            if let Ok(verifier) = self.verifier(ca_file.as_deref()).await {
                self.discover(&domain, &verifier, ca_file.as_deref(), true).await;
            }
        }
        self.save_reports().await;
    }

    pub async fn save_reports(&self) {
        let reports = Arc::clone(&self.reports);
        if let Err(e) = tokio::task::spawn_blocking(move || reports.save_blocking()).await {
            tracing::warn!("saving the TLS-RPT counts failed: {e}");
        }
    }

    /// The `rua` mailto addresses of `domain`'s `_smtp._tls` TXT record.
    pub async fn tlsrpt_rua(&self, domain: &str) -> Result<Vec<String>, String> {
        Ok(tlsrpt::mailto_rua(self.dns.txt(&format!("_smtp._tls.{domain}")).await?.records()))
    }

    /// A reload may have changed CA files.
    pub fn reloaded(&self) {
        self.verifiers.clear();
    }
}

/// The RFC 8460 name of a result type.
pub fn result_name(r: ResultType) -> &'static str {
    match r {
        ResultType::StartTlsNotSupported => "starttls-not-supported",
        ResultType::CertificateHostMismatch => "certificate-host-mismatch",
        ResultType::CertificateExpired => "certificate-expired",
        ResultType::CertificateNotTrusted => "certificate-not-trusted",
        ResultType::ValidationFailure => "validation-failure",
        ResultType::TlsaInvalid => "tlsa-invalid",
        ResultType::DnssecInvalid => "dnssec-invalid",
        ResultType::DaneRequired => "dane-required",
        ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
        ResultType::StsPolicyInvalid => "sts-policy-invalid",
        ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        ResultType::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> MxHost {
        MxHost { name: name.into(), preference: 10, addrs: vec!["192.0.2.1:25".parse().unwrap()] }
    }

    fn with_policy(mode: Mode) -> DomainSecurity {
        let policy = sts::Policy { mode, mx: vec!["*.example.com".into()], max_age: 86400 };
        let cached = CachedPolicy { domain: "example.com".into(), id: "7".into(), policy, fetched: 0 };
        DomainSecurity { sts: Some(Arc::new(cached)), ..DomainSecurity::none("example.com") }
    }

    #[test]
    fn enforce_keeps_to_the_policys_mx_hosts_and_says_so() {
        let (good, bad) = (host("mx1.example.com"), host("mx.attacker.test"));
        let enforce = with_policy(Mode::Enforce);
        let allowed = enforce.allowed_hosts(vec![&bad, &good]).unwrap();
        assert_eq!(allowed.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["mx1.example.com"]);
        let refused = enforce.allowed_hosts(vec![&bad]).unwrap_err();
        assert_eq!(refused.code, 451);
        assert!(refused.to_string().contains("MTA-STS policy of example.com: no MX host matches"), "{refused}");
        // testing and no policy: every host.
        assert_eq!(with_policy(Mode::Testing).allowed_hosts(vec![&bad]).unwrap().len(), 1);
        assert_eq!(DomainSecurity::none("example.com").allowed_hosts(vec![&bad]).unwrap().len(), 1);
        assert!(enforce.describe().starts_with("MTA-STS enforce (policy id 7, mx *.example.com"));
    }

    #[test]
    fn tls_failures_map_to_tlsrpt_result_types() {
        use rustls::CertificateError as C;
        assert_eq!(result_type(&TlsFailure::NotOffered), ResultType::StartTlsNotSupported);
        assert_eq!(result_type(&TlsFailure::Certificate(C::NotValidForName)), ResultType::CertificateHostMismatch);
        assert_eq!(result_type(&TlsFailure::Certificate(C::Expired)), ResultType::CertificateExpired);
        assert_eq!(result_type(&TlsFailure::Certificate(C::UnknownIssuer)), ResultType::CertificateNotTrusted);
        assert_eq!(result_type(&TlsFailure::Handshake), ResultType::ValidationFailure);
        assert_eq!(result_name(ResultType::StsPolicyFetchError), "sts-policy-fetch-error");
        // Under DANE a certificate no TLSA record authenticates is tlsa-invalid.
        let unmatched = C::Other(rustls::OtherError(Arc::new(std::io::Error::other("no TLSA match"))));
        assert_eq!(dane_result_type(&TlsFailure::Certificate(unmatched)), ResultType::TlsaInvalid);
        assert_eq!(dane_result_type(&TlsFailure::NotOffered), ResultType::StartTlsNotSupported);
    }
}
