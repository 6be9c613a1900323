//! The manager's side of MX rollup (src/queue/rollup/): putting a domain's queues into a rollup
//! queue when a worker found the domain's provider or reported its MX host set, counting the
//! connections those domain queues still have against the rollup, and answering where a
//! domain's mail goes (`ember explain DOMAIN`).

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Job, Manager, QueueKey};
use crate::config::Dir;
use crate::queue::rollup::{Basis, Matched};
use crate::queue::state::new_queue;

/// Where a domain's mail goes: `GET /api/v1/domains/route`, `ember explain DOMAIN`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DomainRoute {
    pub domain: String,
    /// The most preferred MX host names (empty without MX records).
    pub mx: Vec<String>,
    /// The queue (without the virtual MTA) the domain's mail goes to: its rollup's, or its own.
    pub queue: String,
    /// The rollup's provider; `None` when the domain keeps its own queue.
    pub provider: Option<String>,
    /// Why the domain is (or will be) in the rollup.
    pub basis: Option<Basis>,
    /// The domain's mail is in the rollup now (else its next connection decides).
    pub rolled_up: bool,
    /// The reason, in a sentence.
    pub note: String,
    /// Why there are no MX hosts: the lookup's error, or `no MX records`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx_error: Option<String>,
    /// The domain's own transport-security policy as last seen (DANE, MTA-STS, or none): what
    /// its recipients require of a connection, also inside a rollup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_policy: Option<String>,
}

impl Manager {
    /// A worker matched a domain queue's MX hosts to a rollup: the domain's queues (every
    /// virtual MTA) move there.
    pub(super) fn roll_up_domain(&mut self, key: &QueueKey, matched: &Matched) {
        if self.settings(&matched.rollup, &key.vmta).is_none() {
            return;
        }
        if self.rollups.current(&key.name) != Some(matched.rollup.as_str()) {
            tracing::info!("{key}: MX hosts belong to {} ({})", matched.rollup, matched.basis.describe());
        }
        self.rollups.decide(&key.name, matched);
        self.move_domain_queues(&key.name, &matched.rollup);
    }

    /// `auto-mx-rollup`: a domain queue's most preferred MX hosts. When the set now has two
    /// domains, all of them move to the set's rollup; whether `key`'s domain is in a rollup.
    pub(super) fn mx_seen(&mut self, key: &QueueKey, hosts: &[String]) -> bool {
        if let Some(rollup) = self.rollups.current(&key.name).map(str::to_string) {
            // Another connection of the domain decided meanwhile.
            self.move_domain_queues(&key.name, &rollup);
            return true;
        }
        let now = self.rollups.now();
        let list = Arc::clone(&self.rollups.list);
        let Some(group) = self.rollups.mx_sets.saw(&key.name, hosts, now, |name| list.is_rollup(name)) else {
            return false;
        };
        // The set's other domains reported under an earlier configuration, maybe: each must
        // still want auto-mx-rollup.
        let domains: Vec<String> = group
            .domains
            .into_iter()
            .filter(|d| {
                self.settings(d, &key.vmta).is_some_and(|s| s.policy.auto_mx_rollup && !s.policy.disable_mx_rollup)
            })
            .collect();
        if domains.len() < 2 || !domains.contains(&key.name) {
            return false;
        }
        let matched = Matched { rollup: group.rollup, provider: group.provider, basis: Basis::SameMxSet };
        for domain in &domains {
            if self.rollups.current(domain) != Some(matched.rollup.as_str()) {
                tracing::info!(
                    "{domain}: MX hosts {} are shared with {} other domain(s): {} ({})",
                    hosts.join(", "),
                    domains.len() - 1,
                    matched.rollup,
                    matched.basis.describe()
                );
            }
            self.rollups.decide(domain, &matched);
            self.move_domain_queues(domain, &matched.rollup);
        }
        true
    }

