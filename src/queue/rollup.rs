//! `<mx-rollup-list>`: domains whose MX hosts belong to one provider share one queue per virtual
//! MTA, named by the rollup (`provider.rollup/VMTA`), whose limits come from
//! `<domain provider.rollup>` (docs/operations.md, "MX rollup").
//!
//! The decision needs the MX answer, so it is made where the MX lookup happens: a connection
//! worker of a domain's own queue resolves the domain's MX plan (DNS, cached) and, before it
//! connects anywhere, matches the most preferred MX host names against the list
//! (`RollupList::rollup_for`). On a match it tells the manager (`Event::RollUp`) and ends without
//! connecting; the manager moves the domain queue's mail (ready, waiting and held) into the
//! rollup queue and remembers the domain's rollup (`Rollups`), so later mail for the domain is
//! filed there at once. A domain with `disable-mx-rollup yes`, a queue with `smtp-hosts`, and the
//! rollup queues themselves are never rolled up.
//!
//! The rollup queue's connections go to the MX hosts of a member domain (every member's MX
//! matched the same provider pattern) and carry mail of every member domain; recipients keep
//! their own address and domain in the spool and the accounting file. A decision is kept for
//! `DECISION_TTL` and forgotten on reload, after which the next connection of the domain's own
//! queue decides again (an MX change moves a domain out of, or into, a rollup). `rollup-by-ip`
//! is accepted and rolls up by host name like the two-word form.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::value::Value;
use crate::config::{Config, Dir};

/// How long a domain's rollup decision is trusted before its MX is matched again.
pub const DECISION_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// Lower case; for `*.suffix`, the suffix with its leading dot (`.mx.example.test`).
    pattern: String,
    wildcard: bool,
    /// The rollup queue name, lower case.
    name: String,
}

/// The `mx` lines of every `<mx-rollup-list>`, in file order (the first match wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupList {
    rules: Vec<Rule>,
}

