//! MX rollup: domains whose MX hosts belong to one provider share one queue per virtual MTA,
//! named by the rollup (`NAME.rollup/VMTA`), whose limits and state (connection cap, rates,
//! backoff, adaptive state) are the rollup queue's, from `<domain NAME.rollup>` or `<domain *>`
//! (docs/operations.md, "MX rollup"). Three ways put a domain in a rollup, in this order:
//!
//! 1. an `mx` line of `<mx-rollup-list>` matching one of its most preferred MX hosts;
//! 2. with `auto-mx-rollup yes`, the built-in provider table (`providers`): `google.rollup`,
//!    `outlook.rollup`, …;
//! 3. with `auto-mx-rollup yes`, another domain with the same most preferred MX host set
//!    (`mx_sets`): the set's rollup is formed when its second domain is seen, and the first
//!    domain's queue moves into it then.
//!
//! The decision needs the MX answer, so it is made where the MX lookup happens: a connection
//! worker of a domain's own queue resolves the domain's MX plan (DNS, cached) and, before it
//! connects anywhere, classifies the most preferred MX host names (`RollupCheck`). On a match it
//! tells the manager (`Event::RollUp`) and ends without connecting; otherwise, under
//! `auto-mx-rollup`, it reports the MX set (`Event::MxSeen`) and waits for the manager's answer,
//! which rolls up every domain of the set once there are two. Rolling up moves the domain
//! queue's mail (ready, waiting and held) into the rollup queue and remembers the domain's rollup
//! (`Rollups`), so later mail for the domain is filed there at once. Connections the domain's own
//! queue still has open count against the rollup's `max-smtp-out` until they end (`linger`). A
//! domain with `disable-mx-rollup yes`, a queue with `smtp-hosts`, and the rollup queues
//! themselves are never rolled up.
//!
//! The rollup queue's connections go to the MX hosts of a member domain and carry mail of every
//! member domain; recipients keep their own address and domain in the spool and the accounting
//! file, and their own domain's `require-starttls` and MTA-STS policy (`member_policy`). A
//! decision is kept for `DECISION_TTL` and forgotten on reload, after which the next connection
//! of the domain's own queue decides again (an MX change moves a domain out of, or into, a
//! rollup). `rollup-by-ip` is accepted and rolls up by host name like the two-word form.

pub mod member_policy;
pub mod mx_sets;
pub mod providers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::QueueKey;
use super::manager::{Event, Events};
use crate::delivery::mx::MxPlan;

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

/// Why a domain is in a rollup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// An `mx` line of `<mx-rollup-list>`.
    MxRollupList,
    /// `auto-mx-rollup`: the built-in provider table.
    ProviderTable,
    /// `auto-mx-rollup`: other domains with the same MX host set.
    SameMxSet,
}

impl Basis {
    pub fn describe(self) -> &'static str {
        match self {
            Basis::MxRollupList => "mx-rollup-list",
            Basis::ProviderTable => "auto-mx-rollup, provider table",
            Basis::SameMxSet => "auto-mx-rollup, same MX host set",
        }
    }
}

/// A rollup a domain's MX hosts put it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    pub rollup: String,
    pub provider: String,
    pub basis: Basis,
}

/// What a connection of a domain's own queue checks its MX hosts against.
#[derive(Clone, Debug)]
pub struct RollupCheck {
    pub list: Arc<RollupList>,
    /// `auto-mx-rollup yes` for this domain: the provider table, and reporting the MX set.
    pub auto: bool,
}

impl RollupCheck {
    /// `<mx-rollup-list>` first, then (auto) the provider table. `hosts` are the most preferred
    /// MX host names.
    pub fn classify<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) -> Option<Matched> {
        let hosts: Vec<String> = hosts.into_iter().map(|h| h.trim_end_matches('.').to_ascii_lowercase()).collect();
        if let Some(rollup) = self.list.rollup_for(hosts.iter().map(String::as_str)) {
            return Some(Matched {
                rollup: rollup.to_string(),
                provider: provider_of_name(rollup).to_string(),
                basis: Basis::MxRollupList,
            });
        }
        if !self.auto {
            return None;
        }
        providers::provider_for(hosts.iter().map(String::as_str)).map(|p| Matched {
            rollup: format!("{p}.rollup"),
            provider: p.to_string(),
            basis: Basis::ProviderTable,
        })
    }
}

