//! Effective settings: what applies to one queue (destination × virtual MTA) or one injecting
//! connection, after inheritance (REFERENCE.md §1.4).
//!
//! Queue settings layer, from general to specific: table defaults, per-queue values written at top
//! level, the global `<domain>` blocks, the pool's `<domain>` blocks, the VMTA's `<domain>`
//! blocks. Within one level matching patterns apply by specificity (`*` < `[*.]x` < `*.x` <
//! exact; macro-produced before explicit), never by file order. Source settings merge the same
//! way: `0/0` → shorter prefixes → longer prefixes → the named source.

use std::net::IpAddr;

use super::diag::Location;
use super::model::{Config, DomainBlock, Pool, SourceMatcher};
use super::settings::Settings;
use super::table::Dir;
use super::value::Value;

/// The name `{default}`: the virtual MTA used when none is selected.
pub const DEFAULT_VMTA: &str = "{default}";

/// A queue's effective settings, with the reasoning that produced them.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// The queue name after `queue-to`.
    pub queue: String,
    pub vmta: String,
    /// The destination domain asked about, and where `queue-to` redirected it.
    pub domain: String,
    pub queue_to: Option<Location>,
    /// Blocks applied, general to specific: (level, pattern, location).
    pub layers: Vec<(String, String, Location)>,
    pub settings: Settings,
}

impl QueueSettings {
    pub fn name(&self) -> String {
        format!("{}/{}", self.queue, self.vmta)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    UnknownVmta(String),
    PoolNotVmta(String),
    BadDomain(String),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::UnknownVmta(v) => write!(f, "virtual-mta {v:?} is not defined"),
            QueueError::PoolNotVmta(p) => {
                write!(f, "{p:?} is a virtual-mta-pool; queues belong to a virtual MTA (pick one of its members)")
            }
            QueueError::BadDomain(d) => write!(f, "invalid domain {d:?}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl Config {
    /// The pool whose `<domain>` blocks a VMTA inherits (at most one: `validate.rs` refuses two).
    fn pool_with_domains(&self, vmta: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| !p.domains.is_empty() && p.members().any(|(m, _)| m == vmta))
    }

    /// Effective settings of the queue that mail for `domain` via `vmta` lands in.
    pub fn queue_settings(&self, domain: &str, vmta: Option<&str>) -> Result<QueueSettings, QueueError> {
        let domain = domain.trim().trim_end_matches('.').to_lowercase();
        if domain.is_empty() || domain.contains(char::is_whitespace) || domain.contains('/') {
            return Err(QueueError::BadDomain(domain));
        }
        let vmta = vmta.unwrap_or(DEFAULT_VMTA);
        if vmta != DEFAULT_VMTA && self.vmta(vmta).is_none() {
            return Err(if self.pool(vmta).is_some() {
                QueueError::PoolNotVmta(vmta.into())
            } else {
                QueueError::UnknownVmta(vmta.into())
            });
        }
        let first = self.layered(&domain, vmta);
        let (queue, queue_to) = match first.settings.get(Dir::QueueTo) {
            Some(e) => match &e.value {
                Value::Text(target) => (target.to_lowercase(), e.origin.location().cloned()),
                _ => (domain.clone(), None),
            },
            None => (domain.clone(), None),
        };
        let resolved = if queue == domain { first } else { self.layered(&queue, vmta) };
        Ok(QueueSettings {
            queue,
            vmta: vmta.to_string(),
            domain,
            queue_to,
            layers: resolved.layers,
            settings: resolved.settings,
        })
    }

    fn layered(&self, domain: &str, vmta: &str) -> Layered {
        let mut out = Layered { settings: Settings::default(), layers: Vec::new() };
        out.settings.overlay(&self.queue_defaults);
        out.apply("global", &self.domains, domain);
        if let Some(pool) = self.pool_with_domains(vmta) {
            out.apply(&format!("virtual-mta-pool {}", pool.name), &pool.domains, domain);
        }
        if let Some(v) = self.vmta(vmta) {
            out.apply(&format!("virtual-mta {}", v.name), &v.domains, domain);
        }
        out
    }

    /// Effective injection policy for a client at `ip`, refined by a named source (from the
    /// listener or the authenticated user) when there is one.
    pub fn source_settings(&self, ip: IpAddr, named: Option<&str>) -> Settings {
        let mut matching: Vec<(u8, &Settings)> = self
            .sources
            .iter()
            .filter_map(|s| match &s.matcher {
                SourceMatcher::Cidr(c) if c.contains(ip) => Some((c.prefix, &s.settings)),
                _ => None,
            })
            .collect();
        matching.sort_by_key(|(prefix, _)| *prefix);
        let mut settings = Settings::default();
        for (_, s) in matching {
            settings.overlay(s);
        }
        if let Some(name) = named {
            for s in self.sources.iter().filter(|s| s.matcher == SourceMatcher::Name(name.to_string())) {
                settings.overlay(&s.settings);
            }
        }
        settings
    }
}

struct Layered {
    settings: Settings,
    layers: Vec<(String, String, Location)>,
}

impl Layered {
    fn apply(&mut self, level: &str, blocks: &[DomainBlock], domain: &str) {
        let mut matching: Vec<&DomainBlock> = blocks.iter().filter(|b| b.pattern.matches(domain)).collect();
        // Stable: equal keys keep file order, which only matters for two blocks with the very
        // same pattern (their overlap is reported as a warning when the block is set twice).
        matching.sort_by_key(|b| (b.pattern.specificity(), !b.from_macro));
        for b in matching {
            self.settings.overlay(&b.settings);
            self.layers.push((level.to_string(), b.pattern.to_string(), b.location.clone()));
        }
    }
}
