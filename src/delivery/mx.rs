//! MX resolution: where a queue's mail goes. `MxResolver::plan` turns a queue's domain (and its
//! `smtp-hosts` override, if any) into the list of hosts and addresses to try, in order:
//!
//! - `smtp-hosts` when configured: commas are equal preference (shuffled), semicolons the next
//!   tier; `[ip]:port` and `[IPv6:…]` are used as they are, `host[:port]` is resolved by A/AAAA,
//!   `lookup-mx:domain` stands for the MX plan of that domain;
//! - else the MX records (preference order, equal preferences shuffled);
//! - else, when the domain exists without MX records, the domain itself (implicit MX, RFC 5321
//!   §5.1);
//! - a null MX (RFC 7505) and NXDOMAIN are permanent (`ResolveError::NullMx`, `NoSuchDomain`),
//!   everything else that goes wrong is temporary.
//!
//! Every DNS answer is cached by name and type for its TTL, shared by all delivery tasks, with one
//! query in flight per question (`cache`). The DNS itself sits behind the `DnsLookup` trait:
//! `hickory` asks real servers, `StaticDns` answers from a table in tests.
//!
//! Knows nothing about queues, connections or retry schedules: a caller decides what a
//! `ResolveError` means for its messages (`bounce-upon-no-mx`, `retry-after-dns-error`).

mod cache;
mod hickory;
mod lookup;
mod plan;
mod static_dns;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::smtp::Reply;

use cache::{Cache, Counters, TtlPolicy};
pub use hickory::HickoryLookup;
pub use lookup::{Answer, DnsLookup, Family, LookupFuture, LookupResult, MxRecord, normalize};
pub use static_dns::StaticDns;

/// The hosts to try for one queue, best first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxPlan {
    /// In the order to try them. Hosts that resolved to no address are left out.
    pub hosts: Vec<MxHost>,
    /// Where the hosts came from.
    pub source: PlanSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanSource {
    /// The queue's `smtp-hosts` override.
    SmtpHosts,
    /// The domain's MX records.
    Mx,
    /// The domain has no MX records: its own A/AAAA records (what `bounce-upon-no-mx` refuses).
    Implicit,
    /// The domain is an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    AddressLiteral,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxHost {
    /// The MX host name (lower case, no trailing dot); for an IP literal, the IP address.
    pub name: String,
    /// The MX preference; for `smtp-hosts`, the tier (0 for the first, 1 after the first `;`).
    pub preference: u16,
    /// IPv4 addresses first, then IPv6, each family shuffled.
    pub addrs: Vec<SocketAddr>,
}

impl MxPlan {
    /// The most preferred hosts (lowest preference value): what `<mx-rollup-list>` matches.
    pub fn most_preferred(&self) -> impl Iterator<Item = &MxHost> {
        let best = self.hosts.iter().map(|h| h.preference).min();
        self.hosts.iter().filter(move |h| Some(h.preference) == best)
    }

    /// Every (host, address) pair in the order to try.
    pub fn addresses(&self) -> impl Iterator<Item = (&MxHost, SocketAddr)> {
        self.hosts.iter().flat_map(|h| h.addrs.iter().map(move |a| (h, *a)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    #[error("domain accepts no mail (null MX)")]
    NullMx,
    /// NXDOMAIN, or a domain with neither MX nor address records: nowhere to deliver.
    #[error("no such domain")]
    NoSuchDomain,
    /// SERVFAIL, timeout, unreachable servers, MX hosts without addresses: try again later.
    #[error("DNS lookup failed: {0}")]
    Temporary(String),
}

impl ResolveError {
    /// The reply that stands for this failure in the accounting file (`dsnDiag`) and in DSNs.
    pub fn reply(&self) -> Reply {
        match self {
            ResolveError::NullMx => Reply::new(556, "5.1.10", "recipient address has null MX"),
            ResolveError::NoSuchDomain => Reply::new(550, "5.1.2", "bad destination system: no such domain"),
            ResolveError::Temporary(reason) => {
                Reply::new(451, "4.4.3", Cow::Owned(format!("DNS lookup failed: {reason}")))
            }
        }
    }

    pub fn is_permanent(&self) -> bool {
        !matches!(self, ResolveError::Temporary(_))
    }
}

/// Resolver behaviour; the defaults are for production.
#[derive(Clone, Debug)]
pub struct MxOptions {
    /// Per query attempt.
    pub timeout: Duration,
    /// How often a query is sent before it fails.
    pub attempts: usize,
    /// Cap on how long any answer is kept.
    pub max_ttl: Duration,
    /// How long NXDOMAIN and "no records" answers without an SOA are kept.
    pub negative_ttl: Duration,
    /// How long a failed lookup is remembered (so a dead server is not asked by every task).
    pub failure_ttl: Duration,
    /// Whole-lookup deadline, retries and CNAME hops included.
    pub deadline: Duration,
    /// Ask for AAAA records too.
    pub ipv6: bool,
}

impl Default for MxOptions {
    fn default() -> MxOptions {
        MxOptions {
            timeout: Duration::from_secs(5),
            attempts: 2,
            max_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(300),
            failure_ttl: Duration::from_secs(3),
            deadline: Duration::from_secs(30),
            ipv6: true,
        }
    }
}

/// Cache figures for `/metrics` and `show status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Answers in the cache and still fresh (one per name and record type).
    pub cached: usize,
    /// Queries in flight.
    pub pending: usize,
    /// Queries sent to the DNS since start.
    pub queries: u64,
    /// Questions answered without a query of their own (from the cache, or by joining a query in
    /// flight).
    pub hits: u64,
}

/// A `name-server` value that is not an address; holds the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name-server: expected an IP address or IP:PORT (like 10.0.0.53:5353), found {0:?}")]
pub struct NameServerError(pub String);

/// Why the DNS resolver could not be set up (the daemon does not start, or a reload is refused).
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConf(#[source] hickory_resolver::net::NetError),
    #[error("no name servers: add a name-server directive or one to /etc/resolv.conf")]
    NoNameServers,
    #[error("cannot set up the DNS resolver: {0}")]
    Build(#[source] hickory_resolver::net::NetError),
}

/// A `name-server` directive's value: `IP` (port 53), `IP:PORT`, or `[IPv6]:PORT`.
pub fn parse_name_server(text: &str) -> Result<SocketAddr, NameServerError> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| NameServerError(text.to_string()))
}

/// Shared by all delivery tasks; cloning is cheap.
#[derive(Clone)]
pub struct MxResolver {
    inner: Arc<Inner>,
}

struct Inner {
    lookup: Arc<dyn DnsLookup>,
    mx: Arc<Cache<String, MxRecord>>,
    ip: Arc<Cache<(String, Family), IpAddr>>,
    counters: Arc<Counters>,
    ipv6: bool,
}

impl MxResolver {
    /// `name_servers`: from `name-server` directives; empty means those of /etc/resolv.conf.
    pub fn new(name_servers: &[SocketAddr]) -> Result<MxResolver, ResolverError> {
        MxResolver::with_options(name_servers, &MxOptions::default())
    }