impl RollupCheck {
    /// Whether a domain queue's MX plan puts it in a rollup, told to the manager, which has then
    /// moved (or is about to move) the queue's mail there: the connection ends without
    /// connecting.
    pub async fn rolled_up(&self, key: &QueueKey, events: &Events, plan: &MxPlan) -> bool {
        let hosts: Vec<String> = plan.most_preferred().map(|h| h.name.clone()).collect();
        if let Some(matched) = self.classify(hosts.iter().map(String::as_str)) {
            if events.send(Event::RollUp { key: key.clone(), matched }).await.is_err() {
                tracing::debug!(queue = %key, "rollup not recorded: the queue manager has stopped");
            }
            return true;
        }
        if !self.auto {
            return false;
        }
        // Same MX host set: the manager knows the other domains and answers whether this one now
        // shares their queue. A manager that stopped answers nothing: no connection then.
        let (tx, rx) = oneshot::channel();
        if events.send(Event::MxSeen { key: key.clone(), hosts, reply: tx }).await.is_err() {
            return true;
        }
        rx.await.unwrap_or(true)
    }
}

/// The provider an `<mx-rollup-list>` rollup name stands for: the name without `.rollup`.
pub fn provider_of_name(rollup: &str) -> &str {
    rollup.strip_suffix(".rollup").filter(|p| !p.is_empty()).unwrap_or(rollup)
}

/// The manager's rollup state: the list of the current configuration and the decisions made.
#[derive(Debug, Default)]
pub struct Rollups {
    pub list: Arc<RollupList>,
    /// Domain queue name → (rollup queue name, decided at on `clock`'s monotonic scale).
    decided: HashMap<String, (String, f64)>,
    /// Rollup queue name → a member domain whose MX hosts its connections use. Kept across
    /// reloads: mail already in a rollup queue must still find its provider.
    members: HashMap<String, String>,
    /// Rollup queue name → (provider, why its members are in it), for `show queues`.
    providers: HashMap<String, (String, Basis)>,
    /// `auto-mx-rollup`: the MX host sets reported by domain queues.
    pub mx_sets: mx_sets::MxSets,
    /// Domain queues rolled up while they had connections open → their rollup queue: those
    /// connections count against the rollup's connection cap until they end.
    lingering: Vec<(QueueKey, QueueKey)>,
    clock: crate::clock::Clock,
}

impl Rollups {
    pub fn new(config: &Config, clock: crate::clock::Clock) -> Rollups {
        Rollups { list: Arc::new(RollupList::from_config(config)), clock, ..Rollups::default() }
    }

    /// A new configuration: a new list, and every decision made again.
    pub fn reload(&mut self, config: &Config) {
        self.list = Arc::new(RollupList::from_config(config));
        // The MX sets reported stay (DNS facts, not configuration): a set's domains find each
        // other again at once, each checked against the new configuration.
        self.decided.clear();
    }

    pub fn decide(&mut self, domain: &str, matched: &Matched) {
        self.decided.insert(domain.to_string(), (matched.rollup.clone(), self.clock.elapsed()));
        self.members.insert(matched.rollup.clone(), domain.to_string());
        self.providers.insert(matched.rollup.clone(), (matched.provider.clone(), matched.basis));
    }

    /// The rollup queue a domain queue's mail goes to, while the decision is fresh.
    pub fn current(&self, domain: &str) -> Option<&str> {
        self.decided
            .get(domain)
            .filter(|(_, at)| self.clock.elapsed() - at < DECISION_TTL.as_secs_f64())
            .map(|(r, _)| r.as_str())
    }

