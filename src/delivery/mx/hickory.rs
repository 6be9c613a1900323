//! `DnsLookup` over hickory-resolver: the name servers from `name-server` directives (or
//! /etc/resolv.conf), plain DNS over UDP with TCP for truncated answers, no /etc/hosts (MX and
//! address lookups for delivery are DNS only, as in Postfix), no search domains, and no cache of
//! hickory's own: `cache` above keeps answers, so TTLs and statistics have one owner.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::ResolverError;
use super::lookup::{Answer, DnsLookup, Family, LookupFuture, LookupResult, MxRecord, normalize};

pub struct HickoryLookup {
    resolver: TokioResolver,
}

impl HickoryLookup {
    /// `name_servers` empty: the servers of /etc/resolv.conf. `timeout` is per attempt;
    /// `attempts` is how many times a query is sent (to the next server each time) before it
    /// fails.
    pub fn new(
        name_servers: &[SocketAddr],
        timeout: Duration,
        attempts: usize,
    ) -> Result<HickoryLookup, ResolverError> {
        let config = if name_servers.is_empty() {
            let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(ResolverError::SystemConf)?;
            // The system's servers, without its search domains: every name Ember asks is absolute.
            ResolverConfig::from_name_servers(config.name_servers().to_vec())
        } else {
            ResolverConfig::from_name_servers(name_servers.iter().map(|a| server(*a)).collect())
        };
        if config.name_servers().is_empty() {
            return Err(ResolverError::NoNameServers);
        }
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        // hickory counts retries after the first try.
        options.attempts = attempts.saturating_sub(1);
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.preserve_intermediates = true;
        options.edns0 = true;
        // PowerMTA uses its `name-server`s round robin: each query goes to the next server (not
        // to two at once, hickory's default), and a retry to the one after.
        options.server_ordering_strategy = ServerOrderingStrategy::RoundRobin;
        options.num_concurrent_reqs = 1;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(ResolverError::Build)?;
        Ok(HickoryLookup { resolver })
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> LookupResult<RData> {
        let Ok(mut asked) = Name::from_utf8(name) else {
            // Not a name the DNS could hold (a label over 63 octets, say): no such domain.
            return Ok(Answer::NoSuchDomain { ttl: None });
        };
        asked.set_fqdn(true);
        match self.resolver.lookup(asked.clone(), rtype).await {
            Ok(lookup) => {
                let ttl = lookup.answers().iter().map(|r| r.ttl).min().unwrap_or(0);
                let records: Vec<RData> =
                    lookup.answers().iter().filter(|r| r.record_type() == rtype).map(|r| r.data.clone()).collect();
                if records.is_empty() {
                    Ok(Answer::NoRecords { ttl: Some(ttl) })
                } else {
                    Ok(Answer::Records { records, ttl })
                }
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
                // hickory follows CNAMEs itself and, when a chain runs past its depth limit,
                // reports "no records" for the last name it asked. Ask whether that name is
                // itself an alias: if so the chain never ended. Only needed when a chain was
                // followed or the answer carries no SOA (a real no-data answer has one).
                if none.response_code == ResponseCode::NoError && (none.query.name() != &asked || none.soa.is_none()) {
                    self.check_chain_ends(none.query.name(), name).await.map_err(|e| e.to_string())?;
                }
                let ttl = none.negative_ttl;
                if none.response_code == ResponseCode::NXDomain {
                    Ok(Answer::NoSuchDomain { ttl })
                } else {
                    Ok(Answer::NoRecords { ttl })
                }
            }
            Err(e) => Err(describe(&e)),
        }
    }

    /// The TXT records at `name`, each record's strings joined (RFC 7208 §3.3 style), for
    /// MTA-STS and TLS-RPT discovery. Not cached here: their owners keep what they learn.
    pub async fn txt(&self, name: &str) -> LookupResult<String> {
        Ok(match self.lookup(name, RecordType::TXT).await? {
            Answer::Records { records, ttl } => Answer::Records {
                records: records
                    .into_iter()
                    .filter_map(|r| match r {
                        RData::TXT(txt) => {
                            Some(txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect::<String>())
                        }
                        _ => None,
                    })
                    .collect(),
                ttl,
            },
            Answer::NoRecords { ttl } => Answer::NoRecords { ttl },
            Answer::NoSuchDomain { ttl } => Answer::NoSuchDomain { ttl },
        })
    }

    async fn check_chain_ends(&self, last: &Name, asked: &str) -> Result<(), EndlessChain> {
        match self.resolver.lookup(last.clone(), RecordType::CNAME).await {
            Ok(lookup) if lookup.answers().iter().any(|r| r.record_type() == RecordType::CNAME) => {
                Err(EndlessChain { asked: asked.to_string(), last: normalize(&last.to_utf8()) })
            }
            _ => Ok(()),
        }
    }
}

/// A CNAME chain that does not end where the resolver stopped following it.
#[derive(Debug, thiserror::Error)]
#[error("CNAME chain from {asked} does not end (a loop, or too many links) at {last}")]
struct EndlessChain {
    asked: String,
    last: String,
}

fn server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// A failure as it should read in a log line and a `451 4.4.3` reply.
fn describe(e: &NetError) -> String {
    match e {
        NetError::Timeout => "timed out".into(),
        NetError::Dns(DnsError::ResponseCode(code)) => match code {
            ResponseCode::ServFail => "server failure (SERVFAIL)".into(),
            ResponseCode::Refused => "query refused (REFUSED)".into(),
            ResponseCode::FormErr => "format error (FORMERR)".into(),
            ResponseCode::NotImp => "not implemented (NOTIMP)".into(),
            other => format!("error response ({})", other.to_str()),
        },
        other => other.to_string(),
    }
}

impl DnsLookup for HickoryLookup {
    fn mx<'a>(&'a self, domain: &'a str) -> LookupFuture<'a, MxRecord> {
        Box::pin(async move {
            Ok(match self.lookup(domain, RecordType::MX).await? {
                Answer::Records { records, ttl } => Answer::Records {
                    records: records
                        .into_iter()
                        .filter_map(|r| match r {
                            RData::MX(mx) => Some(MxRecord::new(mx.preference, &mx.exchange.to_ascii())),
                            _ => None,
                        })
                        .collect(),
                    ttl,
                },
                Answer::NoRecords { ttl } => Answer::NoRecords { ttl },
                Answer::NoSuchDomain { ttl } => Answer::NoSuchDomain { ttl },
            })
        })
    }

    fn ip<'a>(&'a self, host: &'a str, family: Family) -> LookupFuture<'a, IpAddr> {
        let rtype = match family {
            Family::V4 => RecordType::A,
            Family::V6 => RecordType::AAAA,
        };
        Box::pin(async move {
            Ok(match self.lookup(host, rtype).await? {
                Answer::Records { records, ttl } => Answer::Records {
                    records: records
                        .into_iter()
                        .filter_map(|r| match r {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect(),
                    ttl,
                },
                Answer::NoRecords { ttl } => Answer::NoRecords { ttl },
                Answer::NoSuchDomain { ttl } => Answer::NoSuchDomain { ttl },
            })
        })
    }
}
