//! Turning cached DNS answers into an ordered plan: MX preference order with equal preferences
//! shuffled, implicit MX, null MX, hosts without addresses skipped, and the `smtp-hosts`
//! override with its tiers, literals, ports and `lookup-mx:`. All lookups of one plan run
//! concurrently; none of them is made twice (the cache joins equal questions).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;

use rand::seq::SliceRandom;

use super::lookup::{Answer, Family, LookupResult, MxRecord, normalize};
use super::{Inner, MxHost, MxPlan, PlanSource, ResolveError};

/// MX hosts beyond this many (after ordering) are not resolved: a bound on the work a hostile
/// domain can cause. Postfix tries at most 5 addresses by default.
pub const MAX_MX_HOSTS: usize = 16;

/// Why a host has no usable address.
enum NoAddress {
    NoSuchDomain,
    NoRecords,
    Temporary(String),
}

impl NoAddress {
    fn describe(&self, host: &str) -> String {
        match self {
            NoAddress::NoSuchDomain => format!("{host}: no such domain"),
            NoAddress::NoRecords => format!("{host}: no address records"),
            NoAddress::Temporary(reason) => format!("{host}: {reason}"),
        }
    }
}

/// One `smtp-hosts` entry.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Literal(SocketAddr),
    Host(String, u16),
    LookupMx(String),
}

impl Inner {
    async fn mx_records(&self, domain: &str) -> super::cache::Shared<MxRecord> {
        let lookup = self.lookup.clone();
        let name = domain.to_string();
        self.mx.get(name.clone(), move || async move { lookup.mx(&name).await }).await
    }

    async fn ips(&self, host: &str, family: Family) -> super::cache::Shared<IpAddr> {
        let lookup = self.lookup.clone();
        let name = host.to_string();
        self.ip.get((name.clone(), family), move || async move { lookup.ip(&name, family).await }).await
    }

    /// The usable addresses of `host` (A and AAAA asked together): IPv4 first, each family
    /// shuffled. One family failing does not matter when the other has addresses.
    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, NoAddress> {
        let (v4, v6) = tokio::join!(self.ips(host, Family::V4), async {
            if self.ipv6 { Some(self.ips(host, Family::V6).await) } else { None }
        });
        let answers: Vec<&LookupResult<IpAddr>> = std::iter::once(&*v4).chain(v6.as_deref()).collect();
        let mut addrs = Vec::new();
        for answer in &answers {
            let mut family: Vec<SocketAddr> = match answer {
                Ok(a) => a.records().iter().filter(|ip| usable(ip)).map(|ip| SocketAddr::new(*ip, port)).collect(),
                Err(_) => Vec::new(),
            };
            family.shuffle(&mut rand::rng());
            addrs.extend(family);
        }
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        if let Some(Err(reason)) = answers.iter().find(|a| a.is_err()) {
            return Err(NoAddress::Temporary(reason.clone()));
        }
        if answers.iter().all(|a| matches!(a, Ok(Answer::NoSuchDomain { .. }))) {
            return Err(NoAddress::NoSuchDomain);
        }
        Err(NoAddress::NoRecords)
    }

    /// The plan from the DNS: MX records, implicit MX, or an address literal.
    pub(super) async fn mx_plan(&self, domain: &str, port: u16) -> Result<MxPlan, ResolveError> {
        if let Some(ip) = address_literal(domain) {
            let hosts = vec![MxHost { name: ip.to_string(), preference: 0, addrs: vec![SocketAddr::new(ip, port)] }];
            return Ok(MxPlan { hosts, source: PlanSource::AddressLiteral });
        }
        let domain = normalize(domain);
        if domain.is_empty() {
            return Err(ResolveError::NoSuchDomain);
        }
        let answer = self.mx_records(&domain).await;
        let records = match &*answer {
            Err(reason) => return Err(ResolveError::Temporary(format!("MX lookup for {domain}: {reason}"))),
            Ok(Answer::NoSuchDomain { .. }) => return Err(ResolveError::NoSuchDomain),
            Ok(Answer::Records { records, .. }) if !records.is_empty() => records,
            Ok(Answer::NoRecords { .. } | Answer::Records { .. }) => return self.implicit_plan(&domain, port).await,
        };
        // RFC 7505: a lone "." MX means "no mail". A "." among real MX records is just ignored.
        if records.iter().all(MxRecord::is_root) {
            return Err(ResolveError::NullMx);
        }
        let ordered = order_mx(records);
        let resolved = join_all(ordered.iter().map(|mx| self.addresses(&mx.exchange, port)).collect()).await;
        let mut hosts = Vec::new();
        let mut problems = Vec::new();
        for (mx, addrs) in ordered.iter().zip(resolved) {
            match addrs {
                Ok(addrs) => hosts.push(MxHost { name: mx.exchange.clone(), preference: mx.preference, addrs }),
                Err(why) => problems.push(why.describe(&mx.exchange)),
            }
        }
        if hosts.is_empty() {
            return Err(ResolveError::Temporary(format!("MX hosts have no addresses ({})", problems.join("; "))));
        }
        Ok(MxPlan { hosts, source: PlanSource::Mx })
    }

