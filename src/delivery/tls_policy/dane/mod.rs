//! DANE for SMTP (RFC 7672): whether a recipient domain's MX hosts are bound to their TLS
//! certificates by DNSSEC-signed TLSA records, and what that asks of each connection.
//!
//! `evaluate` follows RFC 7672 §2.2: DANE applies when the MX RRset is secure (or, with no MX
//! records, the domain's own address records are), and then per MX host whose address records
//! are secure, by its TLSA RRset at `_PORT._tcp.HOST`:
//!
//! - secure with usable records (DANE-TA or DANE-EE): STARTTLS and a certificate matching one
//!   of them (`verifier::DaneVerifier`);
//! - secure but none usable: STARTTLS without authentication;
//! - the lookup failed (a validating resolver's SERVFAIL: bogus signatures): the host is not
//!   used, and with no other host the delivery is deferred;
//! - no records, or not signed: no DANE for that host (TLS as configured).
//!
//! A domain where no host has TLSA records is not a DANE domain: MTA-STS or opportunistic TLS
//! apply as before. Where DANE applies it wins over MTA-STS (the caller does not consult it).

pub mod dns;
pub mod tlsa;
pub mod verifier;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dns::SecureDns;
use tlsa::Tlsa;
use verifier::DaneVerifier;

/// Shortest and longest time an evaluation is kept (within the TTLs of the records it used).
const MIN_KEEP: Duration = Duration::from_secs(5);
const MAX_KEEP: Duration = Duration::from_secs(300);
/// A failed evaluation (bogus or unreachable) is looked at again this soon.
pub const FAILURE_KEEP: Duration = Duration::from_secs(10);

/// What DANE says about one MX host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostDane {
    /// Secure TLSA records, some usable: the server must present a certificate matching one.
    Authenticated(Arc<Vec<Tlsa>>),
    /// Secure TLSA records, none usable: TLS is mandatory, the certificate is not checked.
    EncryptOnly(Vec<Tlsa>),
    /// The TLSA (or address) lookup failed although the host is in a signed zone: not used.
    Failed(String),
    /// Not protected by DANE, and why.
    Unprotected(String),
}

/// A domain where DANE applies.
#[derive(Debug)]
pub struct DanePolicy {
    pub domain: String,
    /// Per MX host name (lower case).
    pub hosts: BTreeMap<String, HostDane>,
    /// Checks certificates of the `Authenticated` hosts.
    pub verifier: Arc<DaneVerifier>,
}

impl DanePolicy {
    pub fn new(domain: &str, hosts: BTreeMap<String, HostDane>) -> DanePolicy {
        let authenticated: HashMap<String, Arc<Vec<Tlsa>>> = hosts
            .iter()
            .filter_map(|(name, h)| match h {
                HostDane::Authenticated(records) => Some((name.clone(), Arc::clone(records))),
                _ => None,
            })
            .collect();
        DanePolicy { domain: domain.to_string(), hosts, verifier: Arc::new(DaneVerifier::new(authenticated)) }
    }

    /// Whether STARTTLS is mandatory for `host`.
    pub fn requires_tls(&self, host: &str) -> bool {
        matches!(self.hosts.get(host), Some(HostDane::Authenticated(_) | HostDane::EncryptOnly(_)))
    }

    /// MX hosts DANE does not cover (TLS stays opportunistic for them).
    pub fn unprotected(&self) -> Vec<String> {
        self.hosts.iter().filter(|(_, h)| matches!(h, HostDane::Unprotected(_))).map(|(n, _)| n.clone()).collect()
    }

