//! A DNS that answers from a table, for tests of anything that plans deliveries (the MX cache
//! and ordering here; queues and delivery elsewhere) without a DNS server. Records can change
//! while it is in use; every question is counted.
//!
//! A name with records of another type, or declared with `exists`, answers "no records"; a name
//! it has never heard of answers NXDOMAIN.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::lookup::{Answer, DnsLookup, Family, LookupFuture, LookupResult, MxRecord, normalize};

#[derive(Default)]
pub struct StaticDns {
    table: Mutex<Table>,
    queries: AtomicU64,
}

#[derive(Default)]
struct Table {
    mx: HashMap<String, Vec<MxRecord>>,
    ips: HashMap<String, Vec<IpAddr>>,
    exists: HashSet<String>,
    failures: HashMap<String, String>,
    ttl: u32,
    negative_ttl: Option<u32>,
    delay: Duration,
}

impl StaticDns {
    /// An empty table; answers carry a TTL of 300 s.
    pub fn new() -> StaticDns {
        let dns = StaticDns::default();
        dns.ttl(300);
        dns
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an MX record (`"."` as the exchange makes a null MX).
    pub fn add_mx(&self, domain: &str, preference: u16, exchange: &str) -> &StaticDns {
        self.table().mx.entry(normalize(domain)).or_default().push(MxRecord::new(preference, exchange));
        self
    }

    /// Adds an A or AAAA record.
    ///
    /// # Panics
    /// When `ip` is not an IP address (a mistake in the test).
    pub fn add_host(&self, name: &str, ip: &str) -> &StaticDns {
        let ip: IpAddr = ip.parse().unwrap_or_else(|_| panic!("StaticDns::add_host: {ip:?} is not an IP address"));
        self.table().ips.entry(normalize(name)).or_default().push(ip);
        self
    }

    /// Makes `name` exist without records (NOERROR, no data, for every type).
    pub fn exists(&self, name: &str) -> &StaticDns {
        self.table().exists.insert(normalize(name));
        self
    }

    /// Makes every question about `name` fail with `reason` (SERVFAIL, timeout).
    pub fn fail(&self, name: &str, reason: &str) -> &StaticDns {
        self.table().failures.insert(normalize(name), reason.to_string());
        self
    }

    /// Forgets everything about `name`, which then answers NXDOMAIN.
    pub fn remove(&self, name: &str) -> &StaticDns {
        let name = normalize(name);
        let mut t = self.table();
        t.mx.remove(&name);
        t.ips.remove(&name);
        t.exists.remove(&name);
        t.failures.remove(&name);
        self
    }

    /// TTL of positive answers, in seconds.
    pub fn ttl(&self, secs: u32) -> &StaticDns {
        self.table().ttl = secs;
        self
    }

    /// Negative TTL (as an SOA would give) of "no records" and NXDOMAIN answers; none by default.
    pub fn negative_ttl(&self, secs: Option<u32>) -> &StaticDns {
        self.table().negative_ttl = secs;
        self
    }

    /// How long each answer takes (virtual time in paused-clock tests).
    pub fn delay(&self, delay: Duration) -> &StaticDns {
        self.table().delay = delay;
        self
    }

    /// Questions asked so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    async fn answer<T: Clone>(&self, name: &str, pick: impl Fn(&Table) -> Option<Vec<T>>) -> LookupResult<T> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let delay = self.table().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let name = normalize(name);
        let t = self.table();
        if let Some(reason) = t.failures.get(&name) {
            return Err(reason.clone());
        }
        match pick(&t) {
            Some(records) if !records.is_empty() => Ok(Answer::Records { records, ttl: t.ttl }),
            _ if t.mx.contains_key(&name) || t.ips.contains_key(&name) || t.exists.contains(&name) => {
                Ok(Answer::NoRecords { ttl: t.negative_ttl })
            }
            _ => Ok(Answer::NoSuchDomain { ttl: t.negative_ttl }),
        }
    }
}

impl DnsLookup for StaticDns {
    fn mx<'a>(&'a self, domain: &'a str) -> LookupFuture<'a, MxRecord> {
        let key = normalize(domain);
        Box::pin(self.answer(domain, move |t| t.mx.get(&key).cloned()))
    }

    fn ip<'a>(&'a self, host: &'a str, family: Family) -> LookupFuture<'a, IpAddr> {
        let key = normalize(host);
        Box::pin(self.answer(host, move |t| {
            t.ips.get(&key).map(|ips| ips.iter().copied().filter(|ip| ip.is_ipv4() == (family == Family::V4)).collect())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_from_the_table() {
        let dns = StaticDns::new();
        dns.add_mx("Example.test", 10, "MX.example.test.")
            .add_host("mx.example.test", "10.0.0.1")
            .add_host("mx.example.test", "::1");
        dns.exists("empty.test").fail("broken.test", "SERVFAIL");
        let mx = dns.mx("example.test.").await.unwrap();
        assert_eq!(mx, Answer::Records { records: vec![MxRecord::new(10, "mx.example.test")], ttl: 300 });
        assert_eq!(
            dns.ip("mx.example.test", Family::V4).await.unwrap().records(),
            ["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(dns.ip("mx.example.test", Family::V6).await.unwrap().records(), ["::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(dns.ip("example.test", Family::V4).await, Ok(Answer::NoRecords { ttl: None }));
        assert_eq!(dns.mx("empty.test").await, Ok(Answer::NoRecords { ttl: None }));
        assert_eq!(dns.mx("nowhere.test").await, Ok(Answer::NoSuchDomain { ttl: None }));
        assert_eq!(dns.mx("broken.test").await, Err("SERVFAIL".to_string()));
        dns.remove("example.test");
        assert_eq!(dns.mx("example.test").await, Ok(Answer::NoSuchDomain { ttl: None }));
        assert_eq!(dns.queries(), 8);
    }
}