    /// The provider of a rollup queue and why its members are in it; `None` for other queues.
    pub fn provider<'a>(&'a self, queue: &'a str) -> Option<(&'a str, Basis)> {
        match self.providers.get(queue) {
            Some((p, basis)) => Some((p.as_str(), *basis)),
            None if self.list.is_rollup(queue) => Some((provider_of_name(queue), Basis::MxRollupList)),
            None => None,
        }
    }

    /// The domain whose MX plan a queue's connections use: a member's for a rollup queue.
    pub fn mx_domain<'a>(&'a self, queue: &'a str) -> &'a str {
        self.members.get(queue).map_or(queue, String::as_str)
    }

    /// Whether `queue` is a rollup queue: named by a rule, the provider table or an MX set.
    pub fn is_rollup(&self, queue: &str) -> bool {
        queue.ends_with(".rollup") || self.list.is_rollup(queue) || self.members.contains_key(queue)
    }

    /// What a connection of this queue matches its MX hosts against, if anything: `disabled`
    /// is the queue's `disable-mx-rollup`, `auto` its `auto-mx-rollup`.
    pub fn check(&self, queue: &str, disabled: bool, auto: bool) -> Option<RollupCheck> {
        (!disabled && (auto || !self.list.is_empty()) && !self.is_rollup(queue))
            .then(|| RollupCheck { list: Arc::clone(&self.list), auto })
    }

    /// A domain queue rolled up with `connections` open: they count for `rollup` until they end.
    pub fn linger(&mut self, domain_queue: QueueKey, rollup: QueueKey) {
        if !self.lingering.iter().any(|(d, _)| *d == domain_queue) {
            self.lingering.push((domain_queue, rollup));
        }
    }

    /// The domain queues whose connections count for `rollup`; `open` says how many a queue
    /// still has, and a queue with none is forgotten.
    pub fn lingering_connections(&mut self, rollup: &QueueKey, open: impl Fn(&QueueKey) -> usize) -> usize {
        let mut total = 0;
        self.lingering.retain(|(domain_queue, target)| {
            let n = open(domain_queue);
            if target == rollup {
                total += n;
            }
            n > 0
        });
        total
    }

    pub fn now(&self) -> f64 {
        self.clock.elapsed()
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

    fn matched(rollup: &str) -> Matched {
        Matched { rollup: rollup.into(), provider: provider_of_name(rollup).into(), basis: Basis::MxRollupList }
    }

    #[test]
    fn rollup_queue_choice() {
        let config =
            crate::config::load_str("t.conf", CONF, std::path::Path::new("."), crate::config::FileCheck::Warn).config;
        let mut r = Rollups::new(&config, crate::clock::Clock::system());
        assert!(r.check("a.test", false, false).is_some());
        assert!(r.check("a.test", true, true).is_none(), "disable-mx-rollup keeps the domain's own queue");
        assert!(r.check("provider.rollup", false, true).is_none(), "a rollup queue is not rolled up again");
        assert!(r.check("google.rollup", false, true).is_none(), "nor a provider table rollup");
        assert_eq!(r.current("a.test"), None);
        assert_eq!(r.mx_domain("provider.rollup"), "provider.rollup");
        r.decide("a.test", &matched("provider.rollup"));
        r.decide("b.test", &matched("provider.rollup"));
        assert_eq!(r.current("a.test"), Some("provider.rollup"));
        assert_eq!(r.current("c.test"), None);
        assert_eq!(r.mx_domain("a.test"), "a.test");
        assert_eq!(r.mx_domain("provider.rollup"), "b.test");
        assert_eq!(r.provider("provider.rollup"), Some(("provider", Basis::MxRollupList)));
        assert_eq!(r.provider("other.rollup"), Some(("other", Basis::MxRollupList)), "named by the list");
        assert_eq!(r.provider("a.test"), None);
        r.reload(&config);
        assert_eq!(r.current("a.test"), None, "a reload decides again");
        assert_eq!(r.mx_domain("provider.rollup"), "b.test", "queued rollup mail still finds its MX");
        let none = Rollups::new(&crate::config::Config::default(), crate::clock::Clock::system());
        assert!(none.check("a.test", false, false).is_none(), "no list and no auto-mx-rollup: nothing to check");
        assert!(none.check("a.test", false, true).is_some());
    }

    #[test]
    fn the_list_wins_over_the_provider_table() {
        let config = crate::config::load_str(
            "t.conf",
            "<mx-rollup-list>\n mx aspmx.l.google.com workspace.rollup\n</mx-rollup-list>\n",
            std::path::Path::new("."),
            crate::config::FileCheck::Warn,
        )
        .config;
        let list = Arc::new(RollupList::from_config(&config));
        let auto = RollupCheck { list: Arc::clone(&list), auto: true };
        let listed = auto.classify(["ASPMX.L.GOOGLE.COM."]).unwrap();
        assert_eq!((listed.rollup.as_str(), listed.basis), ("workspace.rollup", Basis::MxRollupList));
        let table = auto.classify(["alt1.aspmx.l.google.com"]).unwrap();
        assert_eq!(
            table,
            Matched { rollup: "google.rollup".into(), provider: "google".into(), basis: Basis::ProviderTable }
        );
        assert_eq!(auto.classify(["mx.hosting.test"]), None);
        // Without auto-mx-rollup only the list counts.
        let manual = RollupCheck { list, auto: false };
        assert!(manual.classify(["aspmx.l.google.com"]).is_some());
        assert_eq!(manual.classify(["alt1.aspmx.l.google.com"]), None);
    }

    #[test]
    fn connections_of_a_rolled_up_domain_queue_count_for_the_rollup() {
        let mut r = Rollups::default();
        let key = |name: &str| QueueKey { name: name.into(), vmta: "v".into() };
        r.linger(key("a.test"), key("p.rollup"));
        r.linger(key("b.test"), key("p.rollup"));
        r.linger(key("c.test"), key("q.rollup"));
        let open = |k: &QueueKey| if k.name == "b.test" { 0 } else { 2 };
        assert_eq!(r.lingering_connections(&key("p.rollup"), open), 2);
        assert_eq!(r.lingering_connections(&key("q.rollup"), open), 2);
        // b.test's connections ended: it is forgotten.
        assert_eq!(r.lingering.len(), 2);
        assert_eq!(r.lingering_connections(&key("p.rollup"), |_| 0), 0);
        assert!(r.lingering.is_empty());
    }
}
