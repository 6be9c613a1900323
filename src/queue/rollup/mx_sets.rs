//! Same-MX-set grouping of `auto-mx-rollup`: domains that neither `<mx-rollup-list>` nor the
//! provider table place, but whose most preferred MX hosts are the same set of names, are served
//! by one operator and share a rollup queue — once a second such domain is seen. A domain alone
//! with its MX set keeps its own queue, so ordinary destinations keep their own names.
//!
//! The manager records each domain's set when a connection of the domain's own queue reports it
//! (`MxSets::saw`); a domain counts for its set while its report is younger than `MX_SET_TTL`.
//! The rollup of a set is named after the set (`group_name`, e.g. `hosting.test.rollup` for `mx1.hosting.test`) and
//! keeps that name for the life of the process, unique among sets, so queued mail of a set never
//! finds another set's MX hosts.

use std::collections::{BTreeSet, HashMap};

/// How long a domain's reported MX set counts for grouping. Longer than the rollup decision
/// (`DECISION_TTL`): when a member's decision runs out and its queue reports again, the other
/// members, which stopped reporting when they were rolled up, still count.
pub const MX_SET_TTL: f64 = 2.0 * super::DECISION_TTL.as_secs_f64();

/// Reports between two sweeps of stale domains, which keep the map from growing with every
/// domain ever seen.
const SWEEP_EVERY: u64 = 4096;

/// A set of domains that now share a rollup queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The rollup queue name (`NAME.rollup`).
    pub rollup: String,
    /// What `show queues` and `explain` call the provider: the MX set's common parent domain.
    pub provider: String,
    /// Every domain counting for the set, sorted.
    pub domains: Vec<String>,
}

#[derive(Debug, Default)]
pub struct MxSets {
    /// Domain → its most preferred MX host set (normalised) and when it was last reported.
    seen: HashMap<String, (Vec<String>, f64)>,
    /// MX set → the domains reported with it.
    domains: HashMap<Vec<String>, BTreeSet<String>>,
    /// MX set → its rollup name, once it formed a group; and the reverse, to keep names unique.
    names: HashMap<Vec<String>, String>,
    taken: HashMap<String, Vec<String>>,
    reports: u64,
}

impl MxSets {
    /// A connection of `domain`'s own queue found `hosts` as its most preferred MX hosts at
    /// `now`: the group the domain belongs to now, when the set has at least two current
    /// domains. `reserved` says whether a rollup name is used otherwise (`<mx-rollup-list>`).
    pub fn saw(&mut self, domain: &str, hosts: &[String], now: f64, reserved: impl Fn(&str) -> bool) -> Option<Group> {
        let set = normalise(hosts);
        if set.is_empty() {
            return None;
        }
        self.reports += 1;
        if self.reports.is_multiple_of(SWEEP_EVERY) {
            self.sweep(now);
        }
        if let Some((old, _)) = self.seen.get(domain)
            && *old != set
        {
            let old = old.clone();
            self.forget(domain, &old);
        }
        self.seen.insert(domain.to_string(), (set.clone(), now));
        self.domains.entry(set.clone()).or_default().insert(domain.to_string());
        self.group(&set, now, reserved)
    }

    /// The group `domain` would be in, without recording anything (`ember explain`).
    pub fn would_join(&self, domain: &str, hosts: &[String], now: f64) -> Option<(String, usize)> {
        let set = normalise(hosts);
        let others = self.current(&set, now).filter(|d| *d != domain).count();
        (others > 0).then(|| (self.names.get(&set).cloned().unwrap_or_else(|| group_name(&set) + ".rollup"), others))
    }

    fn current<'a>(&'a self, set: &[String], now: f64) -> impl Iterator<Item = &'a str> {
        self.domains
            .get(set)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(move |d| self.seen.get(*d).is_some_and(|(s, at)| s.as_slice() == set && now - at < MX_SET_TTL))
    }

    fn group(&mut self, set: &[String], now: f64, reserved: impl Fn(&str) -> bool) -> Option<Group> {
        let domains: Vec<String> = self.current(set, now).map(str::to_string).collect();
        if domains.len() < 2 {
            return None;
        }
        let provider = group_name(set);
        let rollup = match self.names.get(set) {
            Some(name) => name.clone(),
            None => {
                let name = (1..)
                    .map(|n| if n == 1 { format!("{provider}.rollup") } else { format!("{provider}-{n}.rollup") })
                    .find(|name| !self.taken.contains_key(name) && !reserved(name))
                    .expect("an unused name");
                self.names.insert(set.to_vec(), name.clone());
                self.taken.insert(name.clone(), set.to_vec());
                name
            }
        };
        Some(Group { rollup, provider, domains })
    }

    fn forget(&mut self, domain: &str, set: &[String]) {
        if let Some(members) = self.domains.get_mut(set) {
            members.remove(domain);
            if members.is_empty() {
                self.domains.remove(set);
            }
        }
    }

    fn sweep(&mut self, now: f64) {
        let stale: Vec<(String, Vec<String>)> = self
            .seen
            .iter()
            .filter(|(_, (_, at))| now - at >= MX_SET_TTL)
            .map(|(d, (set, _))| (d.clone(), set.clone()))
            .collect();
        for (domain, set) in stale {
            self.seen.remove(&domain);
            self.forget(&domain, &set);
        }
    }
}