    /// No MX records: the domain's own addresses, as if it were its own MX at preference 0.
    async fn implicit_plan(&self, domain: &str, port: u16) -> Result<MxPlan, ResolveError> {
        match self.addresses(domain, port).await {
            Ok(addrs) => Ok(MxPlan {
                hosts: vec![MxHost { name: domain.to_string(), preference: 0, addrs }],
                source: PlanSource::Implicit,
            }),
            Err(NoAddress::Temporary(reason)) => {
                Err(ResolveError::Temporary(format!("address lookup for {domain} (no MX): {reason}")))
            }
            Err(NoAddress::NoSuchDomain | NoAddress::NoRecords) => Err(ResolveError::NoSuchDomain),
        }
    }

    /// The plan from `smtp-hosts`. An entry that does not resolve is skipped; when none does, the
    /// failure is temporary even if the DNS was definite: a wrong route is the operator's to fix,
    /// not a reason to bounce the queue's mail.
    pub(super) async fn override_plan(&self, tiers: &[Vec<String>], default_port: u16) -> Result<MxPlan, ResolveError> {
        let mut entries: Vec<(u16, &str)> = Vec::new();
        for (tier, names) in tiers.iter().enumerate() {
            let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
            names.shuffle(&mut rand::rng());
            let tier = u16::try_from(tier).unwrap_or(u16::MAX);
            entries.extend(names.into_iter().map(|n| (tier, n)));
        }
        let resolved =
            join_all(entries.iter().map(|(tier, text)| self.resolve_entry(*tier, text, default_port)).collect()).await;
        let mut hosts = Vec::new();
        let mut problems = Vec::new();
        for result in resolved {
            match result {
                Ok(found) => hosts.extend(found),
                Err(problem) => problems.push(problem),
            }
        }
        if hosts.is_empty() {
            return Err(ResolveError::Temporary(format!("no smtp-hosts entry resolved ({})", problems.join("; "))));
        }
        Ok(MxPlan { hosts, source: PlanSource::SmtpHosts })
    }

    async fn resolve_entry(&self, tier: u16, text: &str, default_port: u16) -> Result<Vec<MxHost>, String> {
        match parse_entry(text, default_port).map_err(|e| e.to_string())? {
            Entry::Literal(addr) => {
                Ok(vec![MxHost { name: addr.ip().to_string(), preference: tier, addrs: vec![addr] }])
            }
            Entry::Host(name, port) => match self.addresses(&name, port).await {
                Ok(addrs) => Ok(vec![MxHost { name, preference: tier, addrs }]),
                Err(why) => Err(why.describe(&name)),
            },
            Entry::LookupMx(domain) => match self.mx_plan(&domain, default_port).await {
                Ok(plan) => Ok(plan.hosts.into_iter().map(|h| MxHost { preference: tier, ..h }).collect()),
                Err(e) => Err(format!("lookup-mx:{domain}: {e}")),
            },
        }
    }
}

/// Best preference first; equal preferences shuffled; one entry per host (its best
/// preference); no "." entries; at most `MAX_MX_HOSTS`.
fn order_mx(records: &[MxRecord]) -> Vec<MxRecord> {
    let mut best: Vec<MxRecord> = Vec::new();
    for r in records.iter().filter(|r| !r.is_root()) {
        match best.iter_mut().find(|b| b.exchange == r.exchange) {
            Some(b) => b.preference = b.preference.min(r.preference),
            None => best.push(r.clone()),
        }
    }
    best.shuffle(&mut rand::rng());
    // A stable sort keeps the shuffled order within each preference.
    best.sort_by_key(|r| r.preference);
    best.truncate(MAX_MX_HOSTS);
    best
}