impl RollupList {
    pub fn from_config(config: &Config) -> RollupList {
        let mut rules = Vec::new();
        for block in config.blocks_of("mx-rollup-list") {
            for entry in block.settings.all(Dir::Mx) {
                if let Value::Words(words) = &entry.value
                    && let [pattern, name, ..] = words.as_slice()
                {
                    rules.push(Rule::new(pattern, name));
                }
            }
        }
        RollupList { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `queue` is a rollup queue (the name of some rule).
    pub fn is_rollup(&self, queue: &str) -> bool {
        self.rules.iter().any(|r| r.name.eq_ignore_ascii_case(queue))
    }

    /// The rollup of a domain whose most preferred MX hosts are `hosts`: the first rule that
    /// matches any of them.
    pub fn rollup_for<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> Option<&str> {
        let hosts: Vec<String> = hosts.into_iter().map(|h| h.trim_end_matches('.').to_ascii_lowercase()).collect();
        self.rules.iter().find(|r| hosts.iter().any(|h| r.matches(h))).map(|r| r.name.as_str())
    }
}

impl Rule {
    fn new(pattern: &str, name: &str) -> Rule {
        let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
        let name = name.to_ascii_lowercase();
        match pattern.strip_prefix('*') {
            Some(suffix) => Rule { pattern: suffix.to_string(), wildcard: true, name },
            None => Rule { pattern, wildcard: false, name },
        }
    }

    /// `host` is lower case without a trailing dot. `*.example.test` matches any name below
    /// `example.test`, not `example.test` itself.
    fn matches(&self, host: &str) -> bool {
        if self.wildcard {
            host.len() > self.pattern.len() && host.ends_with(&self.pattern)
        } else {
            host == self.pattern
        }
    }
}

/// The manager's rollup state: the list of the current configuration and the decisions made.
#[derive(Debug, Default)]
pub struct Rollups {
    pub list: std::sync::Arc<RollupList>,
    /// Domain queue name → (rollup queue name, decided at on `clock`'s monotonic scale).
    decided: HashMap<String, (String, f64)>,
    /// Rollup queue name → a member domain whose MX hosts its connections use. Kept across
    /// reloads: mail already in a rollup queue must still find its provider.
    members: HashMap<String, String>,
    clock: crate::clock::Clock,
}

impl Rollups {
    pub fn new(config: &Config, clock: crate::clock::Clock) -> Rollups {
        Rollups { list: std::sync::Arc::new(RollupList::from_config(config)), clock, ..Rollups::default() }
    }

    /// A new configuration: a new list, and every decision made again.
    pub fn reload(&mut self, config: &Config) {
        self.list = std::sync::Arc::new(RollupList::from_config(config));
        self.decided.clear();
    }

    pub fn decide(&mut self, domain: &str, rollup: &str) {
        self.decided.insert(domain.to_string(), (rollup.to_string(), self.clock.elapsed()));
        self.members.insert(rollup.to_string(), domain.to_string());
    }

    /// The rollup queue a domain queue's mail goes to, while the decision is fresh.
    pub fn current(&self, domain: &str) -> Option<&str> {
        self.decided
            .get(domain)
            .filter(|(_, at)| self.clock.elapsed() - at < DECISION_TTL.as_secs_f64())
            .map(|(r, _)| r.as_str())
    }

    /// The domain whose MX plan a queue's connections use: a member's for a rollup queue.
    pub fn mx_domain<'a>(&'a self, queue: &'a str) -> &'a str {
        self.members.get(queue).map_or(queue, String::as_str)
    }

    /// Whether a connection of this queue should match its MX hosts against the list.
    pub fn applies(&self, queue: &str, disabled: bool) -> bool {
        !disabled && !self.list.is_empty() && !self.list.is_rollup(queue) && !self.members.contains_key(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> RollupList {
        let loaded = crate::config::load_str("t.conf", text, std::path::Path::new("."), crate::config::FileCheck::Warn);
        RollupList::from_config(&loaded.config)
    }

    const CONF: &str = "<mx-rollup-list>\n mx *.mx.example-provider.test provider.rollup\n mx mail.other.test Other.Rollup rollup-by-ip\n</mx-rollup-list>\n";

    #[test]
    fn rollup_patterns_match_host_names() {
        let l = list(CONF);
        assert_eq!(l.rollup_for(["mx1.mx.example-provider.test"]), Some("provider.rollup"));
        assert_eq!(l.rollup_for(["MX2.MX.Example-Provider.Test."]), Some("provider.rollup"));
        // The wildcard needs a label of its own.
        assert_eq!(l.rollup_for(["mx.example-provider.test"]), None);
        assert_eq!(l.rollup_for(["evilmx.example-provider.test"]), None);
        assert_eq!(l.rollup_for(["mail.other.test"]), Some("other.rollup"));
        assert_eq!(l.rollup_for(["x.mail.other.test"]), None);
        assert_eq!(l.rollup_for(["a.elsewhere.test", "mx9.mx.example-provider.test"]), Some("provider.rollup"));
        assert!(l.is_rollup("provider.rollup"));
        assert!(!l.is_rollup("a.test"));
        assert!(list("").is_empty());
    }

    #[test]
    fn rollup_queue_choice() {
        let config =
            crate::config::load_str("t.conf", CONF, std::path::Path::new("."), crate::config::FileCheck::Warn).config;
        let mut r = Rollups::new(&config, crate::clock::Clock::system());
        assert!(r.applies("a.test", false));
        assert!(!r.applies("a.test", true), "disable-mx-rollup keeps the domain's own queue");
        assert!(!r.applies("provider.rollup", false), "a rollup queue is not rolled up again");
        assert_eq!(r.current("a.test"), None);
        assert_eq!(r.mx_domain("provider.rollup"), "provider.rollup");
        r.decide("a.test", "provider.rollup");
        r.decide("b.test", "provider.rollup");
        assert_eq!(r.current("a.test"), Some("provider.rollup"));
        assert_eq!(r.current("c.test"), None);
        assert_eq!(r.mx_domain("a.test"), "a.test");
        assert_eq!(r.mx_domain("provider.rollup"), "b.test");
        r.reload(&config);
        assert_eq!(r.current("a.test"), None, "a reload decides again");
        assert_eq!(r.mx_domain("provider.rollup"), "b.test", "queued rollup mail still finds its MX");
        assert!(
            !Rollups::new(&crate::config::Config::default(), crate::clock::Clock::system()).applies("a.test", false)
        );
    }
}