    pub fn with_options(name_servers: &[SocketAddr], options: &MxOptions) -> Result<MxResolver, ResolverError> {
        let lookup = HickoryLookup::new(name_servers, options.timeout, options.attempts)?;
        Ok(MxResolver::with_lookup(Arc::new(lookup), options))
    }

    /// Over any `DnsLookup` (`StaticDns` in tests); `timeout` and `attempts` are the lookup's.
    pub fn with_lookup(lookup: Arc<dyn DnsLookup>, options: &MxOptions) -> MxResolver {
        let policy = TtlPolicy {
            max: options.max_ttl,
            negative_default: options.negative_ttl,
            failure: options.failure_ttl,
            deadline: options.deadline,
        };
        let counters = Arc::new(Counters::default());
        MxResolver {
            inner: Arc::new(Inner {
                lookup,
                mx: Arc::new(Cache::new(policy, counters.clone())),
                ip: Arc::new(Cache::new(policy, counters.clone())),
                counters,
                ipv6: options.ipv6,
            }),
        }
    }

    /// The delivery plan for a queue's domain. `smtp_hosts` (the queue's override, tiers of
    /// entries) wins when given and not empty. `default_port` applies to MX hosts and to
    /// `smtp-hosts` entries without a port.
    pub async fn plan(
        &self,
        domain: &str,
        smtp_hosts: Option<&[Vec<String>]>,
        default_port: u16,
    ) -> Result<MxPlan, ResolveError> {
        match smtp_hosts {
            Some(tiers) if tiers.iter().any(|t| !t.is_empty()) => self.inner.override_plan(tiers, default_port).await,
            _ => self.inner.mx_plan(domain, default_port).await,
        }
    }

    pub fn stats(&self) -> ResolverStats {
        let (mx_cached, mx_pending) = self.inner.mx.counts();
        let (ip_cached, ip_pending) = self.inner.ip.counts();
        ResolverStats {
            cached: mx_cached + ip_cached,
            pending: mx_pending + ip_pending,
            queries: self.inner.counters.queries.load(Ordering::Relaxed),
            hits: self.inner.counters.hits.load(Ordering::Relaxed),
        }
    }

    /// Forgets cached answers about `name` (its MX, A and AAAA records), or everything with
    /// `None` (`clear dnscache domain|*`). Queries in flight finish and are kept.
    pub fn clear_cache(&self, name: Option<&str>) {
        match name.map(normalize) {
            Some(name) => {
                self.inner.mx.clear(|k| *k == name);
                self.inner.ip.clear(|(k, _)| *k == name);
            }
            None => {
                self.inner.mx.clear(|_| true);
                self.inner.ip.clear(|_| true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_servers_parse() {
        assert_eq!(parse_name_server("10.0.0.53"), Ok("10.0.0.53:53".parse().unwrap()));
        assert_eq!(parse_name_server(" 127.0.0.1:5353 "), Ok("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(parse_name_server("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(parse_name_server("[::1]:5353"), Ok("[::1]:5353".parse().unwrap()));
        assert!(parse_name_server("dns.example.com").unwrap_err().to_string().contains("found \"dns.example.com\""));
        assert!(parse_name_server("10.0.0.1:99999").is_err());
    }

    #[tokio::test]
    async fn an_empty_list_of_name_servers_means_the_system_resolvers() {
        // Whatever /etc/resolv.conf holds here, the resolver can be built from it.
        if std::path::Path::new("/etc/resolv.conf").exists() {
            assert!(MxResolver::new(&[]).is_ok());
        }
    }
}
