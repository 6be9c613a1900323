//! A recipient's own domain policy inside a rollup queue. A rollup queue's connections are set up
//! with the rollup's settings (`<domain NAME.rollup>`, else `<domain *>`) and go to the MX hosts
//! of one member domain, but each recipient on them keeps what its own domain requires of the
//! connection its mail leaves on:
//!
//! - `require-starttls yes`: never sent in clear because another member, or the rollup, would
//!   allow it (deferred with 4.7.10);
//! - an MTA-STS policy (`use-mta-sts`, with the domain's own `smtp-tls-ca-file`): in enforce
//!   mode its recipients go only on a connection whose MX name the policy's `mx` patterns allow,
//!   with STARTTLS and a certificate valid for that name (deferred with 4.7.5 in the policy's
//!   name otherwise); in testing mode they go, and the failure is recorded. Either way the
//!   session counts for the domain's TLS-RPT report;
//! - DANE (`use-dane`), which wins over MTA-STS as it does for a domain's own queue: when the
//!   member's DNSSEC-validated MX records name the connection's host and that host has secure
//!   TLSA records, its recipients go only on an encrypted connection whose certificate chain
//!   matches them (checked after the handshake; deferred with 4.7.5 otherwise), and a failed
//!   DNSSEC lookup defers them too.
//!
//! Deferred recipients are tried again on a later connection; the other members' recipients of
//! the same message go on. Each domain is judged once per connection.
//!
//! Suppression needs nothing here: it is checked at RCPT against the recipient domain's own
//! `suppress-file` (src/ingress/commands.rs), before a message is queued anywhere.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, Dir};
use crate::delivery::client::Connection;
use crate::delivery::tls_policy::TlsPolicies;
use crate::queue::manager::Job;
use crate::queue::worker::WorkerSetup;
use crate::smtp::Reply;

/// The member domains' policies as one rollup connection has judged them.
pub struct MemberPolicies {
    config: Arc<Config>,
    /// The rollup queue: its own recipients' policy is the connection's.
    queue: String,
    vmta: Option<String>,
    /// MTA-STS, unless the connection goes where `smtp-hosts` says (the operator chose).
    tls_policies: Option<Arc<TlsPolicies>>,
    /// Domain → `None` (may be sent on this connection) or the reply that defers it.
    verdicts: HashMap<String, Option<Reply>>,
}

/// A job split by what its recipients' domains require of one connection.
#[derive(Debug)]
pub struct Split {
    /// The recipients this connection may carry.
    pub send: Option<Job>,
    /// The others, one part per reply that defers them.
    pub defer: Vec<(Job, Reply)>,
}

impl MemberPolicies {
    /// The policies for one connection of `setup`'s queue; `None` unless it is a rollup queue.
    /// `by_mx`: the connection's hosts come from MX records (not `smtp-hosts`).
    pub fn for_connection(setup: &WorkerSetup, by_mx: bool) -> Option<MemberPolicies> {
        (setup.mx_domain != setup.key.name).then(|| {
            let tls_policies = setup.tls_policies.clone().filter(|_| by_mx);
            MemberPolicies::new(Arc::clone(&setup.config), &setup.key.name, &setup.key.vmta, tls_policies)
        })
    }

    pub fn new(config: Arc<Config>, queue: &str, vmta: &str, tls_policies: Option<Arc<TlsPolicies>>) -> MemberPolicies {
        let vmta = (vmta != crate::config::DEFAULT_VMTA).then(|| vmta.to_string());
        MemberPolicies { config, queue: queue.to_string(), vmta, tls_policies, verdicts: HashMap::new() }
    }

    /// Judges `domain`'s recipients on `conn`, once per connection.
    async fn judge_once(&mut self, domain: &str, conn: &Connection) {
        if domain == self.queue || self.verdicts.contains_key(domain) {
            return;
        }
        let verdict = self.judge(domain, conn).await;
        self.verdicts.insert(domain.to_string(), verdict);
    }