    /// The TLSA RRsets in presentation form, for TLS-RPT's `policy-string`.
    pub fn policy_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (host, h) in &self.hosts {
            let records: &[Tlsa] = match h {
                HostDane::Authenticated(r) => r,
                HostDane::EncryptOnly(r) => r,
                _ => continue,
            };
            for r in records {
                let hex: String = r.data.iter().map(|b| format!("{b:02x}")).collect();
                out.push(format!("_25._tcp.{host} IN TLSA {} {} {} {hex}", r.usage, r.selector, r.matching));
            }
        }
        out
    }

    /// In words: "DANE (mx1.example.com: TLSA 3 1 1 ab…; mx2.example.com: no TLSA records)".
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(name, h)| match h {
                HostDane::Authenticated(r) => {
                    let records: Vec<String> = r.iter().map(ToString::to_string).collect();
                    format!("{name}: TLSA {}", records.join(", "))
                }
                HostDane::EncryptOnly(_) => format!("{name}: TLSA records all unusable, TLS without authentication"),
                HostDane::Failed(why) => format!("{name}: not used, {why}"),
                HostDane::Unprotected(why) => format!("{name}: {why}"),
            })
            .collect();
        format!("DANE ({})", hosts.join("; "))
    }
}

/// What `evaluate` found for a domain.
#[derive(Clone, Debug)]
pub enum DaneStatus {
    Applies(Arc<DanePolicy>),
    /// DANE does not apply, and why.
    NotApplicable(String),
    /// The MX lookup failed under DNSSEC (bogus, or the resolver failed): deliveries wait.
    Failed(String),
}

/// Evaluates `domain` with its MX `hosts` (name, port) as planned; `implicit`: the domain has no
/// MX records and is its own host. Returns how long the result may be kept.
pub async fn evaluate(
    dns: &SecureDns,
    domain: &str,
    hosts: &[(String, u16)],
    implicit: bool,
) -> (DaneStatus, Duration) {
    if let Some(why) = dns.untrusted() {
        return (DaneStatus::NotApplicable(why.to_string()), MAX_KEEP);
    }
    let mut ttl = u32::MAX;
    let mut secure_exchanges: Option<Vec<String>> = None;
    if !implicit {
        let mx = match dns.mx(domain).await {
            Ok(mx) => mx,
            Err(e) => return (DaneStatus::Failed(format!("MX lookup of {domain} failed: {e}")), FAILURE_KEEP),
        };
        if !mx.secure {
            return (
                DaneStatus::NotApplicable(format!("the MX records of {domain} are not DNSSEC-validated")),
                keep(mx.ttl),
            );
        }
        ttl = ttl.min(mx.ttl);
        secure_exchanges = Some(mx.records.into_iter().map(|r| r.exchange).collect());
    }
    let mut out = BTreeMap::new();
    for (host, port) in hosts {
        if out.contains_key(host) {
            continue;
        }
        let dane = if secure_exchanges.as_ref().is_some_and(|x| !x.contains(host)) {
            HostDane::Unprotected("not among the DNSSEC-validated MX records".into())
        } else {
            let (h, t) = host_dane(dns, host, *port).await;
            ttl = ttl.min(t);
            h
        };
        out.insert(host.clone(), dane);
    }
    let keep_for = if out.values().any(|h| matches!(h, HostDane::Failed(_))) { FAILURE_KEEP } else { keep(ttl) };
    if out.values().all(|h| matches!(h, HostDane::Unprotected(_))) {
        let why = format!("no MX host of {domain} has DNSSEC-validated TLSA records");
        return (DaneStatus::NotApplicable(why), keep_for);
    }
    (DaneStatus::Applies(Arc::new(DanePolicy::new(domain, out))), keep_for)
}

/// One host: its addresses must be secure before its TLSA records are asked for.
async fn host_dane(dns: &SecureDns, host: &str, port: u16) -> (HostDane, u32) {
    match dns.addresses_secure(host).await {
        Ok(true) => {}
        Ok(false) => return (HostDane::Unprotected("address records not DNSSEC-validated".into()), u32::MAX),
        Err(e) => return (HostDane::Failed(format!("address lookup of {host} failed: {e}")), 0),
    }
    match dns.tlsa(host, port).await {
        Err(e) => (HostDane::Failed(format!("TLSA lookup of _{port}._tcp.{host} failed: {e}")), 0),
        Ok(answer) if answer.records.is_empty() => (HostDane::Unprotected("no TLSA records".into()), answer.ttl),
        Ok(answer) if !answer.secure => (HostDane::Unprotected("TLSA records not DNSSEC-validated".into()), answer.ttl),
        Ok(answer) => (classify(answer.records), answer.ttl),
    }
}