/// Addresses no one can deliver to: unspecified, multicast, broadcast. (Loopback and private
/// addresses are left to the client, which knows its own addresses and its tests.)
fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3) as the domain of an address.
fn address_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.trim().strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// An `smtp-hosts` entry that does not parse, as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid smtp-hosts entry {0:?}")]
struct InvalidEntry(String);

/// One `smtp-hosts` entry: `[ip]`, `[ip]:port`, `[IPv6:ip]:port`, `host`, `host:port`,
/// `lookup-mx:domain`.
fn parse_entry(text: &str, default_port: u16) -> Result<Entry, InvalidEntry> {
    let invalid = || InvalidEntry(text.to_string());
    let text = text.trim();
    let port = |p: &str| -> Result<u16, InvalidEntry> {
        match p {
            "" => Ok(default_port),
            p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(invalid),
        }
    };
    if let Some(domain) = text.get(..10).filter(|p| p.eq_ignore_ascii_case("lookup-mx:")).map(|_| &text[10..]) {
        let domain = normalize(domain);
        return if domain.is_empty() { Err(invalid()) } else { Ok(Entry::LookupMx(domain)) };
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(invalid)?;
        let ip = match ip.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => &ip[5..],
            _ => ip,
        };
        let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
        return Ok(Entry::Literal(SocketAddr::new(ip, port(after)?)));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Entry::Literal(SocketAddr::new(ip, default_port)));
    }
    let (host, after) = text.split_at(text.find(':').unwrap_or(text.len()));
    let host = normalize(host);
    if host.is_empty() {
        return Err(invalid());
    }
    Ok(Entry::Host(host, port(after)?))
}

