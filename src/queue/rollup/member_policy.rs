//! A recipient's own domain policy inside a rollup queue. A rollup queue's connections are set up
//! with the rollup's settings (`<domain NAME.rollup>`, else `<domain *>`), but each recipient on
//! them keeps what its own domain requires of the connection its mail leaves on: a member domain
//! with `require-starttls yes` never has mail sent in clear because another member, or the
//! rollup, would allow it. Its recipients on a connection without TLS are deferred (4.7.10) and
//! tried again on a later connection; the other members' recipients of the same message go on.
//!
//! Suppression needs nothing here: it is checked at RCPT against the recipient domain's own
//! `suppress-file` (src/ingress/commands.rs), before a message is queued anywhere.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::queue::manager::Job;
use crate::smtp::Reply;

/// The member domains' policies one rollup connection has looked up (one lookup per domain
/// per connection).
pub struct MemberPolicies {
    config: Arc<Config>,
    /// The rollup queue: its own recipients' policy is the connection's.
    queue: String,
    vmta: Option<String>,
    requires_tls: HashMap<String, bool>,
}

/// A job split by what its recipients' domains require of one connection.
#[derive(Debug)]
pub struct Split {
    /// The recipients this connection may carry.
    pub send: Option<Job>,
    /// The others, with the reply that defers them.
    pub defer: Option<(Job, Reply)>,
}

impl MemberPolicies {
    pub fn new(config: Arc<Config>, queue: &str, vmta: &str) -> MemberPolicies {
        let vmta = (vmta != crate::config::DEFAULT_VMTA).then(|| vmta.to_string());
        MemberPolicies { config, queue: queue.to_string(), vmta, requires_tls: HashMap::new() }
    }

    /// `require-starttls` of a recipient domain's own settings.
    fn requires_tls(&mut self, domain: &str) -> bool {
        if domain == self.queue {
            return false;
        }
        if let Some(&known) = self.requires_tls.get(domain) {
            return known;
        }
        let required =
            self.config.queue_settings(domain, self.vmta.as_deref()).is_ok_and(|s| s.policy.require_starttls);
        self.requires_tls.insert(domain.to_string(), required);
        required
    }

    /// Splits `job` for a connection to `mx` (`encrypted`: STARTTLS done): recipients whose own
    /// domain requires TLS wait for an encrypted connection.
    pub fn split(&mut self, job: Job, encrypted: bool, mx: &str) -> Split {
        if encrypted {
            return Split { send: Some(job), defer: None };
        }
        let mut send = Vec::new();
        let mut defer = Vec::new();
        let mut first_domain = None;
        for &index in &job.recipients {
            let domain = job.envelope.recipients[index].domain();
            if self.requires_tls(&domain) {
                first_domain.get_or_insert(domain);
                defer.push(index);
            } else {
                send.push(index);
            }
        }
        let Some(domain) = first_domain else { return Split { send: Some(job), defer: None } };
        let part =
            |recipients: Vec<usize>| Job { envelope: Arc::clone(&job.envelope), recipients, attempts: job.attempts };
        let reply = Reply::new(
            451,
            "4.7.10",
            format!("TLS required: {domain} has require-starttls and the rollup connection to {mx} is not encrypted"),
        );
        Split { send: (!send.is_empty()).then(|| part(send)), defer: Some((part(defer), reply)) }
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

    fn policies() -> MemberPolicies {
        let text = "<domain strict.test>\n require-starttls yes\n</domain>\n\
                    <domain provider.rollup>\n require-starttls no\n</domain>\n";
        let config = crate::config::load_str("t.conf", text, std::path::Path::new("."), crate::config::FileCheck::Warn);
        MemberPolicies::new(Arc::new(config.config), "provider.rollup", crate::config::DEFAULT_VMTA)
    }

    #[test]
    fn a_members_require_starttls_holds_its_recipients_back_from_a_clear_connection() {
        let mut p = policies();
        let split = p.split(job(&["a@strict.test", "b@lax.test", "c@STRICT.test"]), false, "mx1.provider.test");
        assert_eq!(split.send.unwrap().recipients, [1]);
        let (deferred, reply) = split.defer.unwrap();
        assert_eq!((deferred.recipients, deferred.attempts), (vec![0, 2], 1));
        assert_eq!((reply.code, reply.enhanced.as_ref()), (451, "4.7.10"));
        assert!(reply.text.contains("strict.test has require-starttls"), "{reply}");
        // On an encrypted connection everyone goes.
        let split = p.split(job(&["a@strict.test", "b@lax.test"]), true, "mx1.provider.test");
        assert_eq!(split.send.unwrap().recipients, [0, 1]);
        assert!(split.defer.is_none());
        // Only the strict domain: nothing left to send in clear.
        let split = p.split(job(&["a@strict.test"]), false, "mx1.provider.test");
        assert!(split.send.is_none());
        // No member requires TLS: the job is untouched, whatever the rollup says.
        let split = p.split(job(&["b@lax.test", "d@other.test"]), false, "mx1.provider.test");
        assert_eq!(split.send.unwrap().recipients, [0, 1]);
    }
}
