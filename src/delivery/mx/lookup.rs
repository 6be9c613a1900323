//! The seam between MX planning and the DNS: one trait with the two questions a plan asks (the MX
//! records of a domain, the addresses of a host), and the shape of an answer. The real
//! implementation is `hickory::HickoryLookup`; `static_dns::StaticDns` answers from a table for
//! tests. Knows nothing about caching or ordering.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// One MX record. `exchange` is lower case without the trailing dot; the root (a null MX's
/// exchange, RFC 7505) is the empty string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    pub exchange: String,
}

impl MxRecord {
    pub fn new(preference: u16, exchange: &str) -> MxRecord {
        MxRecord { preference, exchange: normalize(exchange) }
    }

    /// True for the root name, the exchange of a null MX.
    pub fn is_root(&self) -> bool {
        self.exchange.is_empty()
    }
}

/// Which address records an address lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

/// What the DNS said, when it said something definite. TTLs are in seconds, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// At least one record of the type asked for; `ttl` is the smallest TTL in the answer,
    /// CNAMEs on the way included.
    Records { records: Vec<T>, ttl: u32 },
    /// The name exists but has no record of this type (NOERROR, no data). `ttl` is the negative
    /// TTL from the SOA in the answer, when there was one.
    NoRecords { ttl: Option<u32> },
    /// NXDOMAIN: the name does not exist. `ttl` as for `NoRecords`.
    NoSuchDomain { ttl: Option<u32> },
}

impl<T> Answer<T> {
    pub fn records(&self) -> &[T] {
        match self {
            Answer::Records { records, .. } => records,
            _ => &[],
        }
    }
}

/// A lookup either gets a definite answer or fails for a reason that may go away (SERVFAIL,
/// REFUSED, timeout, no reachable server, a CNAME loop): the `Err` text says which, for logs and
/// the `451 4.4.3` reply.
pub type LookupResult<T> = Result<Answer<T>, String>;

pub type LookupFuture<'a, T> = Pin<Box<dyn Future<Output = LookupResult<T>> + Send + 'a>>;

/// The DNS as MX planning sees it. Names come in normalized (lower case, no trailing dot) and are
/// always absolute: no search domains apply. CNAMEs are followed by the implementation.
pub trait DnsLookup: Send + Sync + 'static {
    /// The MX records of `domain`.
    fn mx<'a>(&'a self, domain: &'a str) -> LookupFuture<'a, MxRecord>;

    /// The A (`V4`) or AAAA (`V6`) records of `host`.
    fn ip<'a>(&'a self, host: &'a str, family: Family) -> LookupFuture<'a, IpAddr>;
}

/// Lower case, surrounding white space and one trailing dot removed, internationalized labels
/// as A-labels (`bücher.example` → `xn--bcher-kva.example`): the form names take in the cache,
/// in queries and in plans (where the SMTP client and TLS want ASCII).
pub fn normalize(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    match hickory_resolver::proto::rr::Name::from_utf8(name) {
        Ok(idn) => {
            let ascii = idn.to_ascii();
            ascii.strip_suffix('.').unwrap_or(&ascii).to_ascii_lowercase()
        }
        // Not a valid IDN: kept as it is, the DNS will not know it.
        Err(_) => name.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize("MX1.Example.COM."), "mx1.example.com");
        assert_eq!(normalize(" a.b "), "a.b");
        assert_eq!(normalize("Bücher.Example."), "xn--bcher-kva.example");
        assert!(MxRecord::new(0, ".").is_root());
        assert!(!MxRecord::new(0, "a.").is_root());
    }
}