/// Runs the futures concurrently and returns their outputs in order (a small `join_all`, so
/// that no task is spawned per host).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    // Every slot is filled once the poll above is ready.
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::delivery::mx::{MxOptions, MxResolver, StaticDns};

    fn resolver(dns: &Arc<StaticDns>) -> MxResolver {
        MxResolver::with_lookup(dns.clone(), &MxOptions::default())
    }

    fn names(plan: &MxPlan) -> Vec<&str> {
        plan.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn tiers(s: &str) -> Vec<Vec<String>> {
        s.split(';').map(|t| t.split(',').map(|h| h.trim().to_string()).collect()).collect()
    }

    #[tokio::test]
    async fn mx_hosts_come_in_preference_order_with_their_addresses() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("example.test", 20, "mx2.example.test").add_mx("example.test", 10, "MX1.example.test.");
        dns.add_mx("example.test", 30, "mx3.example.test");
        dns.add_host("mx1.example.test", "192.0.2.1").add_host("mx2.example.test", "192.0.2.2");
        dns.add_host("mx2.example.test", "2001:db8::2").add_host("mx3.example.test", "192.0.2.3");
        let plan = resolver(&dns).plan("Example.TEST.", None, 25).await.unwrap();
        assert_eq!(plan.source, PlanSource::Mx);
        assert_eq!(names(&plan), ["mx1.example.test", "mx2.example.test", "mx3.example.test"]);
        assert_eq!(plan.hosts.iter().map(|h| h.preference).collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(plan.hosts[0].addrs, [sa("192.0.2.1:25")]);
        assert_eq!(plan.hosts[1].addrs, [sa("192.0.2.2:25"), sa("[2001:db8::2]:25")]);
        assert_eq!(plan.most_preferred().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["mx1.example.test"]);
        assert_eq!(plan.addresses().count(), 4);
    }

    #[tokio::test]
    async fn equal_preferences_are_shuffled_and_a_host_is_listed_once() {
        let dns = Arc::new(StaticDns::new());
        for host in ["a.test", "b.test", "c.test"] {
            dns.add_mx("example.test", 10, host).add_host(host, "192.0.2.1");
        }
        dns.add_mx("example.test", 5, "a.test").add_mx("example.test", 20, "z.test").add_host("z.test", "192.0.2.9");
        let r = resolver(&dns);
        let mut orders = HashSet::new();
        for _ in 0..200 {
            let plan = r.plan("example.test", None, 25).await.unwrap();
            assert_eq!(plan.hosts[0].name, "a.test");
            assert_eq!(plan.hosts[0].preference, 5);
            assert_eq!(plan.hosts.len(), 4);
            assert_eq!(plan.hosts[3].name, "z.test");
            orders.insert(names(&plan).join(","));
        }
        assert_eq!(orders.len(), 2, "b and c should both come first sometimes: {orders:?}");
    }

    #[tokio::test]
    async fn addresses_of_a_host_are_shuffled_within_each_family_ipv4_first() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("example.test", 10, "mx.example.test");
        for ip in ["2001:db8::1", "192.0.2.1", "192.0.2.2", "0.0.0.0", "224.0.0.1", "::"] {
            dns.add_host("mx.example.test", ip);
        }
        let r = resolver(&dns);
        let mut firsts = HashSet::new();
        for _ in 0..100 {
            let addrs = r.plan("example.test", None, 25).await.unwrap().hosts.remove(0).addrs;
            assert_eq!(addrs.len(), 3, "unspecified and multicast addresses are dropped: {addrs:?}");
            assert_eq!(addrs[2], sa("[2001:db8::1]:25"));
            firsts.insert(addrs[0]);
        }
        assert_eq!(firsts.len(), 2);
    }

    #[tokio::test]
    async fn no_mx_means_the_domain_itself() {
        let dns = Arc::new(StaticDns::new());
        dns.add_host("example.test", "192.0.2.7").add_host("example.test", "2001:db8::7");
        let plan = resolver(&dns).plan("example.test", None, 2525).await.unwrap();
        assert_eq!(plan.source, PlanSource::Implicit);
        assert_eq!(names(&plan), ["example.test"]);
        assert_eq!(plan.hosts[0].preference, 0);
        assert_eq!(plan.hosts[0].addrs, [sa("192.0.2.7:2525"), sa("[2001:db8::7]:2525")]);
    }

    #[tokio::test]
    async fn a_domain_with_neither_mx_nor_address_or_that_does_not_exist_has_no_plan() {
        let dns = Arc::new(StaticDns::new());
        dns.exists("empty.test");
        let r = resolver(&dns);
        assert_eq!(r.plan("empty.test", None, 25).await, Err(ResolveError::NoSuchDomain));
        assert_eq!(r.plan("nowhere.test", None, 25).await, Err(ResolveError::NoSuchDomain));
        assert_eq!(r.plan("", None, 25).await, Err(ResolveError::NoSuchDomain));
        assert_eq!(r.plan(".", None, 25).await, Err(ResolveError::NoSuchDomain));
    }

    #[tokio::test]
    async fn an_empty_mx_answer_is_no_mx_not_a_null_mx() {
        struct Empty;
        impl crate::delivery::mx::DnsLookup for Empty {
            fn mx<'a>(&'a self, _: &'a str) -> crate::delivery::mx::LookupFuture<'a, MxRecord> {
                Box::pin(async { Ok(Answer::Records { records: Vec::new(), ttl: 60 }) })
            }
            fn ip<'a>(&'a self, _: &'a str, _: Family) -> crate::delivery::mx::LookupFuture<'a, IpAddr> {
                Box::pin(async { Ok(Answer::Records { records: vec!["192.0.2.1".parse().unwrap()], ttl: 60 }) })
            }
        }
        let r = MxResolver::with_lookup(Arc::new(Empty), &MxOptions::default());
        assert_eq!(r.plan("example.test", None, 25).await.unwrap().source, PlanSource::Implicit);
    }

    #[tokio::test]
    async fn a_null_mx_refuses_mail_and_a_stray_dot_is_ignored() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("null.test", 0, ".").add_host("null.test", "192.0.2.1");
        dns.add_mx("mixed.test", 0, ".")
            .add_mx("mixed.test", 10, "mx.mixed.test")
            .add_host("mx.mixed.test", "192.0.2.2");
        let r = resolver(&dns);
        assert_eq!(r.plan("null.test", None, 25).await, Err(ResolveError::NullMx));
        assert_eq!(names(&r.plan("mixed.test", None, 25).await.unwrap()), ["mx.mixed.test"]);
    }

    #[tokio::test]
    async fn mx_hosts_without_addresses_are_skipped() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("example.test", 10, "ghost.test").add_mx("example.test", 20, "noaddr.test");
        dns.add_mx("example.test", 30, "broken.test").add_mx("example.test", 40, "mx.example.test");
        dns.add_mx("noaddr.test", 10, "elsewhere.test").fail("broken.test", "SERVFAIL");
        dns.add_host("mx.example.test", "192.0.2.4");
        let r = resolver(&dns);
        assert_eq!(names(&r.plan("example.test", None, 25).await.unwrap()), ["mx.example.test"]);

        dns.remove("mx.example.test");
        r.clear_cache(None);
        let Err(ResolveError::Temporary(why)) = r.plan("example.test", None, 25).await else { panic!() };
        assert!(why.starts_with("MX hosts have no addresses"), "{why}");
        for part in ["ghost.test: no such domain", "noaddr.test: no address records", "broken.test: SERVFAIL"] {
            assert!(why.contains(part), "{why}");
        }
    }

    #[tokio::test]
    async fn one_family_failing_does_not_hide_the_other() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("example.test", 10, "mx.example.test").add_host("mx.example.test", "192.0.2.1");
        let r = resolver(&dns);
        // Fail only AAAA: answer V4 from the cache, then break the name.
        r.plan("example.test", None, 25).await.unwrap();
        r.inner.ip.clear(|(_, f)| *f == Family::V6);
        dns.fail("mx.example.test", "SERVFAIL");
        assert_eq!(r.plan("example.test", None, 25).await.unwrap().hosts[0].addrs, [sa("192.0.2.1:25")]);
    }

    #[tokio::test]
    async fn dns_failures_are_temporary_and_say_what_failed() {
        let dns = Arc::new(StaticDns::new());
        dns.fail("broken.test", "server failure (SERVFAIL)");
        dns.exists("noaddr.test").fail("noaddr.test", "timed out");
        let r = resolver(&dns);
        let e = r.plan("broken.test", None, 25).await.unwrap_err();
        assert_eq!(e, ResolveError::Temporary("MX lookup for broken.test: server failure (SERVFAIL)".into()));
        let reply = e.reply();
        assert_eq!((reply.code, &*reply.enhanced), (451, "4.4.3"));
        assert_eq!(reply.text, "DNS lookup failed: MX lookup for broken.test: server failure (SERVFAIL)");
        assert!(!e.is_permanent());
    }

    #[tokio::test]
    async fn address_literals_need_no_dns() {
        let dns = Arc::new(StaticDns::new());
        let r = resolver(&dns);
        let plan = r.plan("[192.0.2.5]", None, 25).await.unwrap();
        assert_eq!((plan.source, plan.hosts[0].addrs.clone()), (PlanSource::AddressLiteral, vec![sa("192.0.2.5:25")]));
        let plan = r.plan("[IPv6:2001:db8::5]", None, 26).await.unwrap();
        assert_eq!(plan.hosts[0].addrs, [sa("[2001:db8::5]:26")]);
        assert_eq!(plan.hosts[0].name, "2001:db8::5");
        assert_eq!(dns.queries(), 0);
    }

    #[tokio::test]
    async fn too_many_mx_hosts_are_cut() {
        let dns = Arc::new(StaticDns::new());
        for i in 0..40u16 {
            let host = format!("mx{i}.example.test");
            dns.add_mx("example.test", i, &host).add_host(&host, "192.0.2.1");
        }
        let plan = resolver(&dns).plan("example.test", None, 25).await.unwrap();
        assert_eq!(plan.hosts.len(), MAX_MX_HOSTS);
        assert_eq!(plan.hosts.last().unwrap().preference, MAX_MX_HOSTS as u16 - 1);
    }

    #[tokio::test]
    async fn without_ipv6_no_aaaa_is_asked() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("example.test", 10, "mx.example.test").add_host("mx.example.test", "192.0.2.1");
        dns.add_host("mx.example.test", "2001:db8::1");
        let r = MxResolver::with_lookup(dns.clone(), &MxOptions { ipv6: false, ..MxOptions::default() });
        assert_eq!(r.plan("example.test", None, 25).await.unwrap().hosts[0].addrs, [sa("192.0.2.1:25")]);
        assert_eq!(dns.queries(), 2);
    }

    #[tokio::test]
    async fn smtp_hosts_override_with_literals_ports_tiers_and_lookup_mx() {
        let dns = Arc::new(StaticDns::new());
        dns.add_host("relay.test", "192.0.2.10").add_mx("relay.test", 10, "ignored.test");
        dns.add_mx("backup.test", 10, "mx.backup.test").add_host("mx.backup.test", "192.0.2.20");
        dns.add_mx("example.test", 10, "mx.example.test").add_host("mx.example.test", "192.0.2.99");
        let r = resolver(&dns);
        let hosts = tiers("[192.0.2.1]:2525, [IPv6:2001:db8::1], relay.test:587; lookup-mx:backup.test; relay.test");
        let mut firsts = HashSet::new();
        for _ in 0..100 {
            let plan = r.plan("example.test", Some(&hosts), 25).await.unwrap();
            assert_eq!(plan.source, PlanSource::SmtpHosts);
            let mut tier0: Vec<(&str, u16, Vec<SocketAddr>)> =
                plan.hosts[..3].iter().map(|h| (h.name.as_str(), h.preference, h.addrs.clone())).collect();
            firsts.insert(tier0[0].0.to_string());
            tier0.sort();
            assert_eq!(
                tier0,
                [
                    ("192.0.2.1", 0, vec![sa("192.0.2.1:2525")]),
                    ("2001:db8::1", 0, vec![sa("[2001:db8::1]:25")]),
                    ("relay.test", 0, vec![sa("192.0.2.10:587")]),
                ]
            );
            assert_eq!(
                plan.hosts[3],
                MxHost { name: "mx.backup.test".into(), preference: 1, addrs: vec![sa("192.0.2.20:25")] }
            );
            assert_eq!(
                plan.hosts[4],
                MxHost { name: "relay.test".into(), preference: 2, addrs: vec![sa("192.0.2.10:25")] }
            );
        }
        assert_eq!(firsts.len(), 3, "commas are equal preference: {firsts:?}");
        // The domain's own MX was never asked.
        assert_eq!(r.inner.mx.counts().0, 1);
    }

    #[tokio::test]
    async fn smtp_hosts_entries_that_fail_are_skipped_and_none_left_is_temporary() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("mxonly.test", 10, "mx.example.test").add_mx("null.test", 0, ".");
        dns.add_host("ok.test", "192.0.2.1");
        let r = resolver(&dns);
        let plan = r.plan("example.test", Some(&tiers("nowhere.test,mxonly.test;ok.test")), 25).await.unwrap();
        assert_eq!(names(&plan), ["ok.test"]);
        assert_eq!(plan.hosts[0].preference, 1);
        let e = r.plan("example.test", Some(&tiers("nowhere.test;lookup-mx:null.test")), 25).await.unwrap_err();
        let ResolveError::Temporary(why) = e else { panic!("{e:?}") };
        assert!(why.contains("nowhere.test: no such domain"), "{why}");
        assert!(why.contains("lookup-mx:null.test: domain accepts no mail (null MX)"), "{why}");
        // An empty override is no override.
        dns.add_host("example.test", "192.0.2.3");
        assert_eq!(r.plan("example.test", Some(&[]), 25).await.unwrap().source, PlanSource::Implicit);
        assert_eq!(r.plan("example.test", Some(&[vec![]]), 25).await.unwrap().source, PlanSource::Implicit);
    }

    #[test]
    fn smtp_hosts_entries_parse() {
        let h = |n: &str, p| Ok(Entry::Host(n.into(), p));
        let l = |s: &str| Ok(Entry::Literal(sa(s)));
        assert_eq!(parse_entry("[10.0.0.1]", 25), l("10.0.0.1:25"));
        assert_eq!(parse_entry("[10.0.0.1]:2525", 25), l("10.0.0.1:2525"));
        assert_eq!(parse_entry("[IPv6:2001:db8::1]:26", 25), l("[2001:db8::1]:26"));
        assert_eq!(parse_entry("[ipv6:::1]", 25), l("[::1]:25"));
        assert_eq!(parse_entry("[2001:db8::1]", 25), l("[2001:db8::1]:25"));
        assert_eq!(parse_entry("10.0.0.2", 587), l("10.0.0.2:587"));
        assert_eq!(parse_entry("Relay.Example.com.", 25), h("relay.example.com", 25));
        assert_eq!(parse_entry("relay.example.com:587", 25), h("relay.example.com", 587));
        assert_eq!(parse_entry("LOOKUP-MX:Example.com", 25), Ok(Entry::LookupMx("example.com".into())));
        for bad in ["[10.0.0.1", "[10.0.0.1]25", "[nope]", "host:99999", "host:", ":25", "lookup-mx:", ""] {
            assert!(parse_entry(bad, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_for_each_failure() {
        let r = ResolveError::NoSuchDomain.reply();
        assert_eq!((r.code, &*r.enhanced, &*r.text), (550, "5.1.2", "bad destination system: no such domain"));
        let r = ResolveError::NullMx.reply();
        assert_eq!((r.code, &*r.enhanced, &*r.text), (556, "5.1.10", "recipient address has null MX"));
        assert!(ResolveError::NullMx.is_permanent() && ResolveError::NoSuchDomain.is_permanent());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_plans_for_one_domain_share_their_queries() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("example.test", 10, "mx.example.test").add_host("mx.example.test", "192.0.2.1");
        dns.delay(Duration::from_millis(50));
        let r = resolver(&dns);
        let plans: Vec<_> = (0..20)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.plan("example.test", None, 25).await })
            })
            .collect();
        for p in plans {
            assert_eq!(names(&p.await.unwrap().unwrap()), ["mx.example.test"]);
        }
        // MX of the domain, A and AAAA of its host.
        assert_eq!(dns.queries(), 3);
        let stats = r.stats();
        assert_eq!((stats.queries, stats.hits, stats.cached, stats.pending), (3, 19 * 3, 3, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_cached_for_their_ttl_and_negative_answers_too() {
        let dns = Arc::new(StaticDns::new());
        dns.ttl(60).add_mx("example.test", 10, "mx.example.test").add_host("mx.example.test", "192.0.2.1");
        let r = resolver(&dns);
        r.plan("example.test", None, 25).await.unwrap();
        r.plan("example.test", None, 25).await.unwrap();
        assert_eq!(dns.queries(), 3);
        assert_eq!(r.stats().hits, 3);

        dns.remove("mx.example.test").add_host("mx.example.test", "192.0.2.2");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(r.plan("example.test", None, 25).await.unwrap().hosts[0].addrs, [sa("192.0.2.1:25")]);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(r.plan("example.test", None, 25).await.unwrap().hosts[0].addrs, [sa("192.0.2.2:25")]);
        // MX and A again; "no AAAA" is a negative answer, kept for the default 5 minutes.
        assert_eq!(dns.queries(), 5);

        // NXDOMAIN without an SOA: kept for the default 5 minutes; with one, for its TTL.
        assert_eq!(r.plan("nowhere.test", None, 25).await, Err(ResolveError::NoSuchDomain));
        dns.add_host("nowhere.test", "192.0.2.3");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(r.plan("nowhere.test", None, 25).await, Err(ResolveError::NoSuchDomain));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(r.plan("nowhere.test", None, 25).await.is_ok());

        dns.negative_ttl(Some(10));
        assert_eq!(r.plan("gone.test", None, 25).await, Err(ResolveError::NoSuchDomain));
        dns.add_host("gone.test", "192.0.2.4");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(r.plan("gone.test", None, 25).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn null_mx_is_cached_and_failures_are_not_for_long() {
        let dns = Arc::new(StaticDns::new());
        dns.add_mx("null.test", 0, ".").fail("broken.test", "SERVFAIL");
        let r = resolver(&dns);
        assert_eq!(r.plan("null.test", None, 25).await, Err(ResolveError::NullMx));
        assert_eq!(r.plan("null.test", None, 25).await, Err(ResolveError::NullMx));
        assert_eq!(dns.queries(), 1);
        assert!(r.plan("broken.test", None, 25).await.is_err());
        dns.remove("broken.test").add_host("broken.test", "192.0.2.1");
        assert!(r.plan("broken.test", None, 25).await.is_err());
        tokio::time::advance(MxOptions::default().failure_ttl + Duration::from_millis(1)).await;
        assert!(r.plan("broken.test", None, 25).await.is_ok());
    }

    #[tokio::test]
    async fn clearing_the_cache_for_one_name() {
        let dns = Arc::new(StaticDns::new());
        dns.add_host("a.test", "192.0.2.1").add_host("b.test", "192.0.2.2");
        let r = resolver(&dns);
        r.plan("a.test", None, 25).await.unwrap();
        r.plan("b.test", None, 25).await.unwrap();
        assert_eq!(r.stats().cached, 6);
        r.clear_cache(Some("A.test."));
        assert_eq!(r.stats().cached, 3);
    }
}