/// A secure, non-empty TLSA RRset: authentication with its usable records, or, with none
/// usable, TLS without authentication (RFC 7672 §2.2).
pub fn classify(records: Vec<Tlsa>) -> HostDane {
    let usable: Vec<Tlsa> = records.iter().filter(|r| r.is_usable()).cloned().collect();
    if usable.is_empty() { HostDane::EncryptOnly(records) } else { HostDane::Authenticated(Arc::new(usable)) }
}

impl super::DomainSecurity {
    /// The hosts a connection may use under DANE: not those whose lookups failed; none left
    /// (or the MX lookup failed) is a deferral in DANE's name, counted as `dnssec-invalid`.
    pub(super) fn dane_hosts<'a>(
        &self,
        hosts: Vec<&'a crate::delivery::mx::MxHost>,
    ) -> Result<Vec<&'a crate::delivery::mx::MxHost>, crate::smtp::Reply> {
        let refuse = |why: String, host: Option<&crate::delivery::mx::MxHost>| {
            self.record(Some(super::tlsrpt::Failure {
                result: mail_auth::report::tlsrpt::ResultType::DnssecInvalid,
                sending_ip: None,
                mx: host.map(|h| h.name.clone()),
                receiving_ip: host.and_then(|h| h.addrs.first().map(|a| a.ip())),
                detail: Some(why),
            }));
        };
        let policy = match &self.dane {
            Some(DaneStatus::Applies(p)) => p,
            Some(DaneStatus::Failed(why)) => {
                refuse(why.clone(), None);
                return Err(crate::smtp::Reply::new(451, "4.7.5", format!("{}: {why}", self.label())));
            }
            _ => return Ok(hosts),
        };
        let (failed, usable): (Vec<_>, Vec<_>) =
            hosts.into_iter().partition(|h| matches!(policy.hosts.get(&h.name), Some(HostDane::Failed(_))));
        if !usable.is_empty() {
            return Ok(usable);
        }
        let mut reasons = Vec::new();
        for host in failed {
            if let Some(HostDane::Failed(why)) = policy.hosts.get(&host.name) {
                refuse(why.clone(), Some(host));
                reasons.push(why.clone());
            }
        }
        Err(crate::smtp::Reply::new(451, "4.7.5", format!("{}: {}", self.label(), reasons.join("; "))))
    }
}

fn keep(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl)).clamp(MIN_KEEP, MAX_KEEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(usage: u8) -> Tlsa {
        Tlsa { usage, selector: 1, matching: 1, data: vec![7; 32] }
    }

    #[test]
    fn an_rrset_without_usable_records_means_tls_without_authentication() {
        assert_eq!(classify(vec![r(1), r(0)]), HostDane::EncryptOnly(vec![r(1), r(0)]));
        assert_eq!(classify(vec![r(1), r(3)]), HostDane::Authenticated(Arc::new(vec![r(3)])));
    }

    #[test]
    fn a_policy_says_which_hosts_need_tls() {
        let mut hosts = BTreeMap::new();
        hosts.insert("mx1.example.com".to_string(), classify(vec![r(3)]));
        hosts.insert("mx2.example.com".to_string(), classify(vec![r(0)]));
        hosts.insert("mx3.example.com".to_string(), HostDane::Unprotected("no TLSA records".into()));
        let p = DanePolicy::new("example.com", hosts);
        assert!(p.requires_tls("mx1.example.com") && p.requires_tls("mx2.example.com"));
        assert!(!p.requires_tls("mx3.example.com"));
        assert_eq!(p.unprotected(), ["mx3.example.com"]);
        assert_eq!(p.policy_strings().len(), 2);
        assert!(p.describe().starts_with("DANE (mx1.example.com: TLSA 3 1 1 07070707…07070707; "), "{}", p.describe());
        assert_eq!(keep(0), MIN_KEEP);
        assert_eq!(keep(86_400), MAX_KEEP);
    }
}
