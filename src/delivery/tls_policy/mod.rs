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
pub mod security;
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

use super::mx::{Answer, DnsLookup, Family, HickoryLookup, MxPlan, PlanSource};
use dane::{DaneStatus, HostDane};
use fetch::{FetchError, FetchLimits};
use store::{CachedPolicy, PolicyStore};
use sts::Mode;

pub use security::{DomainSecurity, dane_result_type, result_type};

/// How long a discovery (TXT lookup, and a fetch when the id changed) is trusted before the
/// next connection to the domain looks again.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

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
    use crate::delivery::client::TlsFailure;
    use crate::delivery::mx::MxHost;

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
