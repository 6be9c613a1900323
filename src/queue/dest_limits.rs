//! `mx-connection-limit` and `ip-connection-limit`: caps on the connections open to a destination,
//! shared by every queue (many domains share a provider's MX hosts, so a per-queue cap cannot
//! protect them).
//!
//! `mx-connection-limit PATTERN N`: at most N connections from each source IP to MX hosts whose
//! name matches PATTERN (`*` stands for any run of characters: `*.mail.example.com`, `mx*.example`).
//! `ip-connection-limit CIDR N`: at most N connections, from all source IPs together, to
//! destination addresses in CIDR. Every rule that matches a connection applies.
//!
//! A worker takes a `DestSlot` before it connects and holds it as long as the connection is open;
//! dropping the slot frees it and wakes workers waiting for one. Counts are kept by rule text, so
//! a reload that keeps a rule keeps its count of the connections already open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::value::Value;
use crate::config::values::Cidr;
use crate::config::{Config, Dir};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// An `mx-connection-limit` pattern, counted per source IP.
    Mx(String, Option<IpAddr>),
    /// An `ip-connection-limit` block (as written), for all sources.
    Ip(String),
}

#[derive(Clone, Debug, Default)]
struct Rules {
    mx: Vec<(String, u64)>,
    ip: Vec<(Cidr, u64)>,
}

#[derive(Default)]
pub struct DestLimits {
    state: Mutex<(Rules, HashMap<Key, u64>)>,
    freed: Notify,
}

/// One connection's share of the caps; dropping it frees it.
pub struct DestSlot {
    limits: Arc<DestLimits>,
    keys: Vec<Key>,
}

impl Drop for DestSlot {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        {
            let mut state = self.limits.lock();
            for key in &self.keys {
                if let Some(n) = state.1.get_mut(key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        state.1.remove(key);
                    }
                }
            }
        }
        self.limits.freed.notify_waiters();
    }
}

impl DestLimits {
    pub fn from_config(config: &Config) -> Arc<DestLimits> {
        let limits = Arc::new(DestLimits::default());
        limits.reload(config);
        limits
    }

    /// Takes the rules of a new configuration generation.
    pub fn reload(&self, config: &Config) {
        let mut rules = Rules::default();
        for e in config.global.all(Dir::MxConnectionLimit) {
            if let Value::MxConnectionLimit { pattern, limit } = &e.value {
                rules.mx.push((pattern.to_lowercase(), *limit));
            }
        }
        for e in config.global.all(Dir::IpConnectionLimit) {
            if let Value::CidrUint(cidr, limit) = &e.value {
                rules.ip.push((*cidr, *limit));
            }
        }
        self.lock().0 = rules;
        // A raised cap may let waiting workers go on.
        self.freed.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Rules, HashMap<Key, u64>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `source` to the MX host `mx` at `ip`, or `None` when a rule
    /// that matches it has as many connections open as it allows.
    pub fn acquire(self: &Arc<Self>, mx: &str, ip: IpAddr, source: Option<IpAddr>) -> Option<DestSlot> {
        let mut state = self.lock();
        let (rules, open) = &mut *state;
        let mx = mx.to_lowercase();
        let mut keys = Vec::new();
        for (pattern, limit) in rules.mx.iter().filter(|(p, _)| glob(p, &mx)) {
            keys.push((Key::Mx(pattern.clone(), source), *limit));
        }
        for (cidr, limit) in rules.ip.iter().filter(|(c, _)| c.contains(ip)) {
            keys.push((Key::Ip(cidr.to_string()), *limit));
        }
        if keys.iter().any(|(key, limit)| open.get(key).copied().unwrap_or(0) >= *limit) {
            return None;
        }
        for (key, _) in &keys {
            *open.entry(key.clone()).or_insert(0) += 1;
        }
        Some(DestSlot { limits: Arc::clone(self), keys: keys.into_iter().map(|(k, _)| k).collect() })
    }

    /// Returns when a slot may have been freed (or the rules changed).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileCheck, load_str};

    fn limits(text: &str) -> Arc<DestLimits> {
        DestLimits::from_config(&load_str("l.conf", text, std::path::Path::new("."), FileCheck::Warn).config)
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("*.mail.example.com", "mx1.mail.example.com"));
        assert!(!glob("*.mail.example.com", "mail.example.com.evil"));
        assert!(glob("mx*.example.com", "mx12.example.com"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXc"));
        assert!(glob("exact.host", "exact.host") && !glob("exact.host", "other.host"));
    }

    #[test]
    fn an_mx_cap_counts_per_source_ip_and_frees_on_drop() {
        let l = limits("mx-connection-limit *.example.com 1\n");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (s1, s2): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a = l.acquire("mx1.example.com", ip, Some(s1)).expect("first");
        assert!(l.acquire("MX2.example.com", ip, Some(s1)).is_none(), "same pattern, same source");
        let b = l.acquire("mx2.example.com", ip, Some(s2)).expect("another source IP has its own count");
        assert!(l.acquire("mx.other.test", ip, Some(s1)).is_some(), "no rule matches");
        drop(a);
        assert!(l.acquire("mx2.example.com", ip, Some(s1)).is_some());
        drop(b);
    }

    #[test]
    fn an_ip_cap_counts_all_sources_together() {
        let l = limits("ip-connection-limit 192.0.2.0/24 2\n");
        let (s1, s2): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a = l.acquire("a", "192.0.2.1".parse().unwrap(), Some(s1)).unwrap();
        let b = l.acquire("b", "192.0.2.2".parse().unwrap(), Some(s2)).unwrap();
        assert!(l.acquire("c", "192.0.2.3".parse().unwrap(), Some(s1)).is_none());
        assert!(l.acquire("d", "198.51.100.1".parse().unwrap(), Some(s1)).is_some(), "outside the block");
        // A reload that keeps the rule keeps the count; one that raises it lets the next in.
        l.reload(
            &load_str("l.conf", "ip-connection-limit 192.0.2.0/24 3\n", std::path::Path::new("."), FileCheck::Warn)
                .config,
        );
        assert!(l.acquire("c", "192.0.2.3".parse().unwrap(), Some(s1)).is_some());
        drop((a, b));
    }
}
