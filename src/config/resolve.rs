//! Effective settings: what applies to one queue (destination × virtual MTA) or one injecting
//! connection, after inheritance (docs/operations.md, "How a queue's settings are computed").
//!
//! Queue settings layer, from general to specific: table defaults, per-queue values written at top
//! level, the global `<domain>` blocks, the pool's `<domain>` blocks, the VMTA's `<domain>`
//! blocks. Within one level matching patterns apply by specificity (`*` < `[*.]x` < `*.x` <
//! exact; macro-produced before explicit), never by file order. Source settings merge the same
//! way: `0/0` → shorter prefixes → longer prefixes → the named source.

use std::net::IpAddr;

use super::diag::Location;
use super::model::{Config, DomainBlock, Pool, SourceMatcher};
use super::policy::QueuePolicy;
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
    /// `settings` read into typed fields, once.
    pub policy: QueuePolicy,
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
            policy: QueuePolicy::new(&resolved.settings),
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

    /// Effective injection policy for a client at `ip`, refined by named sources in order (the
    /// listener's, then `{auth}` and the authenticated user's).
    pub fn source_settings(&self, ip: IpAddr, named: &[&str]) -> Settings {
        let mut matching: Vec<(u8, &Settings)> = self
            .sources
            .iter()
            .filter_map(|s| match &s.matcher {
                SourceMatcher::Cidr(c) if c.contains(ip) => Some((c.prefix(), &s.settings)),
                _ => None,
            })
            .collect();
        matching.sort_by_key(|(prefix, _)| *prefix);
        let mut settings = Settings::default();
        for (_, s) in matching {
            settings.overlay(s);
        }
        for name in named {
            for s in self.sources.iter().filter(|s| s.matcher == SourceMatcher::Name(name.to_string())) {
                settings.overlay(&s.settings);
            }
        }
        settings
    }

    /// The source settings a spooled message was injected under, found again from what its
    /// envelope keeps (the client address and the named sources): what `suppress-local-dsn`,
    /// `dsn-return-default`, `verp-default` and the other per-source choices that act after
    /// spooling read. Pickup mail is `127.0.0.1` with `{pickup}`, as when it was picked up. Mail
    /// Ember made itself (DSNs, notifications) has no source: the defaults.
    pub fn message_source_settings(&self, origin: &crate::message::Origin) -> Settings {
        let ip = match (origin.client_ip, origin.kind.as_str()) {
            (Some(ip), _) => ip,
            (None, "pickup") => IpAddr::from([127, 0, 0, 1]),
            (None, _) => return Settings::default(),
        };
        let named: Vec<&str> = origin.sources.iter().map(String::as_str).collect();
        self.source_settings(ip, &named)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    fn load(text: &str) -> Config {
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        loaded.config
    }

    /// The value of `dir` for a queue, with the line it came from (0 for a default).
    fn value(config: &Config, queue: &str, dir: Dir) -> (String, u32) {
        let (domain, vmta) = match queue.split_once('/') {
            Some((d, v)) => (d, Some(v)),
            None => (queue, None),
        };
        let q = config.queue_settings(domain, vmta).unwrap();
        match q.settings.get(dir) {
            Some(e) => (e.value.to_string(), e.origin.location().map_or(0, |l| l.line)),
            None => (crate::config::settings::default_value(dir).map_or("-".into(), |v| v.to_string()), 0),
        }
    }

    /// Splits a config into its top-level blocks so tests can reorder them.
    fn blocks(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut depth = 0;
        for line in text.lines() {
            let t = line.trim();
            current.push_str(line);
            current.push('\n');
            if t.starts_with("</") {
                depth -= 1;
            } else if t.starts_with('<') {
                depth += 1;
            }
            if depth == 0 {
                out.push(std::mem::take(&mut current));
            }
        }
        out
    }

    const LAYERED: &str = "\
<domain *>
    max-smtp-out 2
    retry-after 5m
</domain>
<domain [*.]example.com>
    max-smtp-out 3
    bounce-after 1d
</domain>
<domain *.example.com>
    max-smtp-out 4
</domain>
<domain mail.example.com>
    max-smtp-out 5
</domain>
domain-macro ex example
<domain mail.$ex.com>
    max-smtp-out 6
    connect-timeout 30s
</domain>
<virtual-mta v1>
    smtp-source-host 127.0.0.2 v1.example.net
    <domain *>
        max-msg-rate 100/h
    </domain>
    <domain mail.example.com>
        retry-after 1m
    </domain>
</virtual-mta>
<virtual-mta v2>
    smtp-source-host 127.0.0.3 v2.example.net
</virtual-mta>
<virtual-mta-pool p>
    virtual-mta v1
    virtual-mta v2
    <domain [*.]example.com>
        max-smtp-out 9
        bounce-after 2d
    </domain>
</virtual-mta-pool>
";

    fn check_layered(config: &Config) {
        assert_eq!(value(config, "other.org", Dir::MaxSmtpOut).0, "2");
        assert_eq!(value(config, "example.com", Dir::MaxSmtpOut).0, "3");
        assert_eq!(value(config, "a.example.com", Dir::MaxSmtpOut).0, "4");
        // Explicit beats the macro-produced pattern for the same domain…
        assert_eq!(value(config, "mail.example.com", Dir::MaxSmtpOut).0, "5");
        // …but the macro block still contributes what the explicit one does not set.
        assert_eq!(value(config, "mail.example.com", Dir::ConnectTimeout).0, "30s");
        assert_eq!(value(config, "mail.example.com", Dir::BounceAfter).0, "1d");
        // Pool <domain> blocks override every global one; VMTA blocks override the pool's.
        assert_eq!(value(config, "mail.example.com/v1", Dir::MaxSmtpOut).0, "9");
        assert_eq!(value(config, "mail.example.com/v1", Dir::BounceAfter).0, "2d");
        assert_eq!(value(config, "mail.example.com/v1", Dir::RetryAfter).0, "1m");
        assert_eq!(value(config, "mail.example.com/v1", Dir::MaxMsgRate).0, "100/h");
        assert_eq!(value(config, "mail.example.com/v2", Dir::RetryAfter).0, "5m");
        assert_eq!(value(config, "mail.example.com/v2", Dir::MaxMsgRate).0, "unlimited");
        assert_eq!(value(config, "other.org/v2", Dir::MaxSmtpOut).0, "2");
    }

    #[test]
    fn specificity_not_file_order_decides() {
        check_layered(&load(LAYERED));
        let parts = blocks(LAYERED);
        let reversed: String = parts.iter().rev().cloned().collect();
        check_layered(&load(&reversed));
        // A rotation as well, so no single ordering is privileged.
        let mut rotated = parts.clone();
        rotated.rotate_left(3);
        check_layered(&load(&rotated.concat()));
    }

    #[test]
    fn queue_to_groups_domains_into_one_queue() {
        let c = load(
            "<domain hotmail.com>\n max-smtp-out 7\n</domain>\n<domain outlook.com>\n queue-to hotmail.com\n max-smtp-out 1\n</domain>\n",
        );
        let q = c.queue_settings("Outlook.COM", None).unwrap();
        assert_eq!(q.name(), "hotmail.com/{default}");
        assert_eq!(q.queue_to.as_ref().map(|l| l.line), Some(5));
        // The queue's own settings apply, not the grouped domain's.
        assert_eq!(value(&c, "outlook.com", Dir::MaxSmtpOut).0, "7");
    }

    #[test]
    fn empty_string_clears_an_inherited_value() {
        let c =
            load("<domain *>\n smtp-hosts [127.0.0.1]:2526\n</domain>\n<domain x.com>\n smtp-hosts \"\"\n</domain>\n");
        assert!(c.queue_settings("x.com", None).unwrap().settings.get(Dir::SmtpHosts).is_none());
        assert!(c.queue_settings("y.com", None).unwrap().settings.get(Dir::SmtpHosts).is_some());
    }

    #[test]
    fn unknown_vmta_and_pool_names_are_refused() {
        let c = load(LAYERED);
        assert_eq!(c.queue_settings("x.com", Some("nope")).unwrap_err(), QueueError::UnknownVmta("nope".into()));
        assert_eq!(c.queue_settings("x.com", Some("p")).unwrap_err(), QueueError::PoolNotVmta("p".into()));
    }

    #[test]
    fn sources_merge_by_prefix_then_name() {
        let text = "\
<source feeder>
    max-message-size 10M
</source>
<source 127.0.0.1>
    always-allow-relaying yes
    max-message-size 1M
</source>
<source 0/0>
    smtp-service no
    max-message-size 5M
</source>
<source 127/8>
    smtp-service yes
</source>
";
        for text in [text.to_string(), blocks(text).into_iter().rev().collect()] {
            let c = load(&text);
            let local = c.source_settings("127.0.0.1".parse().unwrap(), &[]);
            assert_eq!(local.get(Dir::SmtpService).unwrap().value.to_string(), "yes");
            assert_eq!(local.get(Dir::MaxMessageSize).unwrap().value.to_string(), "1M");
            let other = c.source_settings("127.0.0.9".parse().unwrap(), &[]);
            assert_eq!(other.get(Dir::SmtpService).unwrap().value.to_string(), "yes");
            assert!(other.get(Dir::AlwaysAllowRelaying).is_none());
            let remote = c.source_settings("192.0.2.1".parse().unwrap(), &[]);
            assert_eq!(remote.get(Dir::SmtpService).unwrap().value.to_string(), "no");
            let named = c.source_settings("127.0.0.1".parse().unwrap(), &["feeder"]);
            assert_eq!(named.get(Dir::MaxMessageSize).unwrap().value.to_string(), "10M");
        }
    }
}