/// Host names lower case without the trailing dot, sorted, each once.
pub fn normalise(hosts: &[String]) -> Vec<String> {
    let set: BTreeSet<String> =
        hosts.iter().map(|h| h.trim_end_matches('.').to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
    set.into_iter().collect()
}

/// The name of a set: the parent domain its hosts share (at least two labels, and at least one
/// label of each host left out: `mx1.mx.hosting.test` → `mx.hosting.test`, {`a.hosting.test`,
/// `b.hosting.test`} → `hosting.test`); hosts with no such parent are named by the first host.
pub fn group_name(set: &[String]) -> String {
    let Some(first) = set.first() else { return String::new() };
    let reversed: Vec<Vec<&str>> = set.iter().map(|h| h.rsplit('.').collect()).collect();
    let shortest = reversed.iter().map(Vec::len).min().unwrap_or(0);
    let mut common = 0;
    // Stop one label short of the shortest host, so a host is never its own parent.
    while common + 1 < shortest && reversed.iter().all(|labels| labels[common] == reversed[0][common]) {
        common += 1;
    }
    if common < 2 {
        return first.clone();
    }
    let mut labels: Vec<&str> = reversed[0][..common].to_vec();
    labels.reverse();
    labels.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn group_names_come_from_the_common_parent() {
        assert_eq!(group_name(&hosts(&["mx1.mx.hosting.test"])), "mx.hosting.test");
        assert_eq!(group_name(&hosts(&["a.hosting.test", "b.hosting.test"])), "hosting.test");
        assert_eq!(group_name(&hosts(&["mx.a.test", "mx.b.test"])), "mx.a.test", "no parent of two labels");
        assert_eq!(group_name(&hosts(&["a.test", "mx.b.net"])), "a.test");
        assert_eq!(group_name(&hosts(&["hosting.test"])), "hosting.test", "a two-label host keeps its name");
        assert_eq!(
            normalise(&hosts(&["MX2.Hosting.Test.", "mx1.hosting.test", "mx2.hosting.test"])),
            ["mx1.hosting.test", "mx2.hosting.test"]
        );
    }

    #[test]
    fn a_second_domain_with_the_same_mx_set_forms_the_group() {
        let mut sets = MxSets::default();
        let none = |_: &str| false;
        let set = hosts(&["mx1.hosting.test", "mx2.hosting.test"]);
        assert_eq!(sets.saw("a.test", &set, 0.0, none), None, "a domain alone keeps its own queue");
        assert_eq!(sets.saw("a.test", &set, 1.0, none), None, "reporting again changes nothing");
        // Same hosts in another order and spelling: the same set.
        let group = sets.saw("b.test", &hosts(&["MX2.hosting.test.", "mx1.hosting.test"]), 2.0, none).unwrap();
        assert_eq!(group.rollup, "hosting.test.rollup");
        assert_eq!(group.provider, "hosting.test");
        assert_eq!(group.domains, ["a.test", "b.test"]);
        let group = sets.saw("c.test", &set, 3.0, none).unwrap();
        assert_eq!(group.domains, ["a.test", "b.test", "c.test"]);
        // Another set is another group, never merged.
        assert_eq!(sets.saw("d.test", &hosts(&["mx1.hosting.test"]), 4.0, none), None);
        assert_eq!(sets.would_join("e.test", &set, 5.0), Some(("hosting.test.rollup".into(), 3)));
        assert_eq!(sets.would_join("a.test", &set, 5.0), Some(("hosting.test.rollup".into(), 2)));
        assert_eq!(sets.would_join("e.test", &hosts(&["mx.other.test"]), 5.0), None);
    }

    #[test]
    fn stale_reports_and_moved_domains_leave_the_group() {
        let mut sets = MxSets::default();
        let none = |_: &str| false;
        let set = hosts(&["mx.hosting.test"]);
        sets.saw("a.test", &set, 0.0, none);
        // a.test's report is too old to count.
        assert_eq!(sets.saw("b.test", &set, MX_SET_TTL + 1.0, none), None);
        assert!(sets.saw("a.test", &set, MX_SET_TTL + 2.0, none).is_some(), "reported again, it counts");
        // a.test's MX moved elsewhere: b.test is alone again.
        sets.saw("a.test", &hosts(&["mx.elsewhere.test"]), MX_SET_TTL + 3.0, none);
        assert_eq!(sets.saw("b.test", &set, MX_SET_TTL + 4.0, none), None);
        assert_eq!(sets.would_join("c.test", &set, MX_SET_TTL + 5.0), Some(("hosting.test.rollup".into(), 1)));
        assert_eq!(sets.would_join("c.test", &set, 3.0 * MX_SET_TTL), None, "b.test's report is stale by then");
    }

    #[test]
    fn rollup_names_stay_unique_per_set() {
        let mut sets = MxSets::default();
        let reserved = |name: &str| name == "hosting.test.rollup";
        let one = hosts(&["mx1.hosting.test", "mx2.hosting.test"]);
        sets.saw("a.test", &one, 0.0, reserved);
        assert_eq!(sets.saw("b.test", &one, 0.0, reserved).unwrap().rollup, "hosting.test-2.rollup");
        let two = hosts(&["mx3.hosting.test", "mx4.hosting.test"]);
        sets.saw("c.test", &two, 0.0, reserved);
        assert_eq!(sets.saw("d.test", &two, 0.0, reserved).unwrap().rollup, "hosting.test-3.rollup");
        // A set keeps its name.
        assert_eq!(sets.saw("e.test", &one, 1.0, reserved).unwrap().rollup, "hosting.test-2.rollup");
    }
}