    /// Moves the mail (ready, waiting, held) of every queue of `domain` into `rollup`'s queue of
    /// the same virtual MTA. A domain queue with connections open keeps them to their end; they
    /// count against the rollup's connection cap meanwhile.
    fn move_domain_queues(&mut self, domain: &str, rollup: &str) {
        let keys: Vec<QueueKey> = self.queues.keys().filter(|k| k.name == domain).cloned().collect();
        for key in keys {
            let Some(settings) = self.settings(rollup, &key.vmta) else { continue };
            let to = QueueKey { name: rollup.to_string(), vmta: key.vmta.clone() };
            let Some(q) = self.queues.get_mut(&key) else { continue };
            let ready: Vec<Job> = q.ready.drain(..).collect();
            let waiting = std::mem::take(&mut q.waiting);
            let held: Vec<Job> = std::mem::take(&mut q.held);
            let moved = ready.len() + waiting.values().map(Vec::len).sum::<usize>() + held.len();
            if moved > 0 {
                q.record("mx-rollup", format!("{moved} messages moved to {to}"), None);
            }
            if q.connections > 0 {
                self.rollups.linger(key.clone(), to.clone());
            }
            let config = Arc::clone(&self.config);
            let clock = self.clock.clone();
            let learned = &self.learned;
            let target =
                self.queues.get_or_insert_with(&to, || new_queue(settings, &config, &clock, learned.saved(&to)));
            for job in ready {
                target.enqueue(job);
            }
            for (at, jobs) in waiting {
                target.waiting.entry(at).or_default().extend(jobs);
            }
            target.held.extend(held);
            self.start_workers(&to);
        }
    }

    /// Connections of rolled-up domain queues that still count for the rollup queue `key`.
    pub(super) fn lingering_connections(&mut self, key: &QueueKey) -> usize {
        let queues = &self.queues;
        self.rollups.lingering_connections(key, |k| queues.get(k).map_or(0, |q| q.connections))
    }

    /// Where `domain`'s mail goes, its most preferred MX hosts being `hosts`.
    pub(super) fn route(&mut self, domain: &str, hosts: &[String]) -> DomainRoute {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let settings = self.settings(&domain, crate::config::DEFAULT_VMTA);
        let queue = settings.as_ref().map_or_else(|| domain.clone(), |s| s.queue.clone());
        let mut route = DomainRoute {
            domain,
            mx: hosts.to_vec(),
            queue: queue.clone(),
            provider: None,
            basis: None,
            rolled_up: false,
            note: String::new(),
            mx_error: None,
            tls_policy: None,
        };
        if let Some(rollup) = self.rollups.current(&queue).map(str::to_string) {
            let (provider, basis) = self.rollups.provider(&rollup).map(|(p, b)| (p.to_string(), b)).unzip();
            route.note = format!("rolled up: its mail goes to the {rollup} queue");
            (route.queue, route.provider, route.basis, route.rolled_up) = (rollup, provider, basis, true);
            return route;
        }
        let Some(settings) = settings else {
            route.note = "not a domain Ember can queue mail for".into();
            return route;
        };
        let policy = &settings.policy;
        let check = self.rollups.check(&queue, policy.disable_mx_rollup, policy.auto_mx_rollup);
        route.note = if settings.settings.effective(Dir::SmtpHosts).is_some() {
            "its own queue: smtp-hosts names where its mail goes, so it is never rolled up".into()
        } else if let Some(check) = check {
            if hosts.is_empty() {
                "its own queue: no MX hosts to match".into()
            } else if let Some(matched) = check.classify(hosts.iter().map(String::as_str)) {
                let note =
                    format!("its next connection moves its mail to {} ({})", matched.rollup, matched.basis.describe());
                (route.queue, route.provider, route.basis) =
                    (matched.rollup, Some(matched.provider), Some(matched.basis));
                note
            } else if !check.auto {
                "its own queue: no mx-rollup-list line matches its MX hosts (auto-mx-rollup no)".into()
            } else {
                match self.rollups.mx_sets.would_join(&queue, hosts, self.rollups.now()) {
                    Some((rollup, others)) => {
                        let note = format!(
                            "its next connection moves its mail to {rollup}, with {others} other domain(s) of the same MX host set"
                        );
                        let provider =
                            crate::queue::rollup::mx_sets::group_name(&crate::queue::rollup::mx_sets::normalise(hosts));
                        (route.queue, route.provider, route.basis) = (rollup, Some(provider), Some(Basis::SameMxSet));
                        note
                    }
                    None => "its own queue: no provider, and no other domain with the same MX host set seen".into(),
                }
            }
        } else if policy.disable_mx_rollup {
            "its own queue: disable-mx-rollup yes".into()
        } else {
            "its own queue: no mx-rollup-list, auto-mx-rollup no".into()
        };
        route
    }
}