    /// What `domain`'s own settings say about `conn`: `None` when its recipients may go.
    async fn judge(&self, domain: &str, conn: &Connection) -> Option<Reply> {
        // A domain whose settings cannot be had (a bad name) has nothing of its own to require.
        let settings = self.config.queue_settings(domain, self.vmta.as_deref()).ok()?;
        let encrypted = conn.tls().is_some();
        if settings.policy.require_starttls && !encrypted {
            return Some(Reply::new(
                451,
                "4.7.10",
                format!(
                    "TLS required: {domain} has require-starttls and the rollup connection to {} is not encrypted",
                    conn.mx_name()
                ),
            ));
        }
        let policies = self.tls_policies.as_ref()?;
        let ca_file = settings.settings.path(Dir::SmtpTlsCaFile).map(|p| self.config.path(p));
        let use_policies = crate::delivery::tls_policy::UsePolicies {
            mta_sts: settings.policy.use_mta_sts,
            dane: settings.policy.use_dane,
        };
        let security =
            policies.for_member(domain, conn.mx_name(), conn.remote().port(), use_policies, ca_file.as_deref()).await;
        security.admits(conn).err()
    }

    /// Splits `job` for the connection `conn`: recipients whose own domain's policy the
    /// connection does not meet wait for another.
    pub async fn split(&mut self, job: Job, conn: &Connection) -> Split {
        for &index in &job.recipients {
            let domain = job.envelope.recipients[index].domain();
            self.judge_once(&domain, conn).await;
        }
        partition(job, |domain| self.verdicts.get(domain).cloned().flatten())
    }
}

/// Splits `job` by `verdict` of each recipient's domain (`None`: it goes), one deferred part per
/// reply.
fn partition(job: Job, verdict: impl Fn(&str) -> Option<Reply>) -> Split {
    let mut send = Vec::new();
    let mut defer: Vec<(Vec<usize>, Reply)> = Vec::new();
    for &index in &job.recipients {
        match verdict(&job.envelope.recipients[index].domain()) {
            None => send.push(index),
            Some(reply) => match defer.iter_mut().find(|(_, r)| *r == reply) {
                Some((part, _)) => part.push(index),
                None => defer.push((vec![index], reply)),
            },
        }
    }
    if defer.is_empty() {
        return Split { send: Some(job), defer: Vec::new() };
    }
    let part = |recipients: Vec<usize>| Job { envelope: Arc::clone(&job.envelope), recipients, attempts: job.attempts };
    Split {
        send: (!send.is_empty()).then(|| part(send)),
        defer: defer.into_iter().map(|(recipients, reply)| (part(recipients), reply)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Envelope, MessageId, Recipient};

    fn job(rcpts: &[&str]) -> Job {
        let envelope = Envelope {
            id: MessageId(7),
            ..Envelope::new("s@sender.test".into(), rcpts.iter().map(|r| Recipient::new(*r)).collect())
        };
        Job { envelope: Arc::new(envelope), recipients: (0..rcpts.len()).collect(), attempts: 1 }
    }

    #[test]
    fn each_domains_recipients_wait_with_their_own_domains_reply() {
        let tls = Reply::new(451, "4.7.10", "TLS required: strict.test has require-starttls");
        let sts = Reply::new(451, "4.7.5", "MTA-STS policy of sts.test: mx.p.test is not in the policy's mx list");
        let verdict = |domain: &str| match domain {
            "strict.test" => Some(tls.clone()),
            "sts.test" => Some(sts.clone()),
            _ => None,
        };
        let split = partition(job(&["a@strict.test", "b@lax.test", "c@STS.test", "d@strict.test"]), verdict);
        assert_eq!(split.send.unwrap().recipients, [1]);
        let deferred: Vec<_> = split.defer.iter().map(|(j, r)| (j.recipients.clone(), j.attempts, r)).collect();
        assert_eq!(deferred, [(vec![0, 3], 1, &tls), (vec![2], 1, &sts)]);
        // Only deferred domains: nothing left to send on this connection.
        let split = partition(job(&["a@sts.test"]), verdict);
        assert!(split.send.is_none());
        assert_eq!(split.defer.len(), 1);
        // No member with a requirement the connection misses: the job is untouched.
        let split = partition(job(&["b@lax.test", "d@other.test"]), verdict);
        assert_eq!(split.send.unwrap().recipients, [0, 1]);
        assert!(split.defer.is_empty());
    }
}
