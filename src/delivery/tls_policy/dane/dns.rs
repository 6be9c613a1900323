//! DNSSEC status of the answers DANE relies on. Ember does not validate signatures itself: like
//! Postfix's `smtp_dns_support_level = dnssec`, it sets the DO bit in its queries and trusts the
//! AD (authentic data) bit of the answers of a validating resolver, and only of one on loopback
//! (`name-server 127.0.0.1`, or `::1`): between Ember and a remote resolver nothing protects
//! that bit. A resolver that does not validate never sets it, so DANE then finds nothing secure
//! and delivery goes on as without DANE.
//!
//! A validating resolver answers SERVFAIL for data whose signatures do not verify (bogus): such
//! a lookup fails, and the caller defers rather than deliver without the protection the zone
//! asks for.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverOpts, ServerOrderingStrategy};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::FirstAnswer;
use hickory_resolver::net::{DnsError, DnsHandle, NetError, RetryDnsHandle};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use super::tlsa::Tlsa;
use crate::delivery::mx::{MxRecord, ResolverError};

/// Records of one type, and whether the resolver vouched for them (AD bit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secured<T> {
    pub records: Vec<T>,
    /// The answer was DNSSEC-validated. Negative answers (no records) are never marked secure:
    /// what they mean for DANE does not depend on it.
    pub secure: bool,
    /// The smallest TTL in the answer (0 for a negative answer).
    pub ttl: u32,
}

/// DNSSEC-aware lookups for DANE; see the module comment.
pub struct SecureDns {
    handle: RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>,
    /// Why the AD bit cannot be trusted (a name server not on loopback), if so.
    untrusted: Option<String>,
}

impl SecureDns {
    /// Over `name_servers` (empty: those of /etc/resolv.conf), like MX resolution.
    pub fn new(name_servers: &[SocketAddr], timeout: Duration, attempts: usize) -> Result<SecureDns, ResolverError> {
        let servers: Vec<NameServerConfig> = if name_servers.is_empty() {
            let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(ResolverError::SystemConf)?;
            config.name_servers().to_vec()
        } else {
            name_servers.iter().map(|a| server(*a)).collect()
        };
        if servers.is_empty() {
            return Err(ResolverError::NoNameServers);
        }
        let remote: Vec<IpAddr> = servers.iter().map(|s| s.ip).filter(|ip| !ip.is_loopback()).collect();
        let untrusted = (!remote.is_empty()).then(|| {
            let list: Vec<String> = remote.iter().map(ToString::to_string).collect();
            format!(
                "name server {} is not on loopback, so its DNSSEC validation (the AD bit) cannot be trusted",
                list.join(", ")
            )
        });
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.attempts = attempts.saturating_sub(1);
        options.edns0 = true;
        options.server_ordering_strategy = ServerOrderingStrategy::RoundRobin;
        options.num_concurrent_reqs = 1;
        let tls = TlsConfig::new().map_err(ResolverError::Build)?;
        let pool = NameServerPool::from_config(
            servers,
            Arc::new(PoolContext::new(options, tls)),
            TokioRuntimeProvider::default(),
        );
        Ok(SecureDns { handle: RetryDnsHandle::new(pool, attempts.saturating_sub(1)), untrusted })
    }

    /// Why DANE cannot apply with these name servers (`None`: it can).
    pub fn untrusted(&self) -> Option<&str> {
        self.untrusted.as_deref()
    }

    async fn query(&self, name: &str, rtype: RecordType) -> Result<Secured<RData>, String> {
        let mut asked = Name::from_utf8(name).map_err(|e| format!("{name}: {e}"))?;
        asked.set_fqdn(true);
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_set_dnssec_ok = true;
        options.recursion_desired = true;
        match self.handle.lookup(Query::query(asked, rtype), options).first_answer().await {
            Ok(response) => {
                let answers: Vec<_> = response.answers.iter().filter(|r| r.record_type() == rtype).collect();
                Ok(Secured {
                    ttl: answers.iter().map(|r| r.ttl).min().unwrap_or(0),
                    records: answers.into_iter().map(|r| r.data.clone()).collect(),
                    secure: response.metadata.authentic_data && self.untrusted.is_none(),
                })
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(none)))
                if matches!(none.response_code, ResponseCode::NoError | ResponseCode::NXDomain) =>
            {
                Ok(Secured { records: Vec::new(), secure: false, ttl: none.negative_ttl.unwrap_or(0) })
            }
            Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))) => {
                Err("SERVFAIL (DNSSEC validation failed, or the zone's servers did not answer)".into())
            }
            Err(NetError::Timeout) => Err("timed out".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The MX records of `domain`.
    pub async fn mx(&self, domain: &str) -> Result<Secured<MxRecord>, String> {
        let answer = self.query(domain, RecordType::MX).await?;
        Ok(Secured {
            records: answer
                .records
                .iter()
                .filter_map(|r| match r {
                    RData::MX(mx) => Some(MxRecord::new(mx.preference, &mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            secure: answer.secure,
            ttl: answer.ttl,
        })
    }

    /// Whether the address records of `host` are secure (A, or AAAA when it has no A records).
    pub async fn addresses_secure(&self, host: &str) -> Result<bool, String> {
        let v4 = self.query(host, RecordType::A).await?;
        if !v4.records.is_empty() {
            return Ok(v4.secure);
        }
        Ok(self.query(host, RecordType::AAAA).await?.secure)
    }

    /// The TLSA records of `_PORT._tcp.HOST`.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<Secured<Tlsa>, String> {
        let answer = self.query(&format!("_{port}._tcp.{host}"), RecordType::TLSA).await?;
        Ok(Secured {
            records: answer
                .records
                .iter()
                .filter_map(|r| match r {
                    RData::TLSA(t) => Some(Tlsa::from_hickory(t)),
                    _ => None,
                })
                .collect(),
            secure: answer.secure,
            ttl: answer.ttl,
        })
    }
}

fn server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}
